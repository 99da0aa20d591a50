"""Waiting for a run to close and explaining one that does not."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType

from store.models import OutboxEntry
from tests.helpers.stack import Stack, eventually
from workflows.contracts import RunState


async def finished(stack: Stack, workflow_id: str) -> dict[str, Any]:
    """Wait for the run to close (a minute at most), then read it back through the API."""
    handle = stack.client.get_workflow_handle(workflow_id, result_type=RunState)
    try:
        await asyncio.wait_for(handle.result(), timeout=60)
    except TimeoutError:
        raise AssertionError(await stuck_run_report(stack, workflow_id)) from None

    async def closed() -> dict[str, Any]:
        run = await stack.run(workflow_id)
        assert run["status"] != "running", run
        return run

    return await eventually(closed)  # type: ignore[no-any-return]


async def stuck_run_report(stack: Stack, workflow_id: str) -> str:
    """What a run that did not finish was doing: the end of its history and the outbox rows
    not yet delivered (a lost wake-up shows as a signal missing after the last change)."""
    history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
    events = [
        f"{e.event_id} {EventType.Name(e.event_type).removeprefix('EVENT_TYPE_')}"
        f" {e.event_time.ToDatetime():%H:%M:%S.%f}"
        for e in history.events
    ]
    async with stack.db.read() as session:
        outbox = (await session.execute(select(OutboxEntry))).scalars().all()
    pending = [(o.id, o.kind, o.contact_id, o.claimed_by, o.claimed_until) for o in outbox]
    return f"{workflow_id} still running; history: {events[-25:]}; outbox: {pending[-20:]}"
