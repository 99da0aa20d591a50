"""Finding contacts: by a piece of their email or name and by tag, newest first, a page at a time.

Pages are read by key (ids below the last one seen), never by offset: the query walks the
contacts' primary key downwards and stops after `limit + 1` matches, so a deep page costs what
the first does. A tag is looked up through the index on the lowered tag name
(docs/api.md#searching-contacts has the figures on 100,000 contacts).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Contact, ContactTag
from store.names import name_key


def sqlite_lower(text: str) -> str:
    """`text` as SQLite's lower() folds it: ASCII letters only."""
    return "".join(c.lower() if c.isascii() else c for c in text)


def _like_pattern(fragment: str) -> str:
    """A LIKE pattern matching `fragment` anywhere, its own % and _ taken literally."""
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_contacts(
    session: AsyncSession,
    *,
    text: str | None,
    tag: str | None,
    below: int | None,
    limit: int,
) -> list[Contact]:
    """Up to `limit + 1` contacts with an id below `below`, newest first (the extra one says
    whether a next page exists). `text`: a case-insensitive piece of the email, first name,
    last name or "first last"; `tag`: a tag the contact has, whatever its case."""
    query = select(Contact).order_by(Contact.id.desc()).limit(limit + 1)
    if below is not None:
        query = query.where(Contact.id < below)
    if text and text.strip():
        pattern = _like_pattern(name_key(text))
        full_name = func.lower(
            func.coalesce(Contact.first_name, "")
            + literal(" ")
            + func.coalesce(Contact.last_name, "")
        )
        # Emails are stored lowered (store.contacts.normalize_email): no lower() needed.
        query = query.where(
            or_(Contact.email.like(pattern, escape="\\"), full_name.like(pattern, escape="\\"))
        )
    if tag and tag.strip():
        # Both foldings of the name: PostgreSQL's lower() folds every letter, SQLite's only
        # ASCII ones; either way the index on lower(tag) finds the rows.
        spellings = {name_key(tag), sqlite_lower(tag.strip())}
        tagged = select(ContactTag.contact_id).where(func.lower(ContactTag.tag).in_(spellings))
        query = query.where(Contact.id.in_(tagged))
    return list((await session.scalars(query)).all())


async def tags_of(session: AsyncSession, contact_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each contact's tags, by name, in one query."""
    tags: dict[int, list[str]] = {cid: [] for cid in contact_ids}
    if not contact_ids:
        return tags
    rows = await session.execute(
        select(ContactTag.contact_id, ContactTag.tag)
        .where(ContactTag.contact_id.in_(contact_ids))
        .order_by(ContactTag.contact_id, ContactTag.tag)
    )
    for contact_id, tag in rows.all():
        tags[contact_id].append(tag)
    return tags
