"""An outbox row set aside after failing every delivery (a dead letter), as listed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class DeadLetter(BaseModel):
    id: int
    outbox_id: int
    contact_id: int
    kind: str
    data: dict[str, Any]
    attempts: int
    error: str
    created_at: datetime
    failed_at: datetime
