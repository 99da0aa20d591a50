"""`date_field` triggers as Temporal Schedules, and the `goal_achieved` trigger, end to end."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, ScheduleDescription
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.date_enrollment import matches
from domain.date_schedules import reconcile_schedules, schedule_id
from store.db import open_database
from tests.helpers.runs import finished
from tests.helpers.stack import Mailbox, Stack, api_client, eventually, stack_settings
from worker.main import running_worker
from workflows.date_enrollment import DateMatchesOutput


@pytest.mark.parametrize(
    ("value", "today", "annual", "expected"),
    [
        ("1990-05-17", date(2026, 5, 17), True, True),
        ("1990-05-17T23:30:00-05:00", date(2026, 5, 17), True, True),
        ("1990-05-17", date(2026, 5, 17), False, False),
        ("2026-05-17", date(2026, 5, 17), False, True),
        ("2000-02-29", date(2027, 2, 28), True, True),  # no Feb 29 in 2027
        ("2000-02-29", date(2028, 2, 28), True, False),  # 2028 has its own
        ("2000-02-29", date(2028, 2, 29), True, True),
        ("not a date", date(2026, 5, 17), True, False),
        (None, date(2026, 5, 17), True, False),
    ],
)
def test_date_matching(value: Any, today: date, annual: bool, expected: bool) -> None:
    assert matches(value, today, annual) is expected


def _tagging(tag: str) -> dict[str, Any]:
    return {"start": "mark", "steps": {"mark": {"type": "add_tag", "tag": tag}}}


async def _fire(stack: Stack, automation_id: str) -> DateMatchesOutput:
    """Fire the schedule now and wait for the enrollment it started.

    Time skipping applies to workflows, not to the server's schedule clock, so a test cannot
    fast-forward to 09:00: `trigger()` starts the scheduled action exactly as the daily firing
    would.
    """
    handle = stack.client.get_schedule_handle(schedule_id(automation_id))
    await handle.trigger()

    async def started() -> str:
        actions = (await handle.describe()).info.recent_actions
        assert actions, "the schedule has not started its workflow yet"
        action = actions[-1].action
        assert isinstance(action, ScheduleActionExecutionStartWorkflow)
        return action.workflow_id

    workflow_id = await eventually(started)
    return await stack.client.get_workflow_handle(  # type: ignore[no-any-return]
        workflow_id, result_type=DateMatchesOutput
    ).result()


async def test_date_trigger_schedule_enrolls_due_contacts_only(any_stack: Stack) -> None:
    # Both databases: the candidates are found by a JSON path query.
    stack = any_stack
    today = datetime.now(UTC).date()
    birthday, renewal, tag = stack.unique("birthday"), stack.unique("renewal"), stack.unique("t")
    automation_id = await stack.automation(
        {
            "triggers": [
                {"type": "date_field", "field": birthday, "annual": True},
                {
                    "type": "date_field",
                    "field": renewal,
                    "offset": -7,  # a week before the renewal date
                    "filter": {"field": "plan", "op": "is", "value": "pro"},
                },
            ],
            **_tagging(tag),
        }
    )
    schedule = await stack.client.get_schedule_handle(schedule_id(automation_id)).describe()
    assert not schedule.schedule.state.paused
    (daily,) = schedule.schedule.spec.calendars
    assert [r.start for r in daily.hour] == [stack.settings.date_trigger_hour]

    born_today = today.replace(year=1990) if (today.month, today.day) != (2, 29) else today
    in_a_week = (today + timedelta(days=7)).isoformat()
    due = [
        await stack.contact(fields={birthday: born_today.isoformat()}),
        await stack.contact(fields={renewal: in_a_week, "plan": "pro"}),
    ]
    not_due = [
        await stack.contact(fields={birthday: (born_today + timedelta(days=1)).isoformat()}),
        await stack.contact(fields={renewal: in_a_week, "plan": "free"}),  # filtered out
        await stack.contact(fields={renewal: today.isoformat(), "plan": "pro"}),  # not a week
        await stack.contact(fields={birthday: "someday"}),
    ]

    result = await _fire(stack, automation_id)
    assert (result.day, result.matched, result.enrolled) == (today.isoformat(), 2, 2)

    async def tagged() -> None:
        for contact in due:
            assert tag in (await stack.record(contact["id"]))["tags"]

    await eventually(tagged)
    for contact in not_due:
        record = await stack.record(contact["id"])
        assert tag not in record["tags"]
        assert not [a for a in record["automations"] if a["automation"] == automation_id]

    # The next day's firing (here: the same day again) enrolls no one twice under entry "once".
    again = await _fire(stack, automation_id)
    assert (again.matched, again.enrolled, again.refused) == (2, 0, {"already_entered": 2})


async def _schedule_gone(stack: Stack, automation_id: str) -> None:
    with pytest.raises(RPCError) as raised:
        await stack.client.get_schedule_handle(schedule_id(automation_id)).describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND


async def test_schedule_follows_versions_and_deactivation(stack: Stack) -> None:
    document = {
        "name": stack.unique("renewals"),
        "triggers": [{"type": "date_field", "field": "renewal", "offset": 30}],
        **_tagging("renewal-followup"),
    }
    automation_id = await stack.automation(document)
    handle = stack.client.get_schedule_handle(schedule_id(automation_id))
    assert not (await handle.describe()).schedule.state.paused

    # Deactivated: paused, not deleted; a new active version resumes it.
    response = await stack.http.delete(f"/api/v1/automations/{automation_id}")
    assert response.status_code == 200, response.text
    assert (await handle.describe()).schedule.state.paused
    response = await stack.http.put(f"/api/v1/automations/{automation_id}", json=document)
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == []
    assert not (await handle.describe()).schedule.state.paused

    # A version without a date trigger deletes the schedule; adding one back recreates it.
    plain = {**document, "triggers": [{"type": "tag_added", "tag": "renewing"}]}
    response = await stack.http.put(f"/api/v1/automations/{automation_id}", json=plain)
    assert response.status_code == 200, response.text
    await _schedule_gone(stack, automation_id)
    response = await stack.http.put(f"/api/v1/automations/{automation_id}", json=document)
    assert response.status_code == 200, response.text
    assert (await handle.describe()).schedule.action.workflow == "DateFieldEnrollment"  # type: ignore[attr-defined]


async def test_automation_without_date_trigger_has_no_schedule(stack: Stack) -> None:
    automation_id = await stack.automation(_tagging("x"))
    await _schedule_gone(stack, automation_id)


async def test_goal_achieved_in_one_automation_enrolls_in_another(stack: Stack) -> None:
    tag = stack.unique("bought")
    first = await stack.automation(
        {
            "start": "purchased",
            "steps": {"purchased": {"type": "goal", "condition": {"tag": tag}, "unmet": "wait"}},
        }
    )
    second = await stack.automation(
        {
            "triggers": [{"type": "goal_achieved", "automation": first, "goal": "purchased"}],
            **_tagging("thanked"),
        }
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], first)

    async def parked() -> None:
        assert (await stack.run(handle.id))["current_step"] == "purchased"

    await eventually(parked)
    response = await stack.http.post(f"/api/v1/contacts/{contact['id']}/tags", json={"tag": tag})
    assert response.status_code in (200, 201), response.text
    await finished(stack, handle.id)

    async def thanked() -> None:
        record = await stack.record(contact["id"])
        assert "thanked" in record["tags"], record
        assert [a["automation"] for a in record["automations"]] == [first, second]

    await eventually(thanked)


async def test_a_starting_worker_repairs_every_schedule_from_the_database(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp_path: Path
) -> None:
    """What the API could not do (Temporal refused it), or what was done behind Cairn's back,
    is put right from the database when a worker starts."""
    settings = await stack_settings(tmp_path, mailbox, "sqlite", "cairn-repair")
    db = await open_database(settings.database_url)
    client = env.client
    # Every schedule call of this API fails: its namespace does not exist.
    unreachable = Client(**{**env.client.config(), "namespace": f"gone-{uuid.uuid4().hex[:8]}"})
    tag = uuid.uuid4().hex[:8]

    def dated(name: str) -> dict[str, Any]:
        return {
            "id": f"{name}-{tag}",
            "name": f"{name} {tag}",
            "triggers": [{"type": "date_field", "field": "renewal", "offset": -7}],
            **_tagging("renewing"),
        }

    missed, deleted, deactivated, undated = (
        dated(n) for n in ("missed", "deleted", "deactivated", "undated")
    )
    try:
        async with (
            api_client(settings, client, db) as http,
            api_client(settings, unreachable, db) as broken,
        ):
            # Created while Temporal refused: the automation stands, the answer warns.
            response = await broken.post("/api/v1/automations", json=missed)
            assert response.status_code == 201, response.text
            (warning,) = response.json()["warnings"]
            assert "schedule could not be updated" in warning["message"]
            for document in (deleted, deactivated, undated):
                response = await http.post("/api/v1/automations", json=document)
                assert response.status_code == 201, response.text
            # Deleted by hand; deactivated and versioned without a date trigger while refused.
            await client.get_schedule_handle(schedule_id(deleted["id"])).delete()
            response = await broken.delete(f"/api/v1/automations/{deactivated['id']}")
            assert response.status_code == 200, response.text
            plain = {**undated, "triggers": [{"type": "tag_added", "tag": "renewing"}]}
            response = await broken.put(f"/api/v1/automations/{undated['id']}", json=plain)
            assert response.status_code == 200, response.text

        async def describe(document: dict[str, Any]) -> ScheduleDescription:
            return await client.get_schedule_handle(schedule_id(document["id"])).describe()

        assert not (await describe(deactivated)).schedule.state.paused  # the API's miss
        await describe(undated)
        # The worker's hour differs from the one the schedules were made with: updated too.
        worker_settings = settings.model_copy(update={"date_trigger_hour": 5})
        async with running_worker(worker_settings, client, db):

            async def repaired() -> None:
                for document in (missed, deleted, deactivated):
                    try:
                        schedule = (await describe(document)).schedule
                    except RPCError as err:
                        raise AssertionError(f"{document['id']}: {err}") from err
                    assert schedule.action.workflow == "DateFieldEnrollment"  # type: ignore[attr-defined]
                    assert schedule.action.task_queue == settings.task_queue  # type: ignore[attr-defined]
                    (daily,) = schedule.spec.calendars
                    assert [r.start for r in daily.hour] == [5], document["id"]
                    assert schedule.state.paused == (document is deactivated), document["id"]
                await _schedule_gone_id(client, undated["id"])

            await eventually(repaired, within=30)
            # A second pass finds nothing to do.
            assert await reconcile_schedules(client, worker_settings, db) == Counter(unchanged=4)
    finally:
        for document in (missed, deleted, deactivated, undated):
            handle = client.get_schedule_handle(schedule_id(document["id"]))
            try:
                await handle.delete()
            except RPCError:
                pass
        await db.dispose()


async def _schedule_gone_id(client: Client, automation_id: str) -> None:
    try:
        await client.get_schedule_handle(schedule_id(automation_id)).describe()
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND
    else:
        raise AssertionError(f"{automation_id} still has a schedule")


async def test_an_annual_trigger_under_entry_once_is_warned_about(stack: Stack) -> None:
    birthday = {"type": "date_field", "field": "birthday", "annual": True}
    steps = _tagging(stack.unique("t"))

    async def warnings(document: dict[str, Any]) -> list[str]:
        body = {"name": stack.unique("birthday"), **document, **steps}
        response = await stack.http.post("/api/v1/automations", json=body)
        assert response.status_code == 201, response.text
        return [w["message"] for w in response.json()["warnings"] if w["path"] == "triggers.0"]

    (once,) = await warnings({"triggers": [birthday]})
    assert "once ever" in once and '"entry": "multiple"' in once
    assert await warnings({"triggers": [{**birthday, "entry": "multiple"}]}) == []
    assert await warnings({"entry": "multiple", "triggers": [birthday]}) == []
    # A one-off date (a renewal, a trial's end) is meant once: no warning.
    assert await warnings({"triggers": [{**birthday, "annual": False}]}) == []
    # Once on purpose is allowed, still said.
    assert (
        len(await warnings({"entry": "multiple", "triggers": [{**birthday, "entry": "once"}]})) == 1
    )
