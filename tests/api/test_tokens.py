"""Scoped API tokens: a website backend gets a token that records visits and nothing else;
tokens are named, revocable, and stored only as digests (docs/api.md#tokens)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from sqlalchemy import text

from tests.helpers.stack import Stack


async def make_token(stack: Stack, *scopes: str, name: str | None = None) -> dict[str, Any]:
    body = {"name": name or stack.unique("token"), "scopes": list(scopes)}
    answer = await stack.http.post("/api/v1/tokens", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def calling(token: str) -> dict[str, str]:
    return {"Api-Token": token}


async def test_a_site_token_records_visits_but_reads_no_contact(any_stack: Stack) -> None:
    stack = any_stack
    contact = await stack.contact()
    site = await make_token(stack, "site")
    assert site["token"].startswith("cairn_") and site["scopes"] == ["site"]
    http = stack.http
    visit = {"contact": contact["id"], "url": "https://shop.test/pricing"}
    allowed = await http.post("/api/v1/site/visits", json=visit, headers=calling(site["token"]))
    assert allowed.status_code == 200, allowed.text

    for method, path, body in [
        ("GET", f"/api/v1/contacts/{contact['id']}", None),
        ("GET", "/api/v1/contacts/1", None),
        ("POST", "/api/v1/events", {"contact": contact["id"], "event": "bought"}),
        ("POST", "/api/v1/tokens", {"name": stack.unique(), "scopes": ["admin"]}),
        ("GET", "/api/v1/tokens", None),
    ]:
        answer = await http.request(method, path, json=body, headers=calling(site["token"]))
        assert answer.status_code == 403, (method, path, answer.status_code)
        detail = answer.json()["detail"]
        assert f"the token {site['name']!r} may not call {method} {path}" in detail
        assert "scope" in detail and "it has ['site']" in detail

    events = await make_token(stack, "events:write")
    posted = await http.post(
        "/api/v1/events",
        json={"contact": contact["id"], "event": "bought"},
        headers=calling(events["token"]),
    )
    assert posted.status_code == 202, posted.text
    refused = await http.post("/api/v1/site/visits", json=visit, headers=calling(events["token"]))
    assert refused.status_code == 403
    assert "needs the 'site' scope" in refused.json()["detail"]

    # Several scopes at once; an admin token may call everything, token management included.
    both = await make_token(stack, "site", "events:write", "site")
    assert both["scopes"] == ["events:write", "site"]
    admin = await make_token(stack, "admin")
    read = await http.get(f"/api/v1/contacts/{contact['id']}", headers=calling(admin["token"]))
    assert read.status_code == 200
    listed = await http.get("/api/v1/tokens", headers=calling(admin["token"]))
    assert listed.status_code == 200


async def test_a_revoked_or_unknown_token_is_refused_with_401(any_stack: Stack) -> None:
    stack = any_stack
    token = await make_token(stack, "events:write")
    headers = calling(token["token"])
    event = {"email": "nobody@example.com", "event": "x"}
    assert (await stack.http.post("/api/v1/events", json=event, headers=headers)).status_code == 404

    listed = {t["name"]: t for t in (await stack.http.get("/api/v1/tokens")).json()}
    mine = listed[token["name"]]
    assert "token" not in mine and mine["last_used_at"] is not None and mine["revoked_at"] is None

    revoked = await stack.http.delete(f"/api/v1/tokens/{token['name']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    for given in (token["token"], token["token"][:-1] + "x", "cairn_" + "A" * 43):
        answer = await stack.http.post("/api/v1/events", json=event, headers=calling(given))
        assert answer.status_code == 401
        assert answer.json() == {"detail": "missing or wrong Api-Token header"}

    assert (await stack.http.delete("/api/v1/tokens/no-such-token")).status_code == 404
    again = await stack.http.post(
        "/api/v1/tokens", json={"name": token["name"], "scopes": ["site"]}
    )
    assert again.status_code == 409  # a revoked token's name stays taken: the record is kept
    bad = await stack.http.post("/api/v1/tokens", json={"name": "x", "scopes": ["everything"]})
    assert bad.status_code == 422


async def test_the_database_holds_digests_not_tokens(any_stack: Stack) -> None:
    stack = any_stack
    token = await make_token(stack, "site")
    async with stack.db.read() as session:
        rows = (await session.execute(text("SELECT * FROM api_tokens"))).mappings().all()
    stored = " ".join(str(value) for row in rows for value in row.values())
    secret = token["token"].removeprefix("cairn_")
    assert secret not in stored and secret[:16] not in stored
    assert hashlib.sha256(token["token"].encode()).hexdigest() in stored


async def test_the_bootstrap_token_stays_an_admin_token(any_stack: Stack) -> None:
    answer = await any_stack.http.get("/api/v1/tokens")
    assert answer.status_code == 200 and isinstance(answer.json(), list)


async def test_a_scoped_token_is_refused_before_its_body_is_read(any_stack: Stack) -> None:
    """Like a missing token: no 422 tells a site token about a route it may not call."""
    site = await make_token(any_stack, "site")
    headers = {**calling(site["token"]), "Content-Type": "application/json"}
    http: httpx.AsyncClient = any_stack.http
    for path in ("/api/v1/contacts", "/api/v1/events", "/api/v1/nothing-here"):
        answer = await http.post(path, content=b'{"not json', headers=headers)
        assert answer.status_code == 403, (path, answer.status_code)
    own = await http.post("/api/v1/site/visits", content=b'{"not json', headers=headers)
    assert own.status_code == 422
