"""What the Studio lists of automations: each one's triggers, run counts and goal rate; and the
contacts waiting at one step (docs/api.md#routes, docs/reports.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import event

from store.db import open_database
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, api_client, eventually

FLOW: dict[str, Any] = {
    "triggers": [
        {"type": "tag_added", "tag": "overview-never-added"},
        {"type": "event", "event": "overview-never-sent"},
    ],
    "start": "pause",
    "steps": {
        "pause": {"type": "wait", "for": {"days": 5}, "next": "later"},
        "later": {"type": "wait", "for": {"days": 5}, "next": "tag"},
        "tag": {"type": "add_tag", "tag": "overview"},
        "bought": {"type": "goal", "condition": {"event": "purchase"}, "next": "thanks"},
        "thanks": {"type": "add_tag", "tag": "overview-customer"},
    },
}


async def _listed(stack: Stack, automation_id: str) -> dict[str, Any]:
    answer = await stack.http.get("/api/v1/automations")
    assert answer.status_code == 200, answer.text
    return next(a for a in answer.json() if a["id"] == automation_id)


async def test_the_list_counts_runs_and_goals(any_stack: Stack) -> None:
    stack = any_stack
    automation_id = await stack.automation(FLOW)
    fresh = await _listed(stack, automation_id)
    assert fresh["triggers"] == ["tag_added", "event"]
    assert fresh["counts"] == {"running": 0, "completed": 0, "waiting": 0}
    assert fresh["goal_rate"] is None  # no runs, no rate
    assert {"id", "name", "status", "version", "created_at", "updated_at"} <= set(fresh)

    done = await stack.contact()
    await finished(stack, (await stack.enroll(done["id"], automation_id)).id)  # time skipped
    contacts = [await stack.contact(first_name=f"W{i}") for i in range(3)]
    with stack.env.with_time_skipping_disabled():  # these must really sit in the wait
        waiting = [await stack.enroll(c["id"], automation_id) for c in contacts]

    async def parked() -> None:
        listed = await _listed(stack, automation_id)
        assert listed["counts"] == {"running": 3, "completed": 1, "waiting": 3}, listed

    await eventually(parked)
    bought = {"contact": contacts[0]["id"], "event": "purchase"}
    assert (await stack.http.post("/api/v1/events", json=bought)).status_code == 202
    await finished(stack, waiting[0].id)

    listed = await _listed(stack, automation_id)
    assert listed["counts"] == {"running": 2, "completed": 2, "waiting": 2}
    assert listed["goal_rate"] == pytest.approx(1 / 4)  # one run of four reached the goal

    # A version without triggers: the list shows the current version's.
    no_triggers = {"name": "No triggers", **{k: v for k, v in FLOW.items() if k != "triggers"}}
    saved = await stack.http.put(f"/api/v1/automations/{automation_id}", json=no_triggers)
    assert saved.status_code == 200, saved.text
    assert (await _listed(stack, automation_id))["triggers"] == []


async def test_the_list_reads_all_automations_in_four_queries(stack: Stack, tmp_path: Path) -> None:
    """However many automations there are: no query per automation. Over a database of its
    own, so that no other test's worker reads in the middle."""
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'overview.db'}")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "outbox" not in statement:
            statements.append(statement)  # the API's outbox dispatcher polls on its own

    try:
        async with api_client(stack.settings, stack.client, db) as http:
            for n in (1, 4):
                while len((await http.get("/api/v1/automations")).json()) < n:
                    created = await http.post(
                        "/api/v1/automations", json={"name": stack.unique(), **FLOW}
                    )
                    assert created.status_code == 201, created.text
                event.listen(db.read_engine.sync_engine, "before_cursor_execute", record)
                try:
                    answer = await http.get("/api/v1/automations")
                finally:
                    event.remove(db.read_engine.sync_engine, "before_cursor_execute", record)
                assert len(answer.json()) == n
                # The automations, then their triggers, run counts and goals.
                assert len(statements) == 4, statements
                statements.clear()
    finally:
        await db.dispose()


async def test_contacts_waiting_at_a_step(any_stack: Stack) -> None:
    stack = any_stack
    automation_id = await stack.automation(FLOW)
    contacts = [await stack.contact(first_name="Wait", last_name=f"Er{i}") for i in range(5)]
    with stack.env.with_time_skipping_disabled():
        runs = [await stack.enroll(c["id"], automation_id) for c in contacts]
    base = f"/api/v1/automations/{automation_id}/contacts"

    async def all_parked() -> dict[str, Any]:
        page = (await stack.http.get(base, params={"step": "pause", "status": "running"})).json()
        assert page["total"] == 5, page
        return page  # type: ignore[no-any-return]

    page = await eventually(all_parked)
    first = page["contacts"][0]  # newest first
    assert first["contact_id"] == contacts[-1]["id"] and first["workflow_id"] == runs[-1].id
    assert (first["email"], first["first_name"], first["last_name"]) == (
        contacts[-1]["email"],
        "Wait",
        "Er4",
    )
    assert first["current_step"] == "pause" and first["held"] is False
    assert first["last_activity_at"] >= first["entered_at"]
    assert first["temporal_ui_url"] == (
        f"{stack.settings.temporal_ui_url}/namespaces/default/workflows/{quote(runs[-1].id, safe='')}"
    )
    paged = (await stack.http.get(base, params={"step": "pause", "limit": 2, "offset": 2})).json()
    assert (paged["total"], paged["limit"], paged["offset"]) == (5, 2, 2)
    assert [c["contact_id"] for c in paged["contacts"]] == [contacts[2]["id"], contacts[1]["id"]]
    elsewhere = (await stack.http.get(base, params={"step": "later"})).json()
    assert elsewhere == {"total": 0, "limit": 100, "offset": 0, "contacts": []}
    too_long = await stack.http.get(base, params={"step": "x" * 65})
    assert too_long.status_code == 422
