"""A deal, with its pipeline, stage and owner by name, its scores and its contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from api.schemas.users import UserPublic
from store.crm import DealDetails, format_money


class DealPublic(BaseModel):
    id: int
    title: str
    description: str | None
    value: int  # minor units
    currency: str
    formatted_value: str
    status: str
    pipeline: str | None
    stage: str | None
    owner: UserPublic | None
    fields: dict[str, Any]
    scores: dict[str, float]
    contacts: list[int]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, details: DealDetails) -> DealPublic:
        deal = details.deal
        return cls(
            id=deal.id,
            title=deal.title,
            description=deal.description,
            value=deal.value,
            currency=deal.currency,
            formatted_value=format_money(deal.value, deal.currency),
            status=deal.status,
            pipeline=details.pipeline,
            stage=details.stage,
            owner=UserPublic.of(details.owner) if details.owner else None,
            fields=deal.fields or {},
            scores=details.scores,
            contacts=details.contacts,
            created_at=deal.created_at,
            updated_at=deal.updated_at,
        )
