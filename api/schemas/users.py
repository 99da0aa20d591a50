"""A CRM user: who owns deals and is assigned tasks."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from store import models


class UserPublic(BaseModel):
    id: int
    email: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, user: models.User) -> UserPublic:
        return cls(id=user.id, email=user.email, name=user.name, created_at=user.created_at)
