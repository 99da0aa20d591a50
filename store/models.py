"""SQLAlchemy models: contacts and their facts, automations, the runs index, outbox and action log."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# The clock of every timestamp Cairn stores. A simulation sets it, within its own activities
# only, to the run's virtual time: the sandbox's events, tags and sends are then dated as the
# real ones would be, and conditions with time windows read them alike (docs/simulation.md).
CLOCK: ContextVar[Callable[[], datetime] | None] = ContextVar("cairn_clock", default=None)


def utcnow() -> datetime:
    clock = CLOCK.get()
    return clock() if clock is not None else datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops tzinfo) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BigInteger ids that still autoincrement on SQLite (which only does so for INTEGER).
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    bounced: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ContactTag(Base):
    """A tag on a contact. "VIP" and "vip" are one tag: unique whatever the case per contact,
    and found by its lowered name (the first spelling used is kept, store/names.py)."""

    __tablename__ = "contact_tags"
    __table_args__ = (
        Index("uq_contact_tags_lower_tag", "contact_id", func.lower(text("tag")), unique=True),
        Index("ix_contact_tags_lower_tag", func.lower(text("tag"))),
    )

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subscription(Base):
    """A contact's membership of a list: `active` or `unsubscribed`."""

    __tablename__ = "subscriptions"
    # One list whatever its case, as tags are.
    __table_args__ = (
        Index("uq_subscriptions_lower_list", "contact_id", func.lower(text("list")), unique=True),
        Index("ix_subscriptions_lower_list", func.lower(text("list"))),
    )

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    list: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Score(Base):
    __tablename__ = "scores"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_contact_name_time", "contact_id", "name", "occurred_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversion(Base):
    __tablename__ = "conversions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    value: Mapped[float | None] = mapped_column(Float)
    automation_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Automation(Base):
    __tablename__ = "automations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AutomationVersion(Base):
    """Automations are immutable versions; runs name the version they follow (docs/architecture.md#versions-and-live-edits)."""

    __tablename__ = "automation_versions"

    automation_id: Mapped[str] = mapped_column(
        ForeignKey("automations.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    """The runs index (docs/architecture.md#entry-rules): entry rules are decided here, not by Temporal's ID reuse."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("automation_id", "contact_id", "entry", name="uq_runs_entry"),
        # Never two concurrent runs of one automation for one contact.
        Index(
            "uq_runs_one_running",
            "automation_id",
            "contact_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        Index("ix_runs_contact_status", "contact_id", "status"),
        Index("ix_runs_automation_status", "automation_id", "status"),
        # An automation's contacts, newest first, a page at a time (reports).
        Index("ix_runs_automation_id", "automation_id", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(200), unique=True)
    automation_id: Mapped[str] = mapped_column(ForeignKey("automations.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    entry: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="running")
    reason: Mapped[str | None] = mapped_column(String(200))
    current_step: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()


class GoalAchievement(Base):
    __tablename__ = "goal_achievements"

    workflow_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    goal: Mapped[str] = mapped_column(String(64), primary_key=True)
    automation_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    achieved_at: Mapped[datetime] = mapped_column(default=utcnow)


class SplitState(Base):
    """Per-(automation, step) smooth weighted round-robin state and the decided winner (docs/architecture.md#splits)."""

    __tablename__ = "split_states"

    automation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    current: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"weights": [...]}
    assigned: Mapped[int] = mapped_column(Integer, default=0)
    winner: Mapped[int | None] = mapped_column(Integer)
    # Who set `winner`: "rule" (the step's winner rule, at its threshold) or "person" (the API).
    winner_by: Mapped[str | None] = mapped_column(String(16))
    first_assigned_at: Mapped[datetime | None] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()


class SplitAssignment(Base):
    __tablename__ = "split_assignments"
    __table_args__ = (Index("ix_split_assignments_step", "automation_id", "step_id", "path"),)

    workflow_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    automation_id: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    path: Mapped[int] = mapped_column(Integer)
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


# How long a claimed outbox row is left to its claimer: after that, it is anyone's to deliver
# (the claimer is presumed dead).
OUTBOX_LEASE = timedelta(seconds=30)
# Deliveries of one outbox row that may fail before it moves to the dead letters.
OUTBOX_MAX_ATTEMPTS = 5


class OutboxEntry(Base):
    """A committed change not yet delivered to running runs and triggers (docs/architecture.md#the-outbox)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The run whose step made the change: it needs no wake-up about its own write.
    origin_workflow_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    # Failed deliveries so far; at OUTBOX_MAX_ATTEMPTS the row moves to `outbox_dead`.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    # Automations this change has already enrolled its contact in (or been refused by): a
    # redelivered row enrolls nobody twice. Kept on the row itself, not keyed by its id
    # elsewhere, because SQLite reuses a deleted last row's id.
    enrolled: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))


class OutboxDeadLetter(Base):
    """An outbox row that failed OUTBOX_MAX_ATTEMPTS deliveries, set aside with its last error
    so that it no longer holds back the rows after it (docs/architecture.md#the-outbox)."""

    __tablename__ = "outbox_dead"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    contact_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    origin_workflow_id: Mapped[str | None] = mapped_column(String(200))
    enrolled: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActionLog(Base):
    """One row per step visit that wrote Cairn's database: retries find it and do nothing twice."""

    __tablename__ = "action_log"

    key: Mapped[str] = mapped_column(String(240), primary_key=True)
    outcome: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StepState(Base):
    """What a step remembers across runs of its automation (e.g. an audience it created)."""

    __tablename__ = "step_states"

    automation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- CRM (docs/crm.md): users, pipelines, deals, tasks, notes, accounts ----------------


class User(Base):
    """A member of the sales team: deals' owners and tasks' assignees."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Pipeline(Base):
    __tablename__ = "pipelines"
    # Names are unique whatever their case, in the database too (concurrent creations).
    __table_args__ = (Index("uq_pipelines_lower_name", func.lower(text("name")), unique=True),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Stage(Base):
    """One stage of a pipeline; `position` orders them."""

    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("pipeline_id", "name", name="uq_stages_pipeline_name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    # Minor units of `currency` (cents): money is never a float.
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"), index=True)
    stage_id: Mapped[int] = mapped_column(ForeignKey("stages.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(10), default="open")
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DealContact(Base):
    """Deals and contacts, many to many."""

    __tablename__ = "deal_contacts"

    deal_id: Mapped[int] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DealScore(Base):
    __tablename__ = "deal_scores"

    deal_id: Mapped[int] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0)


class DealNote(Base):
    __tablename__ = "deal_notes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Task(Base):
    """A to-do for a user, on a deal or on a contact (exactly one of the two)."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(50), default="todo")
    due_at: Mapped[datetime | None] = mapped_column()
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[datetime | None] = mapped_column()
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Account(Base):
    """A company; contacts belong to at most one."""

    __tablename__ = "accounts"
    # Names are unique whatever their case, in the database too (concurrent add_to_account).
    __table_args__ = (Index("uq_accounts_lower_name", func.lower(text("name")), unique=True),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str | None] = mapped_column(String(2000))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AccountContact(Base):
    """A contact's account and job title there (one account per contact)."""

    __tablename__ = "account_contacts"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    job_title: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StepEvent(Base):
    """One step a run took, and how it went: what reports count (saved at parks and finishes)."""

    __tablename__ = "step_events"
    # What an automation's report counts, read from the indexes alone: visits by step, type,
    # outcome and reason; distinct contacts by step.
    __table_args__ = (
        Index(
            "ix_step_events_outcomes", "automation_id", "step_id", "step_type", "outcome", "reason"
        ),
        Index("ix_step_events_contacts", "automation_id", "step_id", "contact_id"),
    )

    workflow_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    automation_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    step_id: Mapped[str] = mapped_column(String(64))
    step_type: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column()


# --- Site messages (docs/integrations.md#site-messages) ---------------------------


class SiteMessage(Base):
    """A message queued by a `send_site_message` step, shown once on a matching page visit."""

    __tablename__ = "site_messages"
    __table_args__ = (Index("ix_site_messages_pending", "contact_id", "shown_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    automation_id: Mapped[str] = mapped_column(String(64))
    step_id: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(200))
    html: Mapped[str] = mapped_column(Text)  # personalized when queued
    page: Mapped[str | None] = mapped_column(String(2000))  # wildcard pattern; None = any page
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    shown_at: Mapped[datetime | None] = mapped_column()


# --- API tokens (docs/api.md#tokens) --------------------------------------------------------


class ApiToken(Base):
    """A named API token with scopes; only its SHA-256 is kept, the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
