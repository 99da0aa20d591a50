"""Every change to a contact, each written with its outbox row in the same transaction (docs/architecture.md#the-outbox).

The API and the step activities call these same functions, so a step's `add_tag` wakes other
runs and fires triggers exactly as an API call does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    Contact,
    ContactTag,
    Conversion,
    Event,
    Note,
    OutboxEntry,
    Run,
    Score,
    Subscription,
    utcnow,
)
from store.names import name_key, named

STANDARD_FIELDS = ("first_name", "last_name", "phone")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class InvalidChange(ValueError):
    """A change that cannot be applied as asked (bad email, unknown operation...)."""


class EmailTaken(InvalidChange):
    """The email asked for is another contact's (emails are unique)."""


def yes_or_no(value: Any) -> bool | None:
    """A consent-style field as people and CSV imports write it: True for true/"yes"/"1",
    False for false/"no"/"0", None when absent or anything else."""
    if isinstance(value, str):
        value = value.strip().lower()
        return (
            True
            if value in ("true", "yes", "1")
            else False
            if value in ("false", "no", "0")
            else None
        )
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return True if value == 1 else False if value == 0 else None
    return None


def normalize_email(email: str) -> str:
    normalized = email.strip().lower()
    if len(normalized) > 320 or not EMAIL_PATTERN.match(normalized):
        raise InvalidChange(f"not a valid email address: {email!r}")
    return normalized


def emit(
    session: AsyncSession,
    contact_id: int,
    kind: str,
    data: dict[str, Any] | None = None,
    *,
    origin: str | None = None,
) -> None:
    """Queue a change for delivery to running runs and triggers, in the caller's transaction."""
    session.add(
        OutboxEntry(contact_id=contact_id, kind=kind, data=data or {}, origin_workflow_id=origin)
    )


async def get_contact(session: AsyncSession, contact_id: int) -> Contact | None:
    return await session.get(Contact, contact_id)


async def find_by_email(session: AsyncSession, email: str) -> Contact | None:
    return await session.scalar(select(Contact).where(Contact.email == normalize_email(email)))


async def upsert_contact(
    session: AsyncSession,
    *,
    email: str,
    values: dict[str, Any],
    fields: dict[str, Any] | None = None,
    origin: str | None = None,
) -> tuple[Contact, bool]:
    """Create or update by email; returns (contact, created)."""
    normalized = normalize_email(email)
    contact = await session.scalar(select(Contact).where(Contact.email == normalized))
    created = contact is None
    if contact is None:
        contact = Contact(email=normalized, fields={})
        session.add(contact)
        await session.flush()
        emit(session, contact.id, "contact_created", {}, origin=origin)
    await update_fields(session, contact, {**values, **(fields or {})}, origin=origin)
    return contact, created


async def update_fields(
    session: AsyncSession,
    contact: Contact,
    changes: dict[str, Any],
    *,
    origin: str | None = None,
) -> list[str]:
    """Set standard and custom fields; emits `field_changed` for each value that really changed."""
    changed: list[str] = []
    custom = dict(contact.fields or {})
    for name, value in changes.items():
        if name == "email":
            old, new = contact.email, normalize_email(str(value)) if value else None
        elif name in STANDARD_FIELDS:
            old, new = getattr(contact, name), None if value is None else str(value)
        else:
            old, new = custom.get(name), value
        if old == new:
            continue
        if name == "email" and new is not None:
            other = await find_by_email(session, new)
            if other is not None and other.id != contact.id:
                raise EmailTaken(f"another contact has the email {new!r}")
        if name == "email" or name in STANDARD_FIELDS:
            setattr(contact, name, new)
        elif new is None:
            custom.pop(name, None)
        else:
            custom[name] = new
        changed.append(name)
        emit(
            session,
            contact.id,
            "field_changed",
            {"field": name, "from": old, "to": new},
            origin=origin,
        )
    if any(name not in STANDARD_FIELDS and name != "email" for name in changed):
        contact.fields = custom  # a new dict so SQLAlchemy sees the JSON change
    if changed:
        contact.updated_at = utcnow()
    return changed


async def _spelling(session: AsyncSession, column: Any, name: str) -> str:
    """The spelling `name` already has on any contact (the first one used), else `name`."""
    # By the lowered name only, which the index on lower(name) serves: the exact-spelling arm
    # of named() would scan the table (no index leads with the name).
    first = select(column).where(func.lower(column) == name_key(name)).limit(1)
    return await session.scalar(first) or name.strip()


async def _insert(session: AsyncSession, row: ContactTag | Subscription) -> bool:
    """Add `row`; False when a concurrent transaction added the same name (another case) for
    the contact first: the unique index on the lowered name has the last word."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def add_tag(
    session: AsyncSession, contact_id: int, tag: str, *, origin: str | None = None
) -> bool:
    """Tag the contact; False when it already has the tag in any case."""
    has = select(ContactTag.tag).where(
        ContactTag.contact_id == contact_id, named(ContactTag.tag, tag)
    )
    if await session.scalar(has) is not None:
        return False
    tag = await _spelling(session, ContactTag.tag, tag)
    if not await _insert(session, ContactTag(contact_id=contact_id, tag=tag)):
        return False
    emit(session, contact_id, "tag_added", {"tag": tag}, origin=origin)
    return True


async def remove_tag(
    session: AsyncSession, contact_id: int, tag: str, *, origin: str | None = None
) -> bool:
    """Remove the tag in whatever case the contact has it; False when it has none."""
    removed = await session.scalar(
        delete(ContactTag)
        .where(ContactTag.contact_id == contact_id, named(ContactTag.tag, tag))
        .returning(ContactTag.tag)
    )
    if removed is None:
        return False
    emit(session, contact_id, "tag_removed", {"tag": removed}, origin=origin)
    return True


async def set_subscription(
    session: AsyncSession,
    contact_id: int,
    list_name: str,
    status: str,
    *,
    origin: str | None = None,
) -> bool:
    if status not in ("active", "unsubscribed"):
        raise InvalidChange(f"list status must be active or unsubscribed, not {status!r}")
    subscription = await subscription_to(session, contact_id, list_name)
    if subscription is not None and subscription.status == status:
        return False
    if subscription is None and status == "unsubscribed":
        # Leaving a list one never joined changes nothing (as in ActiveCampaign): no row that
        # would count as "unsubscribed from every list", no list_unsubscribed trigger.
        return False
    if subscription is None:
        list_name = await _spelling(session, Subscription.list, list_name)
        row = Subscription(contact_id=contact_id, list=list_name, status=status)
        if not await _insert(session, row):
            return False
    else:
        list_name = subscription.list
        subscription.status = status
        subscription.updated_at = utcnow()
    kind = "list_subscribed" if status == "active" else "list_unsubscribed"
    emit(session, contact_id, kind, {"list": list_name}, origin=origin)
    return True


async def subscription_to(
    session: AsyncSession, contact_id: int, list_name: str
) -> Subscription | None:
    """The contact's membership of the list, whatever the case it is spelled in."""
    return await session.scalar(
        select(Subscription).where(
            Subscription.contact_id == contact_id, named(Subscription.list, list_name)
        )
    )


def score_after(old: float, op: str, value: float | None) -> float:
    """A score after add / subtract / set / reset (contacts' and deals' scores alike)."""
    amount = float(value or 0)
    new = {"add": old + amount, "subtract": old - amount, "set": amount, "reset": 0.0}.get(op)
    if new is None:
        raise InvalidChange(f"unknown score operation {op!r}")
    return new


async def adjust_score(
    session: AsyncSession,
    contact_id: int,
    name: str,
    op: str,
    value: float | None,
    *,
    origin: str | None = None,
) -> tuple[float, float]:
    """add / subtract / set / reset a named score; returns (old, new)."""
    score = await session.get(Score, (contact_id, name))
    old = score.value if score else 0.0
    new = score_after(old, op, value)
    if score is None:
        session.add(Score(contact_id=contact_id, name=name, value=new))
    else:
        score.value = new
    if new != old:
        emit(
            session,
            contact_id,
            "score_changed",
            {"score": name, "from": old, "to": new},
            origin=origin,
        )
    return old, new


async def add_note(session: AsyncSession, contact_id: int, body: str) -> Note:
    note = Note(contact_id=contact_id, body=body)
    session.add(note)
    return note


async def record_conversion(
    session: AsyncSession,
    contact_id: int,
    name: str,
    value: float | None,
    *,
    automation_id: str | None = None,
    origin: str | None = None,
) -> None:
    session.add(
        Conversion(contact_id=contact_id, name=name, value=value, automation_id=automation_id)
    )
    emit(session, contact_id, "conversion", {"conversion": name, "value": value}, origin=origin)


async def record_event(
    session: AsyncSession,
    contact_id: int,
    name: str,
    data: dict[str, Any] | None = None,
    *,
    occurred_at: datetime | None = None,
    origin: str | None = None,
) -> Event:
    event = Event(
        contact_id=contact_id, name=name, data=data or {}, occurred_at=occurred_at or utcnow()
    )
    session.add(event)
    emit(session, contact_id, "event", {"event": name, "data": data or {}}, origin=origin)
    return event


async def recent_event(
    session: AsyncSession, contact_id: int, name: str, data: dict[str, Any], *, since: datetime
) -> bool:
    """Whether the contact has an event `name` with exactly `data` since `since` (a repeat);
    the `suspected_bot` mark a click may carry is no part of what is compared."""
    recent = await session.scalars(
        select(Event.data).where(
            Event.contact_id == contact_id, Event.name == name, Event.occurred_at >= since
        )
    )
    return any(
        {k: v for k, v in existing.items() if k != "suspected_bot"} == data for existing in recent
    )


async def events_since(
    session: AsyncSession, contact_id: int, name: str, *, since: datetime
) -> list[Event]:
    """The contact's events `name` since `since`, oldest first."""
    found = await session.scalars(
        select(Event)
        .where(Event.contact_id == contact_id, Event.name == name, Event.occurred_at >= since)
        .order_by(Event.id)
    )
    return list(found.all())


@dataclass(frozen=True)
class ContactDetails:
    """What a contact's record shows besides its own columns (its CRM side is in store.crm)."""

    contact: Contact
    tags: list[str]
    subscriptions: list[Subscription]
    scores: list[Score]
    notes: list[Note]
    conversions: list[Conversion]
    runs: list[Run]


async def contact_details(session: AsyncSession, contact: Contact) -> ContactDetails:
    """The contact's tags, lists and scores (ordered by name), and its notes, conversions and
    runs (oldest first)."""
    cid = contact.id

    async def rows(model: Any, *where: Any, order: Any) -> list[Any]:
        return list((await session.scalars(select(model).where(*where).order_by(order))).all())

    return ContactDetails(
        contact=contact,
        tags=await rows(ContactTag.tag, ContactTag.contact_id == cid, order=ContactTag.tag),
        subscriptions=await rows(
            Subscription, Subscription.contact_id == cid, order=Subscription.list
        ),
        scores=await rows(Score, Score.contact_id == cid, order=Score.name),
        notes=await rows(Note, Note.contact_id == cid, order=Note.id),
        conversions=await rows(Conversion, Conversion.contact_id == cid, order=Conversion.id),
        runs=await rows(Run, Run.contact_id == cid, order=Run.id),
    )


async def count_contacts(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Contact)) or 0)


# The list an unsubscribe link records when the contact was on no list at all: without it such a
# contact (who receives email, docs/integrations.md#email) would keep receiving it after unsubscribing.
ALL_EMAIL_LIST = "all"


async def unsubscribe_everywhere(
    session: AsyncSession, contact_id: int, *, origin: str | None = None
) -> list[str]:
    """An unsubscribe link: every active list becomes `unsubscribed` (one outbox row each).

    Returns the lists changed. A contact on no list gets an `unsubscribed` row for
    ALL_EMAIL_LIST, so the sending rule "unsubscribed from every list it was on" holds.
    """
    rows = (
        await session.scalars(select(Subscription).where(Subscription.contact_id == contact_id))
    ).all()
    if not rows:
        session.add(Subscription(contact_id=contact_id, list=ALL_EMAIL_LIST, status="unsubscribed"))
        emit(session, contact_id, "list_unsubscribed", {"list": ALL_EMAIL_LIST}, origin=origin)
        return [ALL_EMAIL_LIST]
    lists = [s.list for s in rows if s.status == "active"]
    for list_name in lists:
        await set_subscription(session, contact_id, list_name, "unsubscribed", origin=origin)
    return lists


async def mark_bounced(
    session: AsyncSession, contact: Contact, data: dict[str, Any], *, origin: str | None = None
) -> None:
    """A permanent delivery failure: no email goes to this contact any more. The `email_bounced`
    event (with `data`: automation, step, the server's reply) lets conditions and triggers see it."""
    contact.bounced = True
    contact.updated_at = utcnow()
    await record_event(session, contact.id, "email_bounced", data, origin=origin)
