"""A deal pipeline and its ordered stages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel

from store import models


class StagePublic(BaseModel):
    id: int
    name: str
    position: int


class PipelinePublic(BaseModel):
    id: int
    name: str
    stages: list[StagePublic]
    created_at: datetime

    @classmethod
    def of(cls, pipeline: models.Pipeline, stages: Sequence[models.Stage]) -> PipelinePublic:
        return cls(
            id=pipeline.id,
            name=pipeline.name,
            stages=[StagePublic(id=s.id, name=s.name, position=s.position) for s in stages],
            created_at=pipeline.created_at,
        )
