"""Searching contacts (docs/api.md#searching-contacts): by a piece of the email or name, by tag,
newest first, read by key a page at a time without a duplicate or a gap."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, insert, select

from store.models import Contact, ContactTag
from tests.helpers.stack import Stack

SEEDED = 2_000


async def _pages(stack: Stack, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a search, following `next` to the end."""
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = await stack.http.get("/api/v1/contacts", params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["limit"] == params.get("limit", 50)
        pages.append(body["items"])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(pages) < 1_000, "the cursor never ends"


async def _seed(stack: Stack, marker: str) -> list[int]:
    """SEEDED contacts whose emails hold `marker`, a third of them tagged `<marker>-Gold`,
    inserted straight into the database (the API would take a minute for 2,000)."""
    rows = [
        {
            "email": f"{marker}-{i}@example.com",
            "first_name": "Ada" if i % 2 else "Grace",
            "last_name": f"Lovelace{i}" if i % 2 else f"Hopper{i}",
            "fields": {},
            "bounced": False,
        }
        for i in range(SEEDED)
    ]
    async with stack.db.write() as session:
        connection = await session.connection()
        await connection.execute(insert(Contact.__table__), rows)
        ids = list(
            (
                await session.scalars(
                    select(Contact.id).where(Contact.email.like(f"{marker}-%")).order_by(Contact.id)
                )
            ).all()
        )
        tags = [{"contact_id": cid, "tag": f"{marker}-Gold"} for cid in ids[::3]]
        await connection.execute(insert(ContactTag.__table__), tags)
    assert len(ids) == SEEDED
    return ids


async def test_search_pages_through_every_match_once(any_stack: Stack) -> None:
    stack = any_stack
    marker = stack.unique("seek")
    ids = await _seed(stack, marker)

    pages = await _pages(stack, q=marker.upper(), limit=200)  # any case
    found = [c["id"] for page in pages for c in page]
    assert found == sorted(ids, reverse=True)  # newest first, none twice, none missed
    assert [len(p) for p in pages] == [200] * (SEEDED // 200)
    first = pages[0][0]
    assert first["email"] == f"{marker}-{SEEDED - 1}@example.com"
    assert set(first) == {
        "id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "bounced",
        "tags",
        "created_at",
    }

    # By tag, whatever its case: every third contact, with its tags listed.
    gold = await _pages(stack, tag=f"{marker}-GOLD", limit=77)
    tagged = [c for page in gold for c in page]
    assert [c["id"] for c in tagged] == sorted(ids[::3], reverse=True)
    assert all(c["tags"] == [f"{marker}-Gold"] for c in tagged)
    assert len(gold[-1]) == len(ids[::3]) % 77

    # A piece of a name ("first last" too), combined with the tag.
    both = await _pages(stack, q="ada lovelace1", tag=f"{marker}-gold")
    expected = [
        cid
        for i, cid in enumerate(ids)
        if i % 2 and i % 3 == 0 and f"lovelace{i}".startswith("lovelace1")
    ]
    assert [c["id"] for page in both for c in page] == sorted(expected, reverse=True)

    # A row added while paging: the pages already read do not shift.
    answer = await stack.http.get("/api/v1/contacts", params={"q": marker, "limit": 10})
    first_page = answer.json()
    await stack.contact(email=f"{marker}-late@example.com")
    second = await stack.http.get(
        "/api/v1/contacts", params={"q": marker, "limit": 10, "cursor": first_page["next"]}
    )
    assert [c["id"] for c in second.json()["items"]] == sorted(ids, reverse=True)[10:20]


async def test_search_matches_substrings_literally(any_stack: Stack) -> None:
    stack = any_stack
    marker = stack.unique("lit")
    percent = await stack.contact(email=f"{marker}-100%@example.com", first_name="Zoë")
    await stack.contact(email=f"{marker}-1000@example.com")
    answer = await stack.http.get("/api/v1/contacts", params={"q": f"{marker}-100%"})
    assert [c["id"] for c in answer.json()["items"]] == [percent["id"]]  # % is no wildcard
    answer = await stack.http.get("/api/v1/contacts", params={"q": f"{marker}_"})
    assert answer.json() == {"items": [], "limit": 50, "next": None}  # nor is _
    tagged = await stack.http.post(f"/api/v1/contacts/{percent['id']}/tags", json={"tag": "Équipe"})
    assert tagged.status_code in (200, 201), tagged.text
    answer = await stack.http.get("/api/v1/contacts", params={"tag": "Équipe", "q": marker})
    assert [c["id"] for c in answer.json()["items"]] == [percent["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not a cursor"},
        {"cursor": "WzEsMl0"},  # a list of two numbers: another list's cursor
        {"cursor": "WyJ4Il0"},  # ["x"]
        {"cursor": "Wy0xXQ"},  # [-1]
        {"cursor": "WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwXQ"},  # past any id
        {"limit": 0},
        {"limit": 201},
        {"q": "x" * 201},
    ],
)
async def test_bad_search_parameters_are_422(stack: Stack, params: dict[str, Any]) -> None:
    answer = await stack.http.get("/api/v1/contacts", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][0] == "query"


async def test_a_page_is_read_through_indexes(stack: Stack) -> None:
    """SQLite's plan for the statements the route runs: the contacts' primary key from the
    cursor down, the tag through the index on the lowered name; nothing sorted in a temporary
    table, so a page costs the same on 100,000 contacts (docs/api.md#searching-contacts)."""
    ran: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM contacts" in statement and "LIMIT" in statement:
            ran.append((statement, parameters))

    engine = stack.db.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        for params in ({"cursor": "WzEwMDBd"}, {"tag": "gold", "q": "ada", "cursor": "WzEwMDBd"}):
            answer = await stack.http.get("/api/v1/contacts", params=params)
            assert answer.status_code == 200, answer.text
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(ran) == 2
    plans = []
    async with stack.db.read_engine.connect() as connection:
        for statement, parameters in ran:
            rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.append([row[-1] for row in rows.all()])
    paged, tagged = plans
    assert paged == ["SEARCH contacts USING INTEGER PRIMARY KEY (rowid<?)"], paged
    assert any("USING INDEX ix_contact_tags_lower_tag" in step for step in tagged), tagged
    assert not any("TEMP B-TREE" in step or "SCAN" in step for step in paged + tagged), plans
