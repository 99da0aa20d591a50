"""Which deal a deal step acts on: the deal that fired the run, else the contact's most recent
deal whatever its status; and which tasks `complete_task` completes (docs/crm.md)."""

from __future__ import annotations

from typing import Any

from tests.helpers.crm import api_get, api_patch, api_post, sales_pipeline, sales_user
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually
from workflows.contracts import RunInput


def _outcomes(run: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(s["step"], s["outcome"], s["reason"]) for s in run["steps"]]


def _chain(steps: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """An automation running `steps` in order (an `if_else` keeps its own branches)."""
    linked = {
        step_id: step
        if step["type"] == "if_else"
        else {**step, "next": steps[i + 1][0] if i + 1 < len(steps) else None}
        for i, (step_id, step) in enumerate(steps)
    }
    return {"start": steps[0][0], "steps": linked}


async def _runs_of(stack: Stack, contact_id: int, automation_id: str) -> list[dict[str, Any]]:
    await stack.settled(contact_id)
    record = await stack.record(contact_id)
    return [a for a in record["automations"] if a["automation"] == automation_id]


async def _notes(stack: Stack, deal_id: int) -> list[str]:
    return [n["note"] for n in (await api_get(stack, f"/deals/{deal_id}/notes"))["items"]]


async def _deal(stack: Stack, deal_id: int) -> dict[str, Any]:
    return await api_get(stack, f"/deals/{deal_id}")  # type: ignore[no-any-return]


async def test_a_deal_triggered_run_acts_on_the_deal_that_fired_it(any_stack: Stack) -> None:
    """Two contacts on one deal, the first of them with a newer deal of its own: moving the
    shared deal runs the automation once, for its primary contact, on that deal."""
    stack = any_stack
    pipeline = await sales_pipeline(stack)
    owner = await sales_user(stack)
    qualified = stack.unique("qualified")
    automation_id = await stack.automation(
        {
            "triggers": [
                {"type": "deal_stage_changed", "pipeline": pipeline, "stage": "Qualified"}
            ],
            "entry": "multiple",
            **_chain(
                [
                    ("note", {"type": "add_deal_note", "note": "Qualified: %DEAL_TITLE%"}),
                    (
                        "call",
                        {"type": "add_task", "title": "Call", "due_in": {"days": 1}, "on": "deal"},
                    ),
                    ("value", {"type": "update_deal_value", "value": 5000}),
                    (
                        "check",
                        {
                            "type": "if_else",
                            "condition": {
                                "deal": {"field": "title", "op": "is", "value": "Shared"}
                            },
                            "yes": "tag",
                            "no": None,
                        },
                    ),
                    ("tag", {"type": "add_tag", "tag": qualified}),
                ]
            ),
        }
    )
    # Listed first, the primary contact, though made after the other (a higher id).
    other = await stack.contact()
    primary = await stack.contact()
    base = {"currency": "USD", "value": 100, "pipeline": pipeline, "owner": owner["email"]}
    shared = await api_post(
        stack, "/deals", {**base, "title": "Shared", "contacts": [primary["id"], other["id"]]}
    )
    newer = await api_post(stack, "/deals", {**base, "title": "Newer", "contacts": [primary["id"]]})

    await api_patch(stack, f"/deals/{shared['id']}", {"stage": "Qualified"})

    async def ran() -> dict[str, Any]:
        (run,) = await _runs_of(stack, primary["id"], automation_id)
        assert run["status"] == "completed", run
        return run

    run = await eventually(ran)
    # One run for the deal: its primary contact's. The other contact's changes woke its runs
    # (it has none here) but enrolled it nowhere.
    assert await _runs_of(stack, other["id"], automation_id) == []
    assert [o[1] for o in _outcomes(await stack.run(run["workflow_id"]))] == ["done"] * 5

    assert await _notes(stack, shared["id"]) == ["Qualified: Shared"]
    assert await _notes(stack, newer["id"]) == []
    tasks = (await api_get(stack, f"/tasks?deal={shared['id']}"))["items"]
    assert [(t["title"], t["assignee"]["id"]) for t in tasks] == [("Call", owner["id"])]
    assert (await api_get(stack, f"/tasks?deal={newer['id']}"))["items"] == []
    assert (await _deal(stack, shared["id"]))["value"] == 5000
    assert (await _deal(stack, newer["id"]))["value"] == 100
    assert qualified in (await stack.record(primary["id"]))["tags"]

    # The Temporal UI shows which deal the run is about: in its input and its summary.
    handle = stack.client.get_workflow_handle(run["workflow_id"])
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (run_input,) = await stack.client.data_converter.decode(started.input.payloads, [RunInput])
    assert (run_input.contact_id, run_input.deal_id) == (primary["id"], shared["id"])
    summary = await (await handle.describe()).static_summary()
    assert summary is not None and f"deal {shared['id']}" in summary, summary


async def test_a_deal_created_in_a_stage_fires_deal_stage_changed(any_stack: Stack) -> None:
    """From the API and from an `add_deal` step: the new deal enters its stage."""
    stack = any_stack
    pipeline = await sales_pipeline(stack)
    listener = await stack.automation(
        {
            "triggers": [
                {"type": "deal_stage_changed", "pipeline": pipeline, "stage": "Qualified"}
            ],
            **_chain([("note", {"type": "add_deal_note", "note": "Entered Qualified"})]),
        }
    )
    by_api = await stack.contact()
    deal = await api_post(
        stack,
        "/deals",
        {
            "title": "Created qualified",
            "currency": "USD",
            "pipeline": pipeline,
            "stage": "Qualified",
            "contacts": [by_api["id"]],
        },
    )
    by_step = await stack.contact()
    creator = await stack.automation(
        _chain(
            [
                (
                    "deal",
                    {
                        "type": "add_deal",
                        "title": "Step-made",
                        "value": 0,
                        "currency": "USD",
                        "pipeline": pipeline,
                        "stage": "Qualified",
                    },
                )
            ]
        )
    )
    await finished(stack, (await stack.enroll(by_step["id"], creator)).id)
    (made,) = (await stack.record(by_step["id"]))["deals"]

    async def fired() -> None:
        for contact, deal_id in ((by_api, deal["id"]), (by_step, made["id"])):
            (run,) = await _runs_of(stack, contact["id"], listener)
            assert run["status"] == "completed", run
            assert await _notes(stack, deal_id) == ["Entered Qualified"]

    await eventually(fired)
    # Created in another stage: not this trigger's.
    elsewhere = await stack.contact()
    await api_post(
        stack,
        "/deals",
        {"title": "Lead", "currency": "USD", "pipeline": pipeline, "contacts": [elsewhere["id"]]},
    )
    assert await _runs_of(stack, elsewhere["id"], listener) == []


async def test_a_won_deal_can_be_reopened_and_acted_on(any_stack: Stack) -> None:
    stack = any_stack
    pipeline, other_pipeline = await sales_pipeline(stack), await sales_pipeline(stack)
    contact = await stack.contact()
    add = {"type": "add_deal", "value": 100, "currency": "USD", "stage": "Lead"}
    run = await finished(
        stack,
        (
            await stack.enroll(
                contact["id"],
                await stack.automation(
                    _chain(
                        [
                            ("deal", {**add, "title": "Main", "pipeline": pipeline}),
                            ("won", {"type": "update_deal_status", "value": "won"}),
                            ("note_won", {"type": "add_deal_note", "note": "won: %DEAL_TITLE%"}),
                            ("reopen", {"type": "update_deal_status", "value": "open"}),
                            ("stage", {"type": "update_deal_stage", "value": "Qualified"}),
                            # A newer deal in another pipeline: the step naming the first
                            # pipeline still finds the (reopened, then lost) first deal.
                            ("side", {**add, "title": "Side", "pipeline": other_pipeline}),
                            (
                                "lost",
                                {
                                    "type": "update_deal_status",
                                    "value": "lost",
                                    "pipeline": pipeline,
                                },
                            ),
                            ("note_lost", {"type": "add_deal_note", "note": "lost, still here"}),
                        ]
                    )
                ),
            )
        ).id,
    )
    assert _outcomes(run) == [(step, "done", None) for step, _, _ in _outcomes(run)], run
    side, main = (await stack.record(contact["id"]))["deals"]  # newest first
    assert (main["title"], main["status"], main["stage"]) == ("Main", "lost", "Qualified")
    assert await _notes(stack, main["id"]) == ["won: Main"]
    # Without `pipeline`, the contact's most recent deal: the side deal, open.
    assert (side["title"], side["status"]) == ("Side", "open")
    assert await _notes(stack, side["id"]) == ["lost, still here"]


async def test_complete_task_completes_the_contacts_and_the_deals_open_tasks(
    any_stack: Stack,
) -> None:
    stack = any_stack
    pipeline = await sales_pipeline(stack)
    contact = await stack.contact()
    call = {"type": "add_task", "title": "Call", "task_type": "call", "due_in": {"days": 1}}
    run = await finished(
        stack,
        (
            await stack.enroll(
                contact["id"],
                await stack.automation(
                    _chain(
                        [
                            # No deal yet: a task on the contact, completed later.
                            ("first_call", call),
                            ("first_done", {"type": "complete_task", "title": "call"}),
                            (
                                "deal",
                                {
                                    "type": "add_deal",
                                    "title": "D",
                                    "value": 1,
                                    "currency": "USD",
                                    "pipeline": pipeline,
                                    "stage": "Lead",
                                },
                            ),
                            ("deal_call", {**call, "on": "deal"}),
                            ("contact_call", call),
                            ("mail", {**call, "title": "Mail", "task_type": "email"}),
                            ("calls_done", {"type": "complete_task", "task_type": "call"}),
                            ("none_left", {"type": "complete_task", "task_type": "call"}),
                        ]
                    )
                ),
            )
        ).id,
    )
    assert _outcomes(run) == [
        ("first_call", "done", None),
        ("first_done", "done", None),
        ("deal", "done", None),
        ("deal_call", "done", None),
        ("contact_call", "done", None),
        ("mail", "done", None),
        ("calls_done", "done", None),
        ("none_left", "skipped", "no_open_task"),
    ]
    tasks = sorted((await stack.record(contact["id"]))["tasks"], key=lambda t: t["id"])
    (deal,) = (await stack.record(contact["id"]))["deals"]
    assert [(t["title"], t["deal"], t["done"]) for t in tasks] == [
        ("Call", None, True),
        ("Call", deal["id"], True),
        ("Call", None, True),
        ("Mail", None, False),
    ]
