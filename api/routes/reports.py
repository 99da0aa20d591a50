"""What an automation did: its versions, its contacts, the report and the live diagram."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import ServicesDep
from api.diagram import Flow, to_mermaid, to_svg
from api.errors import answers
from api.schemas.reports import (
    AutomationContact,
    AutomationContacts,
    VersionPublic,
    VersionSummary,
)
from api.temporal_ui import workflow_url
from store import automations as automation_store
from store import reports as report_store
from store.models import Automation as AutomationRow
from workflows.contracts import RunStatus

router = APIRouter(prefix="/automations", tags=["reports"])

MAX_PAGE = 1000


async def _automation(session: AsyncSession, automation_id: str) -> AutomationRow:
    row = await session.get(AutomationRow, automation_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"automation {automation_id!r} not found")
    return row


@router.get("/{automation_id}/versions", responses=answers(404))
async def list_versions(automation_id: str, services: ServicesDep) -> list[VersionSummary]:
    """Every version ever saved, oldest first (versions are immutable)."""
    async with services.db.read() as session:
        await _automation(session, automation_id)
        versions = await report_store.list_versions(session, automation_id)
    return [VersionSummary(version=version, created_at=at) for version, at in versions]


@router.get("/{automation_id}/versions/{version}", responses=answers(404))
async def read_version(
    automation_id: str, version: Annotated[int, Path(ge=1, le=2**31 - 1)], services: ServicesDep
) -> VersionPublic:
    """The document exactly as stored for that version."""
    async with services.db.read() as session:
        await _automation(session, automation_id)
        row = await report_store.read_version(session, automation_id, version)
        if row is None:
            raise HTTPException(
                status_code=404, detail=f"automation {automation_id!r} has no version {version}"
            )
        return VersionPublic.of(row)


@router.get("/{automation_id}/contacts", responses=answers(404))
async def automation_contacts(
    automation_id: str,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    status: RunStatus | None = None,
    step: Annotated[
        str | None,
        Query(
            max_length=64,
            description="only the runs at this step: with status=running, the contacts "
            "waiting (or held) there now",
        ),
    ] = None,
) -> AutomationContacts:
    """The automation's runs, newest first: contact, status, current step, entered, last
    activity, and the run in the Temporal UI."""
    async with services.db.read() as session:
        await _automation(session, automation_id)
        total, page = await report_store.automation_contacts(
            session, automation_id, limit=limit, offset=offset, status=status, step=step
        )
    contacts = [
        AutomationContact.of(run, contact, workflow_url(services.settings, run.workflow_id))
        for run, contact in page
    ]
    return AutomationContacts(total=total, limit=limit, offset=offset, contacts=contacts)


async def _report(services: Any, automation_id: str) -> tuple[dict[str, Any], report_store.Report]:
    async with services.db.read() as session:
        row = await _automation(session, automation_id)
        document = await automation_store.get_document(session, automation_id, row.version)
        assert document is not None  # every automation has its current version
        report = await report_store.build_report(session, automation_id, row.version, document)
    return document, report


@router.get("/{automation_id}/report", responses=answers(404))
async def automation_report(automation_id: str, services: ServicesDep) -> report_store.Report:
    """Per step: entered, completed, skipped by reason, failed, waiting now; goals; splits."""
    _, report = await _report(services, automation_id)
    return report


RENDERERS = {
    "mermaid": (to_mermaid, "text/plain; charset=utf-8"),
    "svg": (to_svg, "image/svg+xml"),
}


@router.get(
    "/{automation_id}/diagram",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}, "image/svg+xml": {}}, "description": "the diagram"},
        **answers(404),
    },
)
async def automation_diagram(
    automation_id: str, services: ServicesDep, format: Literal["mermaid", "svg"] = "mermaid"
) -> Response:
    """The current version's flow with live counts: Mermaid text, or an SVG drawn here."""
    document, report = await _report(services, automation_id)
    render, media_type = RENDERERS[format]
    return Response(render(Flow.of(document, report)), media_type=media_type)
