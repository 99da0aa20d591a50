"""An automation's versions and the contacts that went through it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

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
    """One run of the automation, with its contact's email."""

    contact_id: int
    email: str | None
    status: str
    reason: str | None
    held: bool  # running, but held at its step by an inactive automation
    current_step: str | None
    version: int
    entry: int  # the contact's n-th entry into the automation
    entered_at: datetime
    last_activity_at: datetime
    ended_at: datetime | None
    workflow_id: str

    @classmethod
    def of(cls, run: models.Run, email: str | None) -> AutomationContact:
        return cls(
            contact_id=run.contact_id,
            email=email,
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
        )


class AutomationContacts(BaseModel):
    """A page of the automation's runs, newest first. The same counts as `Page`, but its items
    are under `contacts`: the answer had that shape before `Page` existed."""

    total: int
    limit: int
    offset: int
    contacts: list[AutomationContact]
