"""A worker killed (SIGKILL) in the middle of runs of CRM steps, then restarted: every deal,
task, note and score change happens exactly once per step visit (SPEC §3, DESIGN §5)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from store.models import Deal, DealContact, DealNote, DealScore, Score, Task
from tests.conftest import Stack, eventually
from tests.faults import count, worker_process
from tests.test_crm_api import sales_pipeline
from worker.enrollment import Enrolled, enroll
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
