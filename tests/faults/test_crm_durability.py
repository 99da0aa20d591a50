"""CRM writes happen exactly once per step visit (docs/architecture.md#exactly-once-writes): when the activity
fails right after its transaction committed (each write step, deterministically), and when a
worker is killed (SIGKILL) in the middle of runs of CRM steps, then restarted."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from domain.enrollment import Enrolled, enroll
from store.models import Account, Deal, DealContact, DealNote, DealScore, Score, Task
from tests.helpers.crm import api_get, sales_pipeline
from tests.helpers.faults import commit_lost_once, count, worker_process
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually
from workflows.contracts import RunState

CONTACTS = 8
ROUNDS = 15  # each round: a task, a note, a deal score, deal math and a contact score


def _automation(pipeline: str, score: str) -> dict[str, Any]:
    steps: list[tuple[str, dict[str, Any]]] = [
        (
            "deal",
            {
                "type": "add_deal",
                "title": "Durable deal",
                "value": 100,
                "currency": "USD",
                "pipeline": pipeline,
                "stage": "Lead",
            },
        )
    ]
    for n in range(ROUNDS):
        steps += [
            (
                f"task{n}",
                {"type": "add_task", "title": f"T{n}", "due_in": {"days": 1}, "on": "deal"},
            ),
            (f"note{n}", {"type": "add_deal_note", "note": f"N{n}"}),
            (f"heat{n}", {"type": "adjust_deal_score", "score": score, "op": "add", "value": 1}),
            (
                f"math{n}",
                {
                    "type": "perform_math",
                    "target": "deal",
                    "field": "touches",
                    "op": "add",
                    "value": 1,
                },
            ),
            (f"lead{n}", {"type": "adjust_contact_score", "score": score, "op": "add", "value": 1}),
        ]
    linked = {
        step_id: {**step, "next": steps[i + 1][0] if i + 1 < len(steps) else None}
        for i, (step_id, step) in enumerate(steps)
    }
    return {"start": "deal", "steps": linked}


async def test_a_killed_worker_duplicates_no_crm_write(stack: Stack, tmp_path: Path) -> None:
    # Its own task queue: the session's in-process worker must not take these runs.
    settings = stack.settings.model_copy(update={"task_queue": f"crm-kill-{uuid.uuid4().hex[:8]}"})
    queue, temporal_address = settings.task_queue, stack.client.service_client.config.target_host
    log = tmp_path / "worker.log"
    score = stack.unique("durable")
    automation_id = await stack.automation(_automation(await sales_pipeline(stack), score))
    contact_ids = [(await stack.contact())["id"] for _ in range(CONTACTS)]
    their_deals = select(DealContact.deal_id).where(DealContact.contact_id.in_(contact_ids))
    notes_written = select(func.count()).where(DealNote.deal_id.in_(their_deals))

    async with worker_process(settings, temporal_address, log) as first:
        workflow_ids = []
        for contact_id in contact_ids:
            enrolled = await enroll(stack.db, stack.client, queue, automation_id, contact_id)
            assert isinstance(enrolled, Enrolled), enrolled
            workflow_ids.append(enrolled.workflow_id)

        async def under_way() -> None:
            assert await count(stack, notes_written) >= CONTACTS * ROUNDS // 4

        await eventually(under_way, within=60, interval=0.02)
        first.kill()  # SIGKILL: no clean shutdown, whatever it was in the middle of
        await first.wait()
    at_kill = await count(stack, notes_written)
    assert at_kill < CONTACTS * ROUNDS, "the runs finished before the worker was killed"

    async with worker_process(settings, temporal_address, log):
        for workflow_id in workflow_ids:
            handle = stack.client.get_workflow_handle(workflow_id, result_type=RunState)
            state = await asyncio.wait_for(handle.result(), timeout=120)
            assert state.status == "completed", (workflow_id, state)
            # Every step done once: none failed, none left out (the `state` query needs a
            # worker, so it is read while this one runs).
            run = await stack.run(workflow_id)
            assert [s["outcome"] for s in run["steps"]] == ["done"] * (1 + 5 * ROUNDS), run

    for contact_id in contact_ids:
        async with stack.db.read() as session:
            (deal,) = (
                await session.scalars(
                    select(Deal)
                    .join(DealContact, DealContact.deal_id == Deal.id)
                    .where(DealContact.contact_id == contact_id)
                )
            ).all()
            tasks = await session.scalar(select(func.count()).where(Task.deal_id == deal.id))
            notes = (
                await session.scalars(select(DealNote.body).where(DealNote.deal_id == deal.id))
            ).all()
            deal_score = await session.get(DealScore, (deal.id, score))
            contact_score = await session.get(Score, (contact_id, score))
        assert tasks == ROUNDS
        assert sorted(notes) == sorted(f"N{n}" for n in range(ROUNDS))
        assert deal_score is not None and deal_score.value == ROUNDS
        assert contact_score is not None and contact_score.value == ROUNDS
        assert deal.fields == {"touches": ROUNDS}


# Each CRM step that adds something, on its own after a deal to act on where it needs one.
ADDING_STEPS: dict[str, dict[str, Any]] = {
    "add_deal": {"type": "add_deal", "title": "Once", "value": 100, "currency": "USD"},
    "add_task": {"type": "add_task", "title": "Call once", "due_in": {"days": 1}, "on": "deal"},
    "add_deal_note": {"type": "add_deal_note", "note": "Noted once"},
    "adjust_deal_score": {"type": "adjust_deal_score", "score": "heat", "op": "add", "value": 5},
    "add_to_account": {"type": "add_to_account", "account": "%COMPANY%", "job_title": "CTO"},
}


@pytest.mark.parametrize("step_type", list(ADDING_STEPS))
async def test_a_crm_write_retried_after_its_commit_happens_once(
    any_stack: Stack, step_type: str
) -> None:
    """The database fails right after committing the step's write (as if the connection
    dropped before the answer): the activity fails, Temporal retries it, and the action log
    returns the recorded outcome instead of writing again (tests/test_engine.py does the
    same for a contact score)."""
    stack = any_stack
    pipeline = await sales_pipeline(stack)
    deal = {**ADDING_STEPS["add_deal"], "pipeline": pipeline, "stage": "Lead", "next": "step"}
    step = {**ADDING_STEPS[step_type], "next": None}
    if step_type == "add_deal":
        step.update(pipeline=pipeline, stage="Lead")
        document: dict[str, Any] = {"start": "step", "steps": {"step": step}}
    elif step_type == "add_to_account":
        document = {"start": "step", "steps": {"step": step}}
    else:
        document = {"start": "deal", "steps": {"deal": deal, "step": step}}
    automation_id = await stack.automation(document)
    company = stack.unique("Once Inc")
    contact = await stack.contact(fields={"company": company})
    writes = len(document["steps"])  # the step under test writes last
    with commit_lost_once(automation_id, write=writes) as seen:
        handle = await stack.enroll(contact["id"], automation_id)
        run = await finished(stack, handle.id)
    assert len(seen) == writes, seen  # the retry found its key: no second action-log row
    assert [(s["step"], s["outcome"], s["reason"]) for s in run["steps"]][-1] == (
        "step",
        "done",
        None,
    ), run

    record = await stack.record(contact["id"])
    if step_type == "add_to_account":
        assert record["deals"] == []
        assert (record["account"]["name"], record["account"]["job_title"]) == (company, "CTO")
        async with stack.db.read() as session:
            named = select(func.count()).where(Account.name == company)
            assert await session.scalar(named) == 1
        # The step's "done" (asserted above) is the recorded outcome: a second write would
        # have found the contact in the account and been skipped with "already_in_account".
        return
    (only_deal,) = record["deals"]
    if step_type == "add_deal":
        assert only_deal["title"] == "Once"
    elif step_type == "add_task":
        assert [(t["title"], t["deal"]) for t in record["tasks"]] == [
            ("Call once", only_deal["id"])
        ]
    elif step_type == "add_deal_note":
        notes = await api_get(stack, f"/deals/{only_deal['id']}/notes")
        assert [n["note"] for n in notes["items"]] == ["Noted once"]
    else:
        assert only_deal["scores"] == {"heat": 5.0}
