"""The outbox dispatcher against a database of its own (no other dispatcher to race with)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, select

from domain.outbox import OutboxDispatcher
from store.db import open_database
from store.models import OutboxEntry
from tests.helpers.stack import Stack


async def test_a_change_that_reuses_a_delivered_rows_id_is_delivered(
    stack: Stack, tmp_path: Path
) -> None:
    """SQLite gives a deleted last row's id to the next row. A row the dispatcher delivered
    (and deletes lazily, at its next claim) may be deleted by someone else meanwhile (an
    enrollment removes its own start rows) and its id reused by a new change: that change
    must be delivered, not deleted as the old row (the lost wake-up once seen in CI)."""
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    try:
        dispatcher = OutboxDispatcher(db, stack.client, "nobody")
        async with db.write() as session:
            first = OutboxEntry(contact_id=1, kind="tag_added", data={"tag": "a"})
            session.add(first)
        assert await dispatcher.drain_once() == 1

        async with db.write() as session:
            await session.execute(delete(OutboxEntry).where(OutboxEntry.id == first.id))
            second = OutboxEntry(contact_id=2, kind="tag_added", data={"tag": "b"})
            session.add(second)
        assert second.id == first.id  # the precondition: SQLite reused the id

        assert await dispatcher.drain_once() == 1  # delivered, not mistaken for the first
        assert await dispatcher.drain_once() == 0
        async with db.read() as session:
            assert (await session.scalars(select(OutboxEntry))).all() == []
    finally:
        await db.dispose()
