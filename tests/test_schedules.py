"""`date_field` triggers as Temporal Schedules, and the `goal_achieved` trigger, end to end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import ScheduleActionExecutionStartWorkflow
from temporalio.service import RPCError, RPCStatusCode

from activities.schedules import matches
from tests.conftest import Stack, eventually
from tests.test_engine import finished
from worker.schedules import schedule_id
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
