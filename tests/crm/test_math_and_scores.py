"""perform_math's edge cases, a contact score's subtract and reset, and a deal marked lost,
through real runs (docs/automations.md#contacts, docs/crm.md#deal-steps)."""

from __future__ import annotations

from typing import Any

from tests.helpers.crm import sales_pipeline
from tests.helpers.runs import finished
from tests.helpers.stack import Stack


def _chain(steps: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """An automation running `steps` in order (an `if_else` keeps its own branches)."""
    linked = {
        step_id: step
        if step["type"] == "if_else"
        else {**step, "next": steps[i + 1][0] if i + 1 < len(steps) else None}
        for i, (step_id, step) in enumerate(steps)
    }
    return {"start": steps[0][0], "steps": linked}


async def _run(stack: Stack, contact_id: int, steps: list[tuple[str, dict[str, Any]]]) -> Any:
    automation_id = await stack.automation(_chain(steps))
    run = await finished(stack, (await stack.enroll(contact_id, automation_id)).id)
    return [(s["step"], s["outcome"], s["reason"]) for s in run["steps"]]


def _math(field: str, op: str, value: float, target: str = "contact") -> dict[str, Any]:
    return {"type": "perform_math", "target": target, "field": field, "op": op, "value": value}


async def test_perform_math_on_contact_and_deal_fields(any_stack: Stack) -> None:
    """Numbers, dates (add/subtract days), and what is skipped: a division by zero, a value
    that is not a number, another operation on a date. A skipped step changes nothing."""
    stack = any_stack
    pipeline = await sales_pipeline(stack)
    contact = await stack.contact(
        fields={
            "credits": 10,
            "nickname": "ten",
            "renewal": "2026-01-30",
            "seen_at": "2026-01-30T10:00:00+00:00",
        }
    )
    outcomes = await _run(
        stack,
        contact["id"],
        [
            ("c_zero", _math("credits", "divide", 0)),
            ("c_text", _math("nickname", "add", 1)),
            ("c_date_times", _math("renewal", "multiply", 2)),
            ("c_divide", _math("credits", "divide", 4)),
            ("c_later", _math("renewal", "add", 3)),
            ("c_earlier", _math("renewal", "subtract", 33)),
            ("c_moment", _math("seen_at", "add", 1)),
            (
                "deal",
                {
                    "type": "add_deal",
                    "title": "Math",
                    "value": 0,
                    "currency": "USD",
                    "pipeline": pipeline,
                    "stage": "Lead",
                    "fields": {"budget": 100, "label": "big", "close_on": "2026-12-30"},
                },
            ),
            ("d_zero", _math("budget", "divide", 0, "deal")),
            ("d_text", _math("label", "subtract", 1, "deal")),
            ("d_date_over", _math("close_on", "divide", 2, "deal")),
            ("d_times", _math("budget", "multiply", 1.5, "deal")),
            ("d_later", _math("close_on", "add", 5, "deal")),
            ("d_earlier", _math("close_on", "subtract", 35, "deal")),
        ],
    )
    assert outcomes == [
        ("c_zero", "skipped", "divide_by_zero"),
        ("c_text", "skipped", "not_numeric"),
        ("c_date_times", "skipped", "date_supports_add_subtract_only"),
        ("c_divide", "done", None),
        ("c_later", "done", None),
        ("c_earlier", "done", None),
        ("c_moment", "done", None),
        ("deal", "done", None),
        ("d_zero", "skipped", "divide_by_zero"),
        ("d_text", "skipped", "not_numeric"),
        ("d_date_over", "skipped", "date_supports_add_subtract_only"),
        ("d_times", "done", None),
        ("d_later", "done", None),
        ("d_earlier", "done", None),
    ]
    record = await stack.record(contact["id"])
    assert record["fields"] == {
        "credits": 2.5,  # 10 / 4: the division by zero before it changed nothing
        "nickname": "ten",
        "renewal": "2025-12-31",  # 2026-01-30 + 3 days, then - 33 days
        "seen_at": "2026-01-31T10:00:00+00:00",
    }
    (deal,) = record["deals"]
    assert deal["fields"] == {"budget": 150, "label": "big", "close_on": "2026-11-30"}


async def test_adjust_contact_score_subtracts_and_resets(any_stack: Stack) -> None:
    stack = any_stack
    contact = await stack.contact()

    def score(op: str, value: float | None = None) -> dict[str, Any]:
        step = {"type": "adjust_contact_score", "score": "lead", "op": op}
        return step if value is None else {**step, "value": value}

    outcomes = await _run(
        stack,
        contact["id"],
        [
            ("add", score("add", 10)),
            ("subtract", score("subtract", 3)),
            (
                "seven",
                {
                    "type": "if_else",
                    "condition": {"score": "lead", "op": "is", "value": 7},
                    "yes": "below_zero",
                    "no": None,
                },
            ),
            ("below_zero", score("subtract", 12)),
            (
                "negative",
                {
                    "type": "if_else",
                    "condition": {"score": "lead", "op": "is", "value": -5},
                    "yes": "reset",
                    "no": None,
                },
            ),
            ("reset", score("reset")),
            (
                "zero",
                {
                    "type": "if_else",
                    "condition": {"score": "lead", "op": "is", "value": 0},
                    "yes": "again",
                    "no": None,
                },
            ),
            ("again", score("add", 2)),
        ],
    )
    assert outcomes == [
        ("add", "done", None),
        ("subtract", "done", None),
        ("seven", "done", "yes"),
        ("below_zero", "done", None),
        ("negative", "done", "yes"),
        ("reset", "done", None),
        ("zero", "done", "yes"),
        ("again", "done", None),
    ]
    assert (await stack.record(contact["id"]))["scores"] == {"lead": 2.0}


async def test_update_deal_status_lost_closes_the_deal(any_stack: Stack) -> None:
    stack = any_stack
    pipeline = await sales_pipeline(stack)
    contact = await stack.contact()
    lost = {"deal": {"field": "status", "op": "is", "value": "lost"}, "pipeline": pipeline}
    outcomes = await _run(
        stack,
        contact["id"],
        [
            (
                "deal",
                {
                    "type": "add_deal",
                    "title": "Doomed",
                    "value": 500,
                    "currency": "USD",
                    "pipeline": pipeline,
                    "stage": "Qualified",
                },
            ),
            ("lose", {"type": "update_deal_status", "value": "lost"}),
            ("check", {"type": "if_else", "condition": lost, "yes": "tag", "no": None}),
            ("tag", {"type": "add_tag", "tag": "lost-deal"}),
        ],
    )
    assert outcomes == [
        ("deal", "done", None),
        ("lose", "done", None),
        ("check", "done", "yes"),
        ("tag", "done", None),
    ]
    record = await stack.record(contact["id"])
    (deal,) = record["deals"]
    # Lost keeps the deal where it was: its stage, value and contacts.
    assert (deal["status"], deal["stage"], deal["value"]) == ("lost", "Qualified", 500)
    assert deal["contacts"] == [contact["id"]]
    assert "lost-deal" in record["tags"]
