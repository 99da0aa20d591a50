"""Where a contact is in an automation: one run, its recent steps, goals and split paths."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from workflows.contracts import Outcome, RunStatus


class RunStep(BaseModel):
    """One step the run took: `seq` orders them, `outcome` and `reason` say how it went."""

    seq: int
    step: str
    type: str
    outcome: Outcome
    reason: str | None
    at: datetime


class RunPublic(BaseModel):
    workflow_id: str
    automation: str
    contact: int
    version: int
    status: RunStatus
    reason: str | None
    current_step: str | None
    started_at: datetime
    ended_at: datetime | None
    steps: list[RunStep]
    goals: list[str]  # goal steps achieved
    split_paths: dict[str, int]  # split step → the path taken
    temporal_ui_url: str
