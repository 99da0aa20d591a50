"""The Temporal connection: the client Cairn connects with, its search attributes, and preparing
a cluster for it (`cairn setup`: the namespace, then the attributes in it)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from core.codec import data_converter
from core.settings import Settings
from workflows.contracts import AUTOMATION_KEY, CONTACT_KEY, STEP_KEY, VERSION_KEY
from workflows.simulation import SIMULATION_KEY

SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [
    AUTOMATION_KEY,
    CONTACT_KEY,
    STEP_KEY,
    VERSION_KEY,
    SIMULATION_KEY,
]


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client with Cairn's data converter (encrypting with a key set); `runtime` (e.g. serving
    metrics) if given."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
    )


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
