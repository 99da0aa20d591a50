"""An event recorded for a contact."""

from __future__ import annotations

from pydantic import BaseModel


class EventRecorded(BaseModel):
    id: int
    contact: int
    event: str
