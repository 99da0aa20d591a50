"""Live edits (docs/api.md#live-edits): new versions reach waiting contacts; inactive automations hold them."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select, update
from temporalio.client import WorkflowHandle

from domain import outbox
from domain.outbox import AUTOMATION_CHANGED
from store.models import OUTBOX_LEASE, OutboxEntry, utcnow
from store.runs import reserve_runs, running_runs_after
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually
from workflows.contracts import STEP_KEY, RunState


async def _parked_at(stack: Stack, workflow_id: str, step: str) -> None:
    assert (await stack.run(workflow_id))["current_step"] == step


def five_days_then_tag(stack: Stack, tag: str = "v1") -> dict[str, Any]:
    """Version 1 of most tests here: a 5-day wait "w", then step "a" tags `tag`."""
    return {
        "name": stack.unique("edit"),
        "start": "w",
        "steps": {
            "w": {"type": "wait", "for": {"days": 5}, "next": "a"},
            "a": {"type": "add_tag", "tag": tag},
        },
    }


async def _a_day_into_the_wait(
    stack: Stack, v1: dict[str, Any]
) -> tuple[str, dict[str, Any], WorkflowHandle[Any, Any]]:
    """A contact enrolled in `v1`, parked in "w" for a day: (automation, contact, run)."""
    automation_id = await stack.automation(v1)
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)
    await eventually(lambda: _parked_at(stack, handle.id, "w"))
    await stack.env.fast_forward(handle, timedelta(days=1))
    return automation_id, contact, handle


async def _put(stack: Stack, automation_id: str, document: dict[str, Any]) -> int:
    response = await stack.http.put(f"/api/v1/automations/{automation_id}", json=document)
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


async def test_a_changed_wait_counts_the_time_already_waited(stack: Stack) -> None:
    v1 = five_days_then_tag(stack)
    automation_id, contact, handle = await _a_day_into_the_wait(stack, v1)
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
    v1 = five_days_then_tag(stack, "reached-a")
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
    # What GET says agrees: deactivating made version 2, its document inactive too.
    read = (await stack.http.get(f"/api/v1/automations/{automation_id}")).json()
    assert (read["status"], read["version"], read["document"]["status"]) == (
        "inactive",
        2,
        "inactive",
    )
    again = await stack.http.delete(f"/api/v1/automations/{automation_id}")
    assert again.json()["version"] == 2  # already inactive: no new version

    # Reports show the contact held at "a", not waiting where it last parked ("w").
    async def recorded_held() -> None:
        run = await stack.run(handle.id)
        assert (run["status"], run["reason"], run["current_step"]) == ("running", "held", "a")

    await eventually(recorded_held)
    listed = (await stack.http.get(f"/api/v1/automations/{automation_id}/contacts")).json()
    (row,) = listed["contacts"]
    assert (row["status"], row["held"], row["current_step"]) == ("running", True, "a")
    report = (await stack.http.get(f"/api/v1/automations/{automation_id}/report")).json()
    steps = {s["step"]: s for s in report["steps"]}
    assert (steps["a"]["held"], steps["a"]["waiting"], steps["w"]["waiting"]) == (1, 0, 0)
    assert report["held"] == 1 and report["runs"]["running"] == 1
    diagram = (await stack.http.get(f"/api/v1/automations/{automation_id}/diagram")).text
    assert "(step a)<br/>entered 0 · held 1" in diagram, diagram
    described = await handle.describe()
    assert described.typed_search_attributes.get(STEP_KEY) == "a"
    newcomer = await stack.contact()
    refused = await stack.http.post(
        f"/api/v1/contacts/{newcomer['id']}/automations", json={"automation": automation_id}
    )
    assert refused.status_code == 409

    assert await _put(stack, automation_id, {**document, "status": "active"}) == 3
    run = await finished(stack, handle.id)
    assert (run["status"], run["reason"]) == ("completed", None)
    assert "after-hold" in (await stack.record(contact["id"]))["tags"]


async def test_a_wait_turned_into_a_send_does_not_shorten_a_later_wait(stack: Stack) -> None:
    v1 = five_days_then_tag(stack)
    automation_id, _, handle = await _a_day_into_the_wait(stack, v1)
    # "w" survives as a send; the day waited in it must not count towards the new wait "w2".
    v2 = {
        **v1,
        "steps": {
            "w": {"type": "send_email", "subject": "Hello", "html": "<p>Hi</p>", "next": "w2"},
            "w2": {"type": "wait", "for": {"days": 2}, "next": "done"},
            "done": {"type": "add_tag", "tag": "after-new-wait"},
        },
    }
    assert await _put(stack, automation_id, v2) == 2

    async def in_new_wait() -> None:
        state = await handle.query("state", result_type=RunState)
        assert (state.version, state.position) == (2, "w2")

    await eventually(in_new_wait)
    await stack.env.fast_forward(handle, timedelta(hours=25))  # it ended here before the fix
    state = await handle.query("state", result_type=RunState)
    assert (state.status, state.position) == ("running", "w2")
    await stack.env.fast_forward(handle, timedelta(hours=24))
    run = await finished(stack, handle.id)
    assert [(s["step"], s["outcome"]) for s in run["steps"]] == [
        ("w", "done"),
        ("w2", "done"),
        ("done", "done"),
    ]


async def _queue_start(stack: Stack, automation_id: str, contact_id: int) -> tuple[str, int]:
    """A reserved run whose start is still queued, leased to an enrollment that has not started
    it yet (as when Temporal is down, or the enrolling process died): (workflow id, row id)."""
    async with stack.db.write() as session:
        (run,), _ = await reserve_runs(session, automation_id, [contact_id], "once")
        start = OutboxEntry(
            contact_id=contact_id,
            kind="start_run",
            claimed_until=utcnow() + 10 * OUTBOX_LEASE,
            claimed_by="enroll:test-held",
            data={"workflow_id": run.workflow_id, "automation": automation_id, "version": 1},
        )
        session.add(start)
        await session.flush()
        return run.workflow_id, start.id


async def test_a_run_started_after_an_edit_starts_on_the_new_version(stack: Stack) -> None:
    """The new version's signals go out while the start is queued: they reach no workflow, so
    the run must take the newest version when it starts (else it stays on version 1)."""
    tag = stack.unique("v2")
    v1 = five_days_then_tag(stack)
    automation_id = await stack.automation(v1)
    contact = await stack.contact()
    workflow_id, start_row = await _queue_start(stack, automation_id, contact["id"])
    assert (
        await _put(
            stack,
            automation_id,
            {**v1, "start": "n", "steps": {"n": {"type": "add_tag", "tag": tag}}},
        )
        == 2
    )

    async def change_delivered() -> None:
        async with stack.db.read() as session:
            rows = (
                await session.scalars(
                    select(OutboxEntry.data).where(OutboxEntry.kind == AUTOMATION_CHANGED)
                )
            ).all()
        assert not [d for d in rows if d["automation"] == automation_id]

    await eventually(change_delivered)
    async with stack.db.write() as session:  # the enrollment's lease given back: now it starts
        await session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id == start_row)
            .values(claimed_until=None, claimed_by=None)
        )

    async def started() -> None:
        async with stack.db.read() as session:
            assert await session.get(OutboxEntry, start_row) is None

    await eventually(started)
    run = await finished(stack, workflow_id)
    assert (run["status"], run["version"]) == ("completed", 2)
    assert [s["step"] for s in run["steps"]] == ["n"]
    assert tag in (await stack.record(contact["id"]))["tags"]
    # Loaded once, version 2 straight away: not version 1 and then a switch.
    history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
    loads = [
        e
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and b"load_automation" in e.SerializeToString()
    ]
    assert len(loads) == 1


async def test_an_edit_reaches_every_running_contact_page_by_page(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One outbox row per edit, delivered a page of runs per claim: with pages of 2, five
    waiting contacts take three claims, and every one of them moves."""
    monkeypatch.setattr(outbox, "RUNS_PER_PAGE", 2)
    pages: list[int] = []  # how many runs each page of this automation held

    async def paged(session: Any, automation: str, after: int, limit: int) -> Any:
        page = await running_runs_after(session, automation, after, limit)
        if automation == automation_id:
            pages.append(len(page))
        return page

    monkeypatch.setattr(outbox, "running_runs_after", paged)
    tag = stack.unique("paged")
    v1 = five_days_then_tag(stack)
    automation_id = await stack.automation(v1)
    contacts = [(await stack.contact())["id"] for _ in range(5)]
    with stack.env.with_time_skipping_disabled():
        handles = [await stack.enroll(c, automation_id) for c in contacts]
    for handle in handles:
        await eventually(partial(_parked_at, stack, handle.id, "w"))
    response = await stack.http.put(
        f"/api/v1/automations/{automation_id}",
        json={**v1, "start": "a", "steps": {"a": {"type": "add_tag", "tag": tag}}},
    )
    assert response.status_code == 200, response.text
    for handle in handles:
        run = await finished(stack, handle.id)
        assert [s["step"] for s in run["steps"]] == ["a"] and run["version"] == 2
    assert pages == [2, 2, 1]
