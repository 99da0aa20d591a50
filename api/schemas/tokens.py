"""API tokens: what they may call and when they were used; the token itself only at creation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from store import models

Scope = Literal["admin", "events:write", "site"]


class TokenPublic(BaseModel):
    name: str
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: models.ApiToken) -> TokenPublic:
        return cls(
            name=record.name,
            scopes=record.scopes,  # type: ignore[arg-type]
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
        )


class TokenCreated(TokenPublic):
    token: str = Field(description="send it as the Api-Token header; shown this once only")
