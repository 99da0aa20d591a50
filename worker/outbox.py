"""The outbox dispatcher (DESIGN §2): committed changes → running runs (signals) → triggers.

Any number of dispatchers may run (one in each API and worker process): rows are claimed with
a lease, so a crashed dispatcher's rows are picked up by another after the lease expires.
Delivery is at-least-once; signals are idempotent wake-ups and enrollment obeys entry rules,
so delivering a row twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from store import automations as automation_store
from store.conditions import evaluate_all
from store.db import Database
from store.models import OutboxEntry, utcnow
from store.runs import running_runs
from worker.enrollment import enroll, start_run
from worker.triggers import trigger_matches
from workflows.contracts import SIGNAL_CONTACT_CHANGED, ContactChanged

log = logging.getLogger("cairn.outbox")

LEASE = timedelta(seconds=30)
BATCH = 200


class OutboxDispatcher:
    def __init__(
        self, db: Database, client: Client, task_queue: str, *, poll_seconds: float = 1.0
    ) -> None:
        self.db = db
        self.client = client
        self.task_queue = task_queue
        self.poll_seconds = poll_seconds
        self.name = uuid.uuid4().hex[:16]
        self._kicked = asyncio.Event()

    def kick(self) -> None:
        """Something was just committed: deliver now rather than at the next poll."""
        self._kicked.set()

    async def run(self) -> None:
        while True:
            try:
                while await self.drain_once():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox delivery failed; retrying")
            try:
                await asyncio.wait_for(self._kicked.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass
            self._kicked.clear()

    async def drain_once(self) -> int:
        """Claim a batch, deliver it in order, delete what was delivered; returns rows handled."""
        now = utcnow()
        available = or_(OutboxEntry.claimed_until.is_(None), OutboxEntry.claimed_until < now)
        # Look before locking: an idle poll must not take SQLite's write lock every second.
        async with self.db.read() as session:
            if await session.scalar(select(OutboxEntry.id).where(available).limit(1)) is None:
                return 0
        async with self.db.write() as session:
            ids = (
                await session.scalars(
                    select(OutboxEntry.id)
                    .where(
                        or_(OutboxEntry.claimed_until.is_(None), OutboxEntry.claimed_until < now)
                    )
                    .order_by(OutboxEntry.id)
                    .limit(BATCH)
                )
            ).all()
            if not ids:
                return 0
            await session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id.in_(ids))
                .values(claimed_until=now + LEASE, claimed_by=self.name)
            )
        async with self.db.read() as session:
            rows = (
                await session.scalars(
                    select(OutboxEntry)
                    .where(OutboxEntry.id.in_(ids), OutboxEntry.claimed_by == self.name)
                    .order_by(OutboxEntry.id)
                )
            ).all()
        documents: list[dict[str, Any]] | None = None
        for row in rows:
            if row.kind == "start_run":
                await start_run(
                    self.client,
                    self.task_queue,
                    row.data["workflow_id"],
                    row.data["automation"],
                    row.contact_id,
                    row.data["version"],
                )
                continue
            await self._wake_runs(row)
            if documents is None:
                async with self.db.read() as session:
                    documents = await automation_store.active_documents(session)
            await self._fire_triggers(row, documents)
        async with self.db.write() as session:
            await session.execute(
                delete(OutboxEntry).where(OutboxEntry.id.in_([r.id for r in rows]))
            )
        return len(rows)

    async def _wake_runs(self, row: OutboxEntry) -> None:
        async with self.db.read() as session:
            runs = await running_runs(session, row.contact_id)
        targets = [r.workflow_id for r in runs if r.workflow_id != row.origin_workflow_id]
        await asyncio.gather(*(self._signal(wid, row.kind) for wid in targets))

    async def _signal(self, workflow_id: str, kind: str) -> None:
        try:
            await self.client.get_workflow_handle(workflow_id).signal(
                SIGNAL_CONTACT_CHANGED, ContactChanged(kind=kind)
            )
        except RPCError as err:
            # The run finished between the index read and the signal: nothing to wake.
            if err.status != RPCStatusCode.NOT_FOUND:
                raise

    async def _fire_triggers(self, row: OutboxEntry, documents: list[dict[str, Any]]) -> None:
        for document in documents:
            for trigger in document.get("triggers") or []:
                if not trigger_matches(trigger, row.kind, row.data):
                    continue
                if trigger.get("filter"):
                    async with self.db.read() as session:
                        (ok,) = await evaluate_all(
                            session, row.contact_id, [trigger["filter"]], utcnow()
                        )
                    if not ok:
                        continue
                await enroll(
                    self.db,
                    self.client,
                    self.task_queue,
                    document["id"],
                    row.contact_id,
                    entry=trigger.get("entry") or document.get("entry"),
                )
                break  # one matching trigger enrolls; the others would be refused anyway
