"""The outbox dispatcher (docs/architecture.md#the-outbox): committed changes → running runs (signals) → triggers.

Any number of dispatchers may run (one in each API and worker process): rows are claimed with
a lease, so a crashed dispatcher's rows are picked up by another after the lease expires.
Delivery is at-least-once, and each row's effects are idempotent: signals are wake-ups, starts
use the run's workflow id, and a row records the automations it enrolled its contact in. A
batch that fails is delivered again row by row; a row that keeps failing moves to the dead
letters (`outbox_dead`) after `max_attempts`, its neighbours delivered meanwhile.

Four kinds of rows: a contact's change (wake its runs, fire triggers; a run's start or end
wakes only runs that watch it with `in_automation`), a queued `start_run` (started, then a
change like `run_started`), a `split_deadline` (starts the workflow that decides an even
split's winner when it is due), and an `automation_changed` (a new version, live edits and
(de)activation included, docs/api.md#live-edits): one row per change, expanded into pages
of `new_version` signals to the automation's running runs, a page per claim, the row keeping
its place so that any dispatcher carries on after it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain.enrollment import TEMPORAL_UNREACHABLE, enroll, start_run
from domain.split_deadlines import SPLIT_DEADLINE, start_split_deadline
from domain.trigger_matching import trigger_matches
from store import automations as automation_store
from store.conditions import evaluate_all
from store.db import Database
from store.models import (
    OUTBOX_LEASE,
    OUTBOX_MAX_ATTEMPTS,
    OutboxDeadLetter,
    OutboxEntry,
    utcnow,
)
from store.runs import (
    RUN_ENDED,
    RUN_STARTED,
    current_version,
    running_runs_after,
    running_runs_of,
)
from workflows.contracts import (
    SIGNAL_CONTACT_CHANGED,
    SIGNAL_NEW_VERSION,
    ContactChanged,
    NewVersion,
)

log = logging.getLogger("cairn.outbox")

BATCH = 200
AUTOMATION_CHANGED = "automation_changed"
START_RUN = "start_run"
# A queued start, once started, is the change "run started" (enroll_many turns the row into one).
RUN_CHANGES = {START_RUN, RUN_STARTED, RUN_ENDED}
# Runs signalled per claim of an automation_changed row, and at once: a page takes a few
# seconds at most, far inside the lease, and 100,000 runs are 100 pages, not one request.
RUNS_PER_PAGE = 1000
SIGNALS_AT_ONCE = 64
# A failed row waits retry_seconds * 2^(attempts - 1) before its next delivery, at most this.
MAX_RETRY_DELAY = timedelta(minutes=5)
ERROR_CHARS = 2000


def automation_changed(automation_id: str, version: int) -> OutboxEntry:
    """The row that moves an automation's running runs to `version` (add it in the same
    transaction as the version). It names no contact: 0 stands for none."""
    return OutboxEntry(
        contact_id=0,
        kind=AUTOMATION_CHANGED,
        data={"automation": automation_id, "version": version},
    )


class OutboxDispatcher:
    def __init__(
        self,
        db: Database,
        client: Client,
        task_queue: str,
        *,
        poll_seconds: float = 1.0,
        max_attempts: int = OUTBOX_MAX_ATTEMPTS,
        retry_seconds: float = 2.0,
    ) -> None:
        self.db = db
        self.client = client
        self.task_queue = task_queue
        self.poll_seconds = poll_seconds
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.name = uuid.uuid4().hex[:16]
        self._kicked = asyncio.Event()
        self._active_documents: list[dict[str, Any]] = []
        self._delivered: list[int] = []  # delivered, to be deleted by the next claim
        self._documents_stamp: tuple[Any, ...] | None = None
        self._in_automation_watchers: dict[str, set[str]] = {}
        self._watchers_stamp: tuple[Any, ...] | None = None

    def kick(self) -> None:
        """Something was just committed: deliver now rather than at the next poll."""
        self._kicked.set()

    async def run(self) -> None:
        while True:
            try:
                while await self.drain_once() >= BATCH:
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
        """Claim a batch and deliver it; returns rows handled.

        Delivered rows are deleted by the next claim's transaction (or the next poll's): one
        write transaction per batch instead of two, which matters on SQLite, where every
        write transaction of every process queues for the same lock.
        """
        rows = await self._claim()
        if not rows:
            return 0
        failed: dict[int, str] = {}
        untried: list[OutboxEntry] = []
        outage: Exception | None = None
        try:
            unfinished = await self._deliver(rows)
        except Exception as err:
            if _outage(err):
                # Given back at once (e.g. Temporal was down): retried at the next poll once it
                # is back, not after the lease, which is for dispatchers that died holding rows.
                await self._release(rows)
                raise
            # One row's failure must neither hold back the others nor count against them: the
            # batch again, row by row. What it did already is not done twice (each row's
            # effects are idempotent: signals wake, starts and enrollments happen once per row).
            log.warning("outbox batch failed (%s); delivering its rows one by one", err)
            unfinished, failed, untried, outage = await self._deliver_each(rows)
        held = {r.id for r in unfinished + untried} | failed.keys()
        self._delivered = [r.id for r in rows if r.id not in held]
        if failed:
            await self._record_failures([r for r in rows if r.id in failed], failed)
        if untried:
            await self._release(untried)
        if unfinished:
            await self._release(unfinished, keep_data=True)
            self.kick()  # the next page at once, not at the next poll
        if outage is not None:
            raise outage
        return len(rows)

    async def _deliver_each(
        self, rows: list[OutboxEntry]
    ) -> tuple[list[OutboxEntry], dict[int, str], list[OutboxEntry], Exception | None]:
        """Deliver the rows one at a time: the rows with pages left, the rows that failed (their
        errors), and, if Temporal or the database went away, the rows not tried and why."""
        unfinished: list[OutboxEntry] = []
        failed: dict[int, str] = {}
        for i, row in enumerate(rows):
            try:
                unfinished += await self._deliver([row])
            except Exception as err:
                if _outage(err):
                    return unfinished, failed, rows[i:], err
                log.exception("outbox row %s (%s) failed to deliver", row.id, row.kind)
                failed[row.id] = f"{type(err).__name__}: {err}"[:ERROR_CHARS]
        return unfinished, failed, [], None

    async def _record_failures(self, rows: list[OutboxEntry], errors: dict[int, str]) -> None:
        """Count a failed delivery of each row: retried later (backing off), or, at
        `max_attempts`, moved to the dead letters with its error."""
        now = utcnow()
        async with self.db.write() as session:
            ours = OutboxEntry.claimed_by == self.name
            for row in rows:
                attempts = (row.attempts or 0) + 1
                if attempts < self.max_attempts:
                    delay = min(
                        timedelta(seconds=self.retry_seconds * 2 ** (attempts - 1)),
                        MAX_RETRY_DELAY,
                    )
                    # Unclaimed but not available before `claimed_until`: the back-off.
                    await session.execute(
                        update(OutboxEntry)
                        .where(OutboxEntry.id == row.id, ours)
                        .values(
                            attempts=attempts,
                            last_error=errors[row.id],
                            claimed_until=now + delay,
                            claimed_by=None,
                        )
                    )
                    continue
                gone = await session.execute(
                    delete(OutboxEntry).where(OutboxEntry.id == row.id, ours)
                )
                if gone.rowcount:  # type: ignore[attr-defined]
                    log.error(
                        "outbox row %s (%s, contact %s) failed %d times; moved to the dead "
                        "letters: %s",
                        row.id,
                        row.kind,
                        row.contact_id,
                        attempts,
                        errors[row.id],
                    )
                    session.add(
                        OutboxDeadLetter(
                            outbox_id=row.id,
                            contact_id=row.contact_id,
                            kind=row.kind,
                            data=row.data,
                            origin_workflow_id=row.origin_workflow_id,
                            enrolled=row.enrolled or {},
                            created_at=row.created_at,
                            attempts=attempts,
                            error=errors[row.id],
                            failed_at=now,
                        )
                    )

    async def _deliver(self, rows: list[OutboxEntry]) -> list[OutboxEntry]:
        """Deliver the rows; returns the automation changes with runs left to signal."""
        changes = [r for r in rows if r.kind not in (START_RUN, AUTOMATION_CHANGED, SPLIT_DEADLINE)]
        await asyncio.gather(
            *(
                start_split_deadline(self.client, self.task_queue, r)
                for r in rows
                if r.kind == SPLIT_DEADLINE
            )
        )
        await asyncio.gather(
            *(
                start_run(
                    self.client,
                    self.task_queue,
                    r.data["workflow_id"],
                    r.data["automation"],
                    r.contact_id,
                    r.data["version"],
                    r.data.get("deal"),
                )
                for r in rows
                if r.kind == START_RUN
            )
        )
        # A started run is a change of its contact too: its other runs may wait on
        # `in_automation` (the row now stands for that change; see enroll_many).
        started = [r for r in rows if r.kind == START_RUN]
        if changes or started:
            await self._wake_runs(changes + started)
        if changes:
            await self._fire_triggers(changes)
        return await self._move_runs([r for r in rows if r.kind == AUTOMATION_CHANGED])

    async def _release(self, rows: list[OutboxEntry], *, keep_data: bool = False) -> None:
        """Give rows back unclaimed; `keep_data`: with their `data` as changed here (the
        place an automation change has reached)."""
        try:
            async with self.db.write() as session:
                ours = OutboxEntry.claimed_by == self.name
                if keep_data:
                    for row in rows:
                        await session.execute(
                            update(OutboxEntry)
                            .where(OutboxEntry.id == row.id, ours)
                            .values(data=row.data, claimed_until=None, claimed_by=None)
                        )
                else:
                    await session.execute(
                        update(OutboxEntry)
                        .where(OutboxEntry.id.in_([r.id for r in rows]), ours)
                        .values(claimed_until=None, claimed_by=None)
                    )
        except Exception:
            log.exception("could not give back outbox rows; their lease will expire")

    async def _move_runs(self, rows: list[OutboxEntry]) -> list[OutboxEntry]:
        """One page of each changed automation's running runs is told its current version;
        returns the rows with pages left, their `data["after"]` the last run id signalled.

        The current version, not the row's: a later change's row then has nothing left to
        say, and the runs ignore a version they have. Several rows of one automation share
        one pass, from the earliest place any of them has reached.
        """
        by_automation: dict[str, list[OutboxEntry]] = {}
        for row in rows:
            by_automation.setdefault(row.data["automation"], []).append(row)
        unfinished: list[OutboxEntry] = []
        limit = asyncio.Semaphore(SIGNALS_AT_ONCE)

        async def signal(workflow_id: str, version: int) -> None:
            async with limit:
                await self._signal(workflow_id, SIGNAL_NEW_VERSION, NewVersion(version=version))

        for automation_id, same in by_automation.items():
            lead = min(same, key=lambda r: int(r.data.get("after", 0)))
            async with self.db.read() as session:
                version = await current_version(session, automation_id)
                page = await running_runs_after(
                    session, automation_id, int(lead.data.get("after", 0)), RUNS_PER_PAGE
                )
            if version:  # 0: the automation is gone, and its runs with it
                await asyncio.gather(*(signal(wid, version) for _, wid in page))
            if version and len(page) == RUNS_PER_PAGE:
                lead.data = {**lead.data, "after": page[-1][0]}
                unfinished.append(lead)
        return unfinished

    async def _claim(self) -> list[OutboxEntry]:
        now = utcnow()
        available = or_(OutboxEntry.claimed_until.is_(None), OutboxEntry.claimed_until < now)
        # Look before locking: an idle poll must not take SQLite's write lock every second.
        if not self._delivered:
            async with self.db.read() as session:
                if await session.scalar(select(OutboxEntry.id).where(available).limit(1)) is None:
                    return []
        async with self.db.write() as session:
            if self._delivered:
                # Still ours only: SQLite reuses the id of a deleted last row, so a row deleted
                # meanwhile (an enrollment removes its own start rows) may have come back under
                # the same id as a new, undelivered change (a lost wake-up, seen in CI).
                await session.execute(
                    delete(OutboxEntry).where(
                        OutboxEntry.id.in_(self._delivered), OutboxEntry.claimed_by == self.name
                    )
                )
                self._delivered = []
            rows = list(
                (
                    await session.scalars(
                        select(OutboxEntry).where(available).order_by(OutboxEntry.id).limit(BATCH)
                    )
                ).all()
            )
            if rows:
                await session.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id.in_([r.id for r in rows]))
                    .values(claimed_until=now + OUTBOX_LEASE, claimed_by=self.name)
                )
        return rows

    async def _wake_runs(self, changes: list[OutboxEntry]) -> None:
        """One signal per running run, however many of its contact's changes the batch holds:
        a signal is a wake-up, and the run re-reads the database anyway
        (docs/architecture.md#conditions-and-goals).

        A run's start or end matters only to an `in_automation` condition naming its
        automation: it wakes the contact's runs of automations that have one, no others.
        """
        watchers: dict[str, set[str]] = {}
        async with self.db.read() as session:
            runs = await running_runs_of(session, {r.contact_id for r in changes})
            if any(r.kind in RUN_CHANGES for r in changes):
                watchers = await self._watchers(session)
        wake: dict[str, str] = {}
        for change in changes:
            for run, automation_id in runs.get(change.contact_id, []):
                if run == change.origin_workflow_id:
                    continue
                if change.kind in RUN_CHANGES and automation_id not in watchers.get(
                    str(change.data.get("automation")), ()
                ):
                    continue
                wake[run] = change.kind
        await asyncio.gather(
            *(
                self._signal(wid, SIGNAL_CONTACT_CHANGED, ContactChanged(kind=kind))
                for wid, kind in wake.items()
            )
        )

    async def _signal(self, workflow_id: str, signal: str, message: Any) -> None:
        try:
            await self.client.get_workflow_handle(workflow_id).signal(signal, message)
        except RPCError as err:
            # The run finished between the index read and the signal, or its start is still
            # queued (it loads the newest version when it starts): nothing to tell it.
            if err.status != RPCStatusCode.NOT_FOUND:
                raise

    async def _fire_triggers(self, changes: list[OutboxEntry]) -> None:
        documents = await self._documents()
        for row in changes:
            deal_id = _fired_by_deal(row)
            # A deal's change fires triggers for its primary contact only, in one run about
            # that deal, as ActiveCampaign does; its other contacts' rows just woke their runs.
            if deal_id is not None and row.data.get("primary_contact") not in (
                None,
                row.contact_id,
            ):
                continue
            for document in documents:
                # The first trigger that matches the change and whose filter passes: another
                # trigger of the same kind may pass where the first one's filter did not.
                for trigger in document.get("triggers") or []:
                    if trigger_matches(trigger, row.kind, row.data) and await self._passes_filter(
                        trigger, row.contact_id, deal_id
                    ):
                        await enroll(
                            self.db,
                            self.client,
                            self.task_queue,
                            document["id"],
                            row.contact_id,
                            entry=trigger.get("entry") or document.get("entry"),
                            deal_id=deal_id,
                            cause=row.id,
                        )
                        break

    async def _passes_filter(
        self, trigger: dict[str, Any], contact_id: int, deal_id: int | None
    ) -> bool:
        if not trigger.get("filter"):
            return True
        async with self.db.read() as session:
            (ok,) = await evaluate_all(
                session, contact_id, [trigger["filter"]], utcnow(), deal_id=deal_id
            )
        return ok

    async def _watchers(self, session: Any) -> dict[str, set[str]]:
        """Automation → the automations watching it with `in_automation`, re-read only when an
        automation changed."""
        stamp = await automation_store.change_stamp(session)
        if stamp != self._watchers_stamp:
            self._in_automation_watchers = await automation_store.in_automation_watchers(session)
            self._watchers_stamp = stamp
        return self._in_automation_watchers

    async def _documents(self) -> list[dict[str, Any]]:
        """Active automations' documents, re-read only when an automation changed."""
        async with self.db.read() as session:
            stamp = await automation_store.change_stamp(session)
            if stamp != self._documents_stamp:
                self._active_documents = await automation_store.active_documents(session)
                self._documents_stamp = stamp
        return self._active_documents


def _fired_by_deal(row: OutboxEntry) -> int | None:
    """The deal whose change this row is, when it is one that fires deal triggers
    (`deal_stage_changed`, a deal's `score_changed`): the run it starts is about that deal."""
    if row.kind == "deal_stage_changed" or (
        row.kind == "score_changed" and row.data.get("target") == "deal"
    ):
        deal = row.data.get("deal")
        return int(deal) if deal is not None else None
    return None


def _outage(err: BaseException) -> bool:
    """Whether `err` is Temporal or the database being unreachable: no row's fault, so no row's
    attempt."""
    if isinstance(err, RPCError):
        return err.status in TEMPORAL_UNREACHABLE
    return isinstance(err, OperationalError | InterfaceError | OSError)


async def dead_letter_count(session: AsyncSession) -> int:
    """Outbox rows set aside after failing every delivery (for /healthz and /metrics)."""
    return int(await session.scalar(select(func.count()).select_from(OutboxDeadLetter)) or 0)
