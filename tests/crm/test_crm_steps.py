"""CRM steps through real runs (docs/crm.md), deal triggers, and personalization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

from tests.helpers.crm import api_get, api_patch, api_post, sales_pipeline, sales_user
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually


def _outcomes(run: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(s["step"], s["outcome"], s["reason"]) for s in run["steps"]]


def _chain(steps: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """An automation running `steps` in order."""
    linked = {
        step_id: {**step, "next": steps[i + 1][0] if i + 1 < len(steps) else None}
        for i, (step_id, step) in enumerate(steps)
    }
    return {"start": steps[0][0], "steps": linked}


async def _run(stack: Stack, document: dict[str, Any], contact_id: int) -> dict[str, Any]:
    automation_id = await stack.automation(document)
    return await finished(stack, (await stack.enroll(contact_id, automation_id)).id)


async def test_every_crm_step_in_one_run(stack: Stack) -> None:
    pipeline = await sales_pipeline(stack)
    first, second = await sales_user(stack), await sales_user(stack, name=stack.unique("Rep"))
    company = stack.unique("Acme")
    contact = await stack.contact(
        first_name="Ada", fields={"company": company, "budget": 9000, "role": "CTO"}
    )
    before = datetime.now(UTC)
    run = await _run(
        stack,
        _chain(
            [
                (
                    "deal",
                    {
                        "type": "add_deal",
                        "title": "%FIRSTNAME%'s deal",
                        "value": 125000,
                        "currency": "USD",
                        "pipeline": pipeline,
                        "stage": "Lead",
                        "owner": first["email"],
                        "fields": {"source": "%EMAIL%"},
                    },
                ),
                ("note", {"type": "add_deal_note", "note": "%DEAL_TITLE% is worth %DEAL_VALUE%"}),
                (
                    "call",
                    {
                        "type": "add_task",
                        "title": "Call %FIRSTNAME%",
                        "task_type": "call",
                        "due_in": {"days": 2},
                        "on": "deal",
                    },
                ),
                (
                    "follow",
                    {
                        "type": "add_task",
                        "title": "Follow up",
                        "task_type": "email",
                        "due_in": {"hours": 4},
                        "assignee": second["name"],
                    },
                ),
                ("rename", {"type": "update_deal_title", "value": "%FIRSTNAME% — Pro"}),
                ("value", {"type": "update_deal_value", "value": 200000}),
                ("owner", {"type": "update_deal_owner", "value": second["email"]}),
                ("stage", {"type": "update_deal_stage", "value": "qualified"}),
                ("copy", {"type": "update_deal_field", "field": "budget", "copy_from": "budget"}),
                ("set", {"type": "update_deal_field", "field": "region", "value": "EU"}),
                ("clear", {"type": "update_deal_field", "field": "source", "clear": True}),
                (
                    "math",
                    {
                        "type": "perform_math",
                        "target": "deal",
                        "field": "budget",
                        "op": "multiply",
                        "value": 2,
                    },
                ),
                ("heat", {"type": "adjust_deal_score", "score": "heat", "op": "add", "value": 10}),
                ("done", {"type": "complete_task", "task_type": "call"}),
                ("none_left", {"type": "complete_task", "title": "Call Ada"}),
                (
                    "join",
                    {"type": "add_to_account", "account": "%COMPANY%", "job_title": "%ROLE%"},
                ),
                ("again", {"type": "add_to_account", "account": company.upper()}),
                ("industry", {"type": "update_account_field", "field": "industry", "value": "IT"}),
                ("url", {"type": "update_account_field", "field": "url", "value": "https://a.io"}),
                (
                    "contact_note",
                    {"type": "add_contact_note", "note": "%ACCOUNT_NAME%: %DEAL_TITLE%"},
                ),
                ("won", {"type": "update_deal_status", "value": "won"}),
                ("after", {"type": "add_deal_note", "note": "a won deal is still the deal"}),
            ]
        ),
        contact["id"],
    )
    assert run["status"] == "completed"
    assert [o for o in _outcomes(run) if o[1] != "done"] == [
        ("none_left", "skipped", "no_open_task"),
        ("again", "skipped", "already_in_account"),
    ]

    record = await stack.record(contact["id"])
    (deal,) = record["deals"]
    assert deal == {
        **deal,
        "title": "Ada — Pro",
        "value": 200000,
        "currency": "USD",
        "status": "won",
        "pipeline": pipeline,
        "stage": "Qualified",
        "fields": {"budget": 18000, "region": "EU"},
        "scores": {"heat": 10.0},
        "contacts": [contact["id"]],
    }
    assert deal["owner"]["id"] == second["id"]
    notes = await api_get(stack, f"/deals/{deal['id']}/notes")
    assert [n["note"] for n in notes["items"]] == [
        "Ada's deal is worth $1,250.00",
        "a won deal is still the deal",
    ]
    call, follow = sorted(record["tasks"], key=lambda t: t["id"])
    assert (call["title"], call["type"], call["deal"], call["done"]) == (
        "Call Ada",
        "call",
        deal["id"],
        True,
    )
    assert call["assignee"]["id"] == first["id"]  # a deal's task goes to the deal's owner
    due = datetime.fromisoformat(call["due_at"])
    assert before + timedelta(days=2) <= due <= datetime.now(UTC) + timedelta(days=2)
    assert (follow["contact"], follow["deal"], follow["assignee"]["id"], follow["done"]) == (
        contact["id"],
        None,
        second["id"],
        False,
    )
    account = record["account"]
    assert (account["name"], account["job_title"], account["url"]) == (
        company,
        "CTO",
        "https://a.io",
    )
    assert account["fields"] == {"industry": "IT"}
    assert [n["note"] for n in record["notes"]] == [f"{company}: Ada — Pro"]


async def test_no_deal_skips_and_unknown_names_fail_naming_them(stack: Stack) -> None:
    pipeline = await sales_pipeline(stack)
    contact = await stack.contact()
    without = await _run(
        stack,
        _chain(
            [
                ("title", {"type": "update_deal_title", "value": "x"}),
                ("task", {"type": "add_task", "title": "t", "due_in": {"days": 1}, "on": "deal"}),
                ("complete", {"type": "complete_task"}),
                ("score", {"type": "adjust_deal_score", "score": "s", "op": "reset"}),
                (
                    "math",
                    {
                        "type": "perform_math",
                        "target": "deal",
                        "field": "f",
                        "op": "add",
                        "value": 1,
                    },
                ),
                ("account", {"type": "update_account_field", "field": "f", "value": 1}),
                ("nobody", {"type": "add_to_account", "account": "%COMPANY%"}),
            ]
        ),
        contact["id"],
    )
    assert _outcomes(without) == [
        ("title", "skipped", "no_deal"),
        ("task", "skipped", "no_deal"),
        ("complete", "skipped", "no_open_task"),
        ("score", "skipped", "no_deal"),
        ("math", "skipped", "no_deal"),
        ("account", "skipped", "no_account"),
        ("nobody", "skipped", "no_account_name"),
    ]

    deal = {"type": "add_deal", "title": "D", "value": 1, "currency": "EUR"}
    document = _chain(
        [
            ("no_pipeline", {**deal, "pipeline": "Atlantis", "stage": "Lead"}),
            ("no_stage", {**deal, "pipeline": pipeline, "stage": "Orbit"}),
            ("no_owner", {**deal, "pipeline": pipeline, "stage": "Lead", "owner": "ghost"}),
            ("ok", {**deal, "pipeline": pipeline, "stage": "Lead"}),
            ("bad_stage", {"type": "update_deal_stage", "value": "Orbit"}),
            ("bad_owner", {"type": "update_deal_owner", "value": "ghost@example.com"}),
            ("bad_scope", {"type": "add_deal_note", "note": "n", "pipeline": "Atlantis"}),
            (
                "bad_math",
                {
                    "type": "perform_math",
                    "target": "deal",
                    "pipeline": "Atlantis",
                    "field": "f",
                    "op": "add",
                    "value": 1,
                },
            ),
            (
                "bad_assignee",
                {"type": "add_task", "title": "t", "due_in": {"days": 1}, "assignee": "ghost"},
            ),
            ("fatal", {"type": "update_deal_stage", "value": "Orbit", "on_error": "end"}),
            ("never", {"type": "add_tag", "tag": "never"}),
        ]
    )
    document["triggers"] = [{"type": "deal_stage_changed", "pipeline": pipeline, "stage": "Orbit"}]
    saved = await stack.http.post("/api/v1/automations", json={"name": "refs", **document})
    assert saved.status_code == 201, saved.text
    warned = {(w["step"], w["path"]) for w in saved.json()["warnings"]}
    assert {
        ("no_pipeline", "steps.no_pipeline.pipeline"),
        ("no_stage", "steps.no_stage.stage"),
        ("no_owner", "steps.no_owner.owner"),
        ("bad_stage", "steps.bad_stage.value"),
        ("bad_owner", "steps.bad_owner.value"),
        ("bad_scope", "steps.bad_scope.pipeline"),
        ("bad_math", "steps.bad_math.pipeline"),
        ("bad_assignee", "steps.bad_assignee.assignee"),
        (None, "triggers.0.stage"),
    } <= warned
    assert ("ok", "steps.ok.stage") not in warned
    handle = await stack.enroll(contact["id"], saved.json()["id"])
    run = await finished(stack, handle.id)
    assert (run["status"], run["reason"]) == ("failed", "step_failed:fatal")
    reasons = {step: reason for step, outcome, reason in _outcomes(run) if outcome == "failed"}
    assert set(reasons) == {
        "no_pipeline",
        "no_stage",
        "no_owner",
        "bad_stage",
        "bad_owner",
        "bad_scope",
        "bad_math",
        "bad_assignee",
        "fatal",
    }
    assert all("Atlantis" in reasons[step] for step in ("no_pipeline", "bad_scope", "bad_math"))
    assert "Orbit" in reasons["no_stage"] and "Orbit" in reasons["bad_stage"]
    assert "ghost" in reasons["no_owner"] and "ghost@example.com" in reasons["bad_owner"]
    # A failed step wrote nothing: only the "ok" deal exists.
    assert [d["title"] for d in (await stack.record(contact["id"]))["deals"]] == ["D"]


async def test_deal_stage_and_score_triggers_fire_from_the_api_and_from_steps(
    stack: Stack,
) -> None:
    pipeline = await sales_pipeline(stack)
    won, hot, either = stack.unique("won"), stack.unique("hot"), stack.unique("either")
    heat = stack.unique("heat")
    await stack.automation(
        {
            "triggers": [{"type": "deal_stage_changed", "pipeline": pipeline, "stage": "won"}],
            "entry": "multiple",
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": won}},
        }
    )
    await stack.automation(
        {
            "triggers": [
                {"type": "score_changed", "score": heat, "op": "gte", "value": 50, "target": "deal"}
            ],
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": hot}},
        }
    )
    await stack.automation(
        {
            "triggers": [{"type": "score_changed", "score": heat, "op": "gte", "value": 50}],
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": either}},
        }
    )

    # From the API: a rep moves the deal, and sets its score.
    by_api = await stack.contact()
    deal = await api_post(
        stack,
        "/deals",
        {"title": "API", "currency": "USD", "pipeline": pipeline, "contacts": [by_api["id"]]},
    )
    await api_patch(stack, f"/deals/{deal['id']}", {"stage": "Qualified"})
    await api_patch(stack, f"/deals/{deal['id']}", {"stage": "Won", "scores": {heat: 70}})

    async def api_fired() -> None:
        tags = (await stack.record(by_api["id"]))["tags"]
        assert {won, hot, either} <= set(tags), tags

    await eventually(api_fired)

    # From steps: a deal scored past the threshold in two steps (fires once), then won.
    by_step = await stack.contact()
    run = await _run(
        stack,
        _chain(
            [
                (
                    "deal",
                    {
                        "type": "add_deal",
                        "title": "Step",
                        "value": 0,
                        "currency": "USD",
                        "pipeline": pipeline,
                        "stage": "Lead",
                    },
                ),
                ("warm", {"type": "adjust_deal_score", "score": heat, "op": "add", "value": 30}),
                ("hot", {"type": "adjust_deal_score", "score": heat, "op": "add", "value": 30}),
                ("hotter", {"type": "adjust_deal_score", "score": heat, "op": "add", "value": 30}),
                ("won", {"type": "update_deal_stage", "value": "Won"}),
            ]
        ),
        by_step["id"],
    )
    assert run["status"] == "completed"

    async def steps_fired() -> None:
        record = await stack.record(by_step["id"])
        assert {won, hot, either} <= set(record["tags"]), record["tags"]
        # Each listener ran once: crossing the threshold fires once, not on every change.
        assert len(record["automations"]) == 4

    await eventually(steps_fired)

    # A contact score of the same name fires the "either" trigger but not the deal one.
    by_contact = await stack.contact()
    await _run(
        stack,
        _chain([("s", {"type": "adjust_contact_score", "score": heat, "op": "set", "value": 99})]),
        by_contact["id"],
    )

    async def contact_fired() -> None:
        tags = (await stack.record(by_contact["id"]))["tags"]
        assert either in tags and hot not in tags, tags

    await eventually(contact_fired)


async def test_crm_values_personalize_email_and_contact_steps(stack: Stack) -> None:
    pipeline = await sales_pipeline(stack)
    company = stack.unique("Globex")
    contact = await stack.contact(first_name="Bo")
    run = await _run(
        stack,
        _chain(
            [
                (
                    "deal",
                    {
                        "type": "add_deal",
                        "title": "Deal for %FIRSTNAME%",
                        "value": 99950,
                        "currency": "EUR",
                        "pipeline": pipeline,
                        "stage": "Lead",
                    },
                ),
                ("join", {"type": "add_to_account", "account": company}),
                (
                    "fields",
                    {
                        "type": "update_contact",
                        "fields": {"quote": "%DEAL_VALUE% at %ACCOUNT_NAME%"},
                    },
                ),
                (
                    "mail",
                    {
                        "type": "send_email",
                        "subject": "%DEAL_TITLE%",
                        "html": "<p>%DEAL_VALUE% for %ACCOUNT_NAME%</p>",
                    },
                ),
            ]
        ),
        contact["id"],
    )
    assert [o[1] for o in _outcomes(run)] == ["done"] * 4
    record = await stack.record(contact["id"])
    assert record["fields"]["quote"] == f"€999.50 at {company}"
    (message,) = stack.mailbox.to(contact["email"])
    assert message["Subject"] == "Deal for Bo"
    assert f"€999.50 for {company}" in _html(message)


def _html(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


async def test_a_wait_on_a_deal_condition_is_released_by_a_deal_change(stack: Stack) -> None:
    pipeline = await sales_pipeline(stack)
    contact = await stack.contact()
    automation_id = await stack.automation(
        _chain(
            [
                (
                    "deal",
                    {
                        "type": "add_deal",
                        "title": "Waiting",
                        "value": 0,
                        "currency": "USD",
                        "pipeline": pipeline,
                        "stage": "Lead",
                    },
                ),
                (
                    "hold",
                    {
                        "type": "wait",
                        "condition": {"deal": {"field": "value", "op": "gte", "value": 5000}},
                        "timeout": {"days": 30},
                    },
                ),
                ("released", {"type": "add_tag", "tag": "big-deal"}),
            ]
        )
    )
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)

    async def parked() -> None:
        assert (await stack.run(handle.id))["current_step"] == "hold"

    await eventually(parked)
    (deal,) = (await stack.record(contact["id"]))["deals"]
    await api_patch(stack, f"/deals/{deal['id']}", {"value": 7500})
    run = await finished(stack, handle.id)
    assert _outcomes(run)[1:] == [("hold", "done", "condition_met"), ("released", "done", None)]


async def test_a_contact_score_set_through_the_api_fires_score_changed(stack: Stack) -> None:
    """`PATCH /contacts/{id}` with `scores` sets them through the store function the step
    uses, so a threshold crossed there fires `score_changed` as a step's change does."""
    lead, hot = stack.unique("lead"), stack.unique("hot")
    await stack.automation(
        {
            "triggers": [
                {
                    "type": "score_changed",
                    "score": lead,
                    "op": "gte",
                    "value": 50,
                    "target": "contact",
                }
            ],
            "entry": "multiple",
            "start": "t",
            "steps": {"t": {"type": "adjust_contact_score", "score": hot, "op": "add", "value": 1}},
        }
    )
    contact = await stack.contact()
    path = f"/contacts/{contact['id']}"
    below = await api_patch(stack, path, {"scores": {lead: 40}})
    assert below["scores"] == {lead: 40.0}
    crossed = await api_patch(stack, path, {"scores": {f" {lead} ": 60}, "first_name": "Ada"})
    assert (crossed["scores"], crossed["first_name"]) == ({lead: 60.0}, "Ada")

    async def fired_once() -> None:
        record = await stack.record(contact["id"])
        assert record["scores"] == {lead: 60.0, hot: 1.0}, record["scores"]
        assert all(a["status"] == "completed" for a in record["automations"])

    await eventually(fired_once)
    # Still above the threshold: no crossing, no second run.
    await api_patch(stack, path, {"scores": {lead: 70}})
    await api_patch(stack, path, {"scores": {lead: 10}})
    await api_patch(stack, path, {"scores": {lead: 55}})  # crossing again: fires again

    async def fired_twice() -> None:
        record = await stack.record(contact["id"])
        assert record["scores"] == {lead: 55.0, hot: 2.0}, record["scores"]

    await eventually(fired_twice)
    assert len((await stack.record(contact["id"]))["automations"]) == 2

    for bad in ({lead: "lots"}, {lead: None}, {"": 1}, {lead: [1]}, {lead: {"v": 1}}):
        response = await stack.http.patch(f"/api/v1{path}", json={"scores": bad})
        assert response.status_code == 422, (bad, response.text)
    assert (await stack.record(contact["id"]))["scores"] == {lead: 55.0, hot: 2.0}


async def test_a_goal_on_a_deal_condition_is_met_when_the_deal_is_marked_won(
    stack: Stack,
) -> None:
    pipeline = await sales_pipeline(stack)
    contact = await stack.contact()
    automation_id = await stack.automation(
        {
            "start": "deal",
            "steps": {
                "deal": {
                    "type": "add_deal",
                    "title": "Goal deal",
                    "value": 100,
                    "currency": "USD",
                    "pipeline": pipeline,
                    "stage": "Lead",
                    "next": "nurture",
                },
                "nurture": {"type": "wait", "for": {"days": 30}, "next": "lost_hope"},
                "lost_hope": {"type": "add_tag", "tag": "lost-hope", "next": None},
                "won": {
                    "type": "goal",
                    "condition": {
                        "deal": {"field": "status", "op": "is", "value": "won"},
                        "pipeline": pipeline,
                    },
                    "next": "thanks",
                },
                "thanks": {"type": "add_tag", "tag": "thanked", "next": None},
            },
        }
    )
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)

        async def parked() -> None:
            assert (await stack.run(handle.id))["current_step"] == "nurture"

        await eventually(parked)
        (deal,) = (await stack.record(contact["id"]))["deals"]
        await api_patch(stack, f"/deals/{deal['id']}", {"status": "won"})
        run = await finished(stack, handle.id)
    assert (run["status"], run["goals"]) == ("completed", ["won"])
    steps = [step for step, _, _ in _outcomes(run)]
    assert steps[0] == "deal" and steps[-2:] == ["won", "thanks"], steps
    tags = (await stack.record(contact["id"]))["tags"]
    assert "thanked" in tags and "lost-hope" not in tags


async def test_a_trigger_filter_on_a_deal_condition_enrolls_only_matching_contacts(
    stack: Stack,
) -> None:
    pipeline = await sales_pipeline(stack)
    tag, entered, heard = stack.unique("demo-booked"), stack.unique("entered"), stack.unique("h")
    # A witness without a filter: once it has run for a contact, that contact's tag_added was
    # matched against every trigger, the filtered one included.
    await stack.automation(
        {
            "triggers": [{"type": "tag_added", "tag": tag}],
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": heard}},
        }
    )
    await stack.automation(
        {
            "triggers": [
                {
                    "type": "tag_added",
                    "tag": tag,
                    "filter": {
                        "deal": {"field": "stage", "op": "is", "value": "Qualified"},
                        "pipeline": pipeline,
                    },
                }
            ],
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": entered}},
        }
    )
    qualified, lead, dealless = [await stack.contact() for _ in range(3)]
    for contact, stage in ((qualified, "Qualified"), (lead, "Lead")):
        await api_post(
            stack,
            "/deals",
            {
                "title": "Filter",
                "currency": "USD",
                "pipeline": pipeline,
                "stage": stage,
                "contacts": [contact["id"]],
            },
        )
    for contact in (qualified, lead, dealless):
        await api_post(stack, f"/contacts/{contact['id']}/tags", {"tag": tag})

    async def all_heard() -> list[set[str]]:
        records = [await stack.record(c["id"]) for c in (qualified, lead, dealless)]
        assert all(heard in r["tags"] for r in records), [r["tags"] for r in records]
        assert all(a["status"] == "completed" for r in records for a in r["automations"])
        return [set(r["tags"]) for r in records]

    entered_by = [entered in tags for tags in await eventually(all_heard)]
    assert entered_by == [True, False, False]
