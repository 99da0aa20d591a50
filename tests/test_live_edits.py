"""Live edits (SPEC §3): new versions reach waiting contacts; inactive automations hold them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import Stack, eventually
from tests.test_engine import finished
from workflows.contracts import RunState


async def _parked_at(stack: Stack, workflow_id: str, step: str) -> None:
    assert (await stack.run(workflow_id))["current_step"] == step


async def _put(stack: Stack, automation_id: str, document: dict[str, Any]) -> int:
    response = await stack.http.put(f"/api/v1/automations/{automation_id}", json=document)
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


async def test_a_changed_wait_counts_the_time_already_waited(stack: Stack) -> None:
    v1 = {
        "name": stack.unique("edit"),
        "start": "w",
        "steps": {
            "w": {"type": "wait", "for": {"days": 5}, "next": "a"},
            "a": {"type": "add_tag", "tag": "v1"},
        },
    }
    automation_id = await stack.automation(v1)
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)
    await eventually(lambda: _parked_at(stack, handle.id, "w"))
    await stack.env.fast_forward(handle, timedelta(days=1))
    v2 = {
        **v1,
        "steps": {
            "w": {"type": "wait", "for": {"days": 2}, "next": "b"},
            "b": {"type": "add_tag", "tag": "v2-new-step"},
        },
    }
    assert await _put(stack, automation_id, v2) == 2

    async def switched() -> None:
        assert (await handle.query("state", result_type=RunState)).version == 2

    await eventually(switched)
    # One day waited under v1 counts: one more day (not two) releases the contact.
    await stack.env.fast_forward(handle, timedelta(hours=25))
    run = await finished(stack, handle.id)
    assert [s["step"] for s in run["steps"]] == ["w", "b"]
    assert "v2-new-step" in (await stack.record(contact["id"]))["tags"]


async def test_a_contact_in_a_deleted_step_moves_to_its_old_next_or_ends(stack: Stack) -> None:
    v1 = {
        "name": stack.unique("edit"),
        "start": "w",
        "steps": {
            "w": {"type": "wait", "for": {"days": 5}, "next": "a"},
            "a": {"type": "add_tag", "tag": "reached-a"},
        },
    }
    automation_id = await stack.automation(v1)
    moved, ended = await stack.contact(), await stack.contact()
    with stack.env.with_time_skipping_disabled():
        moving = await stack.enroll(moved["id"], automation_id)
    await eventually(lambda: _parked_at(stack, moving.id, "w"))
    await _put(stack, automation_id, {**v1, "start": "a", "steps": {"a": v1["steps"]["a"]}})
    assert [s["step"] for s in (await finished(stack, moving.id))["steps"]] == ["a"]

    v3 = {**v1, "steps": {"w": {"type": "wait", "for": {"days": 5}, "next": None}}}
    await _put(stack, automation_id, v3)
    other = await stack.automation(v1)  # a fresh automation whose "w" and "a" both vanish
    with stack.env.with_time_skipping_disabled():
        ending = await stack.enroll(ended["id"], other)
    await eventually(lambda: _parked_at(stack, ending.id, "w"))
    await _put(
        stack,
        other,
        {**v1, "start": "z", "steps": {"z": {"type": "add_tag", "tag": "z"}}},
    )
    run = await finished(stack, ending.id)
    assert (run["status"], run["reason"]) == ("ended", "step_removed")


async def test_inactive_holds_contacts_until_reactivated(stack: Stack) -> None:
    document = {
        "name": stack.unique("hold"),
        "start": "w",
        "steps": {
            "w": {"type": "wait", "for": {"days": 1}, "next": "a"},
            "a": {"type": "add_tag", "tag": "after-hold"},
        },
    }
    automation_id = await stack.automation(document)
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)
    await eventually(lambda: _parked_at(stack, handle.id, "w"))
    assert (await stack.http.delete(f"/api/v1/automations/{automation_id}")).status_code == 200
    await stack.env.fast_forward(handle, timedelta(days=2))

    async def held() -> None:
        state = await handle.query("state", result_type=RunState)
        assert state.position == "a" and not state.automation_active

    await eventually(held)
    assert "after-hold" not in (await stack.record(contact["id"]))["tags"]
    newcomer = await stack.contact()
    refused = await stack.http.post(
        f"/api/v1/contacts/{newcomer['id']}/automations", json={"automation": automation_id}
    )
    assert refused.status_code == 409

    await _put(stack, automation_id, {**document, "status": "active"})
    run = await finished(stack, handle.id)
    assert run["status"] == "completed"
    assert "after-hold" in (await stack.record(contact["id"]))["tags"]
