"""Goals (every unmet mode and scope), split until, wait until, and trigger rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.service import RPCError

from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually


def goal_flow(unmet: str, scope: str = "anywhere", **extra: object) -> dict[str, object]:
    return {
        "start": "first",
        "steps": {
            "first": {"type": "add_tag", "tag": "started", "next": "goal"},
            "goal": {
                "type": "goal",
                "condition": {"tag": "won"},
                "unmet": unmet,
                "scope": scope,
                "next": "after",
                **extra,
            },
            "after": {"type": "add_tag", "tag": "after-goal"},
        },
    }


async def test_goal_unmet_continue_end_and_wait(stack: Stack) -> None:
    cont = await finished(
        stack,
        (
            await stack.enroll(
                (await stack.contact())["id"], await stack.automation(goal_flow("continue"))
            )
        ).id,
    )
    assert [(s["step"], s["reason"]) for s in cont["steps"]][1:] == [
        ("goal", "goal_not_met"),
        ("after", None),
    ]
    assert cont["status"] == "completed" and cont["goals"] == []

    end = await finished(
        stack,
        (
            await stack.enroll(
                (await stack.contact())["id"], await stack.automation(goal_flow("end"))
            )
        ).id,
    )
    assert (end["status"], end["reason"]) == ("ended", "goal_not_met")

    timeout = await finished(
        stack,
        (
            await stack.enroll(
                (await stack.contact())["id"],
                await stack.automation(goal_flow("wait", timeout={"days": 3})),
            )
        ).id,
    )
    assert [(s["step"], s["reason"]) for s in timeout["steps"]][1:] == [
        ("goal", "goal_timeout"),
        ("after", None),
    ]

    waiting_automation = await stack.automation(goal_flow("wait"))
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], waiting_automation)

    async def parked() -> None:
        assert (await stack.run(handle.id))["current_step"] == "goal"

    await eventually(parked)
    await stack.http.post(f"/api/v1/contacts/{contact['id']}/tags", json={"tag": "won"})
    met = await finished(stack, handle.id)
    assert met["goals"] == ["goal"]
    assert [s["step"] for s in met["steps"]] == ["first", "goal", "after"]


async def test_goal_scope_above_only_pulls_contacts_that_could_reach_it(stack: Stack) -> None:
    # "side" cannot reach the goal: a contact waiting there is not pulled, one in "main" is.
    document = {
        "start": "route",
        "steps": {
            "route": {"type": "if_else", "condition": {"tag": "side"}, "yes": "side", "no": "main"},
            "side": {"type": "wait", "for": {"days": 10}},
            "main": {"type": "wait", "for": {"days": 10}, "next": "goal"},
            "goal": {"type": "goal", "condition": {"tag": "won"}, "scope": "above", "next": None},
        },
    }
    automation_id = await stack.automation(document)
    in_main, in_side = await stack.contact(), await stack.contact()
    await stack.http.post(f"/api/v1/contacts/{in_side['id']}/tags", json={"tag": "side"})
    with stack.env.with_time_skipping_disabled():
        main_run = await stack.enroll(in_main["id"], automation_id)
        side_run = await stack.enroll(in_side["id"], automation_id)

    async def both_parked() -> None:
        assert (await stack.run(main_run.id))["current_step"] == "main"
        assert (await stack.run(side_run.id))["current_step"] == "side"

    await eventually(both_parked)
    for contact in (in_main, in_side):
        await stack.http.post(f"/api/v1/contacts/{contact['id']}/tags", json={"tag": "won"})
    assert (await finished(stack, main_run.id))["goals"] == ["goal"]
    await stack.env.fast_forward(side_run, timedelta(days=11))
    side = await finished(stack, side_run.id)
    assert side["goals"] == [] and [s["step"] for s in side["steps"]] == ["route", "side"]


async def test_split_until_contacts(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "split",
            "steps": {
                "split": {
                    "type": "split",
                    "mode": "until",
                    "until": {"contacts": 3},
                    "before": "b",
                    "after": "a",
                },
                "b": {"type": "add_tag", "tag": "before"},
                "a": {"type": "add_tag", "tag": "after"},
            },
        }
    )
    sides = []
    for _ in range(5):
        state = await (await stack.enroll((await stack.contact())["id"], automation_id)).result()
        sides.append(state.steps[0].reason)
    assert sides == ["before", "before", "before", "after", "after"]


async def test_wait_until_a_date(stack: Stack) -> None:
    until = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0)
    automation_id = await stack.automation(
        {
            "start": "w",
            "steps": {
                "w": {"type": "wait", "until": until.isoformat(), "next": "t"},
                "t": {"type": "add_tag", "tag": "later"},
            },
        }
    )
    handle = await stack.enroll((await stack.contact())["id"], automation_id)
    state = await handle.result()
    assert state.steps[-1].at >= until


async def test_trigger_filter_and_entry_override(stack: Stack) -> None:
    list_name = stack.unique("list")
    automation_id = await stack.automation(
        {
            "entry": "once",
            "triggers": [
                {
                    "type": "list_subscribed",
                    "list": list_name,
                    "filter": {"field": "plan", "op": "is", "value": "pro"},
                    "entry": "multiple",
                }
            ],
            "start": "t",
            "steps": {
                "t": {"type": "adjust_contact_score", "score": "joined", "op": "add", "value": 1}
            },
        }
    )
    free, pro = (
        await stack.contact(fields={"plan": "free"}),
        await stack.contact(fields={"plan": "pro"}),
    )
    for contact in (free, pro):
        await stack.http.post(f"/api/v1/contacts/{contact['id']}/lists", json={"list": list_name})

    async def pro_joined_once() -> None:
        assert (await stack.record(pro["id"]))["scores"] == {"joined": 1.0}
        assert (await stack.record(pro["id"]))["automations"][0]["status"] == "completed"

    await eventually(pro_joined_once)
    assert (await stack.record(free["id"]))["automations"] == []
    # entry "multiple" on the trigger: leaving and re-joining the list enrolls again.
    await stack.http.post(
        f"/api/v1/contacts/{pro['id']}/lists", json={"list": list_name, "status": "unsubscribed"}
    )
    await stack.http.post(f"/api/v1/contacts/{pro['id']}/lists", json={"list": list_name})

    async def pro_joined_twice() -> None:
        assert (await stack.record(pro["id"]))["scores"] == {"joined": 2.0}

    await eventually(pro_joined_twice)
    assert automation_id


async def test_goals_met_on_entry_or_by_the_runs_own_write_jump_at_once(stack: Stack) -> None:
    document = {
        "start": "first",
        "steps": {
            "first": {"type": "add_tag", "tag": "vip", "next": "second"},
            "second": {"type": "add_tag", "tag": "never-reached"},
            "goal": {"type": "goal", "condition": {"tag": "vip"}, "next": "done"},
            "done": {"type": "add_tag", "tag": "goal-done"},
        },
    }
    automation_id = await stack.automation(document)
    by_own_write, already = await stack.contact(), await stack.contact()
    await stack.http.post(f"/api/v1/contacts/{already['id']}/tags", json={"tag": "vip"})

    entered = await finished(stack, (await stack.enroll(already["id"], automation_id)).id)
    assert [s["step"] for s in entered["steps"]] == ["goal", "done"]

    written = await finished(stack, (await stack.enroll(by_own_write["id"], automation_id)).id)
    assert [s["step"] for s in written["steps"]] == ["first", "goal", "done"]
    assert "never-reached" not in (await stack.record(by_own_write["id"]))["tags"]


def until_flow(until: dict[str, object]) -> dict[str, object]:
    return {
        "start": "split",
        "steps": {
            "split": {
                "type": "split",
                "mode": "until",
                "until": until,
                "before": "b",
                "after": "a",
            },
            "b": {"type": "add_tag", "tag": "before"},
            "a": {"type": "add_tag", "tag": "after"},
        },
    }


async def _side(stack: Stack, contact_id: int, automation_id: str) -> str | None:
    state = await (await stack.enroll(contact_id, automation_id)).result()
    return state.steps[0].reason


async def test_split_until_a_date(stack: Stack) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    passed = await stack.automation(until_flow({"date": past}))
    pending = await stack.automation(until_flow({"date": future}))
    contact = await stack.contact()
    assert await _side(stack, contact["id"], passed) == "after"
    assert await _side(stack, contact["id"], pending) == "before"


async def test_split_until_contacts_meeting_stays_decided(stack: Stack) -> None:
    automation_id = await stack.automation(
        until_flow({"contacts_meeting": 2, "condition": {"tag": "vip"}})
    )
    vips = [await stack.contact() for _ in range(2)]
    for vip in vips:
        await stack.http.post(f"/api/v1/contacts/{vip['id']}/tags", json={"tag": "vip"})
    sides = [await _side(stack, vip["id"], automation_id) for vip in vips]
    sides.append(await _side(stack, (await stack.contact())["id"], automation_id))
    # Both VIPs lose the tag: the rule held once, so the split stays on "after".
    for vip in vips:
        await stack.http.delete(f"/api/v1/contacts/{vip['id']}/tags/vip")
    sides.append(await _side(stack, (await stack.contact())["id"], automation_id))
    assert sides == ["before", "before", "after", "after"]


async def test_split_winner_decided_after_a_duration(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "gate",
            "steps": {
                # Contacts tagged "go" pass at once; the others reach the split 3 hours later.
                "gate": {
                    "type": "wait",
                    "condition": {"tag": "go"},
                    "timeout": {"hours": 3},
                    "next": "split",
                },
                "split": {
                    "type": "split",
                    "mode": "even",
                    "paths": [{"next": "p0"}, {"next": "p1"}],
                    "winner": {"condition": {"tag": "won"}, "after": {"hours": 1}},
                },
                "p0": {"type": "add_tag", "tag": "path-0"},
                "p1": {"type": "add_tag", "tag": "path-1"},
            },
        }
    )
    first, second, late = [await stack.contact() for _ in range(3)]
    paths = []
    for contact in (first, second):
        await stack.http.post(f"/api/v1/contacts/{contact['id']}/tags", json={"tag": "go"})
        paths.append((await (await stack.enroll(contact["id"], automation_id)).result()).steps)
    assert [steps[-1].step for steps in paths] == ["p0", "p1"]
    await stack.http.post(f"/api/v1/contacts/{second['id']}/tags", json={"tag": "won"})

    # An hour after the first assignment the winner is due: path 1 (1 of 1 won, path 0: 0).
    state = await (await stack.enroll(late["id"], automation_id)).result()
    assert [s.step for s in state.steps] == ["gate", "split", "p1"]
    report = (await stack.http.get(f"/api/v1/automations/{automation_id}/report")).json()
    assert [s["winner"] for s in report["splits"]] == [1]


async def test_end_automation_all_ends_every_other_run_of_the_contact(stack: Stack) -> None:
    waits = [
        await stack.automation(
            {"start": "w", "steps": {"w": {"type": "wait", "for": {"days": 30}}}}
        )
        for _ in range(2)
    ]
    controller = await stack.automation(
        {"start": "stop", "steps": {"stop": {"type": "end_automation", "automation": "all"}}}
    )
    contact, bystander = await stack.contact(), await stack.contact()
    with stack.env.with_time_skipping_disabled():
        waiting = [await stack.enroll(contact["id"], w) for w in waits]
        untouched = await stack.enroll(bystander["id"], waits[0])
        for handle in (*waiting, untouched):
            await eventually(lambda h=handle: _current(stack, h.id, "w"))
        control = await stack.enroll(contact["id"], controller)
        assert (await finished(stack, control.id))["status"] == "completed"
        for handle in waiting:
            ended = await finished(stack, handle.id)
            assert (ended["status"], ended["reason"]) == ("ended", f"ended_by:{controller}")
        assert (await stack.run(untouched.id))["status"] == "running"
    await untouched.terminate()


async def _current(stack: Stack, workflow_id: str, step: str) -> None:
    assert (await stack.run(workflow_id))["current_step"] == step


async def test_a_goal_is_achieved_once_per_run(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "goal",
            "steps": {
                "goal": {"type": "goal", "condition": {"tag": "vip"}, "next": "pause"},
                "pause": {"type": "wait", "for": {"days": 1}, "next": "again"},
                "again": {"type": "if_else", "condition": {"tag": "looped"}, "no": "mark"},
                "mark": {"type": "add_tag", "tag": "looped", "next": "back"},
                "back": {"type": "goto", "target": "goal"},
            },
        }
    )
    contact = await stack.contact()
    await stack.http.post(f"/api/v1/contacts/{contact['id']}/tags", json={"tag": "vip"})
    run = await finished(stack, (await stack.enroll(contact["id"], automation_id)).id)
    goal_visits = [(s["outcome"], s["reason"]) for s in run["steps"] if s["step"] == "goal"]
    assert goal_visits == [("done", "goal_achieved"), ("skipped", "already_achieved")]
    assert run["goals"] == ["goal"]


async def test_a_goto_loop_runs_ten_times_a_day_at_most(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "score",
            "steps": {
                "score": {
                    "type": "adjust_contact_score",
                    "score": "laps",
                    "op": "add",
                    "value": 1,
                    "next": "nap",
                },
                "nap": {"type": "wait", "for": {"hours": 1}, "next": "back"},
                "back": {"type": "goto", "target": "score"},
            },
        }
    )
    contact = await stack.contact()
    run = await finished(stack, (await stack.enroll(contact["id"], automation_id)).id)
    assert (run["status"], run["reason"]) == ("ended", "goto_limit")
    # The first lap, then ten passes through the goto; the eleventh within 24 hours stops.
    assert (await stack.record(contact["id"]))["scores"] == {"laps": 11}
    gotos = [s["outcome"] for s in run["steps"] if s["step"] == "back"]
    assert gotos == ["done"] * 10 + ["skipped"]


def loops_without_wait(laps: int) -> dict[str, object]:
    """A loop with no wait that the contact goes round `laps` times (`laps` gotos), then leaves."""
    return {
        "start": "lap",
        "steps": {
            "lap": {
                "type": "adjust_contact_score",
                "score": "laps",
                "op": "add",
                "value": 1,
                "next": "more",
            },
            "more": {
                "type": "if_else",
                "condition": {"score": "laps", "op": "lte", "value": laps},
                "yes": "back",
                "no": "out",
            },
            "back": {"type": "goto", "target": "lap"},
            "out": {"type": "add_tag", "tag": "left-the-loop"},
        },
    }


async def test_three_loops_without_a_wait_pass_and_a_fourth_ends_the_run(stack: Stack) -> None:
    # Three loops (three passes through a goto) with no wait are allowed...
    three = await stack.automation(loops_without_wait(3))
    contact = await stack.contact()
    run = await finished(stack, (await stack.enroll(contact["id"], three)).id)
    assert (run["status"], run["reason"]) == ("completed", None)
    assert [s["outcome"] for s in run["steps"] if s["step"] == "back"] == ["done"] * 3
    assert (await stack.record(contact["id"]))["scores"] == {"laps": 4}
    assert "left-the-loop" in (await stack.record(contact["id"]))["tags"]

    # ...the goto that would start a fourth ends the run.
    four = await stack.automation(loops_without_wait(4))
    contact = await stack.contact()
    run = await finished(stack, (await stack.enroll(contact["id"], four)).id)
    assert (run["status"], run["reason"]) == ("ended", "goto_limit")
    assert [s["outcome"] for s in run["steps"] if s["step"] == "back"] == ["done"] * 3 + ["skipped"]
    assert (await stack.record(contact["id"]))["scores"] == {"laps": 4}
    assert "left-the-loop" not in (await stack.record(contact["id"]))["tags"]


async def test_removal_triggers_and_a_second_trigger_whose_filter_passes(stack: Stack) -> None:
    tag, list_name = stack.unique("tag"), stack.unique("list")
    automation_id = await stack.automation(
        {
            "entry": "multiple",
            "triggers": [
                {"type": "tag_removed", "tag": tag, "filter": {"tag": "never"}},
                {"type": "tag_removed", "tag": tag},
                {"type": "list_unsubscribed", "list": list_name},
            ],
            "start": "t",
            "steps": {
                "t": {"type": "adjust_contact_score", "score": "left", "op": "add", "value": 1}
            },
        }
    )
    contact = await stack.contact()
    cid = contact["id"]
    await stack.http.post(f"/api/v1/contacts/{cid}/tags", json={"tag": tag})
    await stack.http.post(f"/api/v1/contacts/{cid}/lists", json={"list": list_name})
    assert (await stack.record(cid))["automations"] == []  # adding fires no removal trigger

    await stack.http.delete(f"/api/v1/contacts/{cid}/tags/{tag}")

    async def scored(times: float) -> None:
        record = await stack.record(cid)
        assert record["scores"] == {"left": times}
        assert all(a["status"] == "completed" for a in record["automations"])

    await eventually(lambda: scored(1.0))
    await stack.http.post(
        f"/api/v1/contacts/{cid}/lists", json={"list": list_name, "status": "unsubscribed"}
    )
    await eventually(lambda: scored(2.0))
    assert {a["automation"] for a in (await stack.record(cid))["automations"]} == {automation_id}


async def test_a_step_in_one_run_releases_a_wait_in_another(stack: Stack) -> None:
    hot = stack.unique("hot")
    waiting = await stack.automation(
        {
            "start": "w",
            "steps": {
                "w": {
                    "type": "wait",
                    "condition": {"tag": hot},
                    "timeout": {"days": 30},
                    "next": "t",
                },
                "t": {"type": "add_tag", "tag": "released"},
            },
        }
    )
    tagger = await stack.automation({"start": "t", "steps": {"t": {"type": "add_tag", "tag": hot}}})
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], waiting)
        await eventually(lambda: _current(stack, handle.id, "w"))
        await finished(stack, (await stack.enroll(contact["id"], tagger)).id)
        run = await finished(stack, handle.id)
    first = run["steps"][0]
    assert (first["step"], first["reason"]) == ("w", "condition_met")
    assert "released" in (await stack.record(contact["id"]))["tags"]


async def test_in_automation_and_goal_achieved_conditions(stack: Stack) -> None:
    parked = await stack.automation(
        {"start": "w", "steps": {"w": {"type": "wait", "for": {"days": 30}}}}
    )
    goal_keeper = await stack.automation(
        {
            "start": "vip",
            "steps": {
                "vip": {"type": "add_tag", "tag": "vip"},
                "made-it": {"type": "goal", "condition": {"tag": "vip"}},
            },
        }
    )
    checker = await stack.automation(
        {
            "start": "in",
            "steps": {
                "in": {"type": "if_else", "condition": {"in_automation": parked}, "yes": "goal"},
                "goal": {
                    "type": "if_else",
                    "condition": {"goal_achieved": {"automation": goal_keeper, "goal": "made-it"}},
                    "yes": "both",
                },
                "both": {"type": "add_tag", "tag": "both-true"},
            },
        }
    )
    contact, stranger = await stack.contact(), await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], parked)
        await eventually(lambda: _current(stack, handle.id, "w"))
        kept = await finished(stack, (await stack.enroll(contact["id"], goal_keeper)).id)
        assert kept["goals"] == ["made-it"]
        checked = await finished(stack, (await stack.enroll(contact["id"], checker)).id)
        unchecked = await finished(stack, (await stack.enroll(stranger["id"], checker)).id)
    assert [(s["step"], s["reason"]) for s in checked["steps"]] == [
        ("in", "yes"),
        ("goal", "yes"),
        ("both", None),
    ]
    assert [(s["step"], s["reason"]) for s in unchecked["steps"]] == [("in", "no")]
    await handle.terminate()


async def test_waits_and_goals_on_in_automation_wake_when_a_run_starts_or_ends(
    any_stack: Stack,
) -> None:
    stack = any_stack  # the store's writes on every database
    watched = await stack.automation(
        {"start": "w", "steps": {"w": {"type": "wait", "for": {"days": 30}}}}
    )
    joins = await stack.automation(
        {
            "start": "w",
            "steps": {
                "w": {
                    "type": "wait",
                    "condition": {"in_automation": watched},
                    "timeout": {"days": 30},
                    "next": "t",
                },
                "t": {"type": "add_tag", "tag": "saw-it-start"},
            },
        }
    )
    leaves = await stack.automation(
        {
            "start": "w",
            "steps": {
                "w": {"type": "wait", "for": {"days": 30}, "next": None},
                "left": {"type": "goal", "condition": {"not": {"in_automation": watched}}},
            },
        }
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        joining = await stack.enroll(contact["id"], joins)
        await eventually(lambda: _current(stack, joining.id, "w"))
        # The watched run's start wakes the conditional wait.
        run = await stack.enroll(contact["id"], watched)
        joined = await finished(stack, joining.id)
        assert [(s["step"], s["reason"]) for s in joined["steps"]] == [
            ("w", "condition_met"),
            ("t", None),
        ]
        # Its end (through the API) meets the goal `not in_automation` of another run.
        leaving = await stack.enroll(contact["id"], leaves)
        await eventually(lambda: _current(stack, leaving.id, "w"))
        ended = await stack.http.delete(f"/api/v1/contacts/{contact['id']}/automations/{watched}")
        assert ended.status_code == 200, ended.text
        assert (await finished(stack, run.id))["reason"] == "ended_by:api"
        left = await finished(stack, leaving.id)
    assert [(s["step"], s["outcome"], s["reason"]) for s in left["steps"]] == [
        ("w", "skipped", "goal:left"),
        ("left", "done", "goal_achieved"),
    ]
    assert left["goals"] == ["left"]


def ab_test(**winner: object) -> dict[str, object]:
    """An even split whose path 1 tags its contacts "won" (the winner condition)."""
    split: dict[str, object] = {
        "type": "split",
        "mode": "even",
        "paths": [{"next": "p0"}, {"next": "p1"}],
    }
    if winner:
        split["winner"] = {"condition": {"tag": "won"}, **winner}
    return {
        "start": "split",
        "steps": {
            "split": split,
            "p0": {"type": "add_tag", "tag": "path-0"},
            "p1": {"type": "add_tag", "tag": "won"},
        },
    }


async def _through(stack: Stack, automation_id: str) -> str:
    """Enroll a new contact, let it finish; the step it took after the split."""
    handle = await stack.enroll((await stack.contact())["id"], automation_id)
    return (await finished(stack, handle.id))["steps"][1]["step"]  # type: ignore[no-any-return]


async def _splits(stack: Stack, automation_id: str) -> list[dict[str, object]]:
    report = await stack.http.get(f"/api/v1/automations/{automation_id}/report")
    assert report.status_code == 200, report.text
    return report.json()["splits"]  # type: ignore[no-any-return]


async def test_a_split_winner_is_decided_at_its_deadline_without_a_newcomer(
    any_stack: Stack,
) -> None:
    stack = any_stack  # the store's writes on every database
    from temporalio.client import WorkflowExecutionStatus

    automation_id = await stack.automation(ab_test(after={"hours": 1}))
    with stack.env.with_time_skipping_disabled():
        # Two contacts take the two paths; nobody else comes.
        assert [await _through(stack, automation_id) for _ in range(2)] == ["p0", "p1"]
        deadline = stack.client.get_workflow_handle(f"cairn-split:{automation_id}:split")

        async def started() -> None:
            try:
                await deadline.describe()
            except RPCError as err:
                raise AssertionError("the deadline's workflow is not started yet") from err

        await eventually(started)
    (split,) = await _splits(stack, automation_id)
    assert split["winner"] is None
    # An hour later, with no newcomer, the winner is decided and shown.
    await stack.env.fast_forward(deadline, timedelta(hours=1, minutes=1))
    assert (await deadline.describe()).status == WorkflowExecutionStatus.COMPLETED
    (split,) = await _splits(stack, automation_id)
    assert (split["winner"], split["winner_by"]) == (1, "rule")
    assert split["decided_at"] is not None
    assert [await _through(stack, automation_id) for _ in range(2)] == ["p1", "p1"]
    # A person cannot pick another winner over the decided one.
    picked = await stack.http.post(
        f"/api/v1/automations/{automation_id}/splits/split/winner", json={"path": 0}
    )
    assert picked.status_code == 409, picked.text


async def test_a_person_picks_a_split_winner_through_the_api(any_stack: Stack) -> None:
    stack = any_stack  # the store's writes on every database
    automation_id = await stack.automation(ab_test(after_contacts=100))
    url = f"/api/v1/automations/{automation_id}/splits/split/winner"
    assert [await _through(stack, automation_id) for _ in range(2)] == ["p0", "p1"]

    picked = await stack.http.post(url, json={"path": 0})
    assert picked.status_code == 200, picked.text
    assert (picked.json()["winner"], picked.json()["winner_by"]) == (0, "person")
    # Later contacts take the picked path (though path 1's contacts all "won").
    assert [await _through(stack, automation_id) for _ in range(3)] == ["p0", "p0", "p0"]
    (split,) = await _splits(stack, automation_id)
    assert (split["winner"], split["winner_by"]) == (0, "person")
    assert [p["contacts"] for p in split["paths"]] == [4, 1]  # nobody changed path

    assert (await stack.http.post(url, json={"path": 0})).status_code == 200  # the same: no-op
    assert (await stack.http.post(url, json={"path": 1})).status_code == 409
    assert (await stack.http.post(url, json={"path": 2})).status_code == 422
    assert (await stack.http.post(url, json={})).status_code == 422
    base = f"/api/v1/automations/{automation_id}/splits"
    assert (await stack.http.post(f"{base}/p0/winner", json={"path": 0})).status_code == 404
    assert (await stack.http.post(f"{base}/nope/winner", json={"path": 0})).status_code == 404
    missing = "/api/v1/automations/no-such-automation/splits/split/winner"
    assert (await stack.http.post(missing, json={"path": 0})).status_code == 404
    until = await stack.automation(
        {
            "start": "s",
            "steps": {
                "s": {
                    "type": "split",
                    "mode": "until",
                    "until": {"contacts": 2},
                    "before": "a",
                    "after": "a",
                },
                "a": {"type": "add_tag", "tag": "a"},
            },
        }
    )
    answer = await stack.http.post(f"/api/v1/automations/{until}/splits/s/winner", json={"path": 0})
    assert answer.status_code == 422, answer.text
