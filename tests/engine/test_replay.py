"""Determinism guard: saved histories must replay against today's AutomationRun (CONTRIBUTING.md#replay-histories).

A change that alters the commands an existing run would issue breaks this test: such a change
needs `workflow.patched` (or a new workflow version), never a silent edit. To add a history,
run with CAIRN_RECORD_HISTORY=1 and commit the new file it writes; never re-record a saved one
to make it pass (it stands for the runs in flight when the change is deployed).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.helpers.crm import api_patch, api_post, sales_pipeline
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually
from worker.main import workflow_runner
from workflows.automation_run import AutomationRun

HISTORIES = Path(__file__).parent / "histories"

TOUR = {
    "start": "tag",
    "steps": {
        "tag": {"type": "add_tag", "tag": "lead", "next": "mail"},
        "mail": {
            "type": "send_email",
            "subject": "Hi %FIRSTNAME%",
            "html": "<p>Hello</p>",
            "next": "pause",
        },
        "pause": {"type": "wait", "for": {"days": 2}, "next": "check"},
        "check": {"type": "if_else", "condition": {"tag": "lead"}, "yes": "split", "no": None},
        "split": {"type": "split", "mode": "even", "paths": [{"next": "score"}, {"next": "score"}]},
        "score": {
            "type": "adjust_contact_score",
            "score": "s",
            "op": "add",
            "value": 1,
            "next": "hold",
        },
        "hold": {
            "type": "wait",
            "condition": {"tag": "never"},
            "timeout": {"hours": 6},
            "next": "goal",
        },
        "goal": {
            "type": "goal",
            "condition": {"score": "s", "op": "gte", "value": 1},
            "next": "stop",
        },
        "stop": {"type": "end"},
    },
}


def _replayer() -> Replayer:
    return Replayer(
        workflows=[AutomationRun],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )


async def test_saved_histories_replay() -> None:
    saved = sorted(HISTORIES.glob("*.json"))
    assert saved, "no saved histories"
    for path in saved:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        await _replayer().replay_workflow(history)


async def test_a_fresh_tour_history_replays(stack: Stack) -> None:
    automation_id = await stack.automation(TOUR)
    handle = await stack.enroll((await stack.contact(first_name="Ada"))["id"], automation_id)
    state = await handle.result()
    assert state.status == "completed" and state.goals == ["goal"]
    history = await handle.fetch_history()
    await _replayer().replay_workflow(history)
    if os.environ.get("CAIRN_RECORD_HISTORY"):
        (HISTORIES / "tour.json").write_text(history.to_json())


async def test_a_fresh_deal_run_history_replays(stack: Stack) -> None:
    """A run a deal's stage change started: it carries the deal (RunInput.deal_id) to its deal
    steps and conditions (docs/crm.md#deal-triggers)."""
    pipeline = await sales_pipeline(stack)
    automation_id = await stack.automation(
        {
            "triggers": [{"type": "deal_stage_changed", "pipeline": pipeline, "stage": "Won"}],
            "start": "note",
            "steps": {
                "note": {"type": "add_deal_note", "note": "Won: %DEAL_TITLE%", "next": "pause"},
                "pause": {"type": "wait", "for": {"days": 1}, "next": "check"},
                "check": {
                    "type": "if_else",
                    "condition": {"deal": {"field": "status", "op": "is", "value": "open"}},
                    "yes": "task",
                    "no": None,
                },
                "task": {
                    "type": "add_task",
                    "title": "Onboard",
                    "due_in": {"days": 2},
                    "on": "deal",
                    "next": "won",
                },
                "won": {"type": "update_deal_status", "value": "won"},
            },
        }
    )
    contact = (await stack.contact())["id"]
    deal = await api_post(
        stack,
        "/deals",
        {"title": "Big", "currency": "USD", "pipeline": pipeline, "contacts": [contact]},
    )
    await api_patch(stack, f"/deals/{deal['id']}", {"stage": "Won"})

    async def enrolled() -> str:
        record = await stack.record(contact)
        runs = [a["workflow_id"] for a in record["automations"] if a["automation"] == automation_id]
        assert len(runs) == 1, record["automations"]
        return str(runs[0])

    workflow_id = await eventually(enrolled)
    run = await finished(stack, workflow_id)
    assert [s["outcome"] for s in run["steps"]] == ["done"] * 5, run
    history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
    await _replayer().replay_workflow(history)
    if os.environ.get("CAIRN_RECORD_HISTORY"):
        (HISTORIES / "deal-run.json").write_text(history.to_json())


# Wake-ups, a live edit, continue-as-new and a goal jump: the paths the tour does not take.
WAKES = {
    "start": "count",
    "steps": {
        "count": {
            "type": "adjust_contact_score",
            "score": "laps",
            "op": "add",
            "value": 1,
            "next": "nap",
        },
        "nap": {"type": "wait", "for": {"seconds": 1}, "next": "again"},
        "again": {
            "type": "if_else",
            "condition": {"score": "laps", "op": "gte", "value": 3},
            "yes": "listen",
            "no": "back",
        },
        "back": {"type": "goto", "target": "count"},
        "listen": {
            "type": "wait",
            "condition": {"tag": "ready"},
            "timeout": {"days": 10},
            "next": "pause",
        },
        "pause": {"type": "wait", "for": {"days": 30}, "next": None},
        "bought": {"type": "goal", "condition": {"event": "purchase"}, "next": "thanks"},
        "thanks": {"type": "add_tag", "tag": "customer"},
    },
}


async def test_a_fresh_history_of_wakes_edits_and_continue_as_new_replays(stack: Stack) -> None:
    automation_id = await stack.automation(WAKES)
    contact = (await stack.contact())["id"]
    events = "/api/v1/events"
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact, automation_id)
        await eventually(lambda: _at(stack, handle.id, "listen"), within=30)
        edited = {**WAKES, "name": "wakes, edited"}
        edited["steps"] = {**WAKES["steps"], "listen": {**WAKES["steps"]["listen"], "name": "v2"}}
        response = await stack.http.put(f"/api/v1/automations/{automation_id}", json=edited)
        assert response.status_code == 200, response.text
        first_run = (await handle.describe()).run_id
        for n in range(8):  # wake-ups until the history asks to continue as new
            await stack.http.post(events, json={"contact": contact, "event": f"noise-{n}"})
            await asyncio.sleep(0.1)
        await eventually(lambda: _parked(handle, first_run, "listen"), within=30)
        await stack.http.post(f"/api/v1/contacts/{contact}/tags", json={"tag": "ready"})
        await eventually(lambda: _parked(handle, first_run, "pause"), within=30)
        await stack.http.post(events, json={"contact": contact, "event": "purchase"})
        state = await handle.result()
    assert (state.status, state.goals, state.version) == ("completed", ["bought"], 2)

    # Every run of the chain, first to last, following each continue-as-new.
    histories, run_id = [], first_run
    while run_id:
        history = await stack.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    assert len(histories) >= 2
    for n, history in enumerate(histories, 1):
        await _replayer().replay_workflow(history)
        if os.environ.get("CAIRN_RECORD_HISTORY"):
            (HISTORIES / f"wakes-{n}.json").write_text(history.to_json())


async def _at(stack: Stack, workflow_id: str, step: str) -> None:
    assert (await stack.run(workflow_id))["current_step"] == step


async def _parked(handle: WorkflowHandle[Any, Any], first_run: str | None, step: str) -> None:
    """The run after continue-as-new is parked at `step`, no wake-up pending."""
    assert (await handle.describe()).run_id != first_run
    last = (await handle.fetch_history()).events[-1]
    assert last.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    assert f"(step {step})" in last.user_metadata.summary.data.decode()
