"""Payload encryption: a run's exported history holds no contact data and no credential, the
codec endpoint the Temporal UI uses reads it back, and without a key credentials still never
reach Temporal."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from cli.launcher import start_temporal_dev_server
from cli.temporal_dev_server import dev_server_args
from core.codec import ENCODING, ui_codec_endpoint, ui_codec_key
from core.keys import key_id
from core.settings import Settings
from core.temporal import SEARCH_ATTRIBUTES
from tests.helpers.faults import held_until
from tests.helpers.providers import FakeServer, Reply, configured, fake_server, outcomes
from tests.helpers.runs import finished
from tests.helpers.served import served_api
from tests.helpers.stack import (
    API_TOKEN,
    Mailbox,
    Stack,
    eventually,
    flavoured_stack,
    local_settings,
    stack_of,
    stack_settings,
)

KEY = base64.b64encode(os.urandom(32)).decode()
UI_ORIGIN = "http://localhost:8233"  # the stacks' default CAIRN_TEMPORAL_UI_URL

# Credentials as distinctive strings: found anywhere in a history, they leaked.
CREDENTIALS = {
    "sms_auth_token": "sms-auth-4f7c1e9a2b",
    "facebook_access_token": "fb-access-8d2e6a0c5f",
    "salesforce_access_token": "00Dsf!access-3b9e7d1a",
    "secret_key": "cairn-secret-6a1f0e8c4d",
}
PERSON = {
    "first_name": "Philippa",
    "last_name": "Quennell",
    "phone": "+44 20 7946 0018",
    "fields": {"sms_consent": True},
}


def json_reply(status: int, body: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


@pytest.fixture(scope="module")
async def encrypted(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A SQLite stack whose worker, API and client encrypt with KEY."""
    tmp = tmp_path_factory.mktemp("encrypted")
    async for s in flavoured_stack(env, mailbox, tmp, "sqlite", encryption_key=KEY):
        yield s


@contextmanager
def providers(stack: Stack) -> Iterator[dict[str, FakeServer]]:
    """Fake Twilio, Graph API, Salesforce and webhook receiver, with CREDENTIALS configured."""
    with ExitStack() as servers:
        fakes = {
            "twilio": servers.enter_context(
                fake_server(json_reply(201, {"sid": "SM1", "status": "queued"}))
            ),
            "graph": servers.enter_context(
                fake_server(json_reply(200, {"audience_id": "12345", "num_received": 1}))
            ),
            "salesforce": servers.enter_context(
                fake_server(json_reply(201, {"id": "003AAAAAAAAAAAAAAA", "success": True}))
            ),
            "hook": servers.enter_context(fake_server()),
        }
        servers.enter_context(
            configured(
                stack.settings,
                sms_base_url=fakes["twilio"].url,
                sms_account_sid="AC0123456789abcdef",
                sms_from="+15005550006",
                facebook_graph_url=f"{fakes['graph'].url}/v21.0",
                salesforce_instance_url=fakes["salesforce"].url,
                webhook_allow_private=True,
                **CREDENTIALS,
            )
        )
        yield fakes


LOCAL_ACTIVITY_MARKER = {
    "seq",
    "attempt",
    "activity_id",
    "activity_type",
    "complete_time",
    "backoff",
    "original_schedule_time",
    "activation_index",
}
DONE = ("mail", "swap", "sms", "hook", "fb", "sf", "thanks")


def assert_every_step_ran(run: dict[str, Any], contact: dict[str, Any]) -> None:
    steps = outcomes(run)
    assert {step: steps[step] for step in DONE} == dict.fromkeys(DONE, ("done", None)), run
    assert steps["buy"] == ("done", "condition_met"), run  # released by the event
    outcome, reason = steps["echo"]
    assert outcome == "failed" and contact["email"] in (reason or ""), run


def every_step(hook_url: str) -> dict[str, Any]:
    """Email, a name change, each provider, and a wait released by an event (a signal)."""
    return {
        "start": "mail",
        "steps": {
            "mail": {
                "type": "send_email",
                "subject": "Hello %FIRSTNAME%",
                "html": "<p>%FULLNAME%, your address is %EMAIL%</p>",
                "next": "swap",
            },
            # Values from the contact, not the document: the new names exist only as data.
            "swap": {
                "type": "update_contact",
                "fields": {"first_name": "%LASTNAME%", "last_name": "%FIRSTNAME%"},
                "next": "sms",
            },
            "sms": {"type": "send_sms", "body": "Hi %FIRSTNAME%", "next": "hook"},
            "hook": {"type": "webhook", "url": hook_url, "format": "json", "next": "echo"},
            # A receiver refusing the contact quotes its address: a failure message with PII.
            "echo": {"type": "webhook", "url": hook_url, "next": "fb"},
            "fb": {"type": "facebook_audience_add", "audience": "12345", "next": "sf"},
            "sf": {"type": "salesforce_create_contact", "next": "buy"},
            "buy": {
                "type": "wait",
                "condition": {"event": "purchase"},
                "timeout": {"days": 3},
                "next": "thanks",
            },
            "thanks": {"type": "add_tag", "tag": "bought"},
        },
    }


async def run_every_step(
    stack: Stack, fakes: dict[str, FakeServer], flow: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One contact through `every_step` (or `flow`, from it); (finished run, contact as created)."""
    automation_id = await stack.automation(flow or every_step(f"{fakes['hook'].url}/in"))
    email = f"{stack.unique('pii')}@example.com"
    fakes["hook"].reply(200, {})
    fakes["hook"].reply(422, {"error": f"{email} is already subscribed"})
    contact = await stack.contact(email=email, **PERSON)
    with stack.env.with_time_skipping_disabled():  # it must really wait for the event
        handle = await stack.enroll(contact["id"], automation_id)

    async def waiting() -> None:
        assert (await stack.run(handle.id))["current_step"] == "buy"

    await eventually(waiting, within=60)
    event = {"email": contact["email"], "event": "purchase", "data": {"by": contact["email"]}}
    assert (await stack.http.post("/api/v1/events", json=event)).status_code == 202
    return await finished(stack, handle.id), contact


async def histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run of a workflow id, latest first (runs continue-as-new after 50 events)."""
    found, run_id = [], None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        found.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return found
        run_id = started.continued_execution_run_id


def exported(found: list[WorkflowHistory]) -> tuple[str, bytes]:
    """The histories as `temporal workflow show --output json` exports them, and as raw protobuf
    bytes (where a clear payload's text shows as is, not base64'd as in the JSON)."""
    text = "\n".join(h.to_json() for h in found)
    raw = b"".join(e.SerializeToString() for h in found for e in h.events)
    return text, raw


def leaks(secrets: list[str], text: str, raw: bytes) -> list[str]:
    return [s for s in secrets if s in text or s.encode() in raw]


def payloads_in(
    node: Any, path: str = "", *, skip: str = "searchAttributes"
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every payload (`{"metadata": ..., "data": ...}`) in a JSON history with its path, search
    attributes (indexed by the server, never encoded) apart."""
    if isinstance(node, dict):
        if "metadata" in node and isinstance(node["metadata"], dict):
            yield path, node
            return
        for name, child in node.items():
            if name != skip:
                yield from payloads_in(child, f"{path}.{name}", skip=skip)
    elif isinstance(node, list):
        for child in node:
            yield from payloads_in(child, path, skip=skip)


def search_attributes_in(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for name, child in node.items():
            if name == "searchAttributes":
                for key, payload in child.get("indexedFields", {}).items():
                    yield key, json.loads(base64.b64decode(payload["data"]))
            else:
                yield from search_attributes_in(child)
    elif isinstance(node, list):
        for child in node:
            yield from search_attributes_in(child)


def metadata(payload: dict[str, Any], name: str) -> bytes:
    return base64.b64decode(payload["metadata"].get(name, ""))


async def test_encrypted_history_holds_no_contact_data_and_the_ui_codec_reads_it(
    encrypted: Stack,
) -> None:
    stack = encrypted
    with providers(stack) as fakes:
        run, contact = await run_every_step(stack, fakes)

    # The run did everything, with the contact's data where it belongs.
    assert_every_step_ran(run, contact)
    record = await stack.record(contact["id"])
    assert (record["first_name"], record["last_name"]) == ("Quennell", "Philippa")
    assert "bought" in record["tags"]
    (mail,) = stack.mailbox.to(contact["email"])
    assert mail["Subject"] == "Hello Philippa"
    assert fakes["twilio"].received[0].form()["Body"] == "Hi Quennell"
    assert fakes["hook"].received[0].json()["contact"]["email"] == contact["email"]
    assert len(fakes["graph"].received) == len(fakes["salesforce"].received) == 1

    found = await histories(stack.client, run["workflow_id"])
    text, raw = exported(found)
    assert "WorkflowExecutionSignaled" in text or "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" in text
    secrets = [
        contact["email"],
        "Philippa",
        "Quennell",
        # The phone number, however formatted (eight digits: four would turn up by chance in
        # the history's timestamps, whose fractions of a second are random digits).
        "7946 0018",
        "79460018",
        *CREDENTIALS.values(),
        API_TOKEN,
        KEY,
        ui_codec_key(stack.settings),
    ]
    assert leaks(secrets, text, raw) == []

    # Every payload outside the search attributes is sealed with the key...
    every = [
        (path, p)
        for h in found
        for path, p in payloads_in(json.loads(h.to_json()))
        # The SDK's own local-activity marker bookkeeping (seq, attempt, activity type, times).
        if not (
            path.endswith("markerRecordedEventAttributes.details.data.payloads")
            and set(json.loads(base64.b64decode(p["data"]))) <= LOCAL_ACTIVITY_MARKER
        )
    ]
    clear = {
        (path, base64.b64decode(p["data"]))
        for path, p in every
        if metadata(p, "encoding") != ENCODING
    }
    assert every and not clear, clear
    sealed = [p for _, p in every]
    # Step summaries (shown by the UI on each activity and timer) among them.
    assert any(path.endswith("userMetadata.summary") for path, _ in every)
    # ...and search attributes, which the server indexes in clear, hold ids only.
    steps = set(every_step("")["steps"])
    allowed = {
        "CairnAutomation": lambda v: v == run["automation"],
        "CairnContact": lambda v: v == str(contact["id"]),
        "CairnStep": lambda v: v in steps,
        "CairnVersion": lambda v: isinstance(v, int),
        "CairnSimulation": lambda v: v is True,
    }
    assert {key.name for key in SEARCH_ATTRIBUTES} == set(allowed)
    indexed = [(k, v) for h in found for k, v in search_attributes_in(json.loads(h.to_json()))]
    assert {k for k, _ in indexed} >= {"CairnAutomation", "CairnContact"}
    for name, value in indexed:
        assert name in allowed and allowed[name](value), (name, value)

    # What the Temporal UI does with them: its codec endpoint gives the data back.
    endpoint = ui_codec_endpoint(stack.settings).removeprefix(stack.settings.public_url)
    response = await stack.http.post(
        f"{endpoint}/decode", json={"payloads": sealed}, headers={"X-Namespace": "default"}
    )
    assert response.status_code == 200, response.text
    opened = b"".join(base64.b64decode(p["data"]) for p in response.json()["payloads"])
    for clear in (contact["email"], "7946"):
        assert clear.encode() in opened, clear
    assert not leaks(list(CREDENTIALS.values()), opened.decode(errors="replace"), opened)


async def test_without_a_key_credentials_still_never_reach_temporal(stack: Stack) -> None:
    assert not stack.settings.encryption_key
    with providers(stack) as fakes:
        run, contact = await run_every_step(stack, fakes)
    assert_every_step_ran(run, contact)
    # The providers got their credentials...
    assert fakes["graph"].received[0].form()["access_token"] == CREDENTIALS["facebook_access_token"]
    sf_auth = fakes["salesforce"].received[0].header("Authorization")
    assert sf_auth == f"Bearer {CREDENTIALS['salesforce_access_token']}"

    text, raw = exported(await histories(stack.client, run["workflow_id"]))
    # ...the history holds the contact in clear (so the search below does find things)...
    assert contact["email"].encode() in raw
    # ...but never a credential.
    assert leaks([*CREDENTIALS.values(), API_TOKEN], text, raw) == []


def decoded_payloads(found: list[WorkflowHistory]) -> list[tuple[str, str]]:
    """(path, text) of every payload of the histories, as the codec or the CLI would show it."""
    return [
        (path, base64.b64decode(p.get("data", "")).decode(errors="replace"))
        for h in found
        for path, p in payloads_in(json.loads(h.to_json()))
    ]


async def test_webhook_headers_and_url_secrets_never_reach_temporal(stack: Stack) -> None:
    """A webhook's headers, and its URL beyond the origin, are read by its activity from the
    run's version in the database: the graph in the history, its summaries and its failures
    hold the origin only, even without a key."""
    bearer, in_path, in_query = "hook-bearer-5e1d9c7a3f", "hook-path-2c8f4b", "hook-query-9a4e1b7d"
    with fake_server() as hook, configured(stack.settings, webhook_allow_private=True):
        url = f"{hook.url}/in/{in_path}?token={in_query}"
        step = {"type": "webhook", "url": url, "headers": {"Authorization": f"Bearer {bearer}"}}
        document = {
            "start": "post",
            "steps": {
                "post": {**step, "next": "peek"},
                "peek": {**step, "method": "GET", "next": "refused"},
                "refused": step,  # a failure message names the URL
            },
        }
        hook.reply(200, {}).reply(200, {}).reply(422, {"error": "no"})
        automation_id = await stack.automation(document)
        contact = await stack.contact(email=f"{stack.unique('hook')}@example.com")
        run = await finished(stack, (await stack.enroll(contact["id"], automation_id)).id)
    steps = outcomes(run)
    assert steps["post"] == steps["peek"] == ("done", None), run
    assert steps["refused"][0] == "failed" and hook.url in (steps["refused"][1] or ""), run
    # The receiver got the headers and the whole URL...
    assert [r.header("Authorization") for r in hook.received] == [f"Bearer {bearer}"] * 3
    assert {r.path for r in hook.received} == {f"/in/{in_path}"}
    assert all(r.query_params()["token"] == in_query for r in hook.received)

    # ...the run's history, payloads decoded, holds none of it.
    found = await histories(stack.client, run["workflow_id"])
    text, raw = exported(found)
    payloads = decoded_payloads(found)
    shown = text + "\n".join(data for _, data in payloads)
    assert leaks([bearer, in_path, in_query], shown, raw) == []
    summaries = [data for path, data in payloads if path.endswith("userMetadata.summary")]
    hooks = [s for s in summaries if s.startswith('"webhook')]
    assert len(hooks) == 3 and all(hook.url in s and "?" not in s for s in hooks), summaries


class Kept(logging.Handler):
    """Every record its logger hands it, formatted with its traceback (what a log file gets)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("mail."):  # the test's SMTP server (aiosmtpd), not Cairn
            self.lines.append(self.format(record))


async def test_worker_and_api_logs_hold_no_credential_or_contact_data(stack: Stack) -> None:
    """Every provider, at DEBUG: the Facebook token in a removal's query string, a webhook GET's
    contact fields, Salesforce's SOQL by email on a retry, the API's access log and its codec key
    — none of it in the process logs."""
    kept, access = Kept(), logging.getLogger("uvicorn.access")
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(kept)
    root.setLevel(logging.DEBUG)
    try:
        with providers(stack) as fakes:
            flow = every_step(f"{fakes['hook'].url}/in")
            # A receiver's refusal is quoted in the step's failure, PII and all (docs/operations.md).
            del flow["steps"]["echo"]
            flow["steps"]["hook"]["next"] = "fb"
            flow["steps"]["sf"]["next"] = "fb_out"
            flow["steps"]["fb_out"] = {
                "type": "facebook_audience_remove",
                "audience": "12345",
                "next": "peek",
            }
            flow["steps"]["peek"] = {  # to another server answering 2xx: "hook" has a 422 queued
                "type": "webhook",
                "url": f"{fakes['twilio'].url}/peek",
                "method": "GET",
                "next": "buy",
            }
            # Salesforce fails once: the retry looks the contact up by email (SOQL in the URL).
            fakes["salesforce"].reply(503, {"error": "busy"})
            fakes["salesforce"].reply(200, {"totalSize": 0, "records": []})
            run, contact = await run_every_step(stack, fakes, flow)
        steps = outcomes(run)
        assert {s: steps[s] for s in ("mail", "sms", "hook", "peek", "fb", "fb_out", "sf")} == (
            dict.fromkeys(("mail", "sms", "hook", "peek", "fb", "fb_out", "sf"), ("done", None))
        ), run
        assert fakes["graph"].received[1].query_params()["access_token"], "token in the query"
        assert fakes["twilio"].received[-1].query_params()["contact[email]"] == contact["email"]
        assert "query" in fakes["salesforce"].received[1].path

        async with served_api(stack, log_level="info") as base, httpx.AsyncClient() as http:
            access.addHandler(kept)  # after uvicorn's own logging setup, which replaces handlers
            codec = f"{base}/codec/ui/{ui_codec_key(stack.settings)}/decode"
            await http.post(codec, json={"payloads": []})
            await http.get(
                f"{base}/api/v1/contacts",
                params={"email": contact["email"]},
                headers={"Api-Token": API_TOKEN},
            )
    finally:
        root.removeHandler(kept)
        access.removeHandler(kept)
        root.setLevel(level)
    text = "\n".join(kept.lines)
    assert "/codec/ui/" in text and "/api/v1/contacts" in text  # the access log was captured
    secrets = [
        contact["email"],
        contact["email"].replace("@", "%40"),
        "7946 0018",
        "79460018",
        *CREDENTIALS.values(),
        API_TOKEN,
        ui_codec_key(stack.settings),
    ]
    leaked = [line for line in kept.lines if any(s in line for s in secrets)]
    assert [s for s in secrets if s in text] == [], leaked[:6]


async def test_database_errors_name_no_values(stack: Stack) -> None:
    """A DBAPIError's text, which the API logs, holds the statement without its values."""
    email = "hidden-7d1c@example.com"
    for session_of in (stack.db.read, stack.db.write):
        with pytest.raises(DBAPIError) as raised:
            async with session_of() as session:
                await session.execute(
                    text("SELECT * FROM no_such_table WHERE e = :e"), {"e": email}
                )
        assert "no_such_table" in str(raised.value) and email not in str(raised.value)


# --- the codec endpoint ---------------------------------------------------------------------


def clear_payload(value: Any) -> dict[str, Any]:
    return {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(json.dumps(value).encode()).decode(),
    }


async def test_codec_round_trip_over_http_with_token_or_ui_key(encrypted: Stack) -> None:
    async with served_api(encrypted) as base, httpx.AsyncClient(base_url=base) as http:
        given = [clear_payload({"email": "ada@example.com"}), clear_payload([1, 2])]
        sealed = await http.post(
            "/codec/encode", json={"payloads": given}, headers={"Api-Token": API_TOKEN}
        )
        assert sealed.status_code == 200, sealed.text
        payloads = sealed.json()["payloads"]
        assert len(payloads) == 2 and b"ada@example.com" not in base64.b64decode(
            payloads[0]["data"]
        )
        assert {metadata(p, "encoding") for p in payloads} == {ENCODING}
        # A random nonce per payload: the same value never encrypts the same way twice.
        again = await http.post(
            "/codec/encode", json={"payloads": given[:1]}, headers={"Api-Token": API_TOKEN}
        )
        assert again.json()["payloads"][0]["data"] != payloads[0]["data"]

        # `temporal --codec-auth "Bearer <token>"`, and the UI's key in the path.
        opened = await http.post(
            "/codec/decode",
            json={"payloads": payloads},
            headers={"Authorization": f"Bearer {API_TOKEN}", "X-Namespace": "default"},
        )
        assert opened.status_code == 200, opened.text
        assert opened.json() == {"payloads": given}
        path = f"/codec/ui/{ui_codec_key(encrypted.settings)}/decode"
        by_ui = await http.post(path, json={"payloads": payloads})
        assert by_ui.json() == {"payloads": given}

        # Written before the key was set: passed through as is.
        old = await http.post(path, json={"payloads": given})
        assert old.json() == {"payloads": given}


async def test_codec_refuses_strangers_and_bad_input_clearly(encrypted: Stack) -> None:
    http = encrypted.http
    body = {"payloads": [clear_payload("x")]}
    for headers in (
        {"Api-Token": ""},
        {"Api-Token": "wrong"},
        {"Api-Token": "", "Authorization": "Bearer wrong"},
        {"Api-Token": "", "Authorization": f"Basic {API_TOKEN}"},
    ):
        for route in ("/codec/encode", "/codec/decode"):
            answer = await http.post(route, json=body, headers=headers)
            assert answer.status_code == 401, (route, headers, answer.text)
    wrong_key = await http.post("/codec/ui/not-the-key/decode", json=body)
    assert wrong_key.status_code == 401 and "key" in wrong_key.json()["detail"]
    # Checked before the body: a stranger learns nothing from validation errors either.
    assert (
        await http.post("/codec/decode", content=b"{", headers={"Api-Token": ""})
    ).status_code == 401

    for bad in (b"not json", b"[]", b'{"payloads": 3}', b'{"payloads": [{"data": "!!*"}]}'):
        answer = await http.post(
            "/codec/decode", content=bad, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 422, (bad, answer.text)

    sealed = (await http.post("/codec/encode", json=body)).json()["payloads"][0]
    tampered = dict(
        sealed, data=base64.b64encode(base64.b64decode(sealed["data"])[:-1] + b"?").decode()
    )
    truncated = dict(sealed, data=base64.b64encode(b"short").decode())
    foreign = dict(sealed, metadata={**sealed["metadata"], "encryption-key-id": "b3RoZXI="})
    for broken, says in ((tampered, "altered"), (truncated, "truncated"), (foreign, "'other'")):
        answer = await http.post("/codec/decode", json={"payloads": [broken]})
        assert answer.status_code == 400 and says in answer.json()["detail"], answer.text


async def test_codec_cors_lets_the_temporal_ui_in_and_no_one_else(encrypted: Stack) -> None:
    path = f"/codec/ui/{ui_codec_key(encrypted.settings)}/decode"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    async with served_api(encrypted) as base, httpx.AsyncClient(base_url=base) as http:
        for origin in (UI_ORIGIN, "http://127.0.0.1:8233"):
            answer = await http.options(path, headers={"Origin": origin, **preflight})
            assert answer.status_code == 200, answer.text
            assert answer.headers["access-control-allow-origin"] == origin
            assert "x-namespace" in answer.headers["access-control-allow-headers"].lower()
        posted = await http.post(
            path, json={"payloads": []}, headers={"Origin": UI_ORIGIN, "X-Namespace": "default"}
        )
        assert posted.status_code == 200
        assert posted.headers["access-control-allow-origin"] == UI_ORIGIN

        stranger = await http.options(path, headers={"Origin": "https://evil.example", **preflight})
        assert stranger.status_code == 400
        assert "access-control-allow-origin" not in stranger.headers
        # The rest of the API gains no CORS from this.
        other = await http.options("/api/v1/contacts", headers={"Origin": UI_ORIGIN, **preflight})
        assert "access-control-allow-origin" not in other.headers


async def test_codec_without_a_key_says_encryption_is_off(stack: Stack) -> None:
    for route in ("/codec/encode", "/codec/decode"):
        answer = await stack.http.post(route, json={"payloads": [clear_payload(1)]})
        assert answer.status_code == 409
        assert "CAIRN_ENCRYPTION_KEY" in answer.json()["detail"]


# --- the key setting and the embedded UI ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("correct horse battery staple", "not valid base64"),
        (base64.b64encode(b"16 bytes only!!!").decode(), "got 16 bytes"),
    ],
)
def test_a_bad_key_is_refused_with_how_to_make_one(value: str, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(encryption_key=value, _env_file=None)  # type: ignore[call-arg]
    assert says in str(raised.value) and "openssl rand -base64 32" in str(raised.value)
    # URL-safe alphabet and surrounding whitespace are fine.
    urlsafe = base64.urlsafe_b64encode(b"\xfb" * 32).decode()
    assert Settings(encryption_key=f" {urlsafe}\n", _env_file=None).encryption_key == urlsafe  # type: ignore[call-arg]


def test_the_cli_names_a_bad_key_instead_of_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "CAIRN_ENCRYPTION_KEY": "abc"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "setup", "--wait", "0"],
        env=env,
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "invalid configuration: encryption_key" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_embedded_ui_is_given_the_codec_endpoint_only_with_a_key(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert "--ui-codec-endpoint" not in dev_server_args(plain)
    keyed = plain.model_copy(update={"encryption_key": KEY, "public_url": "http://cairn.test/"})
    args = dev_server_args(keyed)
    endpoint = args[args.index("--ui-codec-endpoint") + 1]
    assert endpoint == f"http://cairn.test/codec/ui/{ui_codec_key(keyed)}"
    # The key follows CAIRN_SECRET_KEY: a new secret closes the old endpoint.
    assert ui_codec_key(keyed.model_copy(update={"secret_key": "other"})) != ui_codec_key(keyed)


async def test_the_embedded_temporal_ui_is_served_the_codec_endpoint(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, encryption_key=KEY)
    server, _ = await start_temporal_dev_server(settings, out=io.StringIO(), within=60)
    try:

        async def ui_settings() -> str:
            async with httpx.AsyncClient(timeout=5) as http:
                try:
                    answer = await http.get(f"{settings.temporal_ui_url}/api/v1/settings")
                except httpx.TransportError as err:
                    raise AssertionError(f"UI not up yet: {err}") from err
            assert answer.status_code == 200, answer.text
            return answer.text

        served = json.loads(await eventually(ui_settings, within=30))
    finally:
        assert await server.stop() == 0
    assert served["Codec"]["Endpoint"] == ui_codec_endpoint(settings)


# --- key rotation -----------------------------------------------------------------------------


async def test_runs_sealed_with_an_old_key_finish_after_a_rotation(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp_path: Path
) -> None:
    """Runs wait under one key; the worker and API restart with a new key and the old one in
    CAIRN_ENCRYPTION_OLD_KEYS: the runs replay their history, wake, finish, and what they
    write from then on is sealed with the new key."""
    new_key = base64.b64encode(os.urandom(32)).decode()
    before = await stack_settings(tmp_path, mailbox, "sqlite", "cairn-rotation", encryption_key=KEY)
    after = Settings(
        **{**before.model_dump(), "encryption_key": new_key, "encryption_old_keys": KEY},
        _env_file=None,  # type: ignore[call-arg]
    )
    async with stack_of(before, env, mailbox) as stack:
        automation_id = await stack.automation(held_until("go"))
        contact = await stack.contact(first_name="Philippa")
        with env.with_time_skipping_disabled():  # it must really sit in the wait
            handle = await stack.enroll(contact["id"], automation_id)

        async def held() -> None:
            assert (await stack.run(handle.id))["current_step"] == "hold"

        await eventually(held, within=30)

    async with stack_of(after, env, mailbox) as stack:
        response = await stack.http.post(
            "/api/v1/events", json={"contact": contact["id"], "event": "go"}
        )
        assert response.status_code == 202, response.text
        run = await finished(stack, handle.id)
        assert [(s["step"], s["outcome"]) for s in run["steps"]] == [
            ("hold", "done"),
            ("woken", "done"),
        ], run
        assert "go" in (await stack.record(contact["id"]))["tags"]

        history = json.loads(
            (await stack.client.get_workflow_handle(handle.id).fetch_history()).to_json()
        )
        sealed_with = [metadata(p, "encryption-key-id").decode() for _, p in payloads_in(history)]
        old_id, new_id = key_id(base64.b64decode(KEY)), key_id(base64.b64decode(new_key))
        # The start and the wait under the old key, the wake-up and everything after under the new.
        assert old_id in sealed_with and new_id in sealed_with, sealed_with
        assert sealed_with.index(new_id) > max(i for i, k in enumerate(sealed_with) if k == old_id)

        # The codec endpoint the Temporal UI uses reads both.
        decoded = await stack.http.post(
            "/codec/decode", json={"payloads": [p for _, p in payloads_in(history)]}
        )
        assert decoded.status_code == 200, decoded.text
        assert all(metadata(p, "encoding") != ENCODING for p in decoded.json()["payloads"]), (
            decoded.text
        )


def test_old_keys_need_a_current_key_and_must_be_keys() -> None:
    old = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(ValidationError, match="beside a current CAIRN_ENCRYPTION_KEY"):
        Settings(encryption_old_keys=old, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="CAIRN_ENCRYPTION_OLD_KEYS is not valid base64"):
        Settings(encryption_key=KEY, encryption_old_keys=f"{old},not a key!", _env_file=None)  # type: ignore[call-arg]
    rotated = Settings(encryption_key=KEY, encryption_old_keys=f" {old} ,", _env_file=None)  # type: ignore[call-arg]
    assert rotated.encryption_old_keys == old
