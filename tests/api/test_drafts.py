"""Before saving: a draft's problems (POST /automations/validate) and what it would do to the
contacts running now (POST /automations/{id}/impact; docs/api.md#checking-a-draft,
docs/api.md#the-impact-of-a-new-version)."""

from __future__ import annotations

import copy
from typing import Any

from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually

WAIT = {"type": "wait", "for": {"days": 5}}


def _goal(event: str, then: str) -> dict[str, Any]:
    return {"type": "goal", "condition": {"event": event}, "next": then}


# Contacts park in `a`; a goal moves one on to `c`, `d` or `f`, where it parks again.
V1: dict[str, Any] = {
    "start": "a",
    "steps": {
        "a": {**WAIT, "name": "Cool down", "next": "end"},
        "c": {**WAIT, "next": "end"},
        "d": {**WAIT, "next": "e"},
        "e": {"type": "add_tag", "tag": "impact-e"},
        "f": {**WAIT, "next": "end"},
        "end": {"type": "add_tag", "tag": "impact-end"},
        "to_c": _goal("impact-c", "c"),
        "to_d": _goal("impact-d", "d"),
        "to_f": _goal("impact-f", "f"),
    },
}
# `a` renamed only (unchanged), `c` removed (its `next` stays), `d` and `e` removed (its
# contact has nowhere to go), `f` shortened (changed).
V2: dict[str, Any] = {
    "start": "a",
    "steps": {
        "a": {**WAIT, "name": "Cool off", "next": "end"},
        "f": {"type": "wait", "for": {"days": 2}, "next": "end"},
        "end": {"type": "add_tag", "tag": "impact-end"},
        "to_f": _goal("impact-f", "f"),
    },
}
BROKEN: dict[str, Any] = {
    "name": "Broken",
    "start": "mail",
    "steps": {
        "mail": {"type": "send_email", "html": "<p>no subject</p>", "next": "nowhere"},
        "hello": {"type": "send_email", "subject": "Hi %FAVOURITE_COLOUR%", "html": "<p>Hi</p>"},
    },
}


async def _check(stack: Stack, body: Any) -> dict[str, Any]:
    answer = await stack.http.post("/api/v1/automations/validate", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def test_validate_answers_what_a_save_would(any_stack: Stack) -> None:
    stack = any_stack
    name = stack.unique("draft")
    broken = {**BROKEN, "name": name}
    checked = await _check(stack, broken)
    assert checked["valid"] is False
    refused = await stack.http.post("/api/v1/automations", json=broken)
    assert refused.status_code == 422
    assert checked["problems"] == refused.json()["detail"]
    assert {(p["step"], p["severity"]) for p in checked["problems"]} >= {
        ("mail", "error"),
        ("hello", "warning"),
    }
    listed = (await stack.http.get("/api/v1/automations")).json()
    assert not any(a["name"] == name for a in listed)  # nothing saved

    # Fixed, with a warning left (a %TAG% no contact has, a pipeline that does not exist).
    fixed = copy.deepcopy(broken)
    fixed["steps"]["mail"] = {"type": "send_email", "subject": "Hi", "html": "<p>Hi</p>"}
    fixed["steps"]["deal"] = {
        "type": "add_deal",
        "title": "T",
        "value": 100,
        "currency": "EUR",
        "pipeline": stack.unique("pipeline"),
        "stage": "Lead",
    }
    fixed["steps"]["hello"]["next"] = "deal"
    fixed["steps"]["mail"]["next"] = "hello"
    checked = await _check(stack, fixed)
    assert checked["valid"] is True
    assert {p["severity"] for p in checked["problems"]} == {"warning"}
    assert {p["step"] for p in checked["problems"]} == {"hello", "deal"}
    saved = await stack.http.post("/api/v1/automations", json=fixed)
    assert saved.status_code == 201, saved.text
    assert saved.json()["warnings"] == checked["problems"]
    # The saved automation's document, checked again, as a PUT would check it.
    current = (await stack.http.get(f"/api/v1/automations/{saved.json()['id']}")).json()
    assert await _check(stack, current["document"]) == checked


async def test_validate_takes_any_json(stack: Stack) -> None:
    for body, kind in [([], "an array"), ("draft", "a string"), (3, "a number"), (True, "true")]:
        checked = await _check(stack, body)
        assert checked["valid"] is False, body
        assert any(kind in p["message"] for p in checked["problems"]), checked
    # A draft without an id is checked under the id a POST would give it: it may start itself.
    unique = stack.unique("loop")
    looping = {
        "name": f"Loop {unique}",
        "start": "again",
        "steps": {"again": {"type": "start_automation", "automation": f"loop-{unique}"}},
    }
    assert (await _check(stack, looping))["valid"] is True
    looping["steps"]["again"]["automation"] = f"other-{unique}"
    assert (await _check(stack, looping))["valid"] is False
    null = await stack.http.post(
        "/api/v1/automations/validate",
        content=b"null",
        headers={"Content-Type": "application/json"},
    )
    assert null.json()["problems"][0]["message"].endswith("not null")
    # Not JSON, no body, a key twice, too deep: refused whole, with a message.
    for raw in (b"{not json", b"", b'{"a": 1, "a": 2}', b"[" * 100 + b"]" * 100):
        answer = await stack.http.post(
            "/api/v1/automations/validate",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 422, (raw, answer.text)


async def _park(stack: Stack, automation_id: str) -> dict[str, Any]:
    """Five contacts parked: two at `a`, one each at `c`, `d` and `f` (moved there by goals)."""
    contacts = [await stack.contact() for _ in range(5)]
    with stack.env.with_time_skipping_disabled():
        runs = [await stack.enroll(c["id"], automation_id) for c in contacts]
    for contact, step in zip(contacts[2:], "cdf", strict=True):
        moved = {"contact": contact["id"], "event": f"impact-{step}"}
        assert (await stack.http.post("/api/v1/events", json=moved)).status_code == 202

    async def parked() -> None:
        page = await stack.http.get(
            f"/api/v1/automations/{automation_id}/contacts", params={"status": "running"}
        )
        steps = sorted(c["current_step"] for c in page.json()["contacts"])
        assert steps == ["a", "a", "c", "d", "f"], steps

    await eventually(parked)
    return {step: run for step, run in zip("aacdf", runs, strict=True)}


async def _impact(stack: Stack, automation_id: str, draft: Any) -> dict[str, Any]:
    answer = await stack.http.post(f"/api/v1/automations/{automation_id}/impact", json=draft)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def test_the_impact_of_a_new_version_is_what_happens(any_stack: Stack) -> None:
    stack = any_stack
    automation_id = await stack.automation(V1)
    runs = await _park(stack, automation_id)
    name = (await stack.http.get(f"/api/v1/automations/{automation_id}")).json()["name"]
    draft = {"name": name, **V2}

    impact = await _impact(stack, automation_id, draft)
    assert impact == {
        "version_from": 1,
        "valid": True,
        "running": 5,
        "steps": [
            {"step": "a", "waiting": 2, "change": "unchanged", "goes_to": None, "ends": False},
            {"step": "c", "waiting": 1, "change": "removed", "goes_to": "end", "ends": False},
            {"step": "d", "waiting": 1, "change": "removed", "goes_to": None, "ends": True},
            {"step": "f", "waiting": 1, "change": "changed", "goes_to": None, "ends": False},
        ],
        "affected": 3,
        "ending": 1,
        "problems": [],
    }
    versions = (await stack.http.get(f"/api/v1/automations/{automation_id}/versions")).json()
    assert len(versions) == 1  # nothing saved

    # A changed `next` is a change: the contacts there would go elsewhere afterwards.
    rerouted = copy.deepcopy(draft)
    rerouted["steps"]["a"]["next"] = "f"
    steps = (await _impact(stack, automation_id, rerouted))["steps"]
    assert steps[0] == {
        "step": "a",
        "waiting": 2,
        "change": "changed",
        "goes_to": None,
        "ends": False,
    }

    # Published, the new version does what the impact said.
    saved = await stack.http.put(f"/api/v1/automations/{automation_id}", json=draft)
    assert saved.status_code == 200, saved.text
    ended = await finished(stack, runs["d"].id)
    assert (ended["status"], ended["reason"]) == ("ended", "step_removed")
    moved_on = await finished(stack, runs["c"].id)  # went on to `end`, then finished
    assert moved_on["status"] == "completed"
    assert [s["step"] for s in moved_on["steps"]][-1] == "end"

    async def switched() -> None:
        run = await stack.run(runs["f"].id)
        assert (run["version"], run["status"], run["current_step"]) == (2, "running", "f")

    await eventually(switched)
    after = await _impact(stack, automation_id, draft)
    assert after["version_from"] == 2 and after["running"] == 3
    assert {s["step"]: s["change"] for s in after["steps"]} == {"a": "unchanged", "f": "unchanged"}


async def test_the_impact_of_an_invalid_draft(stack: Stack) -> None:
    automation_id = await stack.automation(V1)
    await _park(stack, automation_id)
    broken = copy.deepcopy(V2)
    broken["steps"]["f"] = {"type": "no_such_step", "next": "end"}
    impact = await _impact(stack, automation_id, broken)
    assert impact["valid"] is False and impact["running"] == 5
    checked = await _check(stack, {**broken, "id": automation_id})
    assert impact["problems"] == checked["problems"] and checked["problems"]
    assert [(s["step"], s["change"]) for s in impact["steps"]] == [
        ("a", "unchanged"),
        ("c", "removed"),
        ("d", "removed"),
        ("f", "changed"),
    ]
    nothing = await _impact(stack, automation_id, ["not", "a", "document"])
    assert nothing["valid"] is False
    assert [(s["change"], s["ends"]) for s in nothing["steps"]] == [("removed", True)] * 4
    assert nothing["ending"] == nothing["affected"] == 5


async def test_the_impact_on_an_unknown_automation_is_404(stack: Stack) -> None:
    answer = await stack.http.post("/api/v1/automations/no-such-thing/impact", json=V2)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "automation 'no-such-thing' not found"}
