"""Which custom fields contacts have: what a `%TAG%` of an automation may name (docs/automations.md#personalization)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.document import Automation, unknown_tag_problems
from workflows.personalization import KNOWN_TAGS, find_tags
from workflows.steps import text_fields

_FIELD_NAMES = {
    "postgresql": "SELECT DISTINCT json_object_keys(fields) FROM contacts "
    "WHERE json_typeof(fields) = 'object'",
    "sqlite": "SELECT DISTINCT j.key FROM contacts, json_each(contacts.fields) AS j "
    "WHERE json_type(contacts.fields) = 'object'",
}


async def custom_field_names(session: AsyncSession) -> set[str]:
    """Every custom field name present on at least one contact."""
    query = _FIELD_NAMES[session.get_bind().dialect.name]
    return {str(name) for name in (await session.scalars(text(query))).all() if name is not None}


async def tag_warnings(session: AsyncSession, document: dict[str, Any]) -> list[dict[str, Any]]:
    """Warnings for `%TAG%`s that are neither standard nor a custom field of any contact: they
    render empty (the field may be added later, hence never an error). The contacts are read
    only when the document has such a tag: most use standard tags only."""
    automation = Automation.model_validate(document)
    if not any(
        set(find_tags(value)) - KNOWN_TAGS
        for step in automation.steps.values()
        for _, value in text_fields(step)
    ):
        return []
    fields = await custom_field_names(session)
    return [problem.model_dump() for problem in unknown_tag_problems(automation, fields)]
