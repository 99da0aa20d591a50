"""Facebook custom-audience steps against a real HTTP server standing in for the Graph API: the
request byte for byte (path, form/query encoding, hashed payload), Graph's error codes, and
`create_if_missing`."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlencode

import pytest

from activities import http
from activities.facebook import audience_payload, normalize_phone
from tests.helpers.providers import (
    FakeServer,
    activity_results,
    configured,
    fake_server,
    outcomes,
    run_contact,
    run_steps,
    started_activities,
)
from tests.helpers.stack import Stack

TOKEN = "fb-test-token"


def facebook_at(stack: Stack, server: FakeServer) -> AbstractContextManager[None]:
    """The stack's Facebook settings pointing at a fake Graph API."""
    return configured(
        stack.settings,
        facebook_graph_url=f"{server.url}/v21.0",
        facebook_access_token=TOKEN,
        facebook_ad_account="act_555",
    )


@pytest.fixture
async def graph(stack: Stack) -> AsyncIterator[FakeServer]:
    """A fake Graph API the SQLite stack talks to for the test's duration."""
    with fake_server() as server, facebook_at(stack, server):
        yield server


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def users_body(payload: dict[str, Any]) -> bytes:
    """Graph parameters as Meta's SDKs send them: `payload` as compact JSON, then the token."""
    return urlencode(
        [("payload", json.dumps(payload, separators=(",", ":"))), ("access_token", TOKEN)]
    ).encode()


def audience_step(kind: str = "add", **options: Any) -> dict[str, Any]:
    return {"type": f"facebook_audience_{kind}", **options}


def graph_error(code: int, message: str, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": {**error, "fbtrace_id": "AbC123"}}


TAG = {"type": "add_tag", "tag": "after-facebook"}
ADDED = {"audience_id": "12345", "num_received": 1, "num_invalid_entries": 0}


# --- the request ----------------------------------------------------------------------------


async def test_add_posts_hashed_email_and_phone(stack: Stack, graph: FakeServer) -> None:
    graph.reply(200, ADDED)

    run, _ = await run_steps(
        stack,
        {"fb": audience_step(audience="12345")},
        {"email": "Ada.Lovelace@Example.com", "phone": "+1 (415) 555-0100"},
    )

    assert outcomes(run)["fb"] == ("done", None)
    (request,) = graph.received
    assert (request.method, request.path, request.query) == ("POST", "/v21.0/12345/users", "")
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert request.body == users_body(
        {
            "schema": ["EMAIL", "PHONE"],
            "data": [[sha("ada.lovelace@example.com"), sha("14155550100")]],
        }
    )


async def test_remove_sends_a_delete_with_the_parameters_in_the_query(
    stack: Stack, graph: FakeServer
) -> None:
    graph.reply(200, ADDED)

    run, contact = await run_steps(stack, {"fb": audience_step("remove", audience="12345")})

    assert outcomes(run)["fb"] == ("done", None)
    (request,) = graph.received
    assert (request.method, request.path, request.body) == ("DELETE", "/v21.0/12345/users", b"")
    expected = {"schema": "EMAIL_SHA256", "data": [sha(contact["email"])]}
    assert request.query.encode() == users_body(expected)


def test_payload_normalization() -> None:
    assert audience_payload("  Someone@Example.COM ", None) == {
        "schema": "EMAIL_SHA256",
        "data": [sha("someone@example.com")],
    }
    assert audience_payload(None, "0033 6 12 34 56 78") == {
        "schema": "PHONE_SHA256",
        "data": [sha("33612345678")],
    }
    assert audience_payload("", " ") is None
    assert normalize_phone("+44 (0)20 7946-0000") == "442079460000"
    assert normalize_phone("call me") is None


# --- Graph's answers ------------------------------------------------------------------------


async def test_rate_limits_and_server_errors_are_retried(stack: Stack, graph: FakeServer) -> None:
    graph.reply(400, graph_error(80003, "There have been too many calls to this ad account"))
    graph.reply(400, graph_error(613, "Calls to this api have exceeded the rate limit."))
    graph.reply(400, graph_error(17, "User request limit reached"))
    graph.reply(500, graph_error(2, "An unexpected error has occurred."))
    graph.reply(200, ADDED)

    run, _ = await run_steps(stack, {"fb": audience_step(audience="12345")})

    assert outcomes(run)["fb"] == ("done", None)
    assert len(graph.received) == 5
    assert len({r.body for r in graph.received}) == 1


async def test_a_graph_api_slower_than_the_deadline_is_retried(
    stack: Stack, graph: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "TOTAL_SECONDS", 1.0)  # 30 s in production
    graph.reply(200, ADDED, delay=2.5).reply(200, ADDED)

    run, _ = await run_steps(stack, {"fb": audience_step(audience="12345")})

    assert outcomes(run)["fb"] == ("done", None)
    assert len(graph.received) == 2
    assert len({r.body for r in graph.received}) == 1
    (attempt,) = await started_activities(stack, run["workflow_id"], "facebook_audience_add")
    assert attempt.attempt == 2
    assert attempt.last_failure.message == "Graph API POST 12345/users: no answer within 1 s"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            graph_error(190, "Invalid OAuth access token - Cannot parse access token"),
            "Invalid OAuth access token - Cannot parse access token (code 190, HTTP 400)",
        ),
        (
            graph_error(
                100,
                "Unsupported post request. Object with ID '12345' does not exist",
                subcode=33,
            ),
            "Object with ID '12345' does not exist (code 100, HTTP 400)",
        ),
    ],
)
async def test_an_invalid_token_or_audience_fails_with_graphs_message(
    stack: Stack, graph: FakeServer, error: dict[str, Any], message: str
) -> None:
    graph.reply(400, error)

    run, _ = await run_steps(
        stack, {"fb": {**audience_step(audience="12345"), "next": "after"}, "after": TAG}
    )

    outcome, reason = outcomes(run)["fb"]
    assert outcome == "failed"
    assert reason is not None and reason.startswith("Graph API POST 12345/users: ")
    assert reason.endswith(message)
    assert outcomes(run)["after"] == ("done", None)
    assert len(graph.received) == 1


async def test_without_a_token_the_step_is_skipped(stack: Stack, graph: FakeServer) -> None:
    stack.settings.facebook_access_token = ""

    run, _ = await run_steps(stack, {"fb": audience_step(audience="12345")})

    assert outcomes(run)["fb"] == ("skipped", "provider_not_configured")
    assert graph.received == []
    # The Temporal UI shows it too: the activity's result carries the reason.
    result = (await activity_results(stack, run["workflow_id"]))["facebook_audience_add"]
    assert (result.outcome, result.reason) == ("skipped", "provider_not_configured")


# --- create_if_missing ----------------------------------------------------------------------


def create_body(automation_id: str, step_id: str, name: str) -> bytes:
    return urlencode(
        [
            ("name", name),
            ("subtype", "CUSTOM"),
            ("customer_file_source", "USER_PROVIDED_ONLY"),
            ("description", f"Created by Cairn: automation {automation_id}, step {step_id}"),
            ("access_token", TOKEN),
        ]
    ).encode()


async def test_create_if_missing_creates_the_audience_once_and_remembers_it(
    any_stack: Stack,
) -> None:
    with fake_server() as graph, facebook_at(any_stack, graph):
        await create_once_and_remember(any_stack, graph)


async def create_once_and_remember(stack: Stack, graph: FakeServer) -> None:
    name = stack.unique("Buyers")
    automation_id = await stack.automation(
        {
            "start": "add",
            "steps": {
                "add": {
                    **audience_step(create_if_missing=True, audience_name=name),
                    "next": "remove",
                },
                "remove": audience_step("remove", create_if_missing=True, audience_name=name),
            },
        }
    )
    graph.reply(200, {"id": "777"})

    first, _ = await run_contact(stack, automation_id)
    second, _ = await run_contact(stack, automation_id)

    assert outcomes(first) == {"add": ("done", None), "remove": ("done", None)}
    assert outcomes(second) == {"add": ("done", None), "remove": ("done", None)}
    calls = [(r.method, r.path) for r in graph.received]
    assert calls == [
        ("POST", "/v21.0/act_555/customaudiences"),
        ("POST", "/v21.0/777/users"),
        ("DELETE", "/v21.0/777/users"),
        ("POST", "/v21.0/777/users"),
        ("DELETE", "/v21.0/777/users"),
    ]
    assert graph.received[0].body == create_body(automation_id, "add", name)


async def test_create_if_missing_replaces_an_audience_that_no_longer_exists(
    stack: Stack, graph: FakeServer
) -> None:
    name = stack.unique("Leads")
    step = audience_step(audience="12345", create_if_missing=True, audience_name=name)
    automation_id = await stack.automation({"start": "add", "steps": {"add": step}})
    graph.reply(400, graph_error(100, "Object with ID '12345' does not exist", subcode=33))
    graph.reply(200, {"id": "888"})

    first, _ = await run_contact(stack, automation_id)
    second, _ = await run_contact(stack, automation_id)

    assert outcomes(first)["add"] == ("done", None)
    assert outcomes(second)["add"] == ("done", None)
    assert [r.path for r in graph.received] == [
        "/v21.0/12345/users",
        "/v21.0/act_555/customaudiences",
        "/v21.0/888/users",
        "/v21.0/888/users",
    ]


async def test_a_retry_finds_the_audience_its_lost_create_made(
    stack: Stack, graph: FakeServer
) -> None:
    name = stack.unique("Lost")
    step = audience_step(create_if_missing=True, audience_name=name)
    automation_id = await stack.automation({"start": "add", "steps": {"add": step}})
    description = f"Created by Cairn: automation {automation_id}, step add"
    graph.reply(hang_up=True)  # Graph created the audience; its answer never came back
    graph.reply(
        200,
        {
            "data": [
                {"id": "111", "name": name, "description": "made by hand"},
                {"id": "777", "name": name, "description": description},
            ]
        },
    )
    graph.reply(200, ADDED)

    run, _ = await run_contact(stack, automation_id)

    assert outcomes(run)["add"] == ("done", None)
    create, lookup, add = graph.received
    assert (create.method, create.path) == ("POST", "/v21.0/act_555/customaudiences")
    assert create.body == create_body(automation_id, "add", name)
    assert (lookup.method, lookup.path) == ("GET", "/v21.0/act_555/customaudiences")
    assert lookup.query_params() == {
        "fields": "id,name,description",
        "filtering": json.dumps(
            [{"field": "name", "operator": "EQUAL", "value": name}], separators=(",", ":")
        ),
        "access_token": TOKEN,
    }
    assert (add.method, add.path) == ("POST", "/v21.0/777/users")  # no second audience


async def test_create_if_missing_without_an_ad_account_is_skipped(
    stack: Stack, graph: FakeServer
) -> None:
    stack.settings.facebook_ad_account = ""
    step = audience_step(create_if_missing=True, audience_name=stack.unique("x"))

    run, _ = await run_steps(stack, {"add": step})

    assert outcomes(run)["add"] == ("skipped", "provider_not_configured")
    assert graph.received == []


async def test_removing_from_an_audience_never_created_is_skipped(
    stack: Stack, graph: FakeServer
) -> None:
    step = audience_step("remove", create_if_missing=True, audience_name=stack.unique("none"))

    run, _ = await run_steps(stack, {"remove": step})

    assert outcomes(run)["remove"] == ("skipped", "audience_not_found")
    assert graph.received == []


async def test_contacts_arriving_together_create_one_audience(any_stack: Stack) -> None:
    with fake_server() as graph, facebook_at(any_stack, graph):
        graph.reply(200, {"id": "999"})
        step = audience_step(create_if_missing=True, audience_name=any_stack.unique("Rush"))
        automation_id = await any_stack.automation({"start": "add", "steps": {"add": step}})

        runs = await asyncio.gather(*(run_contact(any_stack, automation_id) for _ in range(3)))

        assert all(outcomes(run)["add"] == ("done", None) for run, _ in runs)
        calls = sorted(r.path for r in graph.received)
        assert calls == ["/v21.0/999/users"] * 3 + ["/v21.0/act_555/customaudiences"]
