"""An automation as listed (with its triggers and run counts), as read (with its document), as
saved (with its warnings); what a draft's validation and a new version's impact would be."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from store import models


class DocumentProblem(BaseModel):
    """What is wrong with an automation document, and where."""

    step: str | None
    path: str
    message: str
    severity: Literal["error", "warning"]


class AutomationRecord(BaseModel):
    """An automation's own columns: what every answer about one says."""

    id: str
    name: str
    status: str
    version: int  # the current one
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: models.Automation) -> AutomationRecord:
        return cls(
            id=row.id,
            name=row.name,
            status=row.status,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class RunCounts(BaseModel):
    running: int
    completed: int
    waiting: int = Field(description="running runs parked at a step (a wait), not held there")


class AutomationSummary(AutomationRecord):
    """An automation as the list shows it: its current triggers and how its runs are doing."""

    triggers: list[str] = Field(description="the trigger types of the current version")
    counts: RunCounts
    goal_rate: float | None = Field(
        description="the share of its runs that achieved a goal; null when it has no runs"
    )


class AutomationSaved(AutomationRecord):
    """A version just saved: it stands, and the warnings say what may not work yet."""

    warnings: list[DocumentProblem]


class AutomationPublic(AutomationRecord):
    document: dict[str, Any] | None  # the current version's, as stored


class BulkEnrollment(BaseModel):
    enrolled: int
    refused: dict[str, int]  # how many contacts, by why their entry was refused
    workflow_ids: list[str]  # of the runs started


class DraftChecked(BaseModel):
    """What saving a draft would say of it: `valid` when it has no error (warnings aside)."""

    valid: bool
    problems: list[DocumentProblem]


class StepImpact(BaseModel):
    """The running contacts at one step, and what the new version does to them."""

    step: str
    waiting: int = Field(description="running contacts at the step now (held ones included)")
    change: Literal["removed", "changed", "unchanged"]
    goes_to: str | None = Field(
        description="a removed step: the step its contacts go on to (its old `next`)"
    )
    ends: bool = Field(description="a removed step with nowhere to go: its runs end")


class VersionImpact(BaseModel):
    """What publishing a draft as the next version would do to the contacts running now."""

    version_from: int  # the current version, which the draft is compared with
    valid: bool  # false: the draft has errors and cannot be published as it is
    running: int  # running contacts in all (some may not sit at a step yet)
    steps: list[StepImpact]
    affected: int  # contacts at steps the draft changes or removes
    ending: int  # contacts whose run would end (`step_removed`)
    problems: list[DocumentProblem]
