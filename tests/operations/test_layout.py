"""The folders are the architecture: imports point one way and never in a circle."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each package and the packages it may import (besides itself). `cli` starts the worker process
# (`cairn worker`), so it is the one package allowed to import `worker`.
ALLOWED = {
    "workflows": set(),
    "core": {"workflows"},
    "store": {"workflows", "core"},
    "domain": {"workflows", "core", "store"},
    "activities": {"workflows", "core", "store", "domain"},
    "api": {"workflows", "core", "store", "domain"},
    "worker": {"workflows", "core", "store", "domain", "activities"},
    "cli": {"workflows", "core", "store", "domain", "worker"},
}


def cairn_imports(path: Path) -> set[str]:
    """The Cairn modules `path` imports, anywhere in it (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in ALLOWED and module_path(n)}
    return found


def module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def modules() -> dict[str, Path]:
    found = {}
    for package in ALLOWED:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = sorted(
        f"{name} imports {imported}"
        for name, path in modules().items()
        if name.split(".")[0] == package
        for imported in cairn_imports(path)
        if (top := imported.split(".")[0]) != package and top not in ALLOWED[package]
    )
    assert wrong == []


def test_no_module_imports_itself_in_a_circle() -> None:
    everything = modules()
    graph = {
        name: {i if i in everything else i.rpartition(".")[0] for i in cairn_imports(path)}
        for name, path in everything.items()
    }
    graph = {
        name: {i for i in deps if i in everything and i != name} for name, deps in graph.items()
    }
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")
