"""Who may call what: every /api/v1 route refuses a missing or wrong token, or one without
the route's scope, before it reads anything; the public routes are a declared list; tracking links work only with a token signed
by this installation; webhooks never reach a private address, however the URL spells it.

The routes are walked from the app itself, so a route added later is covered (or, if public,
must be declared here on purpose).
"""

from __future__ import annotations

import hmac
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select
from starlette.routing import Mount, Route

from activities.webhook import Delivery, RefusedDestination, checked_address, deliver
from api.app import create_app
from store.models import Event
from tests.helpers.providers import fake_server
from tests.helpers.stack import API_TOKEN, Stack
from workflows.tracking import Token, sign

# Public on purpose: opened by browsers, mail readers, probes and docs readers.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/t/o/{token}"),
    ("GET", "/t/c/{token}"),
    ("GET", "/unsubscribe/{token}"),
    ("POST", "/unsubscribe/{token}"),
    ("OPTIONS", "/t/visit"),
    ("POST", "/t/visit"),
    ("GET", "/site.js"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    # Cairn Studio's bundle (docs/studio.md): the app itself; it holds no data, and signs in
    # with a token to call /api/v1.
    ("GET", "/assets/{name:path}"),
    ("GET", "/{path:path}"),
}
# Outside /api/v1 but checking the API token themselves (/metrics: unless CAIRN_METRICS_PUBLIC).
OWN_TOKEN_CHECK = {("GET", "/metrics")}

# The routes a token without the admin scope may call, by scope; every other needs admin.
SCOPED = {
    ("POST", "/api/v1/events"): "events:write",
    ("POST", "/api/v1/site/visits"): "site",
}
# Mounted apps with their own access check (the codec server: API token or the UI's key).
OWN_AUTH_MOUNTS = {"/codec"}
NO_SUCH_ID = str(2**62)  # a valid id (and a valid name) that no record has
# Wrong tokens: same length (one character off, all different), other lengths, not even ASCII.
ONE_OFF = API_TOKEN[:-1] + chr(ord(API_TOKEN[-1]) ^ 1)
LONGER = API_TOKEN + "x"
WRONG_TOKENS: list[str | bytes] = [
    ONE_OFF,
    "x" * len(API_TOKEN),
    API_TOKEN[:-1],
    LONGER,
    "",
    " " + API_TOKEN,
    "tökén".encode(),  # as raw bytes: HTTP headers are not text
]
# A body that fails validation, sent with every refused request: the answer is still 401.
MALFORMED = b'{"not json'


def operations(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route of the app, included routers flattened (their paths with
    the prefix); HEAD (Starlette's twin of GET) left out."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute | Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, str(route.path)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", NO_SUCH_ID, path)


@pytest.fixture
async def app(stack: Stack) -> AsyncIterator[FastAPI]:
    """The app as `cairn api` builds it, on the test stack's database and Temporal."""
    built = create_app(stack.settings, client=stack.client, db=stack.db)
    async with built.router.lifespan_context(built):
        yield built


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no token unless told to."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cairn.test") as http:
        yield http


def protected(app: FastAPI) -> list[tuple[str, str]]:
    return [(m, p) for m, p in operations(app) if p.startswith("/api/v1/")]


async def test_the_walk_finds_only_protected_or_declared_public_routes(app: FastAPI) -> None:
    found = set(operations(app))
    public = {(m, p) for m, p in found if not p.startswith("/api/v1/")}
    assert public == PUBLIC | OWN_TOKEN_CHECK, (
        "a public route must be declared in PUBLIC on purpose"
    )
    mounts = {
        r.path for r in iter_route_contexts(app.routes) if isinstance(r.original_route, Mount)
    }
    assert mounts == OWN_AUTH_MOUNTS
    assert len(protected(app)) >= 50  # the walk sees the real routing table
    # The OpenAPI schema says so too: the token is the security scheme of every API operation.
    paths = app.openapi()["paths"]
    for method, path in protected(app):
        operation = paths[path][method.lower()]
        assert operation["security"] == [{"APIKeyHeader": []}], (method, path)
        assert "401" in operation["responses"], (method, path)
        assert "403" in operation["responses"], (method, path)
        assert operation.get("x-cairn-scope") == SCOPED.get((method, path)), (method, path)
    assert all("security" not in paths[p].get(m.lower(), {}) for m, p in public if p in paths)


async def test_every_api_route_refuses_a_missing_or_wrong_token_before_reading_the_body(
    app: FastAPI, anonymous: httpx.AsyncClient
) -> None:
    refused: list[str] = []
    checked = 0
    for method, path in protected(app):
        url = concrete(path)
        for token in [None, *WRONG_TOKENS]:
            headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
            if token is not None:
                headers["Api-Token"] = token
            answer = await anonymous.request(method, url, content=MALFORMED, headers=headers)
            checked += 1
            if answer.status_code != 401 or answer.json() != {
                "detail": "missing or wrong Api-Token header"
            }:
                refused.append(f"{method} {path} with {token!r}: {answer.status_code}")
        # Only the Api-Token header counts: not a bearer token, not a query parameter.
        for elsewhere in (
            anonymous.request(method, url, headers={"Authorization": f"Bearer {API_TOKEN}"}),
            anonymous.request(method, url, params={"Api-Token": API_TOKEN}),
        ):
            answer = await elsewhere
            checked += 1
            if answer.status_code != 401:
                refused.append(f"{method} {path}, token not in its header: {answer.status_code}")
    assert refused == [], "\n".join(refused)
    print(f"{checked} refused requests over {len(protected(app))} API operations")


async def test_with_the_token_the_same_requests_reach_the_routes(
    app: FastAPI, anonymous: httpx.AsyncClient
) -> None:
    """The other half: the refusals above come from the token, not from a route that refuses
    everything. Only ids no record has and bodies that fail validation: nothing changes."""
    wrong: list[str] = []
    for method, path in protected(app):
        answer = await anonymous.request(
            method,
            concrete(path),
            content=MALFORMED,
            headers={"Api-Token": API_TOKEN, "Content-Type": "application/json"},
        )
        if answer.status_code == 401 or answer.status_code >= 500:
            wrong.append(f"{method} {path}: {answer.status_code} {answer.text[:200]}")
    assert wrong == [], "\n".join(wrong)


async def test_scoped_tokens_reach_only_their_routes_and_are_refused_before_the_body(
    app: FastAPI, anonymous: httpx.AsyncClient
) -> None:
    """Each scope against every API route: 403 (before the malformed body is read) outside
    its routes, its routes reached (the body's 422) inside them."""
    wrong: list[str] = []
    admin = {"Api-Token": API_TOKEN}
    for scope in ("events:write", "site"):
        name = f"access-{scope.replace(':', '-')}-{uuid.uuid4().hex[:8]}"
        made = await anonymous.post(
            "/api/v1/tokens", json={"name": name, "scopes": [scope]}, headers=admin
        )
        assert made.status_code == 201, made.text
        headers = {"Api-Token": made.json()["token"], "Content-Type": "application/json"}
        for method, path in protected(app):
            answer = await anonymous.request(
                method, concrete(path), content=MALFORMED, headers=headers
            )
            allowed = SCOPED.get((method, path)) == scope
            if allowed and answer.status_code in (401, 403):
                wrong.append(f"{scope}: {method} {path} refused: {answer.status_code}")
            if not allowed and (
                answer.status_code != 403 or f"{method} {concrete(path)}" not in answer.text
            ):
                wrong.append(f"{scope}: {method} {path} not refused: {answer.status_code}")
        revoked = await anonymous.delete(f"/api/v1/tokens/{name}", headers=admin)
        assert revoked.status_code == 200
        gone = await anonymous.get("/api/v1/automations", headers=headers)
        assert gone.status_code == 401
    assert wrong == [], "\n".join(wrong)
    assert set(SCOPED) <= set(protected(app))


async def test_unknown_api_paths_are_refused_without_the_token_too(
    anonymous: httpx.AsyncClient,
) -> None:
    """Without the token nothing under /api/v1 is told apart: not even which paths exist."""
    for path in ("/api/v1/nothing-here", "/api/v1", "/api/v1/contacts/"):
        assert (await anonymous.get(path)).status_code == 401
    found = await anonymous.get("/api/v1/nothing-here", headers={"Api-Token": API_TOKEN})
    assert found.status_code == 404


async def test_the_token_is_compared_in_constant_time(
    anonymous: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every check goes through hmac.compare_digest (timing is not measured: the machine is
    shared): a spy sees the given and the expected token compared, right and wrong ones."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for token in (API_TOKEN, ONE_OFF, LONGER):
        await anonymous.get("/api/v1/automations", headers={"Api-Token": token})
    expected = API_TOKEN.encode()
    given = [a for a, b in compared if b == expected]
    assert API_TOKEN.encode() in given
    assert ONE_OFF.encode() in given and LONGER.encode() in given


# --- tracking links -------------------------------------------------------------------------


def tampered(token: str) -> dict[str, str]:
    """Ways to get a token wrong: each must be a 404, like any unknown link."""
    payload, signature = token.split(".")
    flip = "A" if signature[0] != "A" else "B"
    other = "x" if payload[-1] != "x" else "y"
    return {
        "forged": "eyJmb3JnZWQiOjF9.AAAAAAAAAAAAAAAAAAAAAA",
        "altered signature": f"{payload}.{flip}{signature[1:]}",
        "altered payload": f"{payload[:-1]}{other}.{signature}",
        "truncated": token[:-1],
        "signature only": signature,
        "no signature": f"{payload}.",
        "two dots": f"{token}.{signature}",
        "not ascii": f"é{token}",
    }


async def test_tracking_routes_accept_only_tokens_this_installation_signed(
    stack: Stack, anonymous: httpx.AsyncClient
) -> None:
    contact = await stack.contact()
    key = stack.settings.signing_key("tracking")
    link = "https://shop.test/sale"
    tokens = {
        ("GET", "/t/o/{}"): Token("open", contact["id"], "a", "mail"),
        ("GET", "/t/c/{}"): Token("click", contact["id"], "a", "mail", link),
        ("GET", "/unsubscribe/{}"): Token("unsubscribe", contact["id"], "a", "mail"),
        ("POST", "/unsubscribe/{}"): Token("unsubscribe", contact["id"], "a", "mail"),
    }
    for (method, path), token in tokens.items():
        signed = sign(token, key)
        bad = {
            **tampered(signed),
            "another key": sign(token, key[::-1]),
            "another kind": sign(Token("visitor", contact["id"]), key),
            "the visitor key": sign(token, stack.settings.signing_key("visitor")),
        }
        for why, text in bad.items():
            answer = await anonymous.request(method, path.format(text))
            assert answer.status_code == 404, (method, path, why, answer.status_code)
            assert answer.json() == {"detail": "unknown link"}

    # The same links, signed with this installation's key, work.
    opened = await anonymous.get(f"/t/o/{sign(tokens['GET', '/t/o/{}'], key)}")
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
    clicked = await anonymous.get(f"/t/c/{sign(tokens['GET', '/t/c/{}'], key)}")
    assert clicked.status_code == 302 and clicked.headers["location"] == link
    page = await anonymous.get(f"/unsubscribe/{sign(tokens['GET', '/unsubscribe/{}'], key)}")
    assert page.status_code == 200 and "Unsubscribe" in page.text


async def test_a_forged_visitor_cookie_names_no_one(
    stack: Stack, anonymous: httpx.AsyncClient
) -> None:
    contact = await stack.contact()
    key = stack.settings.signing_key("visitor")
    for cookie, url in (
        (sign(Token("visitor", contact["id"]), key[::-1]), "https://shop.test/forged"),
        (
            sign(Token("visitor", contact["id"]), stack.settings.signing_key("tracking")),
            "https://shop.test/tracking-key",
        ),
        (sign(Token("visitor", contact["id"]), key)[:-1], "https://shop.test/truncated"),
        (sign(Token("visitor", contact["id"]), key), "https://shop.test/signed"),
    ):
        anonymous.cookies.set("cairn_contact", cookie)
        answer = await anonymous.post("/t/visit", content=json.dumps({"url": url}).encode())
        assert answer.status_code == 200 and answer.json() == {"messages": []}
    async with stack.db.read() as session:
        visits = await session.scalars(
            select(Event).where(Event.contact_id == contact["id"], Event.name == "page_visited")
        )
        assert [e.data["url"] for e in visits] == ["https://shop.test/signed"]


# --- the webhook SSRF guard -----------------------------------------------------------------


def system_names_for_this_machine() -> list[str]:
    """Names the system resolver (here: /etc/hosts) answers with a loopback or private address."""
    return ["localhost", "localhost.", "LocalHost", socket.gethostname()]


@pytest.mark.parametrize(
    "url",
    [
        *(f"http://{name}:8080/hook" for name in system_names_for_this_machine()),
        # IPv4 spelled the ways inet_aton (and so getaddrinfo) reads it.
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://017700000001/",  # octal
        "http://127.1/",
        "http://0/",  # 0.0.0.0
        "http://10.1/",
        # IPv6 spellings of loopback and of IPv4 addresses.
        "http://[::1]/",
        "http://[0:0:0:0:0:0:0:1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::]/",
        "http://[fe80::1]/",
    ],
)
async def test_the_guard_refuses_private_addresses_whatever_the_spelling(url: str) -> None:
    """With the system resolver, not a fake one: what httpx would have connected to."""
    # Refused for where it leads, or (localhost. here) because it leads nowhere: never reached.
    with pytest.raises(RefusedDestination, match=r"refused: .*address|does not resolve"):
        await checked_address(httpx.URL(url), allow_private=False)


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one number
        "http://0xa9fea9fe/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
    ],
)
async def test_a_redirect_to_the_metadata_service_is_refused_however_spelled(
    location: str,
) -> None:
    """Private addresses allowed (the receiver is on 127.0.0.1): metadata stays refused."""
    with fake_server() as receiver:
        receiver.reply(302, "", {"Location": location})
        delivery = Delivery("POST", f"{receiver.url}/in", b"{}", {}, {})
        async with httpx.AsyncClient() as client:
            with pytest.raises(RefusedDestination, match="a cloud metadata address"):
                await deliver(client, delivery, allow_private=True)
        assert len(receiver.received) == 1  # the first hop only


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    """DNS rebinding: a name checked once must not be resolved again by httpx. The resolver
    answers the receiver's address the first time and the metadata address after that; the
    name itself resolves nowhere else (.invalid), so only the checked address can be reached."""
    with fake_server() as receiver:
        port = int(receiver.url.rsplit(":", 1)[1])
        answers = iter([["127.0.0.1"]])
        lookups: list[str] = []

        async def rebinding(host: str, _port: int) -> list[str]:
            lookups.append(host)
            return next(answers, ["169.254.169.254"])

        delivery = Delivery("POST", f"http://hooks.invalid:{port}/in", b"{}", {"X-A": "1"}, {})
        async with httpx.AsyncClient() as client:
            response = await deliver(client, delivery, allow_private=True, resolver=rebinding)
        assert response.status_code == 200
        assert lookups == ["hooks.invalid"]
        (received,) = receiver.received
        assert received.header("Host") == f"hooks.invalid:{port}"
        assert received.path == "/in"


async def test_the_codec_mount_checks_its_own_credentials(anonymous: httpx.AsyncClient) -> None:
    """Declared apart from the public routes above: it needs the token or the UI's key."""
    body = {"payloads": []}
    for path in ("/codec/encode", "/codec/decode"):
        assert (await anonymous.post(path, json=body)).status_code == 401
        wrong = await anonymous.post(path, json=body, headers={"Api-Token": ONE_OFF})
        assert wrong.status_code == 401
    guessed = await anonymous.post("/codec/ui/not-the-key/decode", json=body)
    assert guessed.status_code == 401
    allowed = await anonymous.post("/codec/decode", json=body, headers={"Api-Token": API_TOKEN})
    assert allowed.status_code != 401
