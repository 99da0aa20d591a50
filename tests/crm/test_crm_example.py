"""examples/sales-pipeline.json end to end through the API: a lead score reaching 50 opens a
deal with a call for its owner; the deal won (moved to Won, or marked won) makes a customer
with an account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually

EXAMPLE = Path(__file__).parents[2] / "examples" / "sales-pipeline.json"
API = "/api/v1"


async def _ensure(stack: Stack, path: str, body: dict[str, Any]) -> None:
    """Create a named record the example relies on (it may exist already in this session)."""
    response = await stack.http.post(f"{API}{path}", json=body)
    assert response.status_code in (201, 409), response.text


# How the rep wins the deal in the CRM, and where the deal ends: marked won without a stage
# move, it stays in Lead ("close" finds it, won already, and changes nothing).
WINS = {
    "stage": ({"stage": "Won"}, ("Won", "won"), ("close", "done", None)),
    "status": ({"status": "won"}, ("Lead", "won"), ("close", "done", None)),
}


@pytest.mark.parametrize("win", list(WINS))
async def test_sales_pipeline_example_runs_end_to_end(stack: Stack, win: str) -> None:
    http = stack.http
    change, final_deal, last_step = WINS[win]
    await _ensure(stack, "/pipelines", {"name": "Sales", "stages": ["Lead", "Qualified", "Won"]})
    await _ensure(stack, "/users", {"email": "sam@example.com", "name": "Sam Seller"})
    # The contact first: the custom fields the example personalizes with (%COMPANY%,
    # %JOB_TITLE%) then exist when it is saved.
    company = stack.unique("Initech")
    contact = await stack.contact(
        first_name="Ada", last_name="Lovelace", fields={"company": company, "job_title": "CTO"}
    )
    example = json.loads(EXAMPLE.read_text())
    saved = await http.post(f"{API}/automations", json=example)
    if saved.status_code == 409:  # installed (then switched off) by an earlier case: back on
        saved = await http.put(f"{API}/automations/{example['id']}", json=example)
        assert saved.status_code == 200, saved.text
    else:
        assert saved.status_code == 201, saved.text
    assert saved.json()["warnings"] == []  # the pipeline, its stages and the owner exist
    automation_id = saved.json()["id"]
    # Something must raise the lead score: a scoring automation, one step per pricing view.
    scoring = await stack.automation(
        {
            "entry": "multiple",
            "triggers": [{"type": "event", "event": "pricing_viewed"}],
            "start": "score",
            "steps": {
                "score": {"type": "adjust_contact_score", "score": "lead", "op": "add", "value": 25}
            },
        }
    )
    cid = contact["id"]
    workflow_id = f"cairn:{automation_id}:{cid}"

    async def scored(expected: float) -> None:
        record = await stack.record(cid)
        assert record["scores"].get("lead") == expected, record["scores"]
        runs = [a for a in record["automations"] if a["automation"] == scoring]
        assert runs and all(a["status"] != "running" for a in runs), runs

    async def waiting_for_the_win() -> dict[str, Any]:
        run = await stack.run(workflow_id)
        assert run["current_step"] == "until_won", run
        return run

    # The 90-day wait must really hold, so the run starts without time skipping.
    with stack.env.with_time_skipping_disabled():
        for expected in (25.0, 50.0):
            event = {"contact": cid, "event": "pricing_viewed"}
            assert (await http.post(f"{API}/events", json=event)).status_code == 202
            await eventually(lambda expected=expected: scored(expected))
        await eventually(waiting_for_the_win)

    record = await stack.record(cid)
    (deal,) = record["deals"]
    assert (deal["title"], deal["pipeline"], deal["stage"], deal["status"]) == (
        "Ada Lovelace — Pro plan",
        "Sales",
        "Lead",
        "open",
    )
    assert deal["owner"]["email"] == "sam@example.com"
    (task,) = record["tasks"]
    assert (task["title"], task["type"], task["deal"], task["done"]) == (
        "Call Ada about Ada Lovelace — Pro plan ($1,200.00)",
        "call",
        deal["id"],
        False,
    )
    assert task["assignee"]["email"] == "sam@example.com"  # the deal's owner
    assert "customer" not in record["tags"] and record["account"] is None

    # A sales rep wins the deal in the CRM: the waiting run hears of it and goes on.
    moved = await http.patch(f"{API}/deals/{deal['id']}", json=change)
    assert moved.status_code == 200, moved.text
    run = await finished(stack, workflow_id)
    assert run["status"] == "completed"
    assert [(s["step"], s["outcome"], s["reason"]) for s in run["steps"]] == [
        ("open_deal", "done", None),
        ("call", "done", None),
        ("until_won", "done", "condition_met"),
        ("won", "done", "yes"),
        ("customer", "done", None),
        ("account", "done", None),
        last_step,
    ]
    record = await stack.record(cid)
    assert "customer" in record["tags"]
    assert (record["account"]["name"], record["account"]["job_title"]) == (company, "CTO")
    assert [(d["stage"], d["status"]) for d in record["deals"]] == [final_deal]
    # The example, and the scoring, stay out of the way of the other tests' scores and events.
    for switched_off in (automation_id, scoring):
        assert (await http.delete(f"{API}/automations/{switched_off}")).status_code == 200
