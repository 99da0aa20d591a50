"""Simulations through the API: the real engine on virtual time, with no side effect."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.helpers.stack import Stack

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
            "events": [{"at": {"days": 3}, "event": "purchase", "data": {"plan": "pro"}}],
            "horizon": {"days": 90},
        },
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    print(result)
    assert result["status"] == "completed"
    assert result["goals"] == ["bought"]
    steps = [(p["step"], p["outcome"]) for p in result["path"]]
    assert steps[0] == ("welcome", "done") and ("nudge", "done") not in steps
    assert steps[-1] == ("thanks", "done")
    start = at(result["started_at"])
    jumped = at(next(p["at"] for p in result["path"] if p["step"] == "thanks"))
    assert timedelta(days=3) <= jumped - start < timedelta(days=3, minutes=1)
    [message] = result["messages"]
    assert message["subject"] == "Hi Ada" and "Welcome, Ada!" in message["html"]
    assert message["to"].endswith("ada@example.com>") or message["to"] == "ada@example.com"
    assert [(w["step"], w["kind"]) for w in result["writes"]] == [("thanks", "add_tag")]
