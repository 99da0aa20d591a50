"""The docs hold together: links resolve, code points at pages that exist, the README stays short,
and the reference pages name every setting, step type, trigger and condition the code knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.settings import Settings
from workflows.conditions import CONDITION_KEYS
from workflows.steps import STEP_TYPES
from workflows.triggers import TRIGGER_TYPES

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
README_MAX_BYTES = 16 * 1024
# Where code cites a page: `docs/automations.md#wait`, `CONTRIBUTING.md#layout`, in comments,
# docstrings and config files.
CODE_FOLDERS = (
    "workflows",
    "core",
    "store",
    "domain",
    "activities",
    "api",
    "worker",
    "cli",
    "bench",
    "tests",
)
CODE_FILES = ("Makefile", "docker-compose.yml", "Dockerfile", "pyproject.toml", ".ci/run")

_FENCE = re.compile(r"^(```|~~~)")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_DOC_POINTER = re.compile(r"\b(docs/[\w-]+\.md|CONTRIBUTING\.md)(#[\w-]+)?")


def _prose(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _prose(path):
        if match := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line):
            slug, n = _slug(match.group(1)), 1
            while slug in found:  # repeated headings get -1, -2…
                slug, n = f"{_slug(match.group(1))}-{n}", n + 1
            found.add(slug)
    return found


def _broken(source: Path, target: str) -> str | None:
    """Why a relative link from `source` does not resolve, or None."""
    path_part, _, anchor = target.partition("#")
    resolved = (source.parent / path_part).resolve() if path_part else source
    if not resolved.exists():
        return f"{target}: no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for number, line in enumerate(_prose(page), 1):
        for target in _LINK.findall(_CODE_SPAN.sub("", line)):
            if re.match(r"^[a-z][a-z+.-]*:", target):  # https:, mailto:…
                continue
            if (why := _broken(page, target)) is not None:
                broken.append(f"line {number}: {why}")
    assert broken == []


def test_code_points_at_pages_that_exist() -> None:
    files = [path for folder in CODE_FOLDERS for path in (ROOT / folder).rglob("*.py")]
    files += [ROOT / name for name in CODE_FILES if (ROOT / name).exists()]
    broken = sorted(
        f"{path.relative_to(ROOT)}:{number}: {why}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for page, anchor in _DOC_POINTER.findall(line)
        if (why := _broken(ROOT / "README.md", f"{page}{anchor}")) is not None
    )
    assert broken == []


def test_readme_is_a_front_door() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move reference text to docs/"


def test_configuration_names_every_setting() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [
        f"CAIRN_{name.upper()}"
        for name in Settings.model_fields
        if f"CAIRN_{name.upper()}" not in text
    ]
    assert missing == []


def test_automations_names_every_step_trigger_and_condition() -> None:
    text = (ROOT / "docs" / "automations.md").read_text()
    names = [*STEP_TYPES, *TRIGGER_TYPES, *CONDITION_KEYS]
    assert [name for name in names if f"`{name}`" not in text and f'"{name}"' not in text] == []
