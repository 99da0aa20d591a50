"""Tasks, on a deal or on a contact, optionally assigned to a user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import StringConstraints, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api.crm_references import CrmInput, Id, Ref, Title, invalid_field, named_user
from api.deps import ServicesDep
from api.errors import answers
from api.records import Limit, Offset, PathId, Records
from api.schemas.page import Page
from api.schemas.tasks import TaskPublic
from store import crm as crm_store
from store.models import Contact, Deal, Task


async def _present(session: AsyncSession, tasks: Sequence[Task]) -> list[TaskPublic]:
    assignees = await crm_store.task_assignees(session, tasks)
    return [TaskPublic.of(task, assignees) for task in tasks]


router = APIRouter(prefix="/tasks", tags=["crm"])
TASKS = Records(Task, "task", _present)

TaskType = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
IdQuery = Annotated[int | None, Query(ge=1, le=2**62)]


class TaskIn(CrmInput):
    title: Title
    type: TaskType = "todo"
    due_at: datetime | None = None
    assignee: Ref | None = None
    deal: Id | None = None
    contact: Id | None = None
    done: bool = False

    @model_validator(mode="after")
    def _on_one_thing(self) -> TaskIn:
        if (self.deal is None) == (self.contact is None):
            raise ValueError("a task is on a deal or on a contact: give exactly one of them")
        return self


class TaskPatch(CrmInput):
    """Only what is given changes; `assignee: null` unassigns, `due_at: null` clears."""

    title: Title | None = None
    type: TaskType | None = None
    due_at: datetime | None = None
    assignee: Ref | None = None
    done: bool | None = None


@router.post("", status_code=201)
async def create_task(body: TaskIn, services: ServicesDep) -> TaskPublic:
    async with services.db.write() as session:
        if body.deal is not None and await session.get(Deal, body.deal) is None:
            raise invalid_field("deal", f"deal {body.deal} does not exist")
        if body.contact is not None and await session.get(Contact, body.contact) is None:
            raise invalid_field("contact", f"contact {body.contact} does not exist")
        assignee = await named_user(session, body.assignee, "assignee") if body.assignee else None
        task = await crm_store.add_task(
            session,
            title=body.title,
            task_type=body.type,
            due_at=body.due_at,
            assignee=assignee,
            deal_id=body.deal,
            contact_id=body.contact,
        )
        crm_store.set_task_done(task, body.done)
        return await TASKS.show(session, task)


@router.get("")
async def list_tasks(
    services: ServicesDep,
    deal: IdQuery = None,
    contact: IdQuery = None,
    assignee: IdQuery = None,
    done: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TaskPublic]:
    """Tasks, oldest first; filter by deal, contact (tasks on the contact), assignee (user id)
    and done."""
    query = crm_store.tasks_query(deal_id=deal, contact_id=contact, assignee_id=assignee, done=done)
    async with services.db.read() as session:
        return await TASKS.page(session, query, limit, offset)


@router.get("/{task_id}", responses=answers(404))
async def read_task(task_id: PathId, services: ServicesDep) -> TaskPublic:
    async with services.db.read() as session:
        return await TASKS.read(session, task_id)


@router.patch("/{task_id}", responses=answers(404))
async def patch_task(task_id: PathId, body: TaskPatch, services: ServicesDep) -> TaskPublic:
    given = body.model_fields_set
    async with services.db.write() as session:
        task = await TASKS.get(session, task_id)
        if body.title is not None:
            task.title = body.title
        if body.type is not None:
            task.type = body.type
        if "due_at" in given:
            task.due_at = body.due_at
        if "assignee" in given:
            assignee = (
                await named_user(session, body.assignee, "assignee") if body.assignee else None
            )
            task.assignee_id = assignee.id if assignee else None
        if body.done is not None:
            crm_store.set_task_done(task, body.done)
        return await TASKS.show(session, task)
