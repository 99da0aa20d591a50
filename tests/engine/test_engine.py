"""AutomationRun end to end: real dev server (time-skipping v2), real SMTP, the API as entry point."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from store.models import StepEvent
from tests.helpers.faults import commit_lost_once
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually
from workflows.contracts import RunState


async def test_contact_steps_and_email_run_in_order(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "tag",
            "steps": {
                "tag": {"type": "add_tag", "tag": "lead", "next": "fields"},
                "fields": {
                    "type": "update_contact",
                    "fields": {"last_name": "Lovelace", "plan": "pro-%FIRSTNAME%"},
                    "next": "score",
                },
                "score": {
                    "type": "adjust_contact_score",
                    "score": "engagement",
                    "op": "add",
                    "value": 5,
                    "next": "note",
                },
                "note": {
                    "type": "add_contact_note",
                    "note": "Welcomed %FIRSTNAME%",
                    "next": "list",
                },
                "list": {"type": "subscribe", "list": "newsletter", "next": "convert"},
                "convert": {"type": "convert", "conversion": "signup", "value": 10, "next": "math"},
                "math": {
                    "type": "perform_math",
                    "target": "contact",
                    "field": "credits",
                    "op": "add",
                    "value": 3,
                    "next": "untag",
                },
                "untag": {"type": "remove_tag", "tag": "cold", "next": "mail"},
                "mail": {
                    "type": "send_email",
                    "subject": "Hi %FIRSTNAME%",
                    "html": "<p>Welcome, %FIRSTNAME%!</p>",
                    "next": "sms",
                },
                "sms": {"type": "send_sms", "body": "hello"},
            },
        }
    )
    contact = await stack.contact(first_name="Ada", fields={"credits": 4})
    await stack.http.post(f"/api/v1/contacts/{contact['id']}/tags", json={"tag": "cold"})
    handle = await stack.enroll(contact["id"], automation_id)
    run = await finished(stack, handle.id)

    assert run["status"] == "completed"
    assert [(s["step"], s["outcome"]) for s in run["steps"]] == [
        ("tag", "done"),
        ("fields", "done"),
        ("score", "done"),
        ("note", "done"),
        ("list", "done"),
        ("convert", "done"),
        ("math", "done"),
        ("untag", "done"),
        ("mail", "done"),
        ("sms", "skipped"),
    ]
    assert run["steps"][-1]["reason"] == "no_phone"
    record = await stack.record(contact["id"])
    assert record["tags"] == ["lead"]
    assert record["last_name"] == "Lovelace"
    assert record["fields"] == {"credits": 7, "plan": "pro-Ada"}
    assert record["scores"] == {"engagement": 5.0}
    assert [n["note"] for n in record["notes"]] == ["Welcomed Ada"]
    assert record["lists"] == [{"list": "newsletter", "status": "active"}]
    assert [c["conversion"] for c in record["conversions"]] == ["signup"]
    (message,) = stack.mailbox.to(contact["email"])
    assert message["Subject"] == "Hi Ada"
    # The workflow id percent-encoded, the step visit, the host of CAIRN_PUBLIC_URL.
    assert message["Message-ID"] == f"<{handle.id.replace(':', '%3A')}.9@localhost>"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(
        decode=True
    )
    assert b"Welcome, Ada!" in html
    assert run["temporal_ui_url"].endswith(handle.id.replace(":", "%3A"))


async def test_multi_day_wait_then_branch(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "pause",
            "steps": {
                "pause": {"type": "wait", "for": {"days": 3}, "next": "check"},
                "check": {
                    "type": "if_else",
                    "condition": {"tag": "vip"},
                    "yes": "vip",
                    "no": "regular",
                },
                "vip": {"type": "add_tag", "tag": "got-vip-path"},
                "regular": {"type": "add_tag", "tag": "got-regular-path"},
            },
        }
    )
    vip, regular = await stack.contact(), await stack.contact()
    await stack.http.post(f"/api/v1/contacts/{vip['id']}/tags", json={"tag": "vip"})
    runs = [await stack.enroll(c["id"], automation_id) for c in (vip, regular)]
    results = [await finished(stack, h.id) for h in runs]
    assert [r["steps"][1]["reason"] for r in results] == ["yes", "no"]
    assert "got-vip-path" in (await stack.record(vip["id"]))["tags"]
    assert "got-regular-path" in (await stack.record(regular["id"]))["tags"]
    # The 3-day timer really elapsed in the runs' own (skipped) clock: the branch was taken three
    # days after the run started, not before, and not a day later.
    for result in results:
        started = datetime.fromisoformat(result["started_at"])
        (branched,) = [s for s in result["steps"] if s["step"] == "check"]
        waited = datetime.fromisoformat(branched["at"]) - started
        assert timedelta(days=3) <= waited < timedelta(days=3, hours=1), (waited, result)


async def test_goal_jumps_out_of_a_multi_day_wait(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "pitch",
            "steps": {
                "pitch": {"type": "add_tag", "tag": "pitched", "next": "pause"},
                "pause": {"type": "wait", "for": {"days": 5}, "next": "reminder"},
                "reminder": {"type": "add_tag", "tag": "reminded", "next": "bought"},
                "bought": {"type": "goal", "condition": {"event": "purchase"}, "next": "thanks"},
                "thanks": {"type": "add_tag", "tag": "thanked"},
            },
        }
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():  # the contact must really sit in the wait
        handle = await stack.enroll(contact["id"], automation_id)

    async def parked() -> None:
        assert (await stack.run(handle.id))["current_step"] == "pause"

    await eventually(parked)
    assert (
        await stack.http.post(
            "/api/v1/events", json={"contact": contact["id"], "event": "purchase"}
        )
    ).status_code == 202
    run = await finished(stack, handle.id)
    assert run["goals"] == ["bought"]
    assert [(s["step"], s["reason"]) for s in run["steps"]][1:] == [
        ("pause", "goal:bought"),
        ("bought", "goal_achieved"),
        ("thanks", None),
    ]
    assert "reminded" not in (await stack.record(contact["id"]))["tags"]


async def test_conditional_wait_released_by_api_change_and_by_timeout(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "hold",
            "steps": {
                "hold": {
                    "type": "wait",
                    "condition": {"field": "plan", "op": "is", "value": "pro"},
                    "timeout": {"days": 2},
                    "next": "done",
                },
                "done": {"type": "add_tag", "tag": "released"},
            },
        }
    )
    by_change, by_timeout = await stack.contact(), await stack.contact()
    with stack.env.with_time_skipping_disabled():
        held = await stack.enroll(by_change["id"], automation_id)

    async def parked() -> None:
        assert (await stack.run(held.id))["current_step"] == "hold"

    await eventually(parked)
    await stack.http.patch(f"/api/v1/contacts/{by_change['id']}", json={"fields": {"plan": "pro"}})
    released = await finished(stack, held.id)
    assert released["steps"][0]["reason"] == "condition_met"

    timed = await stack.enroll(by_timeout["id"], automation_id)  # time skipping on: 2 days pass
    run = await finished(stack, timed.id)
    assert [(s["step"], s["outcome"], s["reason"]) for s in run["steps"]] == [
        ("hold", "done", None),
        ("done", "done", None),
    ]


async def test_even_split_is_exactly_fair_and_a_winner_takes_over(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "split",
            "steps": {
                "split": {"type": "split", "mode": "even", "paths": [{"next": "a"}, {"next": "b"}]},
                "a": {"type": "add_tag", "tag": "path-a"},
                "b": {"type": "add_tag", "tag": "path-b"},
            },
        }
    )
    contacts = await asyncio.gather(*(stack.contact() for _ in range(100)))
    handles = await asyncio.gather(*(stack.enroll(c["id"], automation_id) for c in contacts))
    states = await asyncio.gather(*(h.result() for h in handles))
    paths = [s.split_paths["split"] for s in states]
    assert paths.count(0) == 50 and paths.count(1) == 50

    winner = await stack.automation(
        {
            "start": "split",
            "steps": {
                "split": {
                    "type": "split",
                    "mode": "even",
                    "paths": [{"next": None}, {"next": None}, {"next": None}],
                    "winner": {"condition": {"tag": "clicked"}, "after_contacts": 6},
                },
            },
        }
    )
    first = [await stack.contact() for _ in range(6)]
    early = [await (await stack.enroll(c["id"], winner)).result() for c in first]
    assert [s.split_paths["split"] for s in early] == [0, 1, 2, 0, 1, 2]
    # Path 2's contacts click: one of two (50%) against none elsewhere.
    await stack.http.post(f"/api/v1/contacts/{first[2]['id']}/tags", json={"tag": "clicked"})
    later = [
        await (await stack.enroll((await stack.contact())["id"], winner)).result() for _ in range(4)
    ]
    assert [s.split_paths["split"] for s in later] == [2, 2, 2, 2]


async def test_entry_once_refuses_a_second_enrollment(stack: Stack) -> None:
    automation_id = await stack.automation(
        {"start": "t", "steps": {"t": {"type": "add_tag", "tag": "x"}}}
    )
    contact = await stack.contact()
    handle = await stack.enroll(contact["id"], automation_id)
    await finished(stack, handle.id)
    again = await stack.http.post(
        f"/api/v1/contacts/{contact['id']}/automations", json={"automation": automation_id}
    )
    assert again.status_code == 409
    assert "already_entered" in again.json()["detail"]


async def test_entry_multiple_never_runs_twice_at_once(stack: Stack) -> None:
    automation_id = await stack.automation(
        {"entry": "multiple", "start": "w", "steps": {"w": {"type": "wait", "for": {"days": 1}}}}
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        first = await stack.enroll(contact["id"], automation_id)
        attempts = await asyncio.gather(
            *(
                stack.http.post(
                    f"/api/v1/contacts/{contact['id']}/automations",
                    json={"automation": automation_id},
                )
                for _ in range(5)
            )
        )
    assert {r.status_code for r in attempts} == {409}
    await stack.http.delete(f"/api/v1/contacts/{contact['id']}/automations/{automation_id}")
    ended = await finished(stack, first.id)
    assert (ended["status"], ended["reason"]) == ("ended", "ended_by:api")
    second = await stack.enroll(contact["id"], automation_id)
    assert second.id == f"cairn:{automation_id}:{contact['id']}:2"


async def test_start_and_end_other_automations(stack: Stack) -> None:
    long_wait = await stack.automation(
        {"start": "w", "steps": {"w": {"type": "wait", "for": {"days": 30}}}}
    )
    follow_up = await stack.automation(
        {"start": "t", "steps": {"t": {"type": "add_tag", "tag": "followed-up"}}}
    )
    controller = await stack.automation(
        {
            "start": "start",
            "steps": {
                "start": {"type": "start_automation", "automation": follow_up, "next": "stop"},
                "stop": {"type": "end_automation", "automation": long_wait},
            },
        }
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        waiting = await stack.enroll(contact["id"], long_wait)
        await eventually(lambda: _at(stack, waiting.id, "w"))
        control = await stack.enroll(contact["id"], controller)
    assert (await finished(stack, control.id))["status"] == "completed"
    ended = await finished(stack, waiting.id)
    assert (ended["status"], ended["reason"]) == ("ended", f"ended_by:{controller}")
    await eventually(lambda: _tagged(stack, contact["id"], "followed-up"))


async def test_start_automation_obeys_the_targets_entry_rule(stack: Stack) -> None:
    once = await stack.automation(
        {"start": "t", "steps": {"t": {"type": "add_tag", "tag": stack.unique("once")}}}
    )
    starter = await stack.automation(
        {
            "entry": "multiple",
            "start": "go",
            "steps": {"go": {"type": "start_automation", "automation": once}},
        }
    )
    contact = await stack.contact()
    first = await finished(stack, (await stack.enroll(contact["id"], starter)).id)
    assert [(s["step"], s["outcome"], s["reason"]) for s in first["steps"]] == [
        ("go", "done", None)
    ]

    async def entered_once() -> None:
        runs = (await stack.record(contact["id"]))["automations"]
        assert [r["status"] for r in runs if r["automation"] == once] == ["completed"]

    await eventually(entered_once)
    # The target's entry is "once": a second start is refused, recorded, not failed.
    second = await finished(stack, (await stack.enroll(contact["id"], starter)).id)
    assert [(s["step"], s["outcome"], s["reason"]) for s in second["steps"]] == [
        ("go", "skipped", "entry_refused:already_entered")
    ]
    await entered_once()


async def test_the_conversion_leaf_holds_once_the_conversion_is_recorded(stack: Stack) -> None:
    name = stack.unique("signup")
    check = {
        "type": "if_else",
        "condition": {"conversion": name},
        "yes": None,
        "no": None,
    }
    automation_id = await stack.automation(
        {
            "start": "before",
            "steps": {
                "before": {**check, "yes": None, "no": "convert"},
                "convert": {"type": "convert", "conversion": name, "next": "after"},
                "after": check,
            },
        }
    )
    contact = await stack.contact()
    run = await finished(stack, (await stack.enroll(contact["id"], automation_id)).id)
    assert [(s["step"], s["reason"]) for s in run["steps"]] == [
        ("before", "no"),
        ("convert", None),
        ("after", "yes"),
    ]


async def _at(stack: Stack, workflow_id: str, step: str) -> None:
    assert (await stack.run(workflow_id))["current_step"] == step


async def _tagged(stack: Stack, contact_id: int, tag: str) -> None:
    assert tag in (await stack.record(contact_id))["tags"]


async def test_a_step_change_fires_triggers_like_an_api_change(stack: Stack) -> None:
    tag = stack.unique("hot")
    listener = await stack.automation(
        {
            "triggers": [{"type": "tag_added", "tag": tag}],
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": "heard"}},
        }
    )
    tagger = await stack.automation({"start": "t", "steps": {"t": {"type": "add_tag", "tag": tag}}})
    contact = await stack.contact()
    await finished(stack, (await stack.enroll(contact["id"], tagger)).id)

    async def enrolled() -> None:
        record = await stack.record(contact["id"])
        assert {a["automation"] for a in record["automations"]} == {tagger, listener}
        assert "heard" in record["tags"]

    await eventually(enrolled)


async def test_goto_loop_continues_as_new_and_keeps_its_state(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "bump",
            "steps": {
                "bump": {
                    "type": "adjust_contact_score",
                    "score": "loops",
                    "op": "add",
                    "value": 1,
                    "next": "pause",
                },
                "pause": {"type": "wait", "for": {"hours": 3}, "next": "check"},
                "check": {
                    "type": "if_else",
                    "condition": {"score": "loops", "op": "lt", "value": 12},
                    "yes": "again",
                    "no": None,
                },
                "again": {"type": "goto", "target": "bump"},
            },
        }
    )
    contact = await stack.contact()
    handle = await stack.enroll(contact["id"], automation_id)
    state = await handle.result()
    assert (await stack.record(contact["id"]))["scores"] == {"loops": 12.0}
    assert state.status == "completed"
    assert state.steps_taken == 12 * 4 - 1
    runs = [e async for e in stack.client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) > 1, "the loop should have continued as new"
    assert state.visit == 12 * 4 - 1


async def test_goto_guard_ends_a_loop_without_wait(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "a",
            "steps": {
                "a": {"type": "add_tag", "tag": "x", "next": "back"},
                "back": {"type": "goto", "target": "a"},
            },
        }
    )
    handle = await stack.enroll((await stack.contact())["id"], automation_id)
    run = await finished(stack, handle.id)
    assert (run["status"], run["reason"]) == ("ended", "goto_limit")


async def test_run_is_visible_with_search_attributes(stack: Stack) -> None:
    automation_id = await stack.automation(
        {"start": "w", "steps": {"w": {"type": "wait", "for": {"days": 2}, "name": "Pause"}}}
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)
        await eventually(lambda: _at(stack, handle.id, "w"))
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    attributes = {p.key.name: p.value for p in description.typed_search_attributes}
    assert attributes["CairnAutomation"] == automation_id
    assert attributes["CairnContact"] == str(contact["id"])
    assert attributes["CairnStep"] == "w"
    assert attributes["CairnVersion"] == 1
    history = await handle.fetch_history()
    timer = next(e for e in history.events if e.HasField("timer_started_event_attributes"))
    assert "Pause" in timer.user_metadata.summary.data.decode()
    await handle.terminate()


async def test_a_retried_write_adds_the_score_exactly_once(stack: Stack) -> None:
    """The database fails right after committing the score (as if the connection dropped):
    the activity fails, Temporal retries it, and the action log stops a second write."""
    automation_id = await stack.automation(
        {
            "start": "score",
            "steps": {
                "score": {"type": "adjust_contact_score", "score": "once", "op": "add", "value": 5}
            },
        }
    )
    contact = await stack.contact()
    with commit_lost_once(automation_id):
        handle = await stack.enroll(contact["id"], automation_id)
        run = await finished(stack, handle.id)
    assert run["steps"][0]["outcome"] == "done"
    assert (await stack.record(contact["id"]))["scores"] == {"once": 5.0}
    history = await handle.fetch_history()
    failed_attempts = [
        e
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.HasField("failure")
    ]
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert markers and not failed_attempts


TEN_DAYS_UNLESS_BOUGHT = {
    "start": "pause",
    "steps": {
        "pause": {"type": "wait", "for": {"days": 10}, "next": None},
        "bought": {"type": "goal", "condition": {"event": "purchase"}, "next": None},
    },
}


async def _woken_until_continued_as_new(stack: Stack, workflow_id: str, contact_id: int) -> None:
    """Wake a waiting run with changes it ignores until its history asks it to continue as
    new (the dev server suggests it at 50 events; each wake-up adds ~8)."""
    for n in range(12):
        await stack.http.post("/api/v1/events", json={"contact": contact_id, "event": f"noise-{n}"})
        await asyncio.sleep(0.05)

    async def continued() -> None:
        runs = [e async for e in stack.client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        assert len(runs) > 1

    await eventually(continued, within=30)


async def test_a_wait_woken_many_times_continues_as_new_and_keeps_waiting(stack: Stack) -> None:
    automation_id = await stack.automation(TEN_DAYS_UNLESS_BOUGHT)
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)
    await eventually(lambda: _at(stack, handle.id, "pause"))
    await _woken_until_continued_as_new(stack, handle.id, contact["id"])
    assert (await stack.run(handle.id))["status"] == "running"
    await stack.http.post("/api/v1/events", json={"contact": contact["id"], "event": "purchase"})
    run = await finished(stack, handle.id)
    assert run["goals"] == ["bought"]
    assert [s["step"] for s in run["steps"]] == ["pause", "bought"]


async def test_steps_after_a_wait_keep_their_visit_numbers_across_continue_as_new(
    stack: Stack,
) -> None:
    # A step's writes and sends are keyed by its visit number (the action log, Message-ID,
    # Idempotency-Key). Re-entering a wait after continue-as-new is not a new visit: else a
    # write made by a lost workflow task before the continue-as-new, under the old numbers,
    # would be made again under the new ones (seen in CI: a tag added twice, a score would be).
    automation_id = await stack.automation(
        {
            "start": "hold",
            "steps": {
                "hold": {
                    "type": "wait",
                    "condition": {"event": "go"},
                    "timeout": {"days": 10},
                    "next": "mail",
                },
                "mail": {"type": "send_email", "subject": "Went", "html": "<p>x</p>"},
            },
        }
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)
        await eventually(lambda: _at(stack, handle.id, "hold"))
        await _woken_until_continued_as_new(stack, handle.id, contact["id"])
        await stack.http.post("/api/v1/events", json={"contact": contact["id"], "event": "go"})
        run = await finished(stack, handle.id)
    assert [(s["step"], s["outcome"]) for s in run["steps"]] == [
        ("hold", "done"),
        ("mail", "done"),
    ]
    (message,) = stack.mailbox.to(contact["email"])
    assert message["Message-ID"].endswith(".2@localhost>"), message["Message-ID"]


async def test_a_change_arriving_as_the_run_continues_as_new_is_still_looked_at(
    stack: Stack,
) -> None:
    # The purchase lands in the very workflow task where Temporal suggests continue-as-new
    # (the dev server suggests it at 50 events): the run leaves its wait to continue, and
    # the new run must still look at the change, else the goal is never seen.
    automation_id = await stack.automation(TEN_DAYS_UNLESS_BOUGHT)
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)
    await eventually(lambda: _at(stack, handle.id, "pause"))

    async def parked_history() -> int:
        history = await handle.fetch_history()
        assert history.events[-1].event_type == EventType.EVENT_TYPE_TIMER_STARTED
        return len(history.events)

    length = await eventually(parked_history)
    # A wake-up adds a signal, then its workflow task is scheduled and started: the task
    # that sees the purchase starts at length + 3 events.
    while length + 3 < 50:
        await stack.http.post(
            "/api/v1/events", json={"contact": contact["id"], "event": f"noise-{length}"}
        )
        before = length
        length = await eventually(lambda before=before: _grown(parked_history, before))
    first_run_id = (await handle.describe()).run_id
    await stack.http.post("/api/v1/events", json={"contact": contact["id"], "event": "purchase"})

    run = await finished(stack, handle.id)
    assert run["goals"] == ["bought"]
    assert [s["step"] for s in run["steps"]] == ["pause", "bought"]
    # The purchase was the change the first run left unread when it continued as new.
    first = await stack.client.get_workflow_handle(handle.id, run_id=first_run_id).fetch_history()
    assert first.events[-1].event_type == (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW)


async def _grown(length: Any, before: int) -> int:
    now = await length()
    assert now > before
    return now  # type: ignore[no-any-return]


async def test_end_step_and_email_sending_rules(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "leave",
            "steps": {
                "leave": {"type": "unsubscribe", "list": "news", "next": "mail"},
                "mail": {
                    "type": "send_email",
                    "subject": "Hello",
                    "html": "<p>hi</p>",
                    "next": "stop",
                },
                "stop": {"type": "end"},
            },
        }
    )
    subscribed_elsewhere, unsubscribed = await stack.contact(), await stack.contact()
    for contact in (subscribed_elsewhere, unsubscribed):
        await stack.http.post(f"/api/v1/contacts/{contact['id']}/lists", json={"list": "news"})
    await stack.http.post(
        f"/api/v1/contacts/{subscribed_elsewhere['id']}/lists", json={"list": "offers"}
    )
    sent = await finished(stack, (await stack.enroll(subscribed_elsewhere["id"], automation_id)).id)
    skipped = await finished(stack, (await stack.enroll(unsubscribed["id"], automation_id)).id)
    assert [(s["step"], s["outcome"]) for s in sent["steps"]] == [
        ("leave", "done"),
        ("mail", "done"),
        ("stop", "done"),
    ]
    assert (sent["status"], sent["reason"]) == ("completed", "end_step")
    assert (skipped["steps"][1]["outcome"], skipped["steps"][1]["reason"]) == (
        "skipped",
        "unsubscribed",
    )
    assert len(stack.mailbox.to(subscribed_elsewhere["email"])) == 1
    assert stack.mailbox.to(unsubscribed["email"]) == []


async def test_step_records_are_saved_for_reports_once_each(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "tag",
            "steps": {
                "tag": {"type": "add_tag", "tag": "a", "next": "pause"},
                "pause": {"type": "wait", "for": {"days": 3}, "next": "check"},
                "check": {"type": "if_else", "condition": {"tag": "a"}, "yes": "sms", "no": None},
                "sms": {"type": "send_sms", "body": "x"},
            },
        }
    )
    handle = await stack.enroll((await stack.contact())["id"], automation_id)
    state = await handle.result()
    async with stack.db.read() as session:
        rows = (
            await session.scalars(
                select(StepEvent).where(StepEvent.workflow_id == handle.id).order_by(StepEvent.seq)
            )
        ).all()
    assert [(r.seq, r.step_id, r.outcome, r.reason) for r in rows] == [
        (n, s.step, s.outcome, s.reason) for n, s in enumerate(state.steps)
    ]
    assert state.unsaved == []


async def test_a_run_temporal_has_forgotten_is_read_from_cairns_tables(stack: Stack) -> None:
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import ResetReapplyType
    from temporalio.api.workflowservice.v1 import (
        DeleteWorkflowExecutionRequest,
        ResetWorkflowExecutionRequest,
    )

    automation_id = await stack.automation(
        {
            "start": "split",
            "steps": {
                "split": {"type": "split", "mode": "even", "paths": [{"next": "t"}, {"next": "t"}]},
                "t": {"type": "add_tag", "tag": "vip", "next": None},
                "g": {"type": "goal", "condition": {"tag": "vip"}, "next": None},
            },
        }
    )
    handle = await stack.enroll((await stack.contact())["id"], automation_id)
    await finished(stack, handle.id)
    # A lost workflow task: its local activities run again, after their writes (the contact
    # is tagged vip by then, so the goal looks met at entry). Reset to the first task does
    # exactly that, every time; a task lost under load (a worker dying, a task timing out)
    # does it now and then.
    history = await handle.fetch_history()
    first_task = next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    )
    await stack.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=stack.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            reason="the first workflow task is lost",
            workflow_task_finish_event_id=first_task,
            request_id=stack.unique("reset"),
            reset_reapply_type=ResetReapplyType.RESET_REAPPLY_TYPE_NONE,
        )
    )
    live = await stack.client.get_workflow_handle(handle.id, result_type=RunState).result()
    # Beyond retention (here: deleted), the query has nothing to answer.
    await stack.client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=stack.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
        )
    )

    async def forgotten() -> None:
        try:
            await handle.describe()
        except RPCError as err:
            assert err.status == RPCStatusCode.NOT_FOUND
        else:
            raise AssertionError("still there")

    await eventually(forgotten, within=90, interval=1)
    remembered = await stack.run(handle.id)
    # Temporal's history (the re-run task), Cairn's saved trail and the writes agree: one path.
    assert [s.step for s in live.steps] == ["split", "t", "g"]
    assert [(s["step"], s["outcome"]) for s in remembered["steps"]] == [
        ("split", "done"),
        ("t", "done"),
        ("g", "done"),
    ]
    assert [s["reason"] for s in remembered["steps"]] == [s.reason for s in live.steps]
    assert (remembered["goals"], remembered["split_paths"]) == (["g"], live.split_paths)
    assert remembered["status"] == "completed"


def _iso(at: Any) -> str:
    return at.isoformat().replace("+00:00", "Z")
