"""Condition evaluation against the real database (docs/automations.md#conditions), on every database flavour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from store import conditions
from store.conditions import compare, evaluate_all, matching_contacts
from tests.helpers.stack import Stack

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("actual", "op", "expected", "result"),
    [
        ("Pro", "is", "pro", True),
        ("pro", "is_not", "team", True),
        ("10", "gt", 9, True),
        (10, "lte", "10", True),
        ("abc", "gt", 1, False),
        ("hello world", "contains", "WORLD", True),
        ("hello", "not_contains", "x", True),
        ("hello", "starts_with", "he", True),
        ("hello", "ends_with", "lo", True),
        (None, "is_blank", None, True),
        ("  ", "is_blank", None, True),
        ("x", "is_not_blank", None, True),
        ("2026-01-01", "before", "2026-06-01", True),
        ("2026-01-01T00:00:00Z", "after", "2025-12-31", True),
        ("2026-11-26", "within_last", {"days": 2}, True),
        ("2026-11-01", "within_last", {"days": 2}, False),
        ("not a date", "before", "2026-01-01", False),
        (True, "is", "true", True),
        (None, "is", "x", False),
    ],
)
def test_field_operators(actual: Any, op: str, expected: Any, result: bool) -> None:
    assert compare(actual, op, expected, NOW) is result


async def _ada(any_stack: Stack) -> tuple[int, datetime]:
    """A contact with a fact of every kind; her id, and the time her facts were recorded."""
    http = any_stack.http
    contact = await any_stack.contact(first_name="Ada", fields={"plan": "pro", "seats": 3})
    cid = contact["id"]
    await http.post(f"/api/v1/contacts/{cid}/tags", json={"tag": "vip"})
    for status in ("active", "unsubscribed"):  # joined the list, then left it
        await http.post(f"/api/v1/contacts/{cid}/lists", json={"list": "news", "status": status})
    now = datetime.now(UTC)
    for n in range(3):
        await http.post(
            "/api/v1/events",
            json={
                "contact": cid,
                "event": "purchase",
                "data": {"sku": f"s{n}", "meta": {"ch": "web"}},
            },
        )
    await http.post(
        "/api/v1/events",
        json={
            "contact": cid,
            "event": "old",
            "occurred_at": (now - timedelta(days=10)).isoformat(),
        },
    )
    await http.post(
        "/api/v1/events",
        json={
            "contact": cid,
            "event": "page_visited",
            "data": {"url": "https://shop.example/cart/1"},
        },
    )
    await http.post(
        "/api/v1/events",
        json={
            "contact": cid,
            "event": "email_clicked",
            "data": {"automation": "a", "step": "welcome", "link": "https://x"},
        },
    )
    # A mail gateway's link scanner (docs/integrations.md#abuse-of-the-public-routes).
    await http.post(
        "/api/v1/events",
        json={
            "contact": cid,
            "event": "email_clicked",
            "data": {"automation": "a", "step": "scan", "link": "https://x", "suspected_bot": True},
        },
    )

    return cid, now


CASES: list[tuple[dict[str, Any], bool]] = [
    ({"field": "first_name", "op": "is", "value": "ada"}, True),
    ({"field": "seats", "op": "gte", "value": 3}, True),
    ({"tag": "vip"}, True),
    ({"tag": "vip", "has": False}, False),
    ({"list": "news", "status": "unsubscribed"}, True),
    ({"list": "news"}, False),
    ({"score": "missing", "op": "is", "value": 0}, True),
    ({"event": "purchase"}, True),
    ({"event": "purchase", "data": {"sku": "s1"}}, True),
    ({"event": "purchase", "data": {"meta": {"ch": "web"}}}, True),
    ({"event": "purchase", "data": {"sku": "nope"}}, False),
    ({"event": "purchase", "count": {"op": "gte", "value": 3}}, True),
    ({"event": "purchase", "count": {"op": "gt", "value": 3}}, False),
    ({"event": "old", "within": {"days": 1}}, False),
    ({"event": "old", "within": {"days": 30}}, True),
    ({"page_visited": "https://shop.example/cart/*"}, True),
    ({"page_visited": "https://shop.example/checkout*"}, False),
    ({"email": "clicked", "step": "welcome"}, True),
    ({"email": "not_opened"}, True),
    ({"email": "clicked", "step": "scan"}, False),
    ({"email": "not_clicked", "step": "scan"}, True),
    ({"email": "clicked", "step": "scan", "include_bots": True}, True),
    ({"email": "opened"}, False),
    ({"conversion": "signup"}, False),
    ({"in_automation": "nope"}, False),
    ({"goal_achieved": {"automation": "a", "goal": "g"}}, False),
    ({"all": [{"tag": "vip"}, {"any": [{"tag": "x"}, {"not": {"tag": "y"}}]}]}, True),
    ({"all": [{"tag": "vip"}, {"tag": "x"}]}, False),
]


async def test_every_leaf_reads_the_database(any_stack: Stack) -> None:
    cid, now = await _ada(any_stack)
    async with any_stack.db.read() as session:
        results = await evaluate_all(
            session, cid, [c for c, _ in CASES], now + timedelta(seconds=5)
        )
        assert results == [expected for _, expected in CASES]
        assert await evaluate_all(session, 10**12, [{"tag": "vip"}], now) == [False]


async def test_a_segment_is_the_contacts_each_of_which_meets_it(
    any_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk evaluation (facts read per chunk of contacts) agrees with evaluating one by one,
    across chunk boundaries, for every leaf."""
    monkeypatch.setattr(conditions, "CHUNK", 2)
    plain = (await any_stack.contact())["id"]
    ada, now = await _ada(any_stack)
    bo = (await any_stack.contact(first_name="Bo"))["id"]
    await any_stack.http.post(f"/api/v1/contacts/{bo}/tags", json={"tag": "vip"})
    await any_stack.http.post("/api/v1/events", json={"contact": bo, "event": "purchase"})
    ids = [bo, plain, ada]
    later = now + timedelta(seconds=5)
    async with any_stack.db.read() as session:
        for condition, _ in CASES:
            one_by_one = [
                c for c in sorted(ids) if (await evaluate_all(session, c, [condition], later))[0]
            ]
            assert await matching_contacts(session, condition, later, among=ids) == one_by_one
            everyone = await matching_contacts(session, condition, later)
            assert [c for c in everyone if c in ids] == one_by_one, condition
        assert await matching_contacts(session, {"tag": "vip"}, later, among=[10**12]) == []
