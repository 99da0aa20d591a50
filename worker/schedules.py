"""One Temporal Schedule per automation with `date_field` triggers (SPEC §2.2).

The schedule starts `DateFieldEnrollment` once a day; it lives and dies with the automation:
created or updated when a version has a date trigger, paused while the automation is
inactive, deleted when the current version has none.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from worker.settings import Settings
from workflows.date_enrollment import DATE_WORKFLOW_TYPE, DateEnrollmentInput

log = logging.getLogger("cairn.schedules")


def schedule_id(automation_id: str) -> str:
    return f"cairn-dates:{automation_id}"


def has_date_trigger(document: dict[str, Any]) -> bool:
    return any(t.get("type") == "date_field" for t in document.get("triggers") or [])


def _schedule(settings: Settings, automation_id: str, active: bool) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DATE_WORKFLOW_TYPE,
            DateEnrollmentInput(automation_id=automation_id),
            # Temporal appends each firing's time to this id.
            id=schedule_id(automation_id),
            task_queue=settings.task_queue,
            static_summary=f"Date triggers of automation {automation_id}",
        ),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(settings.date_trigger_hour)])]
        ),
        # A day's run still going when the next is due is late, not to be doubled.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            paused=not active,
            note="automation active" if active else "automation inactive",
        ),
    )


async def sync_schedule(
    client: Client, settings: Settings, automation_id: str, document: dict[str, Any], status: str
) -> str:
    """Make the automation's schedule match its current version: `created`, `updated`,
    `deleted` or `none`."""
    if not has_date_trigger(document):
        return "deleted" if await delete_schedule(client, automation_id) else "none"
    schedule = _schedule(settings, automation_id, status == "active")
    try:
        await client.create_schedule(schedule_id(automation_id), schedule)
        return "created"
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id(automation_id)).update(replace)
        return "updated"


async def pause_schedule(client: Client, automation_id: str) -> bool:
    """Pause the schedule of a deactivated automation; False when it has none."""
    try:
        await client.get_schedule_handle(schedule_id(automation_id)).pause(
            note="automation inactive"
        )
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


async def delete_schedule(client: Client, automation_id: str) -> bool:
    """Delete the schedule; False when there was none."""
    try:
        await client.get_schedule_handle(schedule_id(automation_id)).delete()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True
