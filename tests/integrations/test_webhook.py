"""The `webhook` step against real HTTP servers on 127.0.0.1: request shape byte for byte, the
signature (checked with the snippet in docs/integrations.md), retries, failures, 410 and SSRF."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpcore
import httpx
import pytest

from activities import http
from activities.http import retry_after
from activities.webhook import (
    Delivery,
    RefusedDestination,
    checked_address,
    deliver,
    refusal,
)
from tests.helpers.providers import (
    FakeServer,
    Received,
    configured,
    fake_server,
    outcomes,
    run_contact,
    run_steps,
    started_activities,
)
from tests.helpers.stack import Stack, free_port

INTEGRATIONS = Path(__file__).parents[2] / "docs" / "integrations.md"


@pytest.fixture
def receiver() -> Iterator[FakeServer]:
    with fake_server() as server:
        yield server


@pytest.fixture
def private_allowed(stack: Stack) -> Iterator[None]:
    """The fakes listen on 127.0.0.1, which the SSRF guard refuses by default."""
    with configured(stack.settings, webhook_allow_private=True):
        yield


def hook(url: str, **options: Any) -> dict[str, dict[str, Any]]:
    """A webhook step followed by a tag, to show the run goes on after it."""
    return {
        "hook": {"type": "webhook", "url": url, "next": "after", **options},
        "after": {"type": "add_tag", "tag": "after-hook"},
    }


def docs_verify(body: bytes, signature: str | None, secret: str) -> bool:
    """The signature check exactly as docs/integrations.md's Webhooks section shows it, as is."""
    section = INTEGRATIONS.read_text().split("## Webhooks", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None, "docs/integrations.md's Webhooks section has no Python snippet"
    assert len(snippet.group(1).splitlines()) == 5
    namespace: dict[str, Any] = {"body": body, "signature": signature, "secret": secret}
    exec(snippet.group(1), namespace)
    return bool(namespace["valid"])


def signed_ok(stack: Stack, request: Received) -> bool:
    signature = request.header("X-Cairn-Signature")
    assert signature is not None
    return docs_verify(request.body, signature, stack.settings.shared_key("webhook"))


# --- the request ----------------------------------------------------------------------------


async def test_form_delivery_byte_for_byte(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    run, contact = await run_steps(
        stack,
        hook(f"{receiver.url}/in?source=cairn", headers={"X-Api-Key": "k-1"}),
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "phone": "+44 20 7946 0000",
            "fields": {"plan": "pro & co", "seats": 3, "vip": True},
            "tags": ["vip", "lead"],
        },
    )

    assert outcomes(run) == {"hook": ("done", None), "after": ("done", None)}
    (request,) = receiver.received
    assert (request.method, request.path, request.query) == ("POST", "/in", "source=cairn")
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert request.header("X-Api-Key") == "k-1"
    assert request.header("Idempotency-Key") == f"{run['workflow_id']}:1"
    assert re.fullmatch(r"\d{10}", request.header("X-Cairn-Timestamp") or "")
    sent_at = request.form()["date_time"]
    assert datetime.fromisoformat(sent_at).tzinfo is not None
    expected = [
        ("contact[id]", str(contact["id"])),
        ("contact[email]", contact["email"]),
        ("contact[first_name]", "Ada"),
        ("contact[last_name]", "Lovelace"),
        ("contact[phone]", "+44 20 7946 0000"),
        ("contact[tags]", "lead,vip"),
        ("contact[fields][plan]", "pro & co"),
        ("contact[fields][seats]", "3"),
        ("contact[fields][vip]", "true"),
        ("automation", run["automation"]),
        ("step", "hook"),
        ("date_time", sent_at),
    ]
    assert request.body == urlencode(expected).encode()
    digest = hmac.new(stack.settings.shared_key("webhook").encode(), request.body, hashlib.sha256)
    assert request.header("X-Cairn-Signature") == f"sha256={digest.hexdigest()}"


async def test_json_delivery_and_the_readme_snippet_verifies_it(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    run, contact = await run_steps(
        stack,
        hook(f"{receiver.url}/json", method="PUT", format="json"),
        {"first_name": "Grace", "fields": {"rank": "admiral"}, "tags": ["navy"]},
    )

    assert outcomes(run)["hook"] == ("done", None)
    (request,) = receiver.received
    assert (request.method, request.path) == ("PUT", "/json")
    assert request.header("Content-Type") == "application/json"
    body = request.json()
    assert body == {
        "contact": {
            "id": contact["id"],
            "email": contact["email"],
            "first_name": "Grace",
            "last_name": None,
            "phone": None,
            "tags": ["navy"],
            "fields": {"rank": "admiral"},
        },
        "automation": run["automation"],
        "step": "hook",
        "date_time": body["date_time"],
    }
    assert request.body == json.dumps(body, separators=(",", ":")).encode()
    assert signed_ok(stack, request)
    tampered = Received(**{**request.__dict__, "body": request.body.replace(b"Grace", b"Grice")})
    assert not signed_ok(stack, tampered)


async def test_get_carries_the_form_in_its_query_and_signs_it(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    run, contact = await run_steps(stack, hook(f"{receiver.url}/ping?k=1", method="GET"))

    assert outcomes(run)["hook"] == ("done", None)
    (request,) = receiver.received
    assert request.method == "GET" and request.body == b""
    assert request.query.startswith("k=1&contact%5Bid%5D=")
    appended = request.query.removeprefix("k=1&").encode()
    assert docs_verify(
        appended, request.header("X-Cairn-Signature"), stack.settings.shared_key("webhook")
    )
    assert request.query_params()["contact[email]"] == contact["email"]


# --- answers --------------------------------------------------------------------------------


async def test_a_flaky_webhook_is_retried_and_delivered_once(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    receiver.reply(500, "down").reply(502, "still down").reply(200, "ok")

    run, _ = await run_steps(stack, hook(f"{receiver.url}/flaky"))

    assert outcomes(run) == {"hook": ("done", None), "after": ("done", None)}
    assert [r.method for r in receiver.received] == ["POST"] * 3
    # Every attempt is the same delivery: same body, same idempotency key.
    assert len({r.body for r in receiver.received}) == 1
    assert len({r.header("Idempotency-Key") for r in receiver.received}) == 1
    # What the Temporal UI shows: the activity completed on its third attempt.
    (webhook,) = await started_activities(stack, run["workflow_id"], "webhook")
    assert webhook.attempt == 3
    assert webhook.last_failure.message == f"webhook to {receiver.url} answered 502: still down"


async def test_429_waits_for_retry_after_then_delivers(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    # 4 s: longer than the policy's first backoff (1 s), so only the header explains the gap.
    receiver.reply(429, "slow down", {"Retry-After": "4"}).reply(204)

    with stack.env.with_time_skipping_disabled():  # the pause must be real to be measured
        run, _ = await run_steps(stack, hook(f"{receiver.url}/limited"))

    assert outcomes(run)["hook"] == ("done", None)
    first, second = receiver.received
    assert second.at - first.at >= 4.0


async def test_408_is_retried(stack: Stack, receiver: FakeServer, private_allowed: None) -> None:
    receiver.reply(408, "request timeout").reply(200, "ok")

    run, _ = await run_steps(stack, hook(f"{receiver.url}/busy"))

    assert outcomes(run) == {"hook": ("done", None), "after": ("done", None)}
    assert [r.path for r in receiver.received] == ["/busy", "/busy"]


async def test_a_receiver_slower_than_the_deadline_is_retried_as_a_timeout(
    stack: Stack, receiver: FakeServer, private_allowed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "TOTAL_SECONDS", 1.0)  # 30 s in production
    receiver.reply(200, "late", delay=2.5).reply(200, "ok")

    run, _ = await run_steps(stack, hook(f"{receiver.url}/slow"))

    assert outcomes(run) == {"hook": ("done", None), "after": ("done", None)}
    assert len(receiver.received) == 2
    (webhook,) = await started_activities(stack, run["workflow_id"], "webhook")
    assert webhook.attempt == 2
    assert webhook.last_failure.message == f"webhook to {receiver.url}: no answer within 1 s"
    assert webhook.last_failure.application_failure_info.type == "WebhookTimeout"


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def answer(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert retry_after(answer("1"), now) == timedelta(seconds=1)
    assert retry_after(answer("Fri, 27 Nov 2026 12:00:30 GMT"), now) == timedelta(seconds=30)
    assert retry_after(answer("Fri, 27 Nov 2026 11:00:00 GMT"), now) == timedelta(0)
    assert retry_after(answer("86400"), now) == timedelta(minutes=10)  # capped
    assert retry_after(answer("soon"), now) is None
    assert retry_after(httpx.Response(503), now) is None


async def test_a_client_error_fails_the_step_and_the_run_goes_on(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    receiver.reply(422, '{"error": "unknown list"}')

    run, _ = await run_steps(stack, hook(f"{receiver.url}/strict"))

    outcome, reason = outcomes(run)["hook"]
    assert outcome == "failed"
    assert reason == f'webhook to {receiver.url} answered 422: {{"error": "unknown list"}}'
    assert outcomes(run)["after"] == ("done", None)
    assert run["status"] == "completed"
    assert len(receiver.received) == 1  # never retried


async def test_on_error_end_ends_the_run_failed(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    receiver.reply(403, "forbidden")

    run, _ = await run_steps(stack, hook(f"{receiver.url}/x", on_error="end"))

    assert (run["status"], run["reason"]) == ("failed", "step_failed:hook")
    assert "after" not in outcomes(run)


async def test_410_marks_the_url_gone_for_later_visits(
    any_stack: Stack, receiver: FakeServer
) -> None:
    with configured(any_stack.settings, webhook_allow_private=True):
        await gone_for_later_visits(any_stack, receiver)


async def gone_for_later_visits(stack: Stack, receiver: FakeServer) -> None:
    receiver.reply(410, "unsubscribed endpoint")
    automation_id = await stack.automation({"start": "hook", "steps": hook(f"{receiver.url}/old")})

    first, _ = await run_contact(stack, automation_id)
    second, _ = await run_contact(stack, automation_id)

    # The run's own record (GET /api/v1/runs/{id}, from the `state` query) names it and the URL.
    assert outcomes(first)["hook"] == (
        "failed",
        f"url_gone: webhook to {receiver.url} answered 410 (Gone); "
        "later visits of this step skip it",
    )
    assert outcomes(second)["hook"] == ("skipped", "url_gone")
    assert outcomes(second)["after"] == ("done", None)
    assert len(receiver.received) == 1

    # A new version with another URL is delivered again.
    document = {"name": "gone", "start": "hook", "steps": hook(f"{receiver.url}/new")}
    response = await stack.http.put(f"/api/v1/automations/{automation_id}", json=document)
    assert response.status_code == 200, response.text
    third, _ = await run_contact(stack, automation_id)
    assert outcomes(third)["hook"] == ("done", None)
    assert receiver.received[-1].path == "/new"


@pytest.mark.parametrize("status", [307, 308])
async def test_redirects_are_followed_with_the_same_signed_delivery(
    stack: Stack, receiver: FakeServer, private_allowed: None, status: int
) -> None:
    with fake_server() as moved:
        receiver.reply(status, "", {"Location": f"{moved.url}/v2/in"})

        run, _ = await run_steps(stack, hook(f"{receiver.url}/in", headers={"X-Api-Key": "k"}))

        assert outcomes(run)["hook"] == ("done", None)
        (first,) = receiver.received
        (second,) = moved.received
        assert (second.method, second.path) == ("POST", "/v2/in")
        assert second.body == first.body
        assert second.header("X-Cairn-Signature") == first.header("X-Cairn-Signature")
        assert first.header("X-Api-Key") == "k"
        assert second.header("X-Api-Key") is None  # another origin: the step's headers stay home


async def test_a_303_is_followed_with_a_get_without_body(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    with fake_server() as result:
        receiver.reply(303, "", {"Location": f"{result.url}/receipt/1"})

        run, _ = await run_steps(stack, hook(f"{receiver.url}/in", format="json"))

        assert outcomes(run)["hook"] == ("done", None)
        (first,) = receiver.received
        (second,) = result.received
        assert (first.method, first.header("Content-Type")) == ("POST", "application/json")
        assert (second.method, second.path, second.body) == ("GET", "/receipt/1", b"")
        assert second.header("Content-Type") is None
        assert second.header("Content-Length") is None


async def test_too_many_redirects_fail_the_step(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    for _ in range(6):
        receiver.reply(302, "", {"Location": "/again"})

    run, _ = await run_steps(stack, hook(f"{receiver.url}/loop"))

    assert outcomes(run)["hook"] == ("failed", f"more than 5 redirects from {receiver.url}")
    assert len(receiver.received) == 6


# --- the SSRF guard -------------------------------------------------------------------------


async def test_private_destinations_are_refused_by_default(
    stack: Stack, receiver: FakeServer
) -> None:
    assert stack.settings.webhook_allow_private is False
    port = receiver.url.rsplit(":", 1)[1]

    run, _ = await run_steps(
        stack,
        {
            "ip": {"type": "webhook", "url": f"{receiver.url}/a", "next": "name"},
            "name": {"type": "webhook", "url": f"http://localhost:{port}/b", "next": "after"},
            "after": {"type": "add_tag", "tag": "after-hook"},
        },
    )

    assert outcomes(run)["ip"] == (
        "failed",
        f"webhook to {receiver.url} refused: 127.0.0.1, a loopback address "
        "(set CAIRN_WEBHOOK_ALLOW_PRIVATE=true to allow)",
    )
    outcome, reason = outcomes(run)["name"]
    assert outcome == "failed"
    assert "refused: localhost resolves to" in (reason or "")
    assert outcomes(run)["after"] == ("done", None)
    assert receiver.received == []


async def test_a_redirect_to_the_metadata_service_is_refused_even_when_private_is_allowed(
    stack: Stack, receiver: FakeServer, private_allowed: None
) -> None:
    receiver.reply(302, "", {"Location": "http://169.254.169.254/latest/meta-data/"})

    run, _ = await run_steps(stack, hook(f"{receiver.url}/in"))

    outcome, reason = outcomes(run)["hook"]
    assert outcome == "failed"
    assert reason == (
        f"webhook to {receiver.url} refused: 169.254.169.254, a cloud metadata address"
    )
    assert len(receiver.received) == 1


DNS = {
    "intranet.example": ["10.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "loopback.example": ["127.0.0.1", "::1"],
    "mixed.example": ["93.184.215.14", "10.1.2.3"],  # one public answer is not enough
    "public.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
}


async def fake_dns(host: str, port: int) -> list[str]:
    """A resolver with A/AAAA records of our choosing (this machine has no DNS to point)."""
    if host not in DNS:
        raise OSError(f"no such host {host}")
    return DNS[host]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/hook", "127.0.0.1, a loopback address"),
        ("http://10.0.0.1/hook", "10.0.0.1, a private address"),
        ("http://169.254.169.254/latest", "169.254.169.254, a cloud metadata address"),
        ("http://[::1]:8080/", "::1, a loopback address"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254, a cloud metadata address"),
        ("http://[::ffff:10.0.0.1]/", "::ffff:a00:1, a private address"),
        ("http://[2002:a00:1::]/", "2002:a00:1::, a private address"),  # 6to4 of 10.0.0.1
        ("http://[2002:7f00:1::1]/", "2002:7f00:1::1, a loopback address"),
        ("http://[64:ff9b::a9fe:a9fe]/", "a cloud metadata address"),  # NAT64 of 169.254.169.254
        ("http://192.0.0.100/", "192.0.0.100, a non-public address"),
        ("http://169.254.170.2/v2/credentials", "169.254.170.2, a cloud metadata address"),
        ("http://100.100.100.200/latest", "100.100.100.200, a cloud metadata address"),
        ("http://0.0.0.0/", "0.0.0.0, an unspecified address"),
        ("http://100.64.0.1/", "100.64.0.1, a non-public address"),
        ("http://224.0.0.1/", "224.0.0.1, a multicast address"),
        ("http://169.254.1.1/", "169.254.1.1, a link-local address"),
        ("http://intranet.example/hook", "intranet.example resolves to 10.0.0.1, a private"),
        ("http://metadata.example/", "resolves to 169.254.169.254, a cloud metadata address"),
        ("https://loopback.example/", "loopback.example resolves to 127.0.0.1, a loopback"),
        ("http://mixed.example/", "mixed.example resolves to 10.1.2.3, a private address"),
        ("ftp://public.example/", "ftp scheme: only http and https are allowed"),
        ("http://nowhere.example/", "nowhere.example does not resolve"),
    ],
)
async def test_the_guard_refuses(url: str, why: str) -> None:
    with pytest.raises(RefusedDestination, match=re.escape(why)):
        await checked_address(httpx.URL(url), allow_private=False, resolver=fake_dns)


class RoutedTo(httpcore.AsyncNetworkBackend):
    """Connections to one public address go to a local port instead, as a NAT rule would: this
    machine has no public address for a fake receiver to listen on."""

    def __init__(self, public: tuple[str, int], local: tuple[str, int]) -> None:
        self.public, self.local = public, local
        self.backend = httpcore.AnyIOBackend()

    async def connect_tcp(  # httpcore's signature, timeout included
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        host, port = self.local if (host, port) == self.public else (host, port)
        return await self.backend.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("http://10.0.0.1/admin", "refused: 10.0.0.1, a private address"),
        ("http://intranet.example/", "refused: intranet.example resolves to 10.0.0.1, a private"),
        ("http://127.0.0.1:{port}/", "refused: 127.0.0.1, a loopback address"),
    ],
)
async def test_a_redirect_to_a_private_address_is_refused(
    receiver: FakeServer, location: str, why: str
) -> None:
    port = int(receiver.url.rsplit(":", 1)[1])
    receiver.reply(302, "", {"Location": location.format(port=port)})
    transport = httpx.AsyncHTTPTransport()
    # public.example (93.184.215.14 in DNS) reaches the receiver on 127.0.0.1.
    transport._pool = httpcore.AsyncConnectionPool(
        network_backend=RoutedTo(("93.184.215.14", 80), ("127.0.0.1", port))
    )
    delivery = Delivery("POST", "http://public.example/in", b"x=1", {}, {})

    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(RefusedDestination, match=re.escape(why)):
            await deliver(client, delivery, allow_private=False, resolver=fake_dns)

    (request,) = receiver.received  # the first hop was delivered, the redirect never followed
    assert (request.method, request.path, request.header("Host")) == (
        "POST",
        "/in",
        "public.example",
    )


async def test_the_guard_resolves_localhost_with_the_system_resolver() -> None:
    with pytest.raises(RefusedDestination, match=r"localhost resolves to .*loopback"):
        await checked_address(httpx.URL("http://localhost:9/"), allow_private=False)


async def test_the_guard_lets_public_and_allowed_private_addresses_through() -> None:
    public = httpx.URL("https://public.example/hook")
    assert await checked_address(public, allow_private=False, resolver=fake_dns) == "93.184.215.14"
    intranet = httpx.URL("http://intranet.example/")
    assert await checked_address(intranet, allow_private=True, resolver=fake_dns) == "10.0.0.1"
    for metadata in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "[fd00:ec2::23]",
        "[2002:a9fe:a9fe::]",  # 6to4 of 169.254.169.254
    ):
        with pytest.raises(RefusedDestination, match="metadata"):
            await checked_address(
                httpx.URL(f"http://{metadata}/"), allow_private=True, resolver=fake_dns
            )
    assert refusal(ipaddress.ip_address("8.8.8.8"), allow_private=False) is None


async def test_a_network_error_is_an_httpx_error_and_so_retried() -> None:
    # Nothing listens on this port: the connection is refused, which the activity retries.
    delivery = Delivery("POST", f"http://127.0.0.1:{free_port()}/", b"x", {}, {})
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await deliver(client, delivery, allow_private=True)
