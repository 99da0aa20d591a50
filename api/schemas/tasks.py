"""A task, on a deal or on a contact, with its assignee."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel

from api.schemas.users import UserPublic
from store import models


class TaskPublic(BaseModel):
    id: int
    title: str
    type: str
    due_at: datetime | None
    assignee: UserPublic | None
    done: bool
    done_at: datetime | None
    deal: int | None
    contact: int | None
    created_at: datetime

    @classmethod
    def of(cls, task: models.Task, assignees: Mapping[int, models.User]) -> TaskPublic:
        """`assignees`: by id, at least the task's own (see store.crm.task_assignees)."""
        assignee = assignees.get(task.assignee_id) if task.assignee_id is not None else None
        return cls(
            id=task.id,
            title=task.title,
            type=task.type,
            due_at=task.due_at,
            assignee=UserPublic.of(assignee) if assignee else None,
            done=task.done,
            done_at=task.done_at,
            deal=task.deal_id,
            contact=task.contact_id,
            created_at=task.created_at,
        )
