"""Contacts: search, upsert, read, change, delete; tags, lists, enrollment and ending a run; the
timeline of everything that happened to one."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError, RPCStatusCode

from api.cursors import CursorParam, cursor_time, decode_cursor, encode_cursor
from api.deps import ServicesDep
from api.errors import answers, invalid
from api.schemas.contacts import (
    ContactPublic,
    ContactSummary,
    Enrolled,
    ListChanged,
    RunsEnded,
    TagAdded,
    TagRemoved,
)
from api.schemas.page import CursorPage
from api.schemas.runs import RunStep
from api.schemas.timeline import (
    EmailClick,
    EmailOpen,
    Timeline,
    TimelineEmail,
    TimelineEvent,
    TimelineItem,
    TimelineRun,
)
from api.temporal_ui import workflow_url
from core.settings import Settings
from domain.enrollment import enroll
from store import contact_search
from store import contacts as contact_store
from store import crm as crm_store
from store import runs as run_store
from store import timeline as timeline_store
from store.contacts import EmailTaken, InvalidChange
from store.models import Contact
from store.runs import EntryRefused
from workflows.contracts import SIGNAL_END_RUN, EndRun

router = APIRouter(prefix="/contacts", tags=["contacts"])

Name = Annotated[str, Field(min_length=1, max_length=200)]
FieldValue = str | int | float | bool | None
ScoreName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(min_length=3, max_length=320)]
    first_name: Annotated[str | None, Field(max_length=200)] = None
    last_name: Annotated[str | None, Field(max_length=200)] = None
    phone: Annotated[str | None, Field(max_length=50)] = None
    fields: dict[Name, FieldValue] = Field(default_factory=dict, max_length=200)


class ContactPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str | None, Field(min_length=3, max_length=320)] = None
    first_name: Annotated[str | None, Field(max_length=200)] = None
    last_name: Annotated[str | None, Field(max_length=200)] = None
    phone: Annotated[str | None, Field(max_length=50)] = None
    fields: dict[Name, FieldValue] = Field(default_factory=dict, max_length=200)
    # Set semantics, as a step's `"op": "set"`: `score_changed` triggers fire from here too.
    scores: dict[ScoreName, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=100
    )


class TagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: Name


class ListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: Name
    status: Literal["active", "unsubscribed"] = "active"


class EnrollIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    automation: Name


ContactId = Annotated[int, Path(ge=1, le=2**62)]
PageLimit = Annotated[int, Query(ge=1, le=200)]


def _invalid(err: InvalidChange) -> HTTPException:
    if isinstance(err, EmailTaken):
        return HTTPException(status_code=409, detail=str(err))
    return HTTPException(
        status_code=422, detail=[{"loc": ["body"], "msg": str(err), "type": "value_error"}]
    )


async def _record(session: AsyncSession, contact: Contact) -> ContactPublic:
    details = await contact_store.contact_details(session, contact)
    return ContactPublic.of(details, await crm_store.contact_crm(session, contact.id))


async def _contact(session: AsyncSession, contact_id: int) -> Contact:
    contact = await contact_store.get_contact(session, contact_id)
    if contact is None:
        raise HTTPException(status_code=404, detail=f"contact {contact_id} not found")
    return contact


@router.get("")
async def search_contacts(
    services: ServicesDep,
    q: Annotated[
        str | None,
        Query(max_length=200, description="a piece of the email, first or last name, any case"),
    ] = None,
    tag: Annotated[str | None, Query(max_length=200, description="a tag, any case")] = None,
    cursor: CursorParam = None,
    limit: PageLimit = 50,
) -> CursorPage[ContactSummary]:
    """Contacts matching `q` and `tag` (both optional), newest first, a page at a time
    (docs/api.md#searching-contacts)."""
    below = decode_cursor(cursor, int)[0] if cursor is not None else None
    async with services.db.read() as session:
        found = await contact_search.search_contacts(
            session, text=q, tag=tag, below=below, limit=limit
        )
        page = found[:limit]
        tags = await contact_search.tags_of(session, [c.id for c in page])
    return CursorPage(
        items=[ContactSummary.of(contact, tags[contact.id]) for contact in page],
        limit=limit,
        next=encode_cursor(page[-1].id) if len(found) > limit else None,
    )


@router.post(
    "",
    status_code=201,
    responses={200: {"model": ContactPublic, "description": "updated"}, **answers(409, 422)},
)
async def upsert_contact(
    body: ContactIn, services: ServicesDep, response: Response
) -> ContactPublic:
    """Create or update by email: 201 when new, 200 when it existed."""
    values = body.model_dump(include={"first_name", "last_name", "phone"}, exclude_unset=True)
    try:
        async with services.db.write() as session:
            contact, created = await contact_store.upsert_contact(
                session, email=body.email, values=values, fields=body.fields
            )
            record = await _record(session, contact)
    except InvalidChange as err:
        raise _invalid(err) from None
    services.dispatcher.kick()
    response.status_code = 201 if created else 200
    return record


@router.get("/{contact_id}", responses=answers(404))
async def read_contact(contact_id: ContactId, services: ServicesDep) -> ContactPublic:
    async with services.db.read() as session:
        return await _record(session, await _contact(session, contact_id))


@router.get("/{contact_id}/timeline", responses=answers(404))
async def contact_timeline(
    contact_id: ContactId, services: ServicesDep, cursor: CursorParam = None, limit: PageLimit = 50
) -> Timeline:
    """Events, emails (with opens and clicks) and runs (with their step trails), newest first
    (docs/api.md#a-contacts-timeline)."""
    position = None
    if cursor is not None:
        at, kind, row_id = decode_cursor(cursor, str, int, int)
        position = timeline_store.Position(cursor_time(at), kind, row_id)
    async with services.db.read() as session:
        await _contact(session, contact_id)
        entries, more = await timeline_store.timeline(
            session, contact_id, cursor=position, limit=limit
        )
    last = entries[-1].position if entries and more else None
    return Timeline(
        items=[_timeline_item(entry, services.settings) for entry in entries],
        limit=limit,
        next=encode_cursor(last.at.isoformat(), last.kind, last.id) if last else None,
    )


def _timeline_item(entry: timeline_store.Entry, settings: Settings) -> TimelineItem:
    item = entry.item
    if isinstance(item, timeline_store.EmailEntry):
        data = item.event.data if isinstance(item.event.data, dict) else {}
        message_id = data.get("message_id")
        return TimelineEmail(
            at=item.event.occurred_at,
            id=item.event.id,
            automation=item.automation,
            step=item.step,
            subject=item.subject,
            message_id=message_id if isinstance(message_id, str) else None,
            opens=[EmailOpen(at=o.at) for o in item.opens],
            clicks=[
                EmailClick(at=c.at, url=c.link, suspected_bot=c.suspected_bot) for c in item.clicks
            ],
        )
    if isinstance(item, timeline_store.RunEntry):
        run = item.run
        return TimelineRun(
            at=run.started_at,
            id=run.id,
            automation=run.automation_id,
            version=run.version,
            workflow_id=run.workflow_id,
            status=run.status,  # type: ignore[arg-type]  # a RunStatus, stored as text
            reason=run.reason,
            started_at=run.started_at,
            ended_at=run.ended_at,
            current_step=run.current_step,
            steps=[RunStep.model_validate(record.model_dump()) for record in item.steps],
            goals=item.goals,
            temporal_ui_url=workflow_url(settings, run.workflow_id),
        )
    return TimelineEvent(
        at=item.occurred_at,
        id=item.id,
        name=item.name,
        data=item.data if isinstance(item.data, dict) else {},
    )


@router.patch("/{contact_id}", responses=answers(404, 409, 422))
async def patch_contact(
    contact_id: ContactId, body: ContactPatch, services: ServicesDep
) -> ContactPublic:
    changes = body.model_dump(exclude={"fields", "scores"}, exclude_unset=True)
    if "email" in changes and changes["email"] is None:
        raise invalid("email cannot be removed", "email")
    try:
        async with services.db.write() as session:
            contact = await _contact(session, contact_id)
            await contact_store.update_fields(session, contact, {**changes, **body.fields})
            for name, value in body.scores.items():
                await contact_store.adjust_score(session, contact.id, name, "set", value)
            record = await _record(session, contact)
    except InvalidChange as err:
        raise _invalid(err) from None
    services.dispatcher.kick()
    return record


@router.delete("/{contact_id}", status_code=204, responses=answers(404))
async def delete_contact(contact_id: ContactId, services: ServicesDep) -> Response:
    """Deletes the contact and everything about it; its running runs are ended first."""
    async with services.db.read() as session:
        await _contact(session, contact_id)
        runs = await run_store.running_runs(session, contact_id)
    for run in runs:
        await _end(services, run.workflow_id, "contact_deleted")
    async with services.db.write() as session:
        await session.delete(await _contact(session, contact_id))
    return Response(status_code=204)


@router.post(
    "/{contact_id}/tags",
    status_code=201,
    responses={200: {"model": TagAdded, "description": "the contact had the tag"}, **answers(404)},
)
async def add_tag(
    contact_id: ContactId, body: TagIn, services: ServicesDep, response: Response
) -> TagAdded:
    async with services.db.write() as session:
        await _contact(session, contact_id)
        added = await contact_store.add_tag(session, contact_id, body.tag)
    services.dispatcher.kick()
    response.status_code = 201 if added else 200
    return TagAdded(contact=contact_id, tag=body.tag.strip(), added=added)


@router.delete("/{contact_id}/tags/{tag}", responses=answers(404))
async def remove_tag(contact_id: ContactId, tag: str, services: ServicesDep) -> TagRemoved:
    async with services.db.write() as session:
        await _contact(session, contact_id)
        removed = await contact_store.remove_tag(session, contact_id, tag)
    if not removed:
        raise HTTPException(status_code=404, detail=f"contact {contact_id} has no tag {tag!r}")
    services.dispatcher.kick()
    return TagRemoved(contact=contact_id, tag=tag, removed=True)


@router.post("/{contact_id}/lists", responses=answers(404))
async def set_list(contact_id: ContactId, body: ListIn, services: ServicesDep) -> ListChanged:
    async with services.db.write() as session:
        await _contact(session, contact_id)
        changed = await contact_store.set_subscription(session, contact_id, body.list, body.status)
    services.dispatcher.kick()
    return ListChanged(
        contact=contact_id, list=body.list.strip(), status=body.status, changed=changed
    )


@router.post("/{contact_id}/automations", status_code=201, responses=answers(404, 409))
async def enroll_contact(contact_id: ContactId, body: EnrollIn, services: ServicesDep) -> Enrolled:
    """Enroll now; 409 when the automation's entry rule (or its status) forbids it."""
    async with services.db.read() as session:
        await _contact(session, contact_id)
    result = await enroll(
        services.db, services.client, services.settings.task_queue, body.automation, contact_id
    )
    if isinstance(result, EntryRefused):
        if result.reason == "unknown_automation":
            raise HTTPException(status_code=404, detail=f"automation {body.automation!r} not found")
        raise HTTPException(status_code=409, detail=f"entry refused: {result.reason}")
    return Enrolled(workflow_id=result.workflow_id, automation=body.automation, contact=contact_id)


@router.delete("/{contact_id}/automations/{automation_id}", responses=answers(404))
async def end_contact_run(
    contact_id: ContactId, automation_id: str, services: ServicesDep
) -> RunsEnded:
    async with services.db.read() as session:
        await _contact(session, contact_id)
        runs = await run_store.running_runs(session, contact_id, automation_id=automation_id)
    if not runs:
        raise HTTPException(
            status_code=404, detail=f"contact {contact_id} has no running run in {automation_id!r}"
        )
    for run in runs:
        await _end(services, run.workflow_id, "ended_by:api")
    return RunsEnded(ended=[r.workflow_id for r in runs])


async def _end(services: Any, workflow_id: str, reason: str) -> None:
    try:
        await services.client.get_workflow_handle(workflow_id).signal(
            SIGNAL_END_RUN, EndRun(reason=reason)
        )
    except RPCError as err:
        # Finished meanwhile: nothing to end. Anything else (Temporal unreachable) must not
        # pass for done: it becomes a 503, and the request can be repeated.
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
