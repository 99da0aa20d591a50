"""The outbox dispatcher against a database of its own (no other dispatcher to race with)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from domain import outbox
from domain.outbox import OutboxDispatcher
from store.automations import create_automation
from store.db import open_database
from store.models import Contact, OutboxDeadLetter, OutboxEntry, Run
from tests.helpers.stack import Stack, api_client


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


async def test_a_batch_failing_midway_enrolls_nobody_twice_and_sets_a_poison_row_aside(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trigger enrollment raising for one row of a batch once used to give the whole batch
    back, so rows whose triggers had fired fired again: with `entry: multiple` and the first
    run already ended, the contact was enrolled twice. Now the batch is delivered again row by
    row, each row enrolls its contact once however often it is delivered, the good rows are
    delivered, and a row that always fails moves to the dead letters, reported by /healthz."""
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    try:
        async with db.write() as session:
            await create_automation(
                session,
                "again",
                {
                    "name": "again",
                    "entry": "multiple",
                    "triggers": [{"type": "tag_added", "tag": "go"}],
                    "start": "t",
                    "steps": {"t": {"type": "add_tag", "tag": "done"}},
                },
            )
            contacts = [Contact(email=f"{n}@example.com") for n in ("a", "b", "c", "poison")]
            session.add_all(contacts)
            await session.flush()
            first, flaky, last, poison = (c.id for c in contacts)
            session.add_all(
                OutboxEntry(contact_id=c.id, kind="tag_added", data={"tag": "go"}) for c in contacts
            )

        real_enroll = outbox.enroll
        failed_once: set[int] = set()

        async def enroll(*args: Any, **kwargs: Any) -> Any:
            contact_id = args[4]
            if contact_id == poison or (contact_id == flaky and flaky not in failed_once):
                failed_once.add(contact_id)
                raise RuntimeError(f"trigger failed for contact {contact_id}")
            enrolled = await real_enroll(*args, **kwargs)
            # The automation is one quick step: the run has ended before the next delivery.
            async with db.write() as session:
                await session.execute(update(Run).values(status="completed"))
            return enrolled

        monkeypatch.setattr(outbox, "enroll", enroll)
        # No worker on this queue: the runs' workflows are started, never run.
        dispatcher = OutboxDispatcher(
            db, stack.client, f"nobody-{uuid.uuid4().hex[:8]}", max_attempts=3, retry_seconds=0
        )

        async def entries() -> dict[int, int]:
            async with db.read() as session:
                found = await session.execute(
                    select(Run.contact_id, func.count()).group_by(Run.contact_id)
                )
            return {contact_id: count for contact_id, count in found.all()}

        async def pending() -> list[int]:
            async with db.read() as session:
                return list((await session.scalars(select(OutboxEntry.contact_id))).all())

        async def deliver() -> None:
            """A poll of the dispatcher's loop, which logs what a batch raises and goes on."""
            try:
                await dispatcher.drain_once()
            except Exception:
                pass

        await deliver()
        assert await entries() == {first: 1, flaky: 1, last: 1}
        for _ in range(3):
            await deliver()
        assert await entries() == {first: 1, flaky: 1, last: 1}
        assert await pending() == []
        async with db.read() as session:
            (dead,) = (await session.scalars(select(OutboxDeadLetter))).all()
        assert (dead.contact_id, dead.kind, dead.attempts) == (poison, "tag_added", 3)
        assert "trigger failed for contact" in dead.error

        async with api_client(stack.settings, stack.client, db) as http:
            health = (await http.get("/healthz")).json()
            listed = (await http.get("/api/v1/outbox/dead")).json()
            metrics = (await http.get("/metrics")).text
        assert health["outbox_dead_letters"] == 1
        assert [(d["contact_id"], d["attempts"]) for d in listed] == [(poison, 3)]
        assert "cairn_outbox_dead_letters 1" in metrics
    finally:
        await db.dispose()
