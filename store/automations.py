"""Automations as immutable versions (docs/architecture.md#versions-and-live-edits)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Automation, AutomationVersion, utcnow


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    return slug or "automation"


async def free_id(session: AsyncSession, wanted: str) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`... whichever is not taken."""
    candidate, n = wanted, 1
    while await session.get(Automation, candidate) is not None:
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate


async def create_automation(
    session: AsyncSession, automation_id: str, document: dict[str, Any]
) -> Automation:
    document = {**document, "id": automation_id}
    automation = Automation(
        id=automation_id, name=document["name"], status=document.get("status", "active"), version=1
    )
    session.add(automation)
    session.add(AutomationVersion(automation_id=automation_id, version=1, document=document))
    await session.flush()
    return automation


async def add_version(
    session: AsyncSession, automation: Automation, document: dict[str, Any]
) -> int:
    automation.version += 1
    automation.name = document["name"]
    automation.status = document.get("status", "active")
    automation.updated_at = utcnow()
    session.add(
        AutomationVersion(
            automation_id=automation.id,
            version=automation.version,
            document={**document, "id": automation.id},
        )
    )
    await session.flush()
    return automation.version


async def get_document(
    session: AsyncSession, automation_id: str, version: int | None = None
) -> dict[str, Any] | None:
    if version is None:
        automation = await session.get(Automation, automation_id)
        if automation is None:
            return None
        version = automation.version
    row = await session.get(AutomationVersion, (automation_id, version))
    return None if row is None else dict(row.document)


async def list_automations(session: AsyncSession) -> Sequence[Automation]:
    return (
        await session.scalars(select(Automation).order_by(Automation.created_at, Automation.id))
    ).all()


async def automation_ids(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(Automation.id))).all())


async def active_documents(session: AsyncSession) -> list[dict[str, Any]]:
    """The current document of every active automation (trigger matching reads these)."""
    rows = await session.execute(
        select(AutomationVersion.document)
        .join(
            Automation,
            (Automation.id == AutomationVersion.automation_id)
            & (Automation.version == AutomationVersion.version),
        )
        .where(Automation.status == "active")
    )
    return [dict(doc) for (doc,) in rows.all()]


async def in_automation_watchers(session: AsyncSession) -> dict[str, set[str]]:
    """Automation id → the automations whose current document (active or not: an inactive one
    lets its contacts finish a wait) has an `in_automation` condition naming it."""
    rows = await session.execute(
        select(AutomationVersion.automation_id, AutomationVersion.document).join(
            Automation,
            (Automation.id == AutomationVersion.automation_id)
            & (Automation.version == AutomationVersion.version),
        )
    )
    watchers: dict[str, set[str]] = {}
    for automation_id, document in rows.all():
        for watched in _in_automation_ids(document):
            watchers.setdefault(watched, set()).add(automation_id)
    return watchers


def _in_automation_ids(value: Any) -> Iterator[str]:
    """Every `in_automation` id anywhere in a document (conditions nest in many places)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "in_automation" and isinstance(item, str):
                yield item
            else:
                yield from _in_automation_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _in_automation_ids(item)


async def change_stamp(session: AsyncSession) -> tuple[Any, ...]:
    """Changes whenever an automation is created, versioned or (de)activated."""
    row = (
        await session.execute(select(func.count(Automation.id), func.max(Automation.updated_at)))
    ).one()
    return tuple(row)
