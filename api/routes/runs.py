"""Runs: where a contact is in an automation, from the runs index and the workflow's `state`."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from api.deps import ServicesDep
from api.errors import answers
from api.schemas.runs import RunPublic, RunStep
from api.temporal_ui import workflow_url
from store import runs as run_store
from workflows.contracts import QUERY_STATE, RunState

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("/{workflow_id}", responses=answers(404))
async def read_run(workflow_id: str, services: ServicesDep) -> RunPublic:
    async with services.db.read() as session:
        run = await run_store.get_run(session, workflow_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"run {workflow_id!r} not found")
    state: RunState | None = None
    try:
        state = await services.client.get_workflow_handle(workflow_id).query(
            QUERY_STATE, result_type=RunState, rpc_timeout=timedelta(seconds=5)
        )
    except (RPCError, WorkflowQueryFailedError):
        pass  # not started yet, or beyond retention: Cairn's own tables still answer
    if state is None:
        async with services.db.read() as session:
            trail = await run_store.run_trail(session, workflow_id)
        records, goals, split_paths = trail.steps, trail.goals, trail.split_paths
    else:
        records, goals, split_paths = state.steps, state.goals, state.split_paths
    steps = [RunStep.model_validate(record.model_dump()) for record in records]
    return RunPublic(
        workflow_id=workflow_id,
        automation=run.automation_id,
        contact=run.contact_id,
        version=state.version if state else run.version,
        status=run.status,  # type: ignore[arg-type]  # a RunStatus, stored as text
        reason=run.reason,
        current_step=run.current_step if run.status != "running" or not state else state.position,
        started_at=run.started_at,
        ended_at=run.ended_at,
        steps=steps,
        goals=goals,
        split_paths=split_paths,
        temporal_ui_url=workflow_url(services.settings, workflow_id),
    )
