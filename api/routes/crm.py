"""CRM records (SPEC §5): users, pipelines, deals and their notes, tasks, accounts and their
contacts. Lists page with `?limit=&offset=` and answer `{"items", "total", "limit", "offset"}`.

Pipelines, stages and users are named in request bodies by name (users: email or name) or by
id; one that does not exist is a 422 naming the field. Deal changes reach the deal's contacts'
runs and triggers through the outbox (SPEC §5), exactly as a step's change does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import ServicesDep
from api.errors import answers
from store import crm as crm_store
from store.contacts import InvalidChange
from store.crm import Conflict, UnknownReference
from store.models import (
    Account,
    AccountContact,
    Contact,
    Deal,
    DealNote,
    Pipeline,
    Stage,
    Task,
    User,
)

router = APIRouter(tags=["crm"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Email = Annotated[str, Field(min_length=3, max_length=320)]
Id = Annotated[int, Field(ge=1, le=2**62)]
# A pipeline or user: its id, or its name (a user: email or name).
Ref = Id | Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
Money = Annotated[int, Field(ge=0, le=crm_store.MAX_DEAL_VALUE)]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")]
Status = Literal["open", "won", "lost"]
Number = Annotated[float, Field(allow_inf_nan=False)]  # JSON has no inf or NaN to answer with
FieldValue = str | int | Number | bool | None
Fields = Annotated[dict[Name, FieldValue], Field(max_length=200)]
Url = Annotated[str, Field(max_length=2000, pattern=r"^https?://")]
PathId = Annotated[int, Path(ge=1, le=2**62)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=2**62)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def _invalid(field: str | None, message: str) -> HTTPException:
    loc = ["body", field] if field else ["body"]
    return HTTPException(
        status_code=422, detail=[{"loc": loc, "msg": message, "type": "value_error"}]
    )


@contextmanager
def _store_errors(field: str | None = None) -> Iterator[None]:
    """The store's refusals as HTTP answers: a clash is 409, bad input 422 (at `field`)."""
    try:
        yield
    except Conflict as err:
        raise HTTPException(status_code=409, detail=str(err)) from None
    except (InvalidChange, UnknownReference) as err:
        raise _invalid(field, str(err)) from None


async def _get(session: AsyncSession, model: type[Any], row_id: int, what: str) -> Any:
    row = await session.get(model, row_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"{what} {row_id} not found")
    return row


async def _pipeline(session: AsyncSession, ref: int | str, field: str = "pipeline") -> Pipeline:
    if isinstance(ref, int):
        pipeline = await session.get(Pipeline, ref)
    else:
        pipeline = await crm_store.find_pipeline(session, ref)
    if pipeline is None:
        raise _invalid(field, f"pipeline {ref!r} does not exist")
    return pipeline


async def _stage(
    session: AsyncSession, pipeline: Pipeline, name: str | None, field: str = "stage"
) -> Stage:
    """A stage of `pipeline` by name; None means the pipeline's first stage."""
    if name is None:
        return (await crm_store.stages_of(session, pipeline.id))[0]
    with _store_errors(field):
        return await crm_store.stage_named(session, pipeline, name)


async def _user(session: AsyncSession, ref: int | str, field: str) -> User:
    if isinstance(ref, int):
        user = await session.get(User, ref)
        if user is None:
            raise _invalid(field, f"user {ref} does not exist")
        return user
    with _store_errors(field):
        return await crm_store.user_named(session, ref)


# --- users -----------------------------------------------------------------------------------


class UserIn(_In):
    email: Email
    name: Name


class UserPatch(_In):
    email: Email | None = None
    name: Name | None = None


@router.post("/users", status_code=201, responses=answers(409))
async def create_user(body: UserIn, services: ServicesDep) -> dict[str, Any]:
    async with services.db.write() as session:
        with _store_errors("email"):
            user = await crm_store.create_user(session, body.email, body.name)
        return crm_store.user_record(user)


@router.get("/users")
async def list_users(
    services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    async with services.db.read() as session:
        users, total = await crm_store.page(
            session, select(User), User.id, limit=limit, offset=offset
        )
        return _page([crm_store.user_record(u) for u in users], total, limit, offset)


@router.get("/users/{user_id}", responses=answers(404))
async def read_user(user_id: PathId, services: ServicesDep) -> dict[str, Any]:
    async with services.db.read() as session:
        return crm_store.user_record(await _get(session, User, user_id, "user"))


@router.patch("/users/{user_id}", responses=answers(404, 409))
async def patch_user(user_id: PathId, body: UserPatch, services: ServicesDep) -> dict[str, Any]:
    async with services.db.write() as session:
        user = await _get(session, User, user_id, "user")
        with _store_errors("email"):
            await crm_store.update_user(session, user, body.model_dump(exclude_none=True))
        return crm_store.user_record(user)


# --- pipelines -------------------------------------------------------------------------------


class PipelineIn(_In):
    name: Name
    stages: Annotated[list[Name], Field(min_length=1, max_length=100)]


class PipelinePatch(_In):
    name: Name | None = None
    stages: Annotated[list[Name] | None, Field(min_length=1, max_length=100)] = None


@router.post("/pipelines", status_code=201, responses=answers(409))
async def create_pipeline(body: PipelineIn, services: ServicesDep) -> dict[str, Any]:
    async with services.db.write() as session:
        with _store_errors("stages"):
            pipeline = await crm_store.create_pipeline(session, body.name, body.stages)
        return await crm_store.pipeline_record(session, pipeline)


@router.get("/pipelines")
async def list_pipelines(
    services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    async with services.db.read() as session:
        rows, total = await crm_store.page(
            session, select(Pipeline), Pipeline.id, limit=limit, offset=offset
        )
        items = [await crm_store.pipeline_record(session, p) for p in rows]
        return _page(items, total, limit, offset)


@router.get("/pipelines/{pipeline_id}", responses=answers(404))
async def read_pipeline(pipeline_id: PathId, services: ServicesDep) -> dict[str, Any]:
    async with services.db.read() as session:
        pipeline = await _get(session, Pipeline, pipeline_id, "pipeline")
        return await crm_store.pipeline_record(session, pipeline)


@router.patch("/pipelines/{pipeline_id}", responses=answers(404, 409))
async def patch_pipeline(
    pipeline_id: PathId, body: PipelinePatch, services: ServicesDep
) -> dict[str, Any]:
    """Rename and/or reorder, add and remove stages (a stage holding deals stays: 409)."""
    async with services.db.write() as session:
        pipeline = await _get(session, Pipeline, pipeline_id, "pipeline")
        with _store_errors("stages"):
            await crm_store.update_pipeline(session, pipeline, body.name, body.stages)
        return await crm_store.pipeline_record(session, pipeline)


# --- deals -----------------------------------------------------------------------------------


class DealIn(_In):
    title: Title
    description: Annotated[str | None, Field(max_length=10_000)] = None
    value: Money = 0
    currency: Currency
    pipeline: Ref
    stage: Name | None = Field(default=None, description="absent: the pipeline's first stage")
    owner: Ref | None = None
    status: Status = "open"
    fields: Fields = Field(default_factory=dict)
    scores: Annotated[dict[Name, Number], Field(max_length=100)] = Field(default_factory=dict)
    contacts: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)


class DealPatch(_In):
    """Only what is given changes; `owner: null` removes the owner, a field set to null is
    removed, `scores` are set, `contacts` replaces the deal's contacts."""

    title: Title | None = None
    description: Annotated[str | None, Field(max_length=10_000)] = None
    value: Money | None = None
    currency: Currency | None = None
    pipeline: Ref | None = None
    stage: Name | None = None
    owner: Ref | None = None
    status: Status | None = None
    fields: Fields | None = None
    scores: Annotated[dict[Name, Number] | None, Field(max_length=100)] = None
    contacts: Annotated[list[Id] | None, Field(max_length=1000)] = None


async def _deal_record(session: AsyncSession, deal: Deal) -> dict[str, Any]:
    await session.flush()
    (record,) = await crm_store.deal_records(session, [deal])
    return record


@router.post("/deals", status_code=201)
async def create_deal(body: DealIn, services: ServicesDep) -> dict[str, Any]:
    async with services.db.write() as session:
        pipeline = await _pipeline(session, body.pipeline)
        stage = await _stage(session, pipeline, body.stage)
        owner = await _user(session, body.owner, "owner") if body.owner is not None else None
        with _store_errors("contacts"):
            deal = await crm_store.create_deal(
                session,
                title=body.title,
                description=body.description,
                value=body.value,
                currency=body.currency,
                stage=stage,
                owner=owner,
                status=body.status,
                fields=body.fields,
                contact_ids=body.contacts,
            )
        for name, value in body.scores.items():
            await crm_store.adjust_deal_score(session, deal, name, "set", value)
        record = await _deal_record(session, deal)
    services.dispatcher.kick()
    return record


@router.get("/deals")
async def list_deals(
    services: ServicesDep,
    contact: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    pipeline: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    status: Status | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Deals, oldest first; filter by contact id, pipeline name and status."""
    async with services.db.read() as session:
        pipeline_id = None
        if pipeline is not None:
            found = await crm_store.find_pipeline(session, pipeline)
            if found is None:
                return _page([], 0, limit, offset)
            pipeline_id = found.id
        deals, total = await crm_store.list_deals(
            session,
            contact_id=contact,
            pipeline_id=pipeline_id,
            status=status,
            limit=limit,
            offset=offset,
        )
        return _page(await crm_store.deal_records(session, deals), total, limit, offset)


@router.get("/deals/{deal_id}", responses=answers(404))
async def read_deal(deal_id: PathId, services: ServicesDep) -> dict[str, Any]:
    async with services.db.read() as session:
        return await _deal_record(session, await _get(session, Deal, deal_id, "deal"))


@router.patch("/deals/{deal_id}", responses=answers(404))
async def patch_deal(deal_id: PathId, body: DealPatch, services: ServicesDep) -> dict[str, Any]:
    given = body.model_fields_set
    async with services.db.write() as session:
        deal: Deal = await _get(session, Deal, deal_id, "deal")
        changes: dict[str, Any] = {
            name: getattr(body, name)
            for name in ("title", "description", "value", "currency", "status", "fields")
            if name in given and (getattr(body, name) is not None or name == "description")
        }
        if "owner" in given:
            changes["owner"] = (
                await _user(session, body.owner, "owner") if body.owner is not None else None
            )
        if body.pipeline is not None or body.stage is not None:
            pipeline = (
                await _pipeline(session, body.pipeline)
                if body.pipeline is not None
                else await _get(session, Pipeline, deal.pipeline_id, "pipeline")
            )
            # A new pipeline without a stage: its first stage.
            changes["stage"] = await _stage(session, pipeline, body.stage)
        with _store_errors():
            await crm_store.update_deal(session, deal, changes)
        if body.contacts is not None:
            with _store_errors("contacts"):
                await crm_store.set_deal_contacts(session, deal, body.contacts)
        for name, value in (body.scores or {}).items():
            await crm_store.adjust_deal_score(session, deal, name, "set", value)
        record = await _deal_record(session, deal)
    services.dispatcher.kick()
    return record


# --- deal notes ------------------------------------------------------------------------------


class NoteIn(_In):
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]


@router.post("/deals/{deal_id}/notes", status_code=201, responses=answers(404))
async def add_deal_note(deal_id: PathId, body: NoteIn, services: ServicesDep) -> dict[str, Any]:
    async with services.db.write() as session:
        await _get(session, Deal, deal_id, "deal")
        return crm_store.note_record(await crm_store.add_deal_note(session, deal_id, body.note))


@router.get("/deals/{deal_id}/notes", responses=answers(404))
async def list_deal_notes(
    deal_id: PathId, services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    async with services.db.read() as session:
        await _get(session, Deal, deal_id, "deal")
        query = select(DealNote).where(DealNote.deal_id == deal_id)
        notes, total = await crm_store.page(session, query, DealNote.id, limit=limit, offset=offset)
        return _page([crm_store.note_record(n) for n in notes], total, limit, offset)


@router.patch("/deals/{deal_id}/notes/{note_id}", responses=answers(404))
async def patch_deal_note(
    deal_id: PathId, note_id: PathId, body: NoteIn, services: ServicesDep
) -> dict[str, Any]:
    async with services.db.write() as session:
        note = await session.get(DealNote, note_id)
        if note is None or note.deal_id != deal_id:
            raise HTTPException(status_code=404, detail=f"deal {deal_id} has no note {note_id}")
        note.body = body.note
        await session.flush()
        return crm_store.note_record(note)


# --- tasks -----------------------------------------------------------------------------------

TaskType = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class TaskIn(_In):
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


class TaskPatch(_In):
    """Only what is given changes; `assignee: null` unassigns, `due_at: null` clears."""

    title: Title | None = None
    type: TaskType | None = None
    due_at: datetime | None = None
    assignee: Ref | None = None
    done: bool | None = None


async def _task_record(session: AsyncSession, task: Task) -> dict[str, Any]:
    await session.flush()
    (record,) = await crm_store.task_records(session, [task])
    return record


@router.post("/tasks", status_code=201)
async def create_task(body: TaskIn, services: ServicesDep) -> dict[str, Any]:
    async with services.db.write() as session:
        if body.deal is not None and await session.get(Deal, body.deal) is None:
            raise _invalid("deal", f"deal {body.deal} does not exist")
        if body.contact is not None and await session.get(Contact, body.contact) is None:
            raise _invalid("contact", f"contact {body.contact} does not exist")
        assignee = await _user(session, body.assignee, "assignee") if body.assignee else None
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
        return await _task_record(session, task)


@router.get("/tasks")
async def list_tasks(
    services: ServicesDep,
    deal: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    contact: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    assignee: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    done: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Tasks, oldest first; filter by deal, contact (tasks on the contact), assignee (user id)
    and done."""
    query = select(Task)
    for column, wanted in (
        (Task.deal_id, deal),
        (Task.contact_id, contact),
        (Task.assignee_id, assignee),
        (Task.done, done),
    ):
        if wanted is not None:
            query = query.where(column == wanted)
    async with services.db.read() as session:
        tasks, total = await crm_store.page(session, query, Task.id, limit=limit, offset=offset)
        return _page(await crm_store.task_records(session, tasks), total, limit, offset)


@router.get("/tasks/{task_id}", responses=answers(404))
async def read_task(task_id: PathId, services: ServicesDep) -> dict[str, Any]:
    async with services.db.read() as session:
        return await _task_record(session, await _get(session, Task, task_id, "task"))


@router.patch("/tasks/{task_id}", responses=answers(404))
async def patch_task(task_id: PathId, body: TaskPatch, services: ServicesDep) -> dict[str, Any]:
    given = body.model_fields_set
    async with services.db.write() as session:
        task: Task = await _get(session, Task, task_id, "task")
        if body.title is not None:
            task.title = body.title
        if body.type is not None:
            task.type = body.type
        if "due_at" in given:
            task.due_at = body.due_at
        if "assignee" in given:
            assignee = await _user(session, body.assignee, "assignee") if body.assignee else None
            task.assignee_id = assignee.id if assignee else None
        if body.done is not None:
            crm_store.set_task_done(task, body.done)
        return await _task_record(session, task)


# --- accounts and their contacts ------------------------------------------------------------


class AccountIn(_In):
    name: Name
    url: Url | None = None
    fields: Fields = Field(default_factory=dict)


class AccountPatch(_In):
    """Only what is given changes; `url: null` removes it, a field set to null is removed."""

    name: Name | None = None
    url: Url | None = None
    fields: Fields | None = None


class MemberIn(_In):
    contact: Id
    job_title: Name | None = None


class MemberPatch(_In):
    job_title: Name | None


@router.post("/accounts", status_code=201, responses=answers(409))
async def create_account(body: AccountIn, services: ServicesDep) -> dict[str, Any]:
    async with services.db.write() as session:
        with _store_errors("name"):
            account = await crm_store.create_account(
                session, body.name, url=body.url, fields=body.fields
            )
        return crm_store.account_record(account)


@router.get("/accounts")
async def list_accounts(
    services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    async with services.db.read() as session:
        rows, total = await crm_store.page(
            session, select(Account), Account.id, limit=limit, offset=offset
        )
        return _page([crm_store.account_record(a) for a in rows], total, limit, offset)


@router.get("/accounts/{account_id}", responses=answers(404))
async def read_account(account_id: PathId, services: ServicesDep) -> dict[str, Any]:
    async with services.db.read() as session:
        return crm_store.account_record(await _get(session, Account, account_id, "account"))


@router.patch("/accounts/{account_id}", responses=answers(404, 409))
async def patch_account(
    account_id: PathId, body: AccountPatch, services: ServicesDep
) -> dict[str, Any]:
    # Only `url` may be set to null (removed); a null name or fields changes nothing.
    changes = {
        name: value
        for name in body.model_fields_set
        if (value := getattr(body, name)) is not None or name == "url"
    }
    async with services.db.write() as session:
        account = await _get(session, Account, account_id, "account")
        with _store_errors("name"):
            await crm_store.update_account(session, account, changes)
        await session.flush()
        return crm_store.account_record(account)


@router.post("/accounts/{account_id}/contacts", status_code=201, responses=answers(404))
async def add_account_contact(
    account_id: PathId, body: MemberIn, services: ServicesDep
) -> dict[str, Any]:
    """Put a contact in the account (a contact has one account: it moves from any other)."""
    async with services.db.write() as session:
        account = await _get(session, Account, account_id, "account")
        if await session.get(Contact, body.contact) is None:
            raise _invalid("contact", f"contact {body.contact} does not exist")
        await crm_store.link_contact(session, account, body.contact, body.job_title)
        await session.flush()
        return crm_store.link_record(await _get(session, AccountContact, body.contact, "link"))


@router.get("/accounts/{account_id}/contacts", responses=answers(404))
async def list_account_contacts(
    account_id: PathId, services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    async with services.db.read() as session:
        await _get(session, Account, account_id, "account")
        query = select(AccountContact).where(AccountContact.account_id == account_id)
        links, total = await crm_store.page(
            session, query, AccountContact.contact_id, limit=limit, offset=offset
        )
        return _page([crm_store.link_record(link) for link in links], total, limit, offset)


@router.patch("/accounts/{account_id}/contacts/{contact_id}", responses=answers(404))
async def patch_account_contact(
    account_id: PathId, contact_id: PathId, body: MemberPatch, services: ServicesDep
) -> dict[str, Any]:
    async with services.db.write() as session:
        link = await session.get(AccountContact, contact_id)
        if link is None or link.account_id != account_id:
            raise HTTPException(
                status_code=404, detail=f"contact {contact_id} is not in account {account_id}"
            )
        link.job_title = body.job_title
        return crm_store.link_record(link)
