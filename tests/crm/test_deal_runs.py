"""Which deal a deal step acts on: the deal that fired the run, else the contact's most recent
deal whatever its status; and which tasks `complete_task` completes (docs/crm.md)."""

from __future__ import annotations

from typing import Any

from tests.helpers.crm import api_get, sales_pipeline
from tests.helpers.runs import finished
from tests.helpers.stack import Stack


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
