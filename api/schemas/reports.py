"""An automation's versions and the contacts that went through it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from store import models
from store.runs import HELD, RUNNING


class VersionSummary(BaseModel):
    version: int
    created_at: datetime


class VersionPublic(VersionSummary):
    document: dict[str, Any]  # exactly as stored

    @classmethod
    def of(cls, row: models.AutomationVersion) -> VersionPublic:
        return cls(version=row.version, created_at=row.created_at, document=row.document)


class AutomationContact(BaseModel):
    """One run of the automation, with its contact's email and name."""

    contact_id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    status: str
    reason: str | None
    held: bool  # running, but held at its step by an inactive automation
    current_step: str | None
    version: int
    entry: int  # the contact's n-th entry into the automation
    entered_at: datetime
    last_activity_at: datetime = Field(
        description="when the runs index last recorded the run: for a contact waiting or held "
        "at a step, when it got there (a conditional wait's wake-ups move it too)"
    )
    ended_at: datetime | None
    workflow_id: str
    temporal_ui_url: str

    @classmethod
    def of(cls, run: models.Run, contact: models.Contact, run_url: str) -> AutomationContact:
        return cls(
            contact_id=run.contact_id,
            email=contact.email,
            first_name=contact.first_name,
            last_name=contact.last_name,
            status=run.status,
            reason=run.reason,
            held=run.status == RUNNING and run.reason == HELD,
            current_step=run.current_step,
            version=run.version,
            entry=run.entry,
            entered_at=run.started_at,
            last_activity_at=run.updated_at,
            ended_at=run.ended_at,
            workflow_id=run.workflow_id,
            temporal_ui_url=run_url,
        )


class AutomationContacts(BaseModel):
    """A page of the automation's runs, newest first. The same counts as `Page`, but its items
    are under `contacts`: the answer had that shape before `Page` existed."""

    total: int
    limit: int
    offset: int
    contacts: list[AutomationContact]
