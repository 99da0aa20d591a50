"""Simulation: what an automation would do to one contact, by the real AutomationRun on virtual
time, with every side effect recorded instead of made (docs/simulation.md).

`Simulate` is the request's workflow: a single `simulate` activity, in a worker process, builds
the sandbox, runs AutomationRun on that process's simulation task queue with Temporal's
per-workflow time skipping, plays the script at its virtual offsets, and answers what happened.
The models below are what crosses the API, this workflow and that activity.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

from workflows.durations import Duration

# Every workflow of a simulation carries it, so the Temporal UI can show them
# (`CairnSimulation = true`) or hide them (`CairnSimulation is null`).
SIMULATION_KEY = SearchAttributeKey.for_bool("CairnSimulation")
SIMULATE_WORKFLOW = "Simulate"
RUN_ID_PREFIX = "cairn-sim:"

MAX_HORIZON = timedelta(days=731)  # two years
MAX_EVENTS = 1000
MAX_STEPS = 10_000
DEFAULT_HORIZON = Duration(days=90)
# Wall-clock bound of one simulation: a 2-year flow of 10,000 steps takes well under it.
TIMEOUT = timedelta(minutes=5)

EmailAction = Literal["opened", "clicked"]


class SimulatedContact(BaseModel):
    """A made-up contact: its profile and the facts conditions read."""

    model_config = ConfigDict(extra="forbid")

    email: str = "simulated@example.com"
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    timezone: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=1000)
    lists: list[str] = Field(default_factory=list, max_length=1000)
    scores: dict[str, float] = Field(default_factory=dict)


class DealChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str | None = None
    status: Literal["open", "won", "lost"] | None = None
    value: int | None = None
    fields: dict[str, Any] = Field(default_factory=dict)


class ScriptedEvent(BaseModel):
    """One thing that happens to the contact `at` this long after the start: exactly one of
    an event (with `data`), an email opened or clicked (of the send step `step`), a tag added or
    removed, fields changed, a list subscribed or unsubscribed, the run's deal changed."""

    model_config = ConfigDict(extra="forbid")

    at: Duration | None = None  # None: at the start
    event: str | None = Field(default=None, min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)
    email: EmailAction | None = None
    step: str | None = None
    link: str | None = None
    tag_added: str | None = Field(default=None, min_length=1, max_length=200)
    tag_removed: str | None = Field(default=None, min_length=1, max_length=200)
    fields: dict[str, Any] | None = None
    subscribed: str | None = Field(default=None, min_length=1, max_length=200)
    unsubscribed: str | None = Field(default=None, min_length=1, max_length=200)
    deal: DealChange | None = None

    @model_validator(mode="after")
    def _one_thing(self) -> ScriptedEvent:
        kinds = [
            k
            for k in (
                "event",
                "email",
                "tag_added",
                "tag_removed",
                "fields",
                "subscribed",
                "unsubscribed",
                "deal",
            )
            if getattr(self, k) is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "each scripted event is exactly one of: event, email, tag_added, tag_removed, "
                f"fields, subscribed, unsubscribed, deal (got {kinds or 'none'})"
            )
        if self.email is not None and not self.step:
            raise ValueError('an email event names the send step it is about: "step"')
        return self

    @property
    def offset(self) -> timedelta:
        return self.at.to_timedelta() if self.at is not None else timedelta(0)


class SimulationOptions(BaseModel):
    """What the API accepts besides the automation: who, what happens, from when, how long."""

    model_config = ConfigDict(extra="forbid")

    contact: SimulatedContact | None = None
    contact_id: int | None = None
    events: list[ScriptedEvent] = Field(default_factory=list, max_length=MAX_EVENTS)
    start_at: datetime | None = None
    horizon: Duration = DEFAULT_HORIZON

    @model_validator(mode="after")
    def _bounds(self) -> SimulationOptions:
        if self.contact is not None and self.contact_id is not None:
            raise ValueError("give either a made-up `contact` or a real `contact_id`, not both")
        if self.start_at is not None and self.start_at.tzinfo is None:
            raise ValueError("start_at needs a time zone, e.g. 2026-12-01T08:00:00Z")
        horizon = self.horizon.to_timedelta()
        if horizon > MAX_HORIZON:
            raise ValueError("the horizon is at most 2 years")
        late = [e for e in self.events if e.offset > horizon]
        if late:
            raise ValueError(
                f"{len(late)} scripted event(s) come after the horizon ({self.horizon.describe()})"
            )
        return self


class SimulationInput(BaseModel):
    """The `simulate` activity's input: the options plus the document to run (a saved version
    or a draft), as its version number in the sandbox."""

    document: dict[str, Any]
    automation_id: str
    version: int
    options: SimulationOptions
    run_id: str  # the AutomationRun's workflow id


class PathEntry(BaseModel):
    at: datetime
    step: str
    type: str
    outcome: str
    reason: str | None = None
    detail: str | None = None


class SimulatedMessage(BaseModel):
    at: datetime
    step: str
    channel: Literal["email", "notification", "sms", "site"]
    to: str
    subject: str | None = None
    html: str | None = None
    text: str | None = None


class SimulatedWrite(BaseModel):
    at: datetime
    step: str
    kind: str
    outcome: str = "done"
    detail: dict[str, Any] = Field(default_factory=dict)


class SimulatedRequest(BaseModel):
    """A provider call a step would make (webhook, Facebook, Salesforce): secrets masked."""

    at: datetime
    step: str
    method: str
    url: str
    body: str | None = None


class ScriptEntry(BaseModel):
    """A scripted event as played: whether it changed anything, and if not, why."""

    at: datetime
    what: str
    applied: bool
    note: str | None = None


class SimulationResult(BaseModel):
    status: Literal["completed", "ended", "failed", "running"]
    reason: str | None = None
    waiting_at: str | None = None  # when still running at the horizon: the step it waits in
    started_at: datetime
    simulated: timedelta  # virtual time from the start to the end of the run or the horizon
    path: list[PathEntry]
    messages: list[SimulatedMessage]
    writes: list[SimulatedWrite]
    requests: list[SimulatedRequest]
    script: list[ScriptEntry] = Field(default_factory=list)
    goals: list[str]
    split_paths: dict[str, int] = Field(default_factory=dict)
    workflow_id: str
    temporal_ui_url: str = ""  # set by the API, which knows the UI's address
    elapsed_seconds: float = 0.0  # wall-clock time the simulation took


@workflow.defn(name=SIMULATE_WORKFLOW)
class Simulate:
    """One simulation request: its `simulate` activity does the work in a worker process (the
    one hosting the sandbox and the simulation task queue)."""

    @workflow.run
    async def run(self, input: SimulationInput) -> SimulationResult:
        return await workflow.execute_activity(
            "simulate",
            input,
            result_type=SimulationResult,
            start_to_close_timeout=TIMEOUT,
            heartbeat_timeout=timedelta(seconds=30),
            # A simulation has no side effect to protect: one that fails is asked again by
            # the person who asked, with an error they can read.
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
