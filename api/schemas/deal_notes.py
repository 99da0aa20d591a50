"""A note on a deal."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from store import models


class DealNotePublic(BaseModel):
    id: int
    deal: int
    note: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, note: models.DealNote) -> DealNotePublic:
        return cls(
            id=note.id,
            deal=note.deal_id,
            note=note.body,
            created_at=note.created_at,
            updated_at=note.updated_at,
        )
