"""One Temporal Schedule per automation with `date_field` triggers (docs/automations.md#date-triggers).

The schedule starts `DateFieldEnrollment` once a day; it lives and dies with the automation:
created or updated when a version has a date trigger, paused while the automation is
inactive, deleted when the current version has none. The API does this as it saves a
version; `reconcile_schedules` repairs what it could not (Temporal unreachable at that
moment, a schedule deleted or edited by hand) from the database, when a worker starts and
every few minutes after.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from core.settings import Settings
from store import automations as automation_store
from store.db import Database
from store.models import Automation
from workflows.date_enrollment import DATE_WORKFLOW_TYPE, DateEnrollmentInput

log = logging.getLogger("cairn.schedules")

SCHEDULE_PREFIX = "cairn-dates:"
# How often a worker compares every automation's schedule with the database. A pass costs one
# schedule listing, one small read per automation and one describe per date-triggered one.
RECONCILE_SECONDS = 600.0
RETRY_SECONDS = 30.0  # after a pass that failed (Temporal or the database unreachable)


def schedule_id(automation_id: str) -> str:
    return f"{SCHEDULE_PREFIX}{automation_id}"


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


# --- repair from the database ---------------------------------------------------------------


async def reconcile_schedules(client: Client, settings: Settings, db: Database) -> Counter[str]:
    """Make every automation's schedule match its current version and status in the database;
    how many were `created`, `updated`, `deleted` or `unchanged`.

    Only automations in this database are touched: a schedule whose automation it does not
    know (another deployment's, in a shared namespace) is left alone.
    """
    # Listed before the database is read: a schedule the API created is then backed by a
    # version already committed, so it is never taken for one that should not exist.
    scheduled = await _scheduled_automations(client)
    async with db.read() as session:
        automation_ids = [a.id for a in await automation_store.list_automations(session)]
    outcomes: Counter[str] = Counter()
    for automation_id in automation_ids:
        # Each automation read afresh just before it is acted on: an API request saving a
        # version meanwhile is overridden for as short a time as possible (and the next pass
        # agrees with it again).
        async with db.read() as session:
            row = await session.get(Automation, automation_id)
            if row is None:
                continue
            status = row.status
            document = await automation_store.get_document(session, automation_id, row.version)
        outcome = await _reconcile_one(
            client, settings, automation_id, document or {}, status, automation_id in scheduled
        )
        outcomes[outcome] += 1
    changed = {k: n for k, n in outcomes.items() if k != "unchanged"}
    if changed:
        log.info(
            "date trigger schedules repaired from the database: %s",
            ", ".join(f"{n} {k}" for k, n in sorted(changed.items())),
        )
    return outcomes


async def keep_schedules_in_sync(
    client: Client, settings: Settings, db: Database, *, every: float = RECONCILE_SECONDS
) -> None:
    """`reconcile_schedules` now and every `every` seconds until cancelled; a failed pass is
    logged and tried again sooner."""
    while True:
        try:
            await reconcile_schedules(client, settings, db)
            pause = every
        except Exception:  # a background repair must never take the worker down
            log.warning("date trigger schedules not reconciled; retrying", exc_info=True)
            pause = min(every, RETRY_SECONDS)
        await asyncio.sleep(pause)


async def _scheduled_automations(client: Client) -> set[str]:
    """Ids of the automations that have a schedule, as Temporal's visibility lists them."""
    listing = await client.list_schedules()
    return {
        entry.id.removeprefix(SCHEDULE_PREFIX)
        async for entry in listing
        if entry.id.startswith(SCHEDULE_PREFIX)
    }


async def _reconcile_one(
    client: Client,
    settings: Settings,
    automation_id: str,
    document: dict[str, Any],
    status: str,
    listed: bool,
) -> str:
    if not has_date_trigger(document):
        # Visibility may lag behind a deletion: a listed schedule already gone is no change.
        if listed and await delete_schedule(client, automation_id):
            return "deleted"
        return "unchanged"
    try:
        described = await client.get_schedule_handle(schedule_id(automation_id)).describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        if _as_wanted(described, settings, automation_id, status == "active"):
            return "unchanged"
    return await sync_schedule(client, settings, automation_id, document, status)


def _as_wanted(
    described: ScheduleDescription, settings: Settings, automation_id: str, active: bool
) -> bool:
    """Whether a schedule does what `_schedule` would make it do: start the date workflow on
    this task queue, daily at the configured hour, paused exactly while inactive."""
    schedule = described.schedule
    action = schedule.action
    calendars = schedule.spec.calendars
    return (
        isinstance(action, ScheduleActionStartWorkflow)
        and action.workflow == DATE_WORKFLOW_TYPE
        and action.id == schedule_id(automation_id)
        and action.task_queue == settings.task_queue
        and len(calendars) == 1
        and [(r.start, r.end) for r in calendars[0].hour]
        == [(settings.date_trigger_hour, settings.date_trigger_hour)]
        and schedule.state.paused == (not active)
    )
