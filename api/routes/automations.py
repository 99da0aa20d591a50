"""Automations: create, list, read, new version, deactivate, and the document's JSON Schema; a
draft's problems and what it would do to running contacts, before it is saved.

A new version (a PUT, or a DELETE: the current document with status inactive) is committed with
an `automation_changed` outbox row, which the dispatcher delivers to the running runs
(docs/architecture.md#the-outbox): the request does no per-run work, and a crash or a Temporal outage after the
commit only delays the delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError

from api.deps import ServicesDep
from api.errors import FieldError, answers
from api.impact import step_impacts
from api.schemas.automations import (
    AutomationPublic,
    AutomationRecord,
    AutomationSaved,
    AutomationSummary,
    BulkEnrollment,
    DocumentProblem,
    DraftChecked,
    RunCounts,
    StepImpact,
    VersionImpact,
)
from domain.date_schedules import pause_schedule, sync_schedule
from domain.enrollment import enroll_many
from domain.outbox import automation_changed
from store import automations as automation_store
from store import crm as crm_store
from store import reports as report_store
from store.conditions import matching_contacts
from store.custom_fields import tag_warnings
from store.models import Automation as AutomationRow
from store.models import utcnow
from store.reports import Overview
from workflows.conditions import BoundedCondition
from workflows.document import automation_json_schema, validate_automation

router = APIRouter(prefix="/automations", tags=["automations"])
CONDITION: TypeAdapter[Any] = TypeAdapter(BoundedCondition)
SCHEDULE_SYNC_SECONDS = 2.0


class DocumentRejected(BaseModel):
    """A 422 for a document: every problem found; or one message for a body refused whole."""

    detail: list[DocumentProblem | FieldError] | str


DOCUMENT_REJECTED: dict[int | str, dict[str, Any]] = {
    422: {"model": DocumentRejected, "description": "invalid document"}
}


async def _checked(
    session: AsyncSession, document: Any, known: set[str]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The document as it would be stored (by alias, no nulls; None when it has an error) and
    every problem a save reports: its own, then the pipelines, stages, users and `%TAG%`s it
    names that do not exist (warnings, read only when it has no error)."""
    automation, problems = validate_automation(document, known_automations=known)
    listed = [p.model_dump() for p in problems]
    if automation is None:
        return None, listed
    stored = automation.model_dump(by_alias=True, exclude_none=True, mode="json")
    listed += await crm_store.reference_warnings(session, stored)
    listed += await tag_warnings(session, stored)
    return stored, listed


async def _validated(
    session: AsyncSession, document: Any, known: set[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The document as stored and its warnings; 422 listing every problem if it has an error."""
    stored, problems = await _checked(session, document, known)
    if stored is None:
        raise HTTPException(status_code=422, detail=problems)
    return stored, problems


@router.get("/schema")
async def document_schema() -> dict[str, Any]:
    """JSON Schema of the automation document (docs/automations.md)."""
    return automation_json_schema()


@router.post("", status_code=201, responses={**answers(409), **DOCUMENT_REJECTED})
async def create_automation(services: ServicesDep, document: Any = Body(...)) -> AutomationSaved:
    async with services.db.write() as session:
        known = await automation_store.automation_ids(session)
        wanted = document.get("id") if isinstance(document, dict) else None
        if not isinstance(wanted, str):
            wanted = None  # a non-string id is reported by validation, never looked up
        if wanted is not None and wanted in known:
            raise HTTPException(status_code=409, detail=f"automation {wanted!r} already exists")
        # Self-references (start_automation of itself) are legal: count this id as known.
        slug = wanted or automation_store.slugify(
            str(document.get("name", "")) if isinstance(document, dict) else ""
        )
        automation_id = wanted or await automation_store.free_id(session, slug)
        if isinstance(document, dict) and "id" not in document:
            document = {**document, "id": automation_id}  # stored with it (email leaves)
        stored, warnings = await _validated(session, document, known | {automation_id})
        row = await automation_store.create_automation(session, automation_id, stored)
    warnings += await _sync_schedule(services, row.id, stored, row.status)
    return _saved(row, warnings)


@router.post("/validate", responses=answers(422))
async def validate_draft(services: ServicesDep, document: Any = Body(...)) -> DraftChecked:
    """The problems a POST (or a PUT) of this document would answer, without saving it
    (docs/api.md#checking-a-draft)."""
    async with services.db.read() as session:
        known = await automation_store.automation_ids(session)
        if isinstance(document, dict) and not isinstance(document.get("id"), str):
            # Named as a POST would name it, so a step may start the automation itself.
            document = {**document, "id": automation_store.slugify(str(document.get("name", "")))}
        own = {document["id"]} if isinstance(document, dict) else set()
        stored, problems = await _checked(session, document, known | own)
    return DraftChecked(
        valid=stored is not None, problems=[DocumentProblem.model_validate(p) for p in problems]
    )


@router.get("")
async def list_automations(services: ServicesDep) -> list[AutomationSummary]:
    """Every automation, oldest first, with its current triggers, run counts and goal rate."""
    async with services.db.read() as session:
        rows = await automation_store.list_automations(session)
        overviews = await report_store.overviews(session)
    return [_summary(row, overviews.get(row.id, Overview())) for row in rows]


def _summary(row: AutomationRow, overview: Overview) -> AutomationSummary:
    return AutomationSummary(
        **AutomationRecord.of(row).model_dump(),
        triggers=overview.triggers,
        counts=RunCounts(
            running=overview.running, completed=overview.completed, waiting=overview.waiting
        ),
        goal_rate=overview.reached_goal / overview.runs if overview.runs else None,
    )


def _saved(row: AutomationRow, warnings: list[dict[str, Any]]) -> AutomationSaved:
    return AutomationSaved(
        **AutomationRecord.of(row).model_dump(),
        warnings=[DocumentProblem.model_validate(w) for w in warnings],
    )


async def _row(session: Any, automation_id: str) -> AutomationRow:
    row = await session.get(AutomationRow, automation_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"automation {automation_id!r} not found")
    return row  # type: ignore[no-any-return]


@router.get("/{automation_id}", responses=answers(404))
async def read_automation(automation_id: str, services: ServicesDep) -> AutomationPublic:
    async with services.db.read() as session:
        row = await _row(session, automation_id)
        document = await automation_store.get_document(session, automation_id)
        return AutomationPublic(**AutomationRecord.of(row).model_dump(), document=document)


@router.put("/{automation_id}", responses={**answers(404), **DOCUMENT_REJECTED})
async def new_version(
    automation_id: str, services: ServicesDep, document: Any = Body(...)
) -> AutomationSaved:
    """A new version; running contacts move to it at their next step boundary (docs/api.md#live-edits)."""
    async with services.db.write() as session:
        row = await _row(session, automation_id)
        known = await automation_store.automation_ids(session)
        if isinstance(document, dict):
            document = {**document, "id": automation_id}
        stored, warnings = await _validated(session, document, known)
        version = await automation_store.add_version(session, row, stored)
        session.add(automation_changed(automation_id, version))
    services.dispatcher.kick()
    warnings += await _sync_schedule(services, automation_id, stored, row.status)
    return _saved(row, warnings)


async def _sync_schedule(
    services: Any, automation_id: str, document: dict[str, Any], status: str
) -> list[dict[str, Any]]:
    """Bring the `date_field` schedule in line with the version just saved; the version
    stands even if Temporal is unreachable, and the answer says so (a warning, not a 500).
    The request does not wait out Temporal's retries: the worker repairs every schedule
    from the database when it starts and every 10 minutes."""
    try:
        async with asyncio.timeout(SCHEDULE_SYNC_SECONDS):
            await sync_schedule(services.client, services.settings, automation_id, document, status)
    except (RPCError, TimeoutError) as err:
        why = err.message if isinstance(err, RPCError) else "Temporal did not answer in time"
        message = (
            f"the date trigger schedule could not be updated ({why}); "
            "the worker will bring it in line once Temporal answers"
        )
        return [{"step": None, "path": "triggers", "message": message, "severity": "warning"}]
    return []


@router.post("/{automation_id}/impact", responses=answers(404, 422))
async def version_impact(
    automation_id: str, services: ServicesDep, document: Any = Body(...)
) -> VersionImpact:
    """What saving this draft as the next version would do to the contacts running now, by
    the live-edit rules (docs/api.md#the-impact-of-a-new-version). Saves nothing."""
    async with services.db.read() as session:
        row = await _row(session, automation_id)
        current = await automation_store.get_document(session, automation_id, row.version)
        known = await automation_store.automation_ids(session)
        if isinstance(document, dict):
            document = {**document, "id": automation_id}
        stored, problems = await _checked(session, document, known)
        running, at_steps = await report_store.running_by_step(session, automation_id)
    impacts = step_impacts(current, stored if stored is not None else document, at_steps)
    return VersionImpact(
        version_from=row.version,
        valid=stored is not None,
        running=running,
        steps=[StepImpact(**asdict(impact)) for impact in impacts],
        affected=sum(i.waiting for i in impacts if i.change != "unchanged"),
        ending=sum(i.waiting for i in impacts if i.ends),
        problems=[DocumentProblem.model_validate(p) for p in problems],
    )


class BulkEnrollIn(BaseModel):
    """Either explicit contact ids or a segment condition (docs/automations.md#conditions)."""

    model_config = ConfigDict(extra="forbid")

    contacts: list[Annotated[int, Field(ge=1, le=2**62)]] | None = Field(
        default=None, max_length=100_000
    )
    condition: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> BulkEnrollIn:
        if (self.contacts is None) == (self.condition is None):
            raise ValueError("give exactly one of contacts (a list of ids) or condition")
        return self


@router.post("/{automation_id}/enroll", status_code=202, responses=answers(404))
async def enroll_contacts(
    automation_id: str, body: BulkEnrollIn, services: ServicesDep
) -> BulkEnrollment:
    """Enroll many contacts at once; each obeys the automation's entry rule."""
    async with services.db.read() as session:
        await _row(session, automation_id)
        if body.condition is not None:
            condition = _condition(body.condition)
            contact_ids = await matching_contacts(session, condition, utcnow())
        else:
            contact_ids = list(dict.fromkeys(body.contacts or []))
    result = await enroll_many(
        services.db, services.client, services.settings.task_queue, automation_id, contact_ids
    )
    return BulkEnrollment(
        enrolled=len(result.enrolled), refused=result.refused, workflow_ids=result.enrolled
    )


def _condition(raw: dict[str, Any]) -> dict[str, Any]:
    """A condition checked by the document model, as the evaluator reads it; 422 if invalid."""
    try:
        return CONDITION.dump_python(
            CONDITION.validate_python(raw), by_alias=True, exclude_none=True, mode="json"
        )
    except ValidationError as err:
        raise HTTPException(
            status_code=422,
            detail=jsonable_encoder(err.errors(include_url=False, include_context=False)),
        ) from None


@router.delete("/{automation_id}", responses=answers(404))
async def deactivate(automation_id: str, services: ServicesDep) -> AutomationRecord:
    """Admits no one from now on; the automation, its versions and its runs are kept.

    Deactivating is a new version: the current document with `"status": "inactive"`, so what
    GET shows (status and document) agrees, the history says when it happened, and running
    contacts learn it the way they learn any edit. Contacts inside are held at their next
    step until a version with status active arrives (a PUT). Already inactive: no new version.
    """
    async with services.db.write() as session:
        row = await _row(session, automation_id)
        document = await automation_store.get_document(session, automation_id) or {}
        if row.status != "inactive" or document.get("status", "active") != "inactive":
            inactive = {**document, "status": "inactive"}
            version = await automation_store.add_version(session, row, inactive)
            session.add(automation_changed(automation_id, version))
        summary = AutomationRecord.of(row)
    services.dispatcher.kick()
    # Paused, not deleted: reactivating (a PUT with status active) resumes it. If Temporal
    # does not answer, the worker's schedule repair pauses it later.
    with contextlib.suppress(RPCError, TimeoutError):
        async with asyncio.timeout(SCHEDULE_SYNC_SECONDS):
            await pause_schedule(services.client, automation_id)
    return summary
