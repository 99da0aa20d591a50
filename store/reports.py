"""Automation reports from Cairn's own tables (never from Temporal): versions, runs, step counts.

Every count is one GROUP BY query per table, on an index whose prefix is the automation id:
`step_events (automation_id, step_id, step_type, outcome, reason)` and `(automation_id,
step_id, contact_id)` (read without the table), `runs (automation_id, status)`,
`split_assignments (automation_id, step_id, path)`, `split_states` and `goal_achievements`
(reached through the runs of the automation and its primary key).

Step events are saved with a run's next park (a wait longer than a minute) or its finish
(see `RunState.unsaved`): a contact moving between two parks is counted at its next park.
"Waiting now" and goal achievements are live. A running run held by an inactive automation
(reason `held`, see store.runs.HELD) counts as held at its step, not as waiting there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    Automation,
    AutomationVersion,
    Contact,
    GoalAchievement,
    Run,
    SplitAssignment,
    SplitState,
    StepEvent,
    utcnow,
)
from store.runs import HELD, RUNNING
from workflows.contracts import RunStatus

RUN_STATUSES: tuple[str, ...] = ("running", "completed", "ended", "failed")
# Reasons a goal step records when a contact reached it in sequence without meeting it. A goal
# passed again after being achieved (`already_achieved`) is no miss, so it is not among them.
GOAL_MISSES = ("goal_not_met", "goal_timeout")
LAG_NOTE = (
    "Step counts come from step records saved when a run parks in a wait longer than a minute "
    "or finishes: contacts between two parks are counted at their next park. 'waiting' and "
    "goal achievements are live."
)


# --- versions ------------------------------------------------------------------------------


async def list_versions(session: AsyncSession, automation_id: str) -> list[tuple[int, datetime]]:
    """(version, created_at) of every version, oldest first (documents left unread)."""
    rows = await session.execute(
        select(AutomationVersion.version, AutomationVersion.created_at)
        .where(AutomationVersion.automation_id == automation_id)
        .order_by(AutomationVersion.version)
    )
    return [(version, created) for version, created in rows.all()]


async def read_version(
    session: AsyncSession, automation_id: str, version: int
) -> AutomationVersion | None:
    return await session.get(AutomationVersion, (automation_id, version))


# --- contacts of an automation --------------------------------------------------------------


async def automation_contacts(
    session: AsyncSession,
    automation_id: str,
    *,
    limit: int,
    offset: int,
    status: RunStatus | None = None,
    step: str | None = None,
) -> tuple[int, list[tuple[Run, Contact]]]:
    """(total, one page of runs, newest first) with each one's contact; `step`: only the runs
    whose current step (where they wait, are held, or ended) is that one."""
    where = [Run.automation_id == automation_id]
    if status is not None:
        where.append(Run.status == status)
    if step is not None:
        where.append(Run.current_step == step)
    total = await session.scalar(select(func.count()).select_from(Run).where(*where))
    # The page's ids first, from the index alone: an offset then skips index entries, not
    # joined rows (a page near the end of 100,000 runs: 89 ms → 10 ms in SQLite).
    page_ids = select(Run.id).where(*where).order_by(Run.id.desc()).limit(limit).offset(offset)
    rows = await session.execute(
        select(Run, Contact)
        .join(Contact, Contact.id == Run.contact_id)
        .where(Run.id.in_(page_ids.scalar_subquery()))
        .order_by(Run.id.desc())
    )
    return total or 0, [(run, contact) for run, contact in rows.all()]


# --- every automation at a glance ------------------------------------------------------------


class Overview(BaseModel):
    """What the automations list shows of one automation: its current triggers and its runs."""

    triggers: list[str] = Field(default_factory=list)  # types, in the document's order
    running: int = 0
    completed: int = 0
    waiting: int = 0  # running, parked at a step and not held there
    runs: int = 0  # in all, whatever their status
    reached_goal: int = 0  # runs that achieved at least one goal


async def overviews(session: AsyncSession) -> dict[str, Overview]:
    """Every automation's overview in three queries, however many automations there are."""
    found: dict[str, Overview] = {}
    documents = await session.execute(
        select(AutomationVersion.automation_id, AutomationVersion.document).join(
            Automation,
            (Automation.id == AutomationVersion.automation_id)
            & (Automation.version == AutomationVersion.version),
        )
    )
    for automation_id, document in documents.all():
        triggers = document.get("triggers") if isinstance(document, dict) else None
        found[automation_id] = Overview(
            triggers=[
                t["type"]
                for t in triggers or []
                if isinstance(t, dict) and isinstance(t.get("type"), str)
            ]
        )
    parked = and_(
        Run.status == RUNNING,
        Run.current_step.is_not(None),
        or_(Run.reason.is_(None), Run.reason != HELD),
    )
    counts = await session.execute(
        select(Run.automation_id, Run.status, func.count(), func.count().filter(parked)).group_by(
            Run.automation_id, Run.status
        )
    )
    for automation_id, status, count, waiting in counts.all():
        overview = found.setdefault(automation_id, Overview())
        overview.runs += count
        overview.waiting += waiting
        if status == RUNNING:
            overview.running += count
        elif status == "completed":
            overview.completed += count
    goals = await session.execute(
        select(Run.automation_id, func.count(GoalAchievement.workflow_id.distinct()))
        .join(Run, Run.workflow_id == GoalAchievement.workflow_id)
        .group_by(Run.automation_id)
    )
    for automation_id, reached in goals.all():
        found.setdefault(automation_id, Overview()).reached_goal = reached
    return found


async def running_by_step(session: AsyncSession, automation_id: str) -> tuple[int, dict[str, int]]:
    """How many of the automation's runs are running, and how many of those sit at each step
    (waiting or held there), in one query; a run not parked yet is at no step."""
    rows = await session.execute(
        select(Run.current_step, func.count())
        .where(Run.automation_id == automation_id, Run.status == RUNNING)
        .group_by(Run.current_step)
    )
    total, at_steps = 0, {}
    for step, count in rows.all():
        total += count
        if step is not None:
            at_steps[step] = count
    return total, at_steps


# --- the report ----------------------------------------------------------------------------


class StepReport(BaseModel):
    """One step's counts; `entered` counts every visit, `contacts` distinct contacts."""

    step: str
    type: str
    in_current_version: bool
    entered: int = 0
    contacts: int = 0
    completed: int = 0
    # Done outcomes that carry a reason: the branch taken (yes/no, path:n, before/after),
    # condition_met, goal_achieved.
    completed_by_reason: dict[str, int] = Field(default_factory=dict)
    skipped: dict[str, int] = Field(default_factory=dict)
    failed: int = 0
    waiting: int = 0
    held: int = 0  # running contacts an inactive automation holds here (not in `waiting`)


class GoalReport(BaseModel):
    """achieved / (achieved + skipped + waiting): of the contacts who met the goal or reached
    it in sequence, the share who met it. `rate_of_runs` is achieved / all runs."""

    step: str
    achieved: int = 0
    skipped: int = 0
    waiting: int = 0
    rate: float | None = None
    rate_of_runs: float | None = None


class SplitPathReport(BaseModel):
    path: int
    label: str  # "path 0".. for an even split, "before"/"after" for a split until
    next: str | None
    contacts: int = 0
    share: float | None = None  # of the split's contacts, those on this path; null before any


class SplitReport(BaseModel):
    step: str
    mode: str
    paths: list[SplitPathReport]
    winner: int | None = None
    # "rule": decided by the step's winner rule; "person": picked through the API.
    winner_by: Literal["rule", "person"] | None = None
    decided_at: datetime | None = None


class Report(BaseModel):
    automation_id: str
    version: int
    generated_at: datetime
    note: str = LAG_NOTE
    runs: dict[str, int]  # by status, plus "total"
    held: int = 0  # of the running runs, those an inactive automation holds
    steps: list[StepReport]
    goals: list[GoalReport]
    splits: list[SplitReport]


def _split_paths(step: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(label, next) of each path a split document step has, in path-number order."""
    if step.get("mode") == "even":
        return [(f"path {i}", p.get("next")) for i, p in enumerate(step.get("paths", []))]
    return [("before", step.get("before")), ("after", step.get("after"))]


async def build_report(
    session: AsyncSession, automation_id: str, version: int, document: dict[str, Any]
) -> Report:
    """The report of an automation whose current version is `version` with `document`."""
    doc_steps: dict[str, dict[str, Any]] = document.get("steps", {})
    steps: dict[str, StepReport] = {
        step_id: StepReport(step=step_id, type=step["type"], in_current_version=True)
        for step_id, step in doc_steps.items()
    }

    def step_report(step_id: str, step_type: str) -> StepReport:
        # A step of an older version only: listed after the current ones, as it still has counts.
        if step_id not in steps:
            steps[step_id] = StepReport(step=step_id, type=step_type, in_current_version=False)
        return steps[step_id]

    events = await session.execute(
        select(
            StepEvent.step_id,
            StepEvent.step_type,
            StepEvent.outcome,
            StepEvent.reason,
            func.count(),
        )
        .where(StepEvent.automation_id == automation_id)
        .group_by(StepEvent.step_id, StepEvent.step_type, StepEvent.outcome, StepEvent.reason)
    )
    goal_misses: Counter[str] = Counter()
    for step_id, step_type, outcome, reason, count in events.all():
        report = step_report(step_id, step_type)
        report.entered += count
        if outcome == "done":
            report.completed += count
            if reason:
                report.completed_by_reason[reason] = (
                    report.completed_by_reason.get(reason, 0) + count
                )
        elif outcome == "skipped":
            key = reason or "unknown"
            report.skipped[key] = report.skipped.get(key, 0) + count
            if step_type == "goal" and reason in GOAL_MISSES:
                goal_misses[step_id] += count
        else:
            report.failed += count

    distinct = await session.execute(
        select(StepEvent.step_id, func.count(StepEvent.contact_id.distinct()))
        .where(StepEvent.automation_id == automation_id)
        .group_by(StepEvent.step_id)
    )
    for step_id, count in distinct.all():
        steps[step_id].contacts = count

    by_status: Counter[str] = Counter({status: 0 for status in RUN_STATUSES})
    held_runs = 0
    is_held = case((and_(Run.status == RUNNING, Run.reason == HELD), True), else_=False)
    runs = await session.execute(
        select(Run.status, Run.current_step, is_held, func.count())
        .where(Run.automation_id == automation_id)
        .group_by(Run.status, Run.current_step, is_held)
    )
    for status, current_step, held, count in runs.all():
        by_status[status] += count
        held_runs += count if held else 0
        if status == RUNNING and current_step in steps:
            if held:
                steps[current_step].held += count
            else:
                steps[current_step].waiting += count
    total_runs = sum(by_status.values())

    achieved = dict(
        (
            await session.execute(
                select(GoalAchievement.goal, func.count())
                .join(Run, Run.workflow_id == GoalAchievement.workflow_id)
                .where(Run.automation_id == automation_id)
                .group_by(GoalAchievement.goal)
            )
        ).all()
    )
    goal_ids = [s for s, step in doc_steps.items() if step["type"] == "goal"]
    goal_ids += [g for g in sorted(achieved.keys() | goal_misses.keys()) if g not in goal_ids]
    goals = [
        _goal_report(g, achieved.get(g, 0), goal_misses[g], _waiting(steps, g), total_runs)
        for g in goal_ids
    ]

    return Report(
        automation_id=automation_id,
        version=version,
        generated_at=utcnow(),
        runs={**by_status, "total": total_runs},
        held=held_runs,
        steps=list(steps.values()),
        goals=goals,
        splits=await _splits(session, automation_id, doc_steps),
    )


def _waiting(steps: dict[str, StepReport], step_id: str) -> int:
    return steps[step_id].waiting if step_id in steps else 0


def _goal_report(step: str, achieved: int, skipped: int, waiting: int, runs: int) -> GoalReport:
    reached = achieved + skipped + waiting
    return GoalReport(
        step=step,
        achieved=achieved,
        skipped=skipped,
        waiting=waiting,
        rate=achieved / reached if reached else None,
        rate_of_runs=achieved / runs if runs else None,
    )


async def _splits(
    session: AsyncSession, automation_id: str, doc_steps: dict[str, dict[str, Any]]
) -> list[SplitReport]:
    """Contacts per path of each split of the current version, and the decided winner."""
    counts: dict[tuple[str, int], int] = {
        (step_id, path): count
        for step_id, path, count in (
            await session.execute(
                select(SplitAssignment.step_id, SplitAssignment.path, func.count())
                .where(SplitAssignment.automation_id == automation_id)
                .group_by(SplitAssignment.step_id, SplitAssignment.path)
            )
        ).all()
    }
    states: Sequence[SplitState] = (
        await session.scalars(select(SplitState).where(SplitState.automation_id == automation_id))
    ).all()
    decided = {s.step_id: s for s in states}
    reports = []
    for step_id, step in doc_steps.items():
        if step["type"] != "split":
            continue
        state = decided.get(step_id)
        paths = [
            SplitPathReport(path=i, label=label, next=target, contacts=counts.get((step_id, i), 0))
            for i, (label, target) in enumerate(_split_paths(step))
        ]
        assigned = sum(p.contacts for p in paths)
        for p in paths:
            p.share = p.contacts / assigned if assigned else None
        reports.append(
            SplitReport(
                step=step_id,
                mode=step.get("mode", "even"),
                paths=paths,
                winner=state.winner if state else None,
                winner_by=state.winner_by if state else None,  # type: ignore[arg-type]
                decided_at=state.decided_at if state else None,
            )
        )
    return reports
