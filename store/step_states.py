"""What a step remembers across the runs of its automation (a webhook URL that is gone, an audience
it created), one JSON object per (automation, step) in `step_states`.

Each caller owns a top-level key of that object, so two concerns of one step never collide.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import StepState


async def read_state(session: AsyncSession, automation_id: str, step_id: str) -> dict[str, Any]:
    row = await session.get(StepState, (automation_id, step_id))
    return dict(row.data) if row is not None else {}


async def states_of(session: AsyncSession, automation_id: str) -> dict[str, dict[str, Any]]:
    """Every remembered state of one automation, by step id."""
    rows = await session.scalars(select(StepState).where(StepState.automation_id == automation_id))
    return {row.step_id: dict(row.data) for row in rows}


async def lock_state(session: AsyncSession, automation_id: str, step_id: str) -> StepState:
    """The step's row, created if missing and locked for the rest of the caller's transaction.

    On PostgreSQL the row lock orders concurrent writers; on SQLite the writer's BEGIN IMMEDIATE
    already does. Two transactions inserting the first row at once: the loser re-reads it.
    """
    key = (automation_id, step_id)
    row = await session.get(StepState, key, with_for_update=True)
    if row is not None:
        return row
    try:
        async with session.begin_nested():
            row = StepState(automation_id=automation_id, step_id=step_id, data={})
            session.add(row)
    except IntegrityError:
        row = await session.get(StepState, key, with_for_update=True, populate_existing=True)
        assert row is not None
    return row


async def merge_state(
    session: AsyncSession, automation_id: str, step_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Set (or, with a None value, drop) top-level keys of the step's state; returns the result."""
    row = await lock_state(session, automation_id, step_id)
    data = dict(row.data or {})
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    row.data = data  # a new dict so SQLAlchemy sees the JSON change
    await session.flush()
    return data
