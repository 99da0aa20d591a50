"""`date_field` triggers: the contacts whose date is due today, enrolled in batches."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities.deps import Deps
from domain.enrollment import enroll_many
from store import automations as automation_store
from store.conditions import matching_contacts
from store.models import Contact, utcnow
from workflows.date_enrollment import DateMatchesInput, DateMatchesOutput

BATCH = 1000
# A stored date starts with YYYY-MM-DD (a date or an ISO datetime); the calendar day written
# is the one that counts, whatever time zone follows it.
_DAY = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")
STANDARD_DATE_FIELDS = {"created_at": Contact.created_at, "updated_at": Contact.updated_at}


def due_dates(today: date, offset: int) -> date:
    """The date a field must hold today: `offset` days before it (negative) fires early."""
    return today - timedelta(days=offset)


def day_patterns(target: date, annual: bool) -> list[str]:
    """SQL LIKE prefixes selecting candidate values (checked exactly afterwards)."""
    if not annual:
        return [f"{target.isoformat()}%"]
    patterns = [f"____-{target.month:02d}-{target.day:02d}%"]
    # Born on Feb 29: celebrated on Feb 28 in years without one.
    if (target.month, target.day) == (2, 28) and not calendar.isleap(target.year):
        patterns.append("____-02-29%")
    return patterns


def matches(value: Any, target: date, annual: bool) -> bool:
    """Whether a stored value's calendar day is `target` (month and day only when annual)."""
    found = _DAY.match(str(value)) if value is not None else None
    if found is None:
        return False
    year, month, day = (int(g) for g in found.groups())
    if not annual:
        return (year, month, day) == (target.year, target.month, target.day)
    if (month, day) == (target.month, target.day):
        return True
    return (
        (month, day) == (2, 29)
        and (target.month, target.day) == (2, 28)
        and (not calendar.isleap(target.year))
    )


async def date_candidates(
    session: AsyncSession, field: str, target: date, annual: bool
) -> list[int]:
    """Contacts whose `field` (a custom field, or created_at/updated_at) falls on `target`."""
    column = STANDARD_DATE_FIELDS.get(field)
    if column is not None:
        rows = await session.execute(select(Contact.id, column))
        return [cid for cid, when in rows.all() if matches(when.isoformat(), target, annual)]
    value = Contact.fields[field].as_string()
    rows = await session.execute(
        select(Contact.id, value)
        .where(or_(*(value.like(p) for p in day_patterns(target, annual))))
        .order_by(Contact.id)
    )
    return [cid for cid, raw in rows.all() if matches(raw, target, annual)]


class DateEnrollmentActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="enroll_date_matches")
    async def enroll_date_matches(self, data: DateMatchesInput) -> DateMatchesOutput:
        """Enroll every contact due today under each `date_field` trigger of the automation."""
        deps, today = self.deps, date.fromisoformat(data.day)
        result = DateMatchesOutput(day=data.day)
        async with deps.db.read() as session:
            document = await automation_store.get_document(session, data.automation_id)
        if document is None:
            return result  # deleted meanwhile: the schedule goes with it
        for trigger in document.get("triggers") or []:
            if trigger.get("type") != "date_field":
                continue
            target = due_dates(today, int(trigger.get("offset", 0)))
            async with deps.db.read() as session:
                ids = await date_candidates(
                    session, trigger["field"], target, bool(trigger.get("annual"))
                )
            for start in range(0, len(ids), BATCH):
                chunk = await self._filtered(trigger, ids[start : start + BATCH])
                result.matched += len(chunk)
                outcome = await enroll_many(
                    deps.db,
                    deps.client,
                    deps.settings.task_queue,
                    data.automation_id,
                    chunk,
                    entry=trigger.get("entry") or document.get("entry"),
                )
                result.enrolled += len(outcome.enrolled)
                for reason, count in outcome.refused.items():
                    result.refused[reason] = result.refused.get(reason, 0) + count
                activity.heartbeat(start)
        activity.logger.info(
            "date triggers of %s for %s: %d matched, %d enrolled",
            data.automation_id,
            data.day,
            result.matched,
            result.enrolled,
        )
        return result

    async def _filtered(self, trigger: dict[str, Any], ids: list[int]) -> list[int]:
        if not trigger.get("filter") or not ids:
            return ids
        async with self.deps.db.read() as session:
            return await matching_contacts(session, trigger["filter"], utcnow(), among=ids)
