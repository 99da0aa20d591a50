"""Inputs and outputs that cross between the AutomationRun workflow, its activities and clients.

Kept small on purpose (docs/architecture.md#runs-in-temporal): ids and counters, never the document or the contact's data,
so histories stay short and hold no PII beyond what a step's outcome needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey

WORKFLOW_TYPE = "AutomationRun"
SIGNAL_CONTACT_CHANGED = "contact_changed"
SIGNAL_NEW_VERSION = "new_version"
SIGNAL_END_RUN = "end_run"
SIGNAL_AUTOMATION_STATUS = "automation_status"
QUERY_STATE = "state"

# Cairn's custom search attributes (docs/reports.md#the-temporal-ui): ids only, since search attributes are never encoded.
AUTOMATION_KEY = SearchAttributeKey.for_keyword("CairnAutomation")
CONTACT_KEY = SearchAttributeKey.for_keyword("CairnContact")
STEP_KEY = SearchAttributeKey.for_keyword("CairnStep")
VERSION_KEY = SearchAttributeKey.for_int("CairnVersion")

RunStatus = Literal["running", "completed", "ended", "failed"]
Outcome = Literal["done", "skipped", "failed"]


class StepContext(BaseModel):
    """Identifies one step visit: the key of Cairn's exactly-once writes (docs/architecture.md#exactly-once-writes)."""

    workflow_id: str
    automation_id: str
    version: int
    contact_id: int
    step_id: str
    visit: int
    # The run's deal (RunInput.deal_id): what deal steps, `deal` conditions and `%DEAL_...%`
    # tags use before the contact's most recent deal.
    deal_id: int | None = None
    # Goals this contact may jump to: a step that writes Cairn's database evaluates them right
    # after its write, in the same transaction, so its own change can trigger a goal without
    # another round-trip (docs/architecture.md#conditions-and-goals). `now` is the workflow's clock for their time windows.
    goal_conditions: list[dict[str, Any]] = Field(default_factory=list)
    # Their goal step ids: the first one met is recorded in that same transaction too.
    goal_ids: list[str] = Field(default_factory=list)
    now: datetime | None = None
    # Decisions the run took in this workflow task before this write (key → what the reading
    # activity answered): recorded with the write, so that if the task is lost and re-run, the
    # reads re-run after this write answer as they did (docs/architecture.md#exactly-once-writes).
    decisions: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def visit_key(self) -> str:
        return f"{self.workflow_id}:{self.visit}"


class StepOutcome(BaseModel):
    outcome: Outcome = "done"
    reason: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    goals_met: list[bool] = Field(default_factory=list)  # one per StepContext.goal_conditions


class StepRecord(BaseModel):
    seq: int = 0  # the run's n-th step record: with the workflow id, the row's identity
    step: str
    type: str
    outcome: Outcome
    reason: str | None = None
    at: datetime


class RunState(BaseModel):
    """Everything a run carries across continue-as-new (docs/architecture.md#loops-and-continue-as-new) and shows in its `state` query."""

    version: int
    position: str | None
    status: RunStatus = "running"
    reason: str | None = None
    visit: int = 0
    steps_taken: int = 0
    steps: list[StepRecord] = Field(default_factory=list)  # the most recent ones
    # Step records not yet written to Cairn's step_events table (for reports): they ride along
    # with the run's next park or finish, which are database round-trips anyway.
    unsaved: list[StepRecord] = Field(default_factory=list)
    goals: list[str] = Field(default_factory=list)
    split_paths: dict[str, int] = Field(default_factory=dict)
    goto_passes: dict[str, list[datetime]] = Field(default_factory=dict)
    gotos_since_wait: int = 0
    # An inactive automation holds its contacts at their next step until reactivated.
    automation_active: bool = True
    # When the wait at `position` began, so a resumed wait (new version, continue-as-new)
    # counts the time already waited.
    wait_started_at: datetime | None = None
    # A contact change signalled but not yet looked at when the run continued as new: the
    # new run looks at it first (else a goal met by that change would be missed).
    unread_change: bool = False
    # How many conditions evaluations the run has made: with the workflow id, the key under
    # which one is recalled when a lost workflow task re-runs it (StepContext.decisions).
    evaluations: int = 0
    # The wait or goal the run continued as new inside of: re-entering it is the same step
    # visit, not a new one, so the visits after it (the keys of their writes and sends) are
    # numbered as without the continue-as-new. A lost workflow task may already have made
    # those writes under these numbers.
    resuming: str | None = None


class RunInput(BaseModel):
    automation_id: str
    contact_id: int
    version: int
    state: RunState | None = None
    # The deal whose change fired the run (a `deal_stage_changed` or deal `score_changed`
    # trigger): its deal steps and `deal` conditions act on it (docs/crm.md#deal-triggers).
    deal_id: int | None = None


class LoadAutomationInput(BaseModel):
    automation_id: str
    version: int
    # On a fresh start the load also checks the goals the contact may already meet (one
    # round-trip instead of two).
    contact_id: int | None = None
    position: str | None = None
    now: datetime | None = None
    # ... and, when the flow opens with a long timed wait, records the contact as parked there
    # (saving the park's own round-trip for the most common first step of all).
    workflow_id: str | None = None
    # On a fresh start: load the automation's current version instead if it is newer. A start
    # queued in the outbox (Temporal down) may run after a new version's signals went out.
    newest: bool = False
    deal_id: int | None = None  # the run's deal, for the goals' `deal` conditions
    # On a fresh start: the key of the entry decision (version, goals met, park), answered as
    # recorded if a write of this run recorded it (StepContext.decisions).
    decision_key: str | None = None


class LoadAutomationOutput(BaseModel):
    document: dict[str, Any]
    version: int | None = None  # the version loaded, when `newest` was asked (None: as asked)
    goals_met: list[str] = Field(default_factory=list)
    parked_at: str | None = None


class SavedSteps(BaseModel):
    """Step records to save for reports, with whose run they are."""

    workflow_id: str
    automation_id: str
    version: int
    contact_id: int
    records: list[StepRecord]


class EvaluateInput(BaseModel):
    contact_id: int
    conditions: list[dict[str, Any]]
    now: datetime
    # When set, the runs index records that the contact now sits at this step.
    workflow_id: str | None = None
    park_at: str | None = None
    steps: SavedSteps | None = None  # saved with the park
    # The first conditions are these goals': the first one met is recorded by this same call
    # (the goal's jump then costs no second round-trip — goal latency, docs/architecture.md#conditions-and-goals).
    goal_ids: list[str] = Field(default_factory=list)
    automation_id: str | None = None
    deal_id: int | None = None  # the run's deal, for `deal` conditions
    decision_key: str | None = None  # answered as recorded, if a write recorded it


class EvaluateOutput(BaseModel):
    results: list[bool]
    recorded_goal: str | None = None


class SplitInput(BaseModel):
    context: StepContext
    now: datetime


class SplitOutput(BaseModel):
    path: int  # index into `paths` (even) or 0 = before, 1 = after (until)


class ParkInput(BaseModel):
    workflow_id: str
    step_id: str
    steps: SavedSteps | None = None
    held: bool = False  # held there by an inactive automation, not waiting


class FinishRunInput(BaseModel):
    workflow_id: str
    status: RunStatus
    reason: str | None
    step_id: str | None
    steps: SavedSteps | None = None


class GoalInput(BaseModel):
    context: StepContext


class ContactChanged(BaseModel):
    kind: str


class NewVersion(BaseModel):
    version: int


class AutomationStatus(BaseModel):
    active: bool


class EndRun(BaseModel):
    reason: str
