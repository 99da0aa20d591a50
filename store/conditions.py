"""Evaluate conditions against the database, several at once (docs/architecture.md#conditions-and-goals).

Conditions arrive as validated JSON (the document model checked their shape when the
automation was saved). Each kind of fact a call needs (fields, tags, lists, scores, events)
is read once per call, and only if a condition asks for it; for a segment
(`matching_contacts`), once per chunk of contacts.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.crm import deal_values
from store.models import (
    Contact,
    ContactTag,
    Conversion,
    Event,
    GoalAchievement,
    Run,
    Score,
    Subscription,
)
from store.names import name_key

Condition = dict[str, Any]
DURATION_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}


def duration_of(value: Any) -> timedelta:
    if not isinstance(value, dict):
        raise ValueError(f"not a duration: {value!r}")
    return timedelta(
        seconds=sum(float(value.get(unit, 0)) * secs for unit, secs in DURATION_UNITS.items())
    )


@dataclass
class ContactFacts:
    """What one evaluation knows about a contact: its fields from the start; tags, lists,
    scores and events read on first use, once (most conditions look at one kind of fact, and
    every evaluation is a round-trip on a workflow's critical path)."""

    contact_id: int
    values: dict[str, Any]
    tags: set[str] | None = None
    lists: dict[str, str] | None = None
    scores: dict[str, float] | None = None
    events: dict[str, list[Event]] = field(default_factory=dict)


_CONTACT_COLUMNS = (
    Contact.id,
    Contact.fields,
    Contact.email,
    Contact.first_name,
    Contact.last_name,
    Contact.phone,
)


def _facts_of(row: Any) -> ContactFacts:
    values: dict[str, Any] = dict(row.fields or {})
    values.update(
        email=row.email, first_name=row.first_name, last_name=row.last_name, phone=row.phone
    )
    return ContactFacts(row.id, values)


async def load_facts(session: AsyncSession, contact_id: int) -> ContactFacts | None:
    row = (await session.execute(select(*_CONTACT_COLUMNS).where(Contact.id == contact_id))).first()
    return None if row is None else _facts_of(row)


async def evaluate_all(
    session: AsyncSession,
    contact_id: int,
    conditions: Sequence[Condition],
    now: datetime,
    *,
    deal_id: int | None = None,
) -> list[bool]:
    """One boolean per condition; a deleted contact meets none. `deal_id`: the run's deal, which
    `deal` conditions read (see `current_deal`)."""
    facts = await load_facts(session, contact_id)
    if facts is None:
        return [False] * len(conditions)
    evaluator = _Evaluator(session, facts, now, deal_id)
    return [await evaluator.check(c) for c in conditions]


class _Evaluator:
    def __init__(
        self, session: AsyncSession, facts: ContactFacts, now: datetime, deal_id: int | None = None
    ) -> None:
        self.session = session
        self.facts = facts
        self.deal_id = deal_id
        self.now = now if now.tzinfo else now.replace(tzinfo=UTC)
        # The deal's values per pipeline restriction, read once per evaluation.
        self.deals: dict[str | None, dict[str, Any] | None] = {}

    async def _tags(self) -> set[str]:
        if self.facts.tags is None:
            query = select(ContactTag.tag).where(ContactTag.contact_id == self.facts.contact_id)
            self.facts.tags = {name_key(tag) for tag in await self.session.scalars(query)}
        return self.facts.tags

    async def _lists(self) -> dict[str, str]:
        if self.facts.lists is None:
            query = select(Subscription.list, Subscription.status).where(
                Subscription.contact_id == self.facts.contact_id
            )
            self.facts.lists = {
                name_key(name): status for name, status in await self.session.execute(query)
            }
        return self.facts.lists

    async def _scores(self) -> dict[str, float]:
        if self.facts.scores is None:
            query = select(Score.name, Score.value).where(Score.contact_id == self.facts.contact_id)
            self.facts.scores = {name: value for name, value in await self.session.execute(query)}
        return self.facts.scores

    async def check(self, c: Condition) -> bool:
        if "all" in c:
            return all([await self.check(x) for x in c["all"]])
        if "any" in c:
            return any([await self.check(x) for x in c["any"]])
        if "not" in c:
            return not await self.check(c["not"])
        if "field" in c:
            return compare(self.facts.values.get(c["field"]), c["op"], c.get("value"), self.now)
        if "tag" in c:
            return (name_key(c["tag"]) in await self._tags()) == c.get("has", True)
        if "list" in c:
            return (await self._lists()).get(name_key(c["list"])) == c.get("status", "active")
        if "score" in c:
            scores = await self._scores()
            return compare(scores.get(c["score"], 0.0), c["op"], c["value"], self.now)
        if "event" in c:
            return await self._event(c)
        if "email" in c:
            return await self._email(c)
        if "page_visited" in c:
            return await self._page_visited(c)
        if "conversion" in c:
            return await self._exists(
                select(Conversion.id).where(
                    Conversion.contact_id == self.facts.contact_id,
                    Conversion.name == c["conversion"],
                )
            )
        if "in_automation" in c:
            return await self._exists(
                select(Run.id).where(
                    Run.contact_id == self.facts.contact_id,
                    Run.automation_id == c["in_automation"],
                    Run.status == "running",
                )
            )
        if "goal_achieved" in c:
            ref = c["goal_achieved"]
            return await self._exists(
                select(GoalAchievement.workflow_id).where(
                    GoalAchievement.contact_id == self.facts.contact_id,
                    GoalAchievement.automation_id == ref["automation"],
                    GoalAchievement.goal == ref["goal"],
                )
            )
        if "deal" in c:
            return await self._deal(c)
        raise ValueError(f"unknown condition: {sorted(c)}")

    async def _deal(self, c: Condition) -> bool:
        """Compare a field of the current deal (see `current_deal`: the run's deal, else the
        contact's most recent one); a contact without a deal meets nothing."""
        pipeline = c.get("pipeline")
        if pipeline not in self.deals:
            self.deals[pipeline] = await deal_values(
                self.session, self.facts.contact_id, pipeline, deal_id=self.deal_id
            )
        values = self.deals[pipeline]
        if values is None:
            return False
        leaf = c["deal"]
        return compare(values.get(leaf["field"]), leaf["op"], leaf.get("value"), self.now)

    async def _exists(self, query: Any) -> bool:
        return (await self.session.scalar(query.limit(1))) is not None

    async def _events(self, name: str, within: Any) -> list[Event]:
        key = _events_key(name, within)
        if key not in self.facts.events:
            query = _events_query(name, within, self.now).where(
                Event.contact_id == self.facts.contact_id
            )
            self.facts.events[key] = list((await self.session.scalars(query)).all())
        return self.facts.events[key]

    async def _event(self, c: Condition) -> bool:
        wanted = c.get("data") or {}
        matching = [
            e for e in await self._events(c["event"], c.get("within")) if is_subset(wanted, e.data)
        ]
        count = c.get("count")
        if count is None:
            return bool(matching)
        return compare(len(matching), count["op"], count["value"], self.now)

    async def _email(self, c: Condition) -> bool:
        kind = c["email"]
        name = _email_event(kind)
        wanted = {k: c[k] for k in ("step", "automation", "link") if c.get(k) is not None}
        events = await self._events(name, c.get("within"))
        # Clicks a link scanner likely made count only when the leaf says so.
        if not c.get("include_bots"):
            events = [e for e in events if not e.data.get("suspected_bot")]
        hit = any(is_subset(wanted, e.data) for e in events)
        return not hit if kind.startswith("not_") else hit

    async def _page_visited(self, c: Condition) -> bool:
        pattern = c["page_visited"]
        return any(
            fnmatch.fnmatchcase(str(e.data.get("url", "")), pattern)
            for e in await self._events("page_visited", c.get("within"))
        )


def _events_key(name: str, within: Any) -> str:
    return f"{name}|{within}"


def _events_query(name: str, within: Any, now: datetime) -> Any:
    query = select(Event).where(Event.name == name)
    if within:
        query = query.where(Event.occurred_at >= now - duration_of(within))
    return query.order_by(Event.id)


def _email_event(kind: str) -> str:
    """`sent`, `not_opened`… → the event recorded for it: email_sent, email_opened…"""
    return f"email_{kind.removeprefix('not_')}"


def is_subset(wanted: dict[str, Any], data: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        if key not in data:
            return False
        if isinstance(value, dict) and isinstance(data[key], dict):
            if not is_subset(value, data[key]):
                return False
        elif data[key] != value and str(data[key]).lower() != str(value).lower():
            return False
    return True


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def compare(actual: Any, op: str, expected: Any, now: datetime) -> bool:
    """One field operator (docs/automations.md#conditions). Text comparisons ignore case, as a marketer expects."""
    if op == "is_blank":
        return _blank(actual)
    if op == "is_not_blank":
        return not _blank(actual)
    if op in ("before", "after", "within_last"):
        when = _date(actual)
        if when is None:
            return False
        if op == "within_last":
            return now - duration_of(expected) <= when <= now
        bound = _date(expected)
        if bound is None:
            return False
        return when < bound if op == "before" else when > bound
    if op in ("gt", "gte", "lt", "lte"):
        a, b = _number(actual), _number(expected)
        if a is None or b is None:
            da, db = _date(actual), _date(expected)
            if da is None or db is None:
                return False
            a, b = da.timestamp(), db.timestamp()
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    if op in ("is", "is_not"):
        a_num, b_num = _number(actual), _number(expected)
        if a_num is not None and b_num is not None:
            same = a_num == b_num
        elif isinstance(expected, bool) or isinstance(actual, bool):
            same = str(actual).lower() == str(expected).lower()
        else:
            same = (
                not _blank(actual) and str(actual).strip().lower() == str(expected).strip().lower()
            ) or (_blank(actual) and _blank(expected))
        return same if op == "is" else not same
    text = "" if actual is None else str(actual).lower()
    needle = "" if expected is None else str(expected).lower()
    if op == "contains":
        return needle in text
    if op == "not_contains":
        return needle not in text
    if op == "starts_with":
        return text.startswith(needle)
    if op == "ends_with":
        return text.endswith(needle)
    raise ValueError(f"unknown operator {op!r}")


CHUNK = 1000


async def matching_contacts(
    session: AsyncSession,
    condition: Condition,
    now: datetime,
    among: Sequence[int] | None = None,
) -> list[int]:
    """The contacts (of `among`, else of all) that meet `condition`: a segment's enrollment.

    Contacts are read a chunk at a time, and each kind of fact the condition asks for is read
    for the whole chunk in one query: one query per contact and fact measured 23 s for a tag
    over 20,000 contacts, 0.2 s this way. Facts with no bulk reader here (deals, runs, goals,
    conversions) are still read per contact.
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    needs = _needs(condition)
    matched: list[int] = []
    async for chunk in _contact_chunks(session, among):
        await _read_for_chunk(session, {f.contact_id: f for f in chunk}, needs, now)
        for facts in chunk:
            if await _Evaluator(session, facts, now).check(condition):
                matched.append(facts.contact_id)
    return matched


async def _contact_chunks(
    session: AsyncSession, among: Sequence[int] | None
) -> AsyncIterator[list[ContactFacts]]:
    if among is not None:
        ids = sorted(set(among))
        for start in range(0, len(ids), CHUNK):
            query = select(*_CONTACT_COLUMNS).where(Contact.id.in_(ids[start : start + CHUNK]))
            yield [_facts_of(row) for row in await session.execute(query.order_by(Contact.id))]
        return
    after = 0
    while True:
        query = select(*_CONTACT_COLUMNS).where(Contact.id > after).order_by(Contact.id)
        chunk = [_facts_of(row) for row in await session.execute(query.limit(CHUNK))]
        if not chunk:
            return
        yield chunk
        after = chunk[-1].contact_id


@dataclass
class _Needs:
    tags: bool = False
    lists: bool = False
    scores: bool = False
    events: dict[str, tuple[str, Any]] = field(default_factory=dict)  # key -> (name, within)


def _needs(c: Condition, needs: _Needs | None = None) -> _Needs:
    """The facts a condition reads that `_read_for_chunk` can read in bulk."""
    needs = needs or _Needs()
    for child in c.get("all") or c.get("any") or ([c["not"]] if "not" in c else []):
        _needs(child, needs)
    needs.tags |= "tag" in c
    needs.lists |= "list" in c
    needs.scores |= "score" in c
    if "event" in c:
        name = c["event"]
    elif "email" in c:
        name = _email_event(c["email"])
    elif "page_visited" in c:
        name = "page_visited"
    else:
        return needs
    needs.events[_events_key(name, c.get("within"))] = (name, c.get("within"))
    return needs


async def _read_for_chunk(
    session: AsyncSession, chunk: dict[int, ContactFacts], needs: _Needs, now: datetime
) -> None:
    ids = list(chunk)
    if needs.tags:
        for facts in chunk.values():
            facts.tags = set()
        rows = await session.execute(
            select(ContactTag.contact_id, ContactTag.tag).where(ContactTag.contact_id.in_(ids))
        )
        for contact_id, tag in rows:
            chunk[contact_id].tags.add(name_key(tag))  # type: ignore[union-attr]
    if needs.lists:
        for facts in chunk.values():
            facts.lists = {}
        subscriptions = await session.execute(
            select(Subscription.contact_id, Subscription.list, Subscription.status).where(
                Subscription.contact_id.in_(ids)
            )
        )
        for contact_id, name, status in subscriptions:
            chunk[contact_id].lists[name_key(name)] = status  # type: ignore[index]
    if needs.scores:
        for facts in chunk.values():
            facts.scores = {}
        scores = await session.execute(
            select(Score.contact_id, Score.name, Score.value).where(Score.contact_id.in_(ids))
        )
        for contact_id, name, value in scores:
            chunk[contact_id].scores[name] = value  # type: ignore[index]
    for key, (name, within) in needs.events.items():
        for facts in chunk.values():
            facts.events[key] = []
        events = await session.scalars(
            _events_query(name, within, now).where(Event.contact_id.in_(ids))
        )
        for event in events:
            chunk[event.contact_id].events[key].append(event)
