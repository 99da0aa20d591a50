"""The runs index and entry rules (docs/architecture.md#entry-rules), the action log (docs/architecture.md#exactly-once-writes), goals and splits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    ActionLog,
    Automation,
    GoalAchievement,
    OutboxEntry,
    Run,
    SplitAssignment,
    SplitState,
    StepEvent,
    utcnow,
)
from workflows.contracts import SavedSteps, StepRecord

RUNNING = "running"
# A running run's `reason` while an inactive automation holds it at `current_step` (a running
# run has no other reason; its next park, hold release or finish overwrites this one).
HELD = "held"


def workflow_id_for(automation_id: str, contact_id: int, entry: int) -> str:
    """`cairn:<automation>:<contact>`, plus `:<n>` from the second entry on (docs/architecture.md#runs-in-temporal)."""
    base = f"cairn:{automation_id}:{contact_id}"
    return base if entry == 1 else f"{base}:{entry}"


@dataclass(frozen=True)
class EntryRefused:
    # inactive | already_running | already_entered | unknown_automation | redelivered (the
    # outbox row that fired the trigger was delivered before: docs/architecture.md#the-outbox)
    reason: str


async def reserve_runs(
    session: AsyncSession,
    automation_id: str,
    contact_ids: Sequence[int],
    entry_mode: str,
    *,
    opening_step: str | None = None,
) -> tuple[list[Run], list[tuple[int, EntryRefused]]]:
    """Decide entry for each contact and insert the run rows (one query to decide them all).

    `opening_step`: where the new runs are parked from the start (a flow that opens with a
    long wait), so that the run need not write it again when it starts.

    The unique indexes (one row per entry number, one running row per automation and contact)
    are the fence against concurrent enrollments: if another transaction got there first, the
    batch falls back to deciding the contacts one by one, and the loser is refused.
    """
    automation = await session.get(Automation, automation_id)
    if automation is None or automation.status != "active":
        reason = EntryRefused("unknown_automation" if automation is None else "inactive")
        return [], [(cid, reason) for cid in contact_ids]
    history = {
        cid: (last, running)
        for cid, last, running in (
            await session.execute(
                select(
                    Run.contact_id,
                    func.max(Run.entry),
                    func.count(Run.id).filter(Run.status == RUNNING),
                )
                .where(Run.automation_id == automation_id, Run.contact_id.in_(contact_ids))
                .group_by(Run.contact_id)
            )
        ).all()
    }
    runs: list[Run] = []
    refused: list[tuple[int, EntryRefused]] = []
    for cid in dict.fromkeys(contact_ids):
        last_entry, running = history.get(cid, (None, 0))
        if running:
            refused.append((cid, EntryRefused("already_running")))
        elif last_entry and entry_mode == "once":
            refused.append((cid, EntryRefused("already_entered")))
        else:
            entry = (last_entry or 0) + 1
            runs.append(
                Run(
                    workflow_id=workflow_id_for(automation_id, cid, entry),
                    automation_id=automation_id,
                    contact_id=cid,
                    entry=entry,
                    version=automation.version,
                    status=RUNNING,
                    current_step=opening_step,
                )
            )
    try:
        async with session.begin_nested():
            session.add_all(runs)
    except IntegrityError:
        if len(contact_ids) == 1:
            return [], [(contact_ids[0], EntryRefused("already_running"))]
        runs, refused = [], []
        for cid in contact_ids:
            one, no = await reserve_runs(
                session, automation_id, [cid], entry_mode, opening_step=opening_step
            )
            runs += one
            refused += no
    return runs, refused


async def running_runs(
    session: AsyncSession, contact_id: int, *, automation_id: str | None = None
) -> Sequence[Run]:
    query = select(Run).where(Run.contact_id == contact_id, Run.status == RUNNING)
    if automation_id is not None:
        query = query.where(Run.automation_id == automation_id)
    return (await session.scalars(query)).all()


async def running_runs_of(
    session: AsyncSession, contact_ids: Collection[int]
) -> dict[int, list[tuple[str, str]]]:
    """The running runs (workflow id, automation id) of each contact, in one query."""
    rows = await session.execute(
        select(Run.contact_id, Run.workflow_id, Run.automation_id).where(
            Run.contact_id.in_(contact_ids), Run.status == RUNNING
        )
    )
    runs: dict[int, list[tuple[str, str]]] = {}
    for contact_id, workflow_id, automation_id in rows.all():
        runs.setdefault(contact_id, []).append((workflow_id, automation_id))
    return runs


async def running_runs_after(
    session: AsyncSession, automation_id: str, after: int, limit: int
) -> list[tuple[int, str]]:
    """(id, workflow id) of the automation's next `limit` running runs with an id above
    `after`: one bounded page at a time, resumable from the last id."""
    rows = await session.execute(
        select(Run.id, Run.workflow_id)
        .where(Run.automation_id == automation_id, Run.status == RUNNING, Run.id > after)
        .order_by(Run.id)
        .limit(limit)
    )
    return [(run_id, workflow_id) for run_id, workflow_id in rows.all()]


async def current_version(session: AsyncSession, automation_id: str) -> int:
    """The automation's newest version (0 if it is gone)."""
    return int(
        await session.scalar(select(Automation.version).where(Automation.id == automation_id)) or 0
    )


async def started_on_version(
    session: AsyncSession, workflow_id: str, version: int, parked_at: str | None
) -> None:
    """A run reserved under an older version started on `version`, parked at `parked_at`."""
    await session.execute(
        update(Run)
        .where(Run.workflow_id == workflow_id)
        .values(version=version, current_step=parked_at, updated_at=utcnow())
    )


async def get_run(session: AsyncSession, workflow_id: str) -> Run | None:
    return await session.scalar(select(Run).where(Run.workflow_id == workflow_id))


async def set_current_step(
    session: AsyncSession, workflow_id: str, step_id: str | None, *, held: bool = False
) -> None:
    """The run now sits at `step_id`: parked in a wait, or `held` there by an inactive
    automation (any other move clears the hold)."""
    await session.execute(
        update(Run)
        .where(Run.workflow_id == workflow_id, Run.status == RUNNING)
        .values(current_step=step_id, reason=HELD if held else None, updated_at=utcnow())
    )


# A run's start and end are changes of its contact like any other (an `in_automation`
# condition reads them): outbox rows that wake the contact's other runs and fire no trigger.
RUN_STARTED = "run_started"
RUN_ENDED = "run_ended"


async def finish_run(
    session: AsyncSession, workflow_id: str, status: str, reason: str | None, step_id: str | None
) -> None:
    """Record the run's end, with the outbox row that wakes the contact's other runs."""
    now = utcnow()
    ended = (
        await session.execute(
            update(Run)
            .where(Run.workflow_id == workflow_id)
            .values(
                status=status, reason=reason, current_step=step_id, updated_at=now, ended_at=now
            )
            .returning(Run.contact_id, Run.automation_id)
        )
    ).first()
    if ended is not None:
        contact_id, automation_id = ended
        session.add(
            OutboxEntry(
                contact_id=contact_id,
                kind=RUN_ENDED,
                data={"automation": automation_id, "workflow_id": workflow_id, "status": status},
                origin_workflow_id=workflow_id,
            )
        )


async def once_per_visit(
    session: AsyncSession, key: str, write: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Run `write` at most once for this step-visit key, in the caller's transaction.

    On a retry the action log already holds the key: the recorded outcome is returned and
    nothing is written again. Two attempts racing both try to insert the key; the unique
    primary key lets only one transaction commit.
    """
    recorded = await session.get(ActionLog, key)
    if recorded is not None:
        return dict(recorded.outcome)
    outcome = await write()
    session.add(ActionLog(key=key, outcome=outcome))
    await session.flush()
    return outcome


async def recall_decision(session: AsyncSession, key: str | None) -> dict[str, Any] | None:
    """A decision a write of the run recorded (see `record_decisions`), if any."""
    if key is None:
        return None
    row = await session.get(ActionLog, key)
    return None if row is None else dict(row.outcome)


async def record_decisions(session: AsyncSession, decisions: dict[str, dict[str, Any]]) -> None:
    """Record, in a write's transaction, what the run's reads answered before it in the same
    workflow task. A lost task re-runs those reads after this write: they must answer the same,
    or the history would take another path than the one the writes (and the saved trail)
    took. Kept in the action log, under keys no step visit uses."""
    for key, answer in decisions.items():
        if await session.get(ActionLog, key) is None:
            session.add(ActionLog(key=key, outcome=answer))
    if decisions:
        await session.flush()


async def record_goal(
    session: AsyncSession, workflow_id: str, automation_id: str, contact_id: int, goal: str
) -> bool:
    if await session.get(GoalAchievement, (workflow_id, goal)) is not None:
        return False
    session.add(
        GoalAchievement(
            workflow_id=workflow_id, goal=goal, automation_id=automation_id, contact_id=contact_id
        )
    )
    session.add(
        OutboxEntry(
            contact_id=contact_id,
            kind="goal_achieved",
            data={"automation": automation_id, "goal": goal},
            origin_workflow_id=workflow_id,
        )
    )
    return True


def smooth_weighted_pick(weights: list[int], current: list[int]) -> tuple[int, list[int]]:
    """Smooth weighted round-robin (as nginx does): exact proportions over every window."""
    current = [c + w for c, w in zip(current, weights, strict=True)]
    chosen = max(range(len(weights)), key=lambda i: (current[i], -i))
    current[chosen] -= sum(weights)
    return chosen, current


async def lock_split_state(session: AsyncSession, automation_id: str, step_id: str) -> SplitState:
    """The split's counter row, locked for this transaction (SQLite: the write transaction lock)."""
    state = await session.scalar(
        select(SplitState)
        .where(SplitState.automation_id == automation_id, SplitState.step_id == step_id)
        .with_for_update()
    )
    if state is None:
        try:
            async with session.begin_nested():
                state = SplitState(
                    automation_id=automation_id, step_id=step_id, current={}, assigned=0
                )
                session.add(state)
        except IntegrityError:
            state = await session.scalar(
                select(SplitState)
                .where(SplitState.automation_id == automation_id, SplitState.step_id == step_id)
                .with_for_update()
            )
    assert state is not None
    return state


@dataclass(frozen=True)
class WinnerTaken:
    """The split already has another winner (decided by its rule or picked before)."""

    winner: int
    by: str | None


async def pick_split_winner(
    session: AsyncSession, automation_id: str, step_id: str, path: int, now: datetime
) -> SplitState | WinnerTaken:
    """A person picks the winning path of an even split: every later contact takes it. Picking
    the winner it already has changes nothing."""
    state = await lock_split_state(session, automation_id, step_id)
    if state.winner is not None and state.winner != path:
        return WinnerTaken(state.winner, state.winner_by)
    if state.winner is None:
        state.winner, state.winner_by, state.decided_at = path, "person", now
    return state


async def existing_assignment(session: AsyncSession, workflow_id: str, step_id: str) -> int | None:
    row = await session.get(SplitAssignment, (workflow_id, step_id))
    return None if row is None else row.path


async def assign_path(
    session: AsyncSession,
    state: SplitState,
    *,
    workflow_id: str,
    contact_id: int,
    path: int,
    now: datetime,
) -> None:
    session.add(
        SplitAssignment(
            workflow_id=workflow_id,
            step_id=state.step_id,
            automation_id=state.automation_id,
            contact_id=contact_id,
            path=path,
            assigned_at=now,
        )
    )
    state.assigned += 1
    if state.first_assigned_at is None:
        state.first_assigned_at = now


async def contacts_on_path(
    session: AsyncSession, automation_id: str, step_id: str, path: int
) -> list[int]:
    return list(
        (
            await session.scalars(
                select(SplitAssignment.contact_id).where(
                    SplitAssignment.automation_id == automation_id,
                    SplitAssignment.step_id == step_id,
                    SplitAssignment.path == path,
                )
            )
        ).all()
    )


async def save_steps(session: AsyncSession, saved: SavedSteps | None) -> None:
    """Write a run's step records for reports; a retried save writes none twice."""
    if saved is None or not saved.records:
        return
    seqs = [r.seq for r in saved.records]
    known = set(
        (
            await session.scalars(
                select(StepEvent.seq).where(
                    StepEvent.workflow_id == saved.workflow_id, StepEvent.seq.in_(seqs)
                )
            )
        ).all()
    )
    session.add_all(
        StepEvent(
            workflow_id=saved.workflow_id,
            seq=r.seq,
            automation_id=saved.automation_id,
            version=saved.version,
            contact_id=saved.contact_id,
            step_id=r.step,
            step_type=r.type,
            outcome=r.outcome,
            reason=(r.reason or "")[:500] or None,
            at=r.at,
        )
        for r in saved.records
        if r.seq not in known
    )


@dataclass
class RunTrail:
    """What Cairn's own tables know of a run's path, for when Temporal no longer has it."""

    steps: list[StepRecord]
    goals: list[str]
    split_paths: dict[str, int]


async def run_trail(session: AsyncSession, workflow_id: str) -> RunTrail:
    """The run's saved step records, goals achieved and split paths (oldest first)."""
    steps = (
        await session.scalars(
            select(StepEvent).where(StepEvent.workflow_id == workflow_id).order_by(StepEvent.seq)
        )
    ).all()
    goals = (
        await session.scalars(
            select(GoalAchievement.goal)
            .where(GoalAchievement.workflow_id == workflow_id)
            .order_by(GoalAchievement.achieved_at)
        )
    ).all()
    paths = (
        await session.execute(
            select(SplitAssignment.step_id, SplitAssignment.path).where(
                SplitAssignment.workflow_id == workflow_id
            )
        )
    ).all()
    return RunTrail(
        steps=[
            StepRecord(
                seq=s.seq,
                step=s.step_id,
                type=s.step_type,
                outcome=s.outcome,  # type: ignore[arg-type]  # an Outcome, stored as text
                reason=s.reason,
                at=s.at,
            )
            for s in steps
        ],
        goals=list(goals),
        split_paths={step_id: path for step_id, path in paths},
    )
