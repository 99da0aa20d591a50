"""One contact's history, newest first: its events, the emails sent to it (with their opens and
clicks) and its runs (with their step trails), merged and read a page at a time.

Every entry sorts by (at, kind, id): each source is read by key below the last entry of the
previous page, on the indexes that lead with the contact (`events (contact_id, name,
occurred_at)`, `runs (contact_id, status)`), `limit + 1` rows from each, then merged.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AutomationVersion, Event, GoalAchievement, Run, StepEvent
from workflows.contracts import StepRecord

Kind = Literal["event", "email", "run"]
# Among entries at the same instant: a run before an email before an event (newest first).
KIND_ORDER: dict[Kind, int] = {"event": 0, "email": 1, "run": 2}
SENT, OPENED, CLICKED = "email_sent", "email_opened", "email_clicked"
# The step trail of a run lists its latest steps, as a run's `state` query does.
TRAIL_STEPS = 100


@dataclass(frozen=True, order=True)
class Position:
    """Where an entry sorts in the timeline; a page continues below the last one's."""

    at: datetime
    kind: int
    id: int


@dataclass
class EmailInteraction:
    at: datetime
    link: str | None = None
    suspected_bot: bool = False


@dataclass
class EmailEntry:
    event: Event  # its email_sent event
    subject: str | None = None
    opens: list[EmailInteraction] = field(default_factory=list)
    clicks: list[EmailInteraction] = field(default_factory=list)

    @property
    def automation(self) -> str | None:
        return _text(_data(self.event).get("automation"))

    @property
    def step(self) -> str | None:
        return _text(_data(self.event).get("step"))


@dataclass
class RunEntry:
    run: Run
    steps: list[StepRecord]
    goals: list[str]


@dataclass
class Entry:
    position: Position
    kind: Kind
    item: Event | EmailEntry | RunEntry


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _data(event: Event) -> dict[str, Any]:
    return event.data if isinstance(event.data, dict) else {}


def _below(at: Any, row_id: Any, kind: Kind, cursor: Position | None) -> Any:
    """Rows of one kind that sort after `cursor` (newest first by at, kind, id)."""
    if cursor is None:
        return true()
    rank = KIND_ORDER[kind]
    if rank < cursor.kind:
        return at <= cursor.at
    if rank > cursor.kind:
        return at < cursor.at
    return or_(at < cursor.at, and_(at == cursor.at, row_id < cursor.id))


async def timeline(
    session: AsyncSession, contact_id: int, *, cursor: Position | None, limit: int
) -> tuple[list[Entry], bool]:
    """One page of the contact's timeline, newest first, and whether more follow."""
    events = await session.scalars(
        select(Event)
        .where(
            Event.contact_id == contact_id,
            Event.name.not_in((SENT, OPENED, CLICKED)),
            _below(Event.occurred_at, Event.id, "event", cursor),
        )
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(limit + 1)
    )
    sent = await session.scalars(
        select(Event)
        .where(
            Event.contact_id == contact_id,
            Event.name == SENT,
            _below(Event.occurred_at, Event.id, "email", cursor),
        )
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(limit + 1)
    )
    runs = await session.scalars(
        select(Run)
        .where(Run.contact_id == contact_id, _below(Run.started_at, Run.id, "run", cursor))
        .order_by(Run.started_at.desc(), Run.id.desc())
        .limit(limit + 1)
    )
    entries = [
        *(Entry(_position(e.occurred_at, "event", e.id), "event", e) for e in events.all()),
        *(Entry(_position(e.occurred_at, "email", e.id), "email", EmailEntry(e)) for e in sent),
        *(Entry(_position(r.started_at, "run", r.id), "run", RunEntry(r, [], [])) for r in runs),
    ]
    entries.sort(key=lambda entry: entry.position, reverse=True)
    page, more = entries[:limit], len(entries) > limit
    emails = [e.item for e in page if isinstance(e.item, EmailEntry)]
    await _fill_emails(session, contact_id, emails)
    await _fill_runs(session, [e.item for e in page if isinstance(e.item, RunEntry)])
    return page, more


def _position(at: datetime, kind: Kind, row_id: int) -> Position:
    return Position(at, KIND_ORDER[kind], row_id)


async def _fill_emails(session: AsyncSession, contact_id: int, emails: list[EmailEntry]) -> None:
    """Each email's subject, opens and clicks. An open or click names the automation and step
    of its email: it belongs to the latest email of that step sent before it."""
    if not emails:
        return
    since = min(email.event.occurred_at for email in emails)
    later = await session.scalars(
        select(Event)
        .where(
            Event.contact_id == contact_id,
            Event.name.in_((SENT, OPENED, CLICKED)),
            Event.occurred_at >= since,
        )
        .order_by(Event.occurred_at, Event.id)
    )
    shown = {email.event.id: email for email in emails}
    latest_sent: dict[tuple[str | None, str | None], int] = {}
    for event in later.all():
        data = _data(event)
        key = (_text(data.get("automation")), _text(data.get("step")))
        if event.name == SENT:
            latest_sent[key] = event.id
            continue
        email = shown.get(latest_sent.get(key, -1))
        if email is None:
            continue
        interaction = EmailInteraction(at=event.occurred_at)
        if event.name == CLICKED:
            interaction.link = _text(data.get("link"))
            interaction.suspected_bot = bool(data.get("suspected_bot"))
            email.clicks.append(interaction)
        else:
            email.opens.append(interaction)
    await _fill_subjects(session, emails)


async def _fill_subjects(session: AsyncSession, emails: list[EmailEntry]) -> None:
    """Each email's subject as its step wrote it (personalization tags unfilled) in the version
    of its automation that was current when it was sent."""
    automations = {email.automation for email in emails if email.automation}
    if not automations:
        return
    versions: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for automation_id, version, created_at in (
        await session.execute(
            select(
                AutomationVersion.automation_id,
                AutomationVersion.version,
                AutomationVersion.created_at,
            )
            .where(AutomationVersion.automation_id.in_(automations))
            .order_by(AutomationVersion.version)
        )
    ).all():
        versions[automation_id].append((created_at, version))
    used: dict[int, tuple[str, int]] = {}
    for email in emails:
        if email.automation in versions:
            saved = versions[email.automation]
            before = [v for at, v in saved if at <= email.event.occurred_at]
            used[email.event.id] = (email.automation, before[-1] if before else saved[0][1])
    documents = {
        (automation_id, version): document
        for automation_id, version, document in (
            await session.execute(
                select(
                    AutomationVersion.automation_id,
                    AutomationVersion.version,
                    AutomationVersion.document,
                ).where(
                    tuple_(AutomationVersion.automation_id, AutomationVersion.version).in_(
                        set(used.values())
                    )
                )
            )
        ).all()
    }
    for email in emails:
        document = documents.get(used.get(email.event.id, ("", 0)), {})
        steps = document.get("steps") if isinstance(document, dict) else None
        step = steps.get(email.step) if isinstance(steps, dict) and email.step else None
        email.subject = _text(step.get("subject")) if isinstance(step, dict) else None


async def _fill_runs(session: AsyncSession, runs: list[RunEntry]) -> None:
    """Each run's latest TRAIL_STEPS step records (oldest first) and its goals, in two queries."""
    if not runs:
        return
    by_workflow = {entry.run.workflow_id: entry for entry in runs}
    latest = (
        select(
            StepEvent,
            func.row_number()
            .over(partition_by=StepEvent.workflow_id, order_by=StepEvent.seq.desc())
            .label("recency"),
        )
        .where(StepEvent.workflow_id.in_(by_workflow))
        .subquery()
    )
    rows = await session.execute(
        select(
            latest.c.workflow_id,
            latest.c.seq,
            latest.c.step_id,
            latest.c.step_type,
            latest.c.outcome,
            latest.c.reason,
            latest.c.at,
        )
        .where(latest.c.recency <= TRAIL_STEPS)
        .order_by(latest.c.workflow_id, latest.c.seq)
    )
    for workflow_id, seq, step_id, step_type, outcome, reason, at in rows.all():
        by_workflow[workflow_id].steps.append(
            StepRecord(seq=seq, step=step_id, type=step_type, outcome=outcome, reason=reason, at=at)
        )
    goals = await session.execute(
        select(GoalAchievement.workflow_id, GoalAchievement.goal)
        .where(GoalAchievement.workflow_id.in_(by_workflow))
        .order_by(GoalAchievement.achieved_at)
    )
    for workflow_id, goal in goals.all():
        by_workflow[workflow_id].goals.append(goal)
