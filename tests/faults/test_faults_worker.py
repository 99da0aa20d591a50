"""200 contacts mid-flow through every kind of internal write and an email; the worker process is
SIGKILLed at a random point and restarted (docs/architecture.md#exactly-once-writes).

Afterwards every run has finished, every internal write happened exactly once, every contact got
its email, and duplicate emails (possible only for a send the SMTP server accepted just before
the kill, whose activity completion Temporal never heard of) are counted, reported and bounded by
the sends in flight at the kill. The seed of the kill point is printed; CAIRN_FAULT_SEED replays it.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.testing import WorkflowEnvironment

from store.models import (
    ActionLog,
    Contact,
    ContactTag,
    Deal,
    DealContact,
    DealNote,
    DealScore,
    Note,
    Run,
    Score,
    Task,
)
from tests.helpers.crm import sales_pipeline
from tests.helpers.faults import count, own_stack, worker_process
from tests.helpers.stack import DATABASES, Mailbox, Stack, eventually
from workflows.contracts import RunState

CONTACTS = 200
SCORE = "heat"
# (step id, step): every internal write type once, the email between them.
FLOW: list[tuple[str, dict[str, Any]]] = [
    ("tag", {"type": "add_tag", "tag": "in-flow"}),
    ("note", {"type": "add_contact_note", "note": "met at the fair"}),
    ("score", {"type": "adjust_contact_score", "score": SCORE, "op": "add", "value": 1}),
    (
        "visits",
        {"type": "perform_math", "target": "contact", "field": "visits", "op": "add", "value": 1},
    ),
    (
        "deal",
        {
            "type": "add_deal",
            "title": "Fair lead",
            "value": 100,
            "currency": "USD",
            "pipeline": "PIPELINE",
            "stage": "Lead",
        },
    ),
    ("task", {"type": "add_task", "title": "Call back", "due_in": {"days": 1}, "on": "deal"}),
    ("deal_note", {"type": "add_deal_note", "note": "asked for a quote"}),
    ("deal_score", {"type": "adjust_deal_score", "score": SCORE, "op": "add", "value": 1}),
    (
        "touches",
        {"type": "perform_math", "target": "deal", "field": "touches", "op": "add", "value": 1},
    ),
    ("email", {"type": "send_email", "subject": "Hello %FIRSTNAME%", "html": "<p>Hi!</p>"}),
    ("untag", {"type": "remove_tag", "tag": "in-flow"}),
    ("done_tag", {"type": "add_tag", "tag": "flow-done"}),
]
RECOVERY = 200  # seconds the restarted worker has to finish every run (a loaded CI included)
INTERNAL_WRITES = sum(1 for _, step in FLOW if step["type"] != "send_email")


def _automation(pipeline: str) -> dict[str, Any]:
    steps = {
        step_id: {
            **{k: (pipeline if v == "PIPELINE" else v) for k, v in step.items()},
            "next": FLOW[i + 1][0] if i + 1 < len(FLOW) else None,
        }
        for i, (step_id, step) in enumerate(FLOW)
    }
    return {"start": FLOW[0][0], "steps": steps}


async def _emails_in_flight(stack: Stack, workflow_ids: list[str]) -> list[str]:
    """Runs whose send may have reached the SMTP server without Temporal hearing of it: a
    pending `send_email` activity that was started (attempt > 1: started before, timed out)."""
    limit = asyncio.Semaphore(16)

    async def in_flight(workflow_id: str) -> bool:
        async with limit:
            described = await stack.client.get_workflow_handle(workflow_id).describe()
        return any(
            a.activity_type.name == "send_email"
            and (a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED or a.attempt > 1)
            for a in described.raw_description.pending_activities
        )

    flags = await asyncio.gather(*(in_flight(w) for w in workflow_ids))
    return [w for w, flag in zip(workflow_ids, flags, strict=True) if flag]


@pytest.mark.parametrize("flavour", DATABASES)
async def test_a_worker_killed_mid_flow_loses_and_duplicates_no_write(
    env: WorkflowEnvironment,
    mailbox: Mailbox,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    flavour: str,
) -> None:
    seed = int(os.environ.get("CAIRN_FAULT_SEED") or random.SystemRandom().randrange(10**9))
    rng = random.Random(seed)
    kill_at = rng.uniform(0.2, 0.8)  # fraction of all internal writes done
    print(f"\nworker SIGKILL test: seed {seed}, kill at {kill_at:.0%} of the writes")
    record_property("seed", seed)

    async with own_stack(env.client, mailbox, tmp_path, flavour) as stack:
        automation_id = await stack.automation(_automation(await sales_pipeline(stack)))
        contacts = [await stack.contact(first_name=f"C{n}") for n in range(CONTACTS)]
        log = tmp_path / "worker.log"
        total_writes = CONTACTS * INTERNAL_WRITES
        writes_done = select(func.count()).select_from(ActionLog)
        finished_runs = select(func.count()).select_from(Run).where(Run.status != "running")

        async with worker_process(
            stack.settings, env.client.service_client.config.target_host, log
        ) as first:
            response = await stack.http.post(
                f"/api/v1/automations/{automation_id}/enroll",
                json={"contacts": [c["id"] for c in contacts]},
            )
            assert response.status_code == 202, response.text
            workflow_ids = response.json()["workflow_ids"]
            assert len(workflow_ids) == CONTACTS

            async def far_enough() -> None:
                assert await count(stack, writes_done) >= kill_at * total_writes

            await eventually(far_enough, within=120, interval=0.1)
            first.kill()  # SIGKILL: no clean shutdown, whatever it was in the middle of
            await first.wait()
        at_kill = await count(stack, writes_done)
        # A send the killed worker had started is retried once its start-to-close timeout
        # (60 s) passes: the recovery below may take that minute.
        in_flight = len(await _emails_in_flight(stack, workflow_ids))
        print(f"killed with {at_kill}/{total_writes} writes done, {in_flight} emails in flight")
        assert at_kill < total_writes, "the runs finished before the worker was killed"

        async with worker_process(
            stack.settings, env.client.service_client.config.target_host, log
        ):

            async def all_finished() -> None:
                finished = await count(stack, finished_runs)
                assert finished == CONTACTS, f"{finished}/{CONTACTS} runs finished"

            # One bound for the whole recovery, which may include the killed sends' timeout.
            await eventually(all_finished, within=RECOVERY, interval=0.5)
            for workflow_id in workflow_ids:
                handle = stack.client.get_workflow_handle(workflow_id, result_type=RunState)
                state = await asyncio.wait_for(handle.result(), timeout=30)
                assert state.status == "completed", (workflow_id, state)
                # Every step once: none failed or skipped, none left out.
                assert [(s.step, s.outcome) for s in state.steps] == [
                    (step_id, "done") for step_id, _ in FLOW
                ], (workflow_id, state.steps)

        await _assert_each_write_once(stack, [c["id"] for c in contacts])
        async with stack.db.read() as session:
            statuses = Counter((await session.scalars(select(Run.status))).all())
        assert statuses == {"completed": CONTACTS}

        sent = Counter(str(m["Message-ID"]) for c in contacts for m in mailbox.to(c["email"]))
        missing = [c["email"] for c in contacts if not mailbox.to(c["email"])]
        duplicates = sum(n - 1 for n in sent.values())
        summary = (
            f"emails: {len(sent)} distinct to {CONTACTS} contacts, {duplicates} duplicates "
            f"(bound: {in_flight} in flight at the kill), {len(missing)} missing"
        )
        print(summary)
        record_property("emails", summary)
        assert not missing, missing
        assert len(sent) == CONTACTS  # one Message-ID per step visit
        assert duplicates <= in_flight, summary


async def _assert_each_write_once(stack: Stack, contact_ids: list[int]) -> None:
    async with stack.db.read() as session:
        tags = Counter(
            (
                await session.execute(
                    select(ContactTag.contact_id, ContactTag.tag).where(
                        ContactTag.contact_id.in_(contact_ids)
                    )
                )
            ).all()
        )
        notes = Counter((await session.scalars(select(Note.contact_id))).all())
        scores = dict(
            (
                await session.execute(
                    select(Score.contact_id, Score.value).where(Score.name == SCORE)
                )
            ).all()
        )
        visits = dict((await session.execute(select(Contact.id, Contact.fields))).all())
        deals = Counter((await session.scalars(select(DealContact.contact_id))).all())
        deal_of = dict((await session.execute(select(Deal.id, Deal.fields))).all())
        tasks = Counter((await session.scalars(select(Task.deal_id))).all())
        deal_notes = Counter((await session.scalars(select(DealNote.deal_id))).all())
        deal_scores = dict(
            (
                await session.execute(
                    select(DealScore.deal_id, DealScore.value).where(DealScore.name == SCORE)
                )
            ).all()
        )
    expected_tags = Counter({(c, "flow-done"): 1 for c in contact_ids})
    assert tags == expected_tags
    assert notes == Counter({c: 1 for c in contact_ids})
    assert scores == {c: 1 for c in contact_ids}
    assert {c: visits[c] for c in contact_ids} == {c: {"visits": 1} for c in contact_ids}
    assert deals == Counter({c: 1 for c in contact_ids})
    assert set(deal_of) == set(tasks) == set(deal_notes) == set(deal_scores)
    assert len(deal_of) == len(contact_ids)
    assert all(n == 1 for n in tasks.values()), tasks
    assert all(n == 1 for n in deal_notes.values()), deal_notes
    assert all(v == 1 for v in deal_scores.values()), deal_scores
    assert all(fields == {"touches": 1} for fields in deal_of.values()), deal_of
