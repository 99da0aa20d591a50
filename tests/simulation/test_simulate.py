"""Simulations through the API: the real engine on virtual time, with no side effect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpers.stack import Stack, eventually

WELCOME: dict[str, Any] = {
    "start": "welcome",
    "steps": {
        "welcome": {
            "type": "send_email",
            "subject": "Hi %FIRSTNAME%",
            "html": "<p>Welcome, %FIRSTNAME%!</p>",
            "next": "pause",
        },
        "pause": {"type": "wait", "for": {"days": 5}, "next": "nudge"},
        "nudge": {"type": "send_email", "subject": "Still there?", "html": "<p>Hm</p>"},
        "bought": {"type": "goal", "condition": {"event": "purchase"}, "next": "thanks"},
        "thanks": {"type": "add_tag", "tag": "customer"},
    },
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_goal_reached_in_a_multi_day_wait_jumps_at_the_scripted_time(stack: Stack) -> None:
    automation = await stack.automation(WELCOME)
    answer = await stack.http.post(
        f"/api/v1/automations/{automation}/simulate",
        json={
            "contact": {"first_name": "Ada", "email": "ada@example.com"},
            "events": [  # in any order, as the API's example gives them
                {"at": {"days": 3}, "event": "purchase", "data": {"plan": "pro"}},
                {"at": {"hours": 2}, "email": "clicked", "step": "welcome"},
            ],
            "horizon": {"days": 90},
        },
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "completed"
    assert result["goals"] == ["bought"]
    steps = [(p["step"], p["outcome"]) for p in result["path"]]
    assert steps[0] == ("welcome", "done") and ("nudge", "done") not in steps
    assert steps[-1] == ("thanks", "done")
    start = at(result["started_at"])
    jumped = at(next(p["at"] for p in result["path"] if p["step"] == "thanks"))
    assert timedelta(days=3) <= jumped - start < timedelta(days=3, minutes=1)
    played = [(e["what"], at(e["at"]) - start) for e in result["script"]]
    assert played == [
        ("email of welcome clicked", timedelta(hours=2)),
        ("event purchase", timedelta(days=3)),
    ]
    [message] = result["messages"]
    assert message["subject"] == "Hi Ada" and "Welcome, Ada!" in message["html"]
    assert message["to"].endswith("ada@example.com>") or message["to"] == "ada@example.com"
    assert [(w["step"], w["kind"], w["detail"]) for w in result["writes"]] == [
        ("thanks", "add_tag", {"tag": "customer"})
    ]


async def simulate(stack: Stack, automation: str, **body: Any) -> dict[str, Any]:
    answer = await stack.http.post(f"/api/v1/automations/{automation}/simulate", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def offsets(result: dict[str, Any]) -> list[tuple[str, str, timedelta]]:
    start = at(result["started_at"])
    return [(p["step"], p["outcome"], at(p["at"]) - start) for p in result["path"]]


async def test_a_conditional_wait_is_released_by_a_scripted_change(stack: Stack) -> None:
    automation = await stack.automation(
        {
            "start": "until_vip",
            "steps": {
                "until_vip": {
                    "type": "wait",
                    "condition": {"tag": "vip"},
                    "timeout": {"days": 10},
                    "next": "welcome_vip",
                },
                "welcome_vip": {"type": "add_tag", "tag": "vip-welcomed"},
            },
        }
    )
    released = await simulate(
        stack, automation, events=[{"at": {"days": 1, "hours": 6}, "tag_added": "vip"}]
    )
    [(wait, outcome, waited), (tag, _, tagged)] = offsets(released)
    assert (wait, outcome, tag, released["status"]) == (
        "until_vip",
        "done",
        "welcome_vip",
        "completed",
    )
    assert timedelta(days=1, hours=6) <= waited < timedelta(days=1, hours=6, minutes=1)
    assert tagged - waited < timedelta(minutes=1)
    assert released["script"][0]["applied"] is True

    # Without the change, the wait times out after its ten days.
    timed_out = await simulate(stack, automation)
    [(_, _, waited), _] = offsets(timed_out)
    assert timedelta(days=10) <= waited < timedelta(days=10, minutes=1)


async def test_a_split_takes_the_path_the_next_real_contact_would_and_moves_no_counter(
    stack: Stack,
) -> None:
    automation = await stack.automation(
        {
            "start": "split",
            "steps": {
                "split": {"type": "split", "mode": "even", "paths": [{"next": "a"}, {"next": "b"}]},
                "a": {"type": "add_tag", "tag": "path-a"},
                "b": {"type": "add_tag", "tag": "path-b"},
            },
        }
    )
    await stack.enroll((await stack.contact())["id"], automation)  # a real contact takes A
    await eventually(lambda: _reported(stack, automation, "a", 1))
    report = await _report(stack, automation)
    for _ in range(2):  # the same answer twice: the simulation moved no counter
        result = await simulate(stack, automation)
        assert result["split_paths"] == {"split": 1}
        assert [p["step"] for p in result["path"]] == ["split", "b"]
        assert [(w["step"], w["detail"]) for w in result["writes"]] == [("b", {"tag": "path-b"})]
    assert await _report(stack, automation) == report


async def _report(stack: Stack, automation: str) -> dict[str, Any]:
    report = (await stack.http.get(f"/api/v1/automations/{automation}/report")).json()
    report.pop("generated_at")
    return report  # type: ignore[no-any-return]


async def _reported(stack: Stack, automation: str, step: str, count: int) -> None:
    report = (await stack.http.get(f"/api/v1/automations/{automation}/report")).json()
    steps = {s["step"]: s for s in report["steps"]}
    assert steps.get(step, {}).get("completed", 0) >= count, report


async def test_a_wait_until_a_date_counts_from_the_virtual_start(stack: Stack) -> None:
    start = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    until = start + timedelta(days=2, hours=3)
    automation = await stack.automation(
        {
            "start": "launch",
            "steps": {
                "launch": {"type": "wait", "until": until.isoformat(), "next": "go"},
                "go": {"type": "add_tag", "tag": "launched"},
            },
        }
    )
    result = await simulate(stack, automation, start_at=start.isoformat())
    assert at(result["started_at"]) == start
    [(_, _, waited), go] = offsets(result)
    assert go[:2] == ("go", "done")
    assert timedelta(days=2, hours=3) <= waited < timedelta(days=2, hours=3, minutes=1)


async def test_a_draft_with_a_problem_is_refused_and_nothing_runs(stack: Stack) -> None:
    before = await _simulations(stack)
    answer = await stack.http.post(
        "/api/v1/simulate",
        json={
            "document": {
                "name": "Broken",
                "start": "hello",
                "steps": {
                    "hello": {"type": "send_email", "html": "<p>no subject</p>", "next": "nowhere"}
                },
            }
        },
    )
    assert answer.status_code == 422, answer.text
    problems = answer.json()["detail"]
    assert {p["step"] for p in problems} == {"hello"}
    assert await _simulations(stack) == before


async def _simulations(stack: Stack) -> int:
    count = await stack.client.count_workflows("CairnSimulation = true")
    return count.count


async def test_bounds_are_checked_before_anything_runs(stack: Stack) -> None:
    automation = await stack.automation(WELCOME)
    url = f"/api/v1/automations/{automation}/simulate"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"horizon": {"days": 800}}, "at most 2 years"),
        ({"events": [{"at": {"days": 1}, "event": "x"}] * 1001}, "1000"),
        ({"events": [{"at": {"days": 100}, "event": "late"}]}, "after the horizon"),
        ({"events": [{"at": {"days": 1}}]}, "exactly one of"),
        ({"events": [{"event": "a", "tag_added": "b"}]}, "exactly one of"),
        ({"start_at": "2020-01-01T00:00:00Z"}, "in the past"),
        ({"contact": {"email": "a@example.com"}, "contact_id": 1}, "not both"),
        ({"contact": {"nickname": "x"}}, "nickname"),
    ]
    for body, expected in cases:
        answer = await stack.http.post(url, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert expected in answer.text, (body, answer.text)
    assert (await stack.http.post(url, json={"contact_id": 999_999_999})).status_code == 404
    assert (await stack.http.post("/api/v1/automations/nope/simulate", json={})).status_code == 404
    assert (await stack.http.post(url, json=[1, 2])).status_code == 422
    assert (await stack.http.post("/api/v1/simulate", json={"document": "x"})).status_code == 422
