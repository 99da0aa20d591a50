"""A contact's timeline: its events, the emails sent to it and its runs, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from api.schemas.runs import RunStep
from workflows.contracts import RunStatus


class TimelineEvent(BaseModel):
    """An event recorded for the contact (POST /events, a site visit, a bounce…)."""

    kind: Literal["event"] = "event"
    at: datetime  # when it occurred
    id: int
    name: str
    data: dict[str, Any]


class EmailOpen(BaseModel):
    at: datetime


class EmailClick(BaseModel):
    at: datetime
    url: str | None
    # The click looked like a mail gateway's link scanner (docs/integrations.md#tracking):
    # conditions and triggers ignore it.
    suspected_bot: bool


class TimelineEmail(BaseModel):
    """An email a `send_email` step sent the contact, with its opens and clicks."""

    kind: Literal["email"] = "email"
    at: datetime  # when it was sent
    id: int  # of its email_sent event
    automation: str | None
    step: str | None
    # As the step wrote it, personalization tags unfilled, in the version of the automation
    # current when it was sent; null when the step is gone.
    subject: str | None
    message_id: str | None
    opens: list[EmailOpen]
    clicks: list[EmailClick]


class TimelineRun(BaseModel):
    """A run of the contact in an automation, with its latest steps (as saved: see
    docs/api.md#a-contacts-timeline)."""

    kind: Literal["run"] = "run"
    at: datetime  # when it started
    id: int
    automation: str
    version: int  # the version it started on
    workflow_id: str
    status: RunStatus
    reason: str | None
    started_at: datetime
    ended_at: datetime | None
    current_step: str | None
    steps: list[RunStep]
    goals: list[str]
    temporal_ui_url: str


TimelineItem = Annotated[TimelineEvent | TimelineEmail | TimelineRun, Field(discriminator="kind")]


class Timeline(BaseModel):
    """A page of a contact's timeline; `next` is the cursor of the following page."""

    items: list[TimelineItem]
    limit: int
    next: str | None
