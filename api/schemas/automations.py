"""An automation as listed, as read (with its document) and as saved (with its warnings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from store import models


class DocumentProblem(BaseModel):
    """What is wrong with an automation document, and where."""

    step: str | None
    path: str
    message: str
    severity: Literal["error", "warning"]


class AutomationSummary(BaseModel):
    id: str
    name: str
    status: str
    version: int  # the current one
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: models.Automation) -> AutomationSummary:
        return cls(
            id=row.id,
            name=row.name,
            status=row.status,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class AutomationSaved(AutomationSummary):
    """A version just saved: it stands, and the warnings say what may not work yet."""

    warnings: list[DocumentProblem]


class AutomationPublic(AutomationSummary):
    document: dict[str, Any] | None  # the current version's, as stored


class BulkEnrollment(BaseModel):
    enrolled: int
    refused: dict[str, int]  # how many contacts, by why their entry was refused
    workflow_ids: list[str]  # of the runs started
