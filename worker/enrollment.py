"""Enrolling a contact: entry decided in the runs index, then the workflow started (DESIGN §1).

Shared by the API, the trigger dispatcher and the `start_automation` step.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from store import automations as automation_store
from store.db import Database
from store.models import OutboxEntry
from store.runs import EntryRefused, reserve_run
from workflows.contracts import WORKFLOW_TYPE, RunInput

AUTOMATION_KEY = SearchAttributeKey.for_keyword("CairnAutomation")
CONTACT_KEY = SearchAttributeKey.for_keyword("CairnContact")
STEP_KEY = SearchAttributeKey.for_keyword("CairnStep")
VERSION_KEY = SearchAttributeKey.for_int("CairnVersion")


@dataclass(frozen=True)
class Enrolled:
    workflow_id: str


async def enroll(
    db: Database,
    client: Client,
    task_queue: str,
    automation_id: str,
    contact_id: int,
    *,
    entry: str | None = None,
) -> Enrolled | EntryRefused:
    """Reserve the run and queue its start in one transaction, then start it right away.

    The queued `start_run` outbox row is the safety net: if this process dies between the
    commit and the start, a dispatcher starts the workflow, so no reserved run is left empty.
    """
    async with db.write() as session:
        document = await automation_store.get_document(session, automation_id)
        if document is None:
            return EntryRefused("unknown_automation")
        run = await reserve_run(
            session, automation_id, contact_id, entry or document.get("entry", "once")
        )
        if isinstance(run, EntryRefused):
            return run
        start = OutboxEntry(
            contact_id=contact_id,
            kind="start_run",
            data={
                "workflow_id": run.workflow_id,
                "automation": automation_id,
                "version": run.version,
            },
        )
        session.add(start)
    await start_run(client, task_queue, run.workflow_id, automation_id, contact_id, run.version)
    async with db.write() as session:
        await session.execute(delete(OutboxEntry).where(OutboxEntry.id == start.id))
    return Enrolled(run.workflow_id)


async def start_run(
    client: Client,
    task_queue: str,
    workflow_id: str,
    automation_id: str,
    contact_id: int,
    version: int,
) -> None:
    """Start the workflow of a reserved run; starting it twice is harmless."""
    try:
        await client.start_workflow(
            WORKFLOW_TYPE,
            RunInput(automation_id=automation_id, contact_id=contact_id, version=version),
            id=workflow_id,
            task_queue=task_queue,
            # Each entry has its own workflow id, so an id is never legitimately reused.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(AUTOMATION_KEY, automation_id),
                    SearchAttributePair(CONTACT_KEY, str(contact_id)),
                    SearchAttributePair(VERSION_KEY, version),
                ]
            ),
            static_summary=f"Contact {contact_id} in automation {automation_id} (v{version})",
        )
    except WorkflowAlreadyStartedError:
        pass
