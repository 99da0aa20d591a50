"""Simulations: what an automation would do to one contact, by the real engine on virtual time,
with no side effect (docs/simulation.md).

The request becomes a `Simulate` workflow on the worker's task queue; a worker process runs it
in a sandbox and answers. This route only checks the request and waits for that answer.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Body, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.deps import Services, ServicesDep
from api.errors import answers
from api.routes.automations import DOCUMENT_REJECTED, _validated
from store import automations as automation_store
from store.models import Automation as AutomationRow
from store.models import Contact, utcnow
from workflows.simulation import (
    RUN_ID_PREFIX,
    SIMULATE_WORKFLOW,
    SIMULATION_KEY,
    TIMEOUT,
    SimulationInput,
    SimulationOptions,
    SimulationResult,
)

router = APIRouter(tags=["simulation"])
# A start time a little in the past (a clock a few seconds apart, a request in flight) is now.
START_SLACK = timedelta(minutes=1)
SIMULATION_ANSWERS: dict[int | str, dict[str, Any]] = {
    **answers(404),
    501: {"description": "the Temporal server does not skip time"},
    **DOCUMENT_REJECTED,
}


def _options(body: Any, *, draft: bool) -> SimulationOptions:
    """The request's options, or a 422 naming each problem."""
    if not isinstance(body, dict):
        raise HTTPException(status_code=422, detail="the request body is a JSON object")
    given = {k: v for k, v in body.items() if k not in (("document",) if draft else ("version",))}
    try:
        options = SimulationOptions.model_validate(given)
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_url=False, include_context=False)) from None
    if options.start_at is not None and options.start_at < utcnow() - START_SLACK:
        raise HTTPException(
            status_code=422,
            detail="start_at is in the past: a simulation's virtual clock starts now or later",
        )
    return options


@router.post("/automations/{automation_id}/simulate", responses=SIMULATION_ANSWERS)
async def simulate_automation(
    automation_id: str, services: ServicesDep, body: Any = Body(...)
) -> SimulationResult:
    """Simulate a saved version (`version`, default the current one) for a made-up `contact`
    or a copy of the real contact `contact_id`, with a script of `events`."""
    options = _options(body, draft=False)
    version = body.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise HTTPException(status_code=422, detail="version is a whole number")
    async with services.db.read() as session:
        row = await session.get(AutomationRow, automation_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"automation {automation_id!r} not found")
        version = version or row.version
        document = await automation_store.get_document(session, automation_id, version)
    if document is None:
        raise HTTPException(
            status_code=404, detail=f"automation {automation_id!r} has no version {version}"
        )
    return await _simulate(services, automation_id, version, document, options)


@router.post("/simulate", responses=SIMULATION_ANSWERS)
async def simulate_draft(services: ServicesDep, body: Any = Body(...)) -> SimulationResult:
    """Simulate an unsaved `document` (validated as a save would: 422 with its problems, and
    nothing run), with the same options as a saved automation's simulation."""
    options = _options(body, draft=True)
    document = body.get("document")
    if not isinstance(document, dict):
        raise HTTPException(status_code=422, detail="document: the automation to simulate")
    automation_id = str(document.get("id") or "draft")
    async with services.db.read() as session:
        known = await automation_store.automation_ids(session)
        stored, _ = await _validated(
            session, {**document, "id": automation_id}, known | {automation_id}
        )
    return await _simulate(services, automation_id, 1, stored, options)


async def _simulate(
    services: Services,
    automation_id: str,
    version: int,
    document: dict[str, Any],
    options: SimulationOptions,
) -> SimulationResult:
    settings = services.settings
    if options.contact_id is not None:
        async with services.db.read() as session:
            if await session.get(Contact, options.contact_id) is None:
                raise HTTPException(
                    status_code=404, detail=f"contact {options.contact_id} not found"
                )
    key = uuid.uuid4().hex
    run_id = f"{RUN_ID_PREFIX}{automation_id}:{key}"
    request = SimulationInput(
        document=document,
        automation_id=automation_id,
        version=version,
        options=options,
        run_id=run_id,
    )
    try:
        result: SimulationResult = await services.client.execute_workflow(
            SIMULATE_WORKFLOW,
            request,
            id=f"cairn-simulate:{key}",
            task_queue=settings.task_queue,
            result_type=SimulationResult,
            execution_timeout=TIMEOUT + timedelta(minutes=1),
            search_attributes=TypedSearchAttributes([SearchAttributePair(SIMULATION_KEY, True)]),
            static_summary=f"Simulate {automation_id} v{version}",
        )
    except WorkflowFailureError as err:
        raise _refusal(err) from err
    except RPCError as err:
        raise HTTPException(status_code=503, detail=f"Temporal: {err.message}") from err
    result.temporal_ui_url = (
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{quote(run_id, safe='')}"
    )
    return result


def _refusal(err: WorkflowFailureError) -> HTTPException:
    cause: BaseException | None = err.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__ or getattr(cause, "cause", None)
    kind = cause.type if isinstance(cause, ApplicationError) else None
    message = cause.message if isinstance(cause, ApplicationError) else str(err)
    if kind == "TimeSkippingUnavailable":
        return HTTPException(status_code=501, detail=message)
    if kind == "NotFound":
        return HTTPException(status_code=404, detail=message)
    return HTTPException(status_code=500, detail=f"the simulation failed: {message}")
