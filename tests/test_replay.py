"""Determinism guard: saved histories must replay against today's AutomationRun (STYLE: Replayer).

A change that alters the commands an existing run would issue breaks this test: such a change
needs `workflow.patched` (or a new workflow version), never a silent edit. To add a history,
run with CAIRN_RECORD_HISTORY=1 and commit the file it writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.conftest import Stack
from worker.main import WORKFLOW_RUNNER
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
        workflow_runner=WORKFLOW_RUNNER,
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
