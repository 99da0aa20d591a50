"""The `webhook` step: the contact, signed, to another system over HTTP (docs/integrations.md#webhooks).

The body has ActiveCampaign's shape (`contact[email]`, `contact[fields][plan]`…) or the same data
as JSON, signed `X-Cairn-Signature: sha256=<HMAC-SHA256 of the body with the webhook key>` (derived from
CAIRN_SECRET_KEY, shown by `cairn keys show webhook`: receivers hold it, never the secret key).
Before any connection the destination is resolved and every address checked (the SSRF guard), and
the connection goes to the checked address, so a DNS answer that changes in between is never used.
Redirects are followed by hand, each hop checked again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select
from temporalio import activity

from activities.deps import Deps
from activities.http import (
    deadline,
    excerpt,
    give_up,
    network_failure,
    retry_after,
    retry_later,
    timed_out,
)
from activities.step_activity import step_activity, step_contact
from store import step_states
from store.models import Contact, ContactTag
from workflows.contracts import StepContext, StepOutcome
from workflows.steps import url_origin

MAX_REDIRECTS = 5
MAX_ANSWER_BYTES = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({408, 429})  # besides every 5xx
USER_AGENT = "Cairn-Webhook/1"
# Cloud metadata services, what an SSRF is usually after: refused even where private addresses
# are allowed. AWS, GCP, Azure, Oracle (and AWS over IPv6); ECS task credentials; EKS pod
# identity (and over IPv6); Alibaba Cloud.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "fd00:ec2::254",
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::23",
        "100.100.100.200",
    )
)
# Not public, whatever this Python's `is_global` says: 3.11 lets most of 192.0.0.0/24 (IETF
# protocol assignments) through.
NON_PUBLIC_NETWORKS = (ipaddress.ip_network("192.0.0.0/24"),)
# IPv6 prefixes that carry an IPv4 address the packet reaches: 6to4 (2002::/16, the IPv4 in bits
# 16-48) and NAT64 (64:ff9b::/96, the IPv4 in the last 32 bits).
NAT64 = ipaddress.ip_network("64:ff9b::/96")
GONE_KEY = "webhook_gone"  # this module's key in the step's remembered state

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class RefusedDestination(Exception):
    """A webhook URL (or a redirect) pointing where Cairn must not connect."""


async def resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (IPv4 and IPv6)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches (IPv4-mapped, 6to4, NAT64), or None."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address, *, allow_private: bool) -> str | None:
    """Why Cairn refuses to connect to `address`, or None when it may."""
    embedded = embedded_ipv4(address)
    if embedded is not None:  # ::ffff:127.0.0.1 is 127.0.0.1, 2002:a00:1:: reaches 10.0.0.1
        address = embedded
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    if any(address in network for network in NON_PUBLIC_NETWORKS):
        return "a non-public address"
    kinds = [  # the most telling name first: 127.0.0.1 is private too, but loopback says more
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("an unspecified", address.is_unspecified),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
        ("a non-public", not address.is_global),  # e.g. shared 100.64.0.0/10
    ]
    return next((f"{kind} address" for kind, hit in kinds if hit), None)


async def checked_address(
    url: httpx.URL, *, allow_private: bool, resolver: Resolver = resolve
) -> str:
    """The address to connect to for `url`, after checking every address the host resolves to.

    All of them must pass: a name that resolves to one public and one private address could be
    answered with the private one on the next lookup.
    """
    if url.scheme not in ("http", "https"):
        raise RefusedDestination(f"{url.scheme or 'no'} scheme: only http and https are allowed")
    if not url.host:
        raise RefusedDestination("the URL has no host")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(url.host)]
    except ValueError:
        try:
            addresses = [
                ipaddress.ip_address(a.split("%")[0]) for a in await resolver(url.host, port)
            ]
        except OSError as err:
            raise RefusedDestination(f"{url.host} does not resolve: {err}") from err
    if not addresses:
        raise RefusedDestination(f"{url.host} does not resolve")
    for address in addresses:
        why = refusal(address, allow_private=allow_private)
        if why is not None:
            named = f"{url.host} resolves to {address}" if url.host != str(address) else url.host
            hint = "" if "metadata" in why else " (set CAIRN_WEBHOOK_ALLOW_PRIVATE=true to allow)"
            raise RefusedDestination(f"refused: {named}, {why}{hint}")
    return str(addresses[0])


@dataclass(frozen=True)
class Delivery:
    method: str
    url: str
    body: bytes
    headers: dict[str, str]  # Cairn's own: sent to every hop
    custom_headers: dict[str, str]  # the step's: dropped when a redirect leaves the origin


async def deliver(
    client: httpx.AsyncClient,
    delivery: Delivery,
    *,
    allow_private: bool,
    resolver: Resolver = resolve,
) -> httpx.Response:
    """Send `delivery`, following up to MAX_REDIRECTS redirects, each destination checked first.

    A redirect (301, 302, 307, 308) re-sends the same method, body and signature (the receiver
    moved, the delivery did not change); a 303 See Other is followed with a GET without body, as
    HTTP says. The step's own headers (credentials, typically) only go to the original origin.
    """
    url = httpx.URL(delivery.url)
    origin = (url.scheme, url.host, url.port)
    method = delivery.method
    for _ in range(MAX_REDIRECTS + 1):
        address = await checked_address(url, allow_private=allow_private, resolver=resolver)
        headers = (
            dict(delivery.custom_headers) if (url.scheme, url.host, url.port) == origin else {}
        )
        headers.update(delivery.headers)
        headers["Host"] = url.netloc.decode("ascii")
        if method == "GET":
            headers.pop("Content-Type", None)
        request = client.build_request(
            method,
            url.copy_with(host=address),
            content=delivery.body if method != "GET" else None,
            headers=headers,
            # TLS still verifies the certificate against the name, not the pinned address.
            extensions={"sni_hostname": url.host},
        )
        response = await _send_bounded(client, request)
        location = response.headers.get("location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response
        url = url.join(location)
        if response.status_code == 303:
            method = "GET"
    raise give_up(
        f"more than {MAX_REDIRECTS} redirects from {url_origin(delivery.url)}",
        kind="WebhookRedirects",
    )


async def _send_bounded(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """The answer with at most MAX_ANSWER_BYTES of its body: only its start is ever reported."""
    response = await client.send(request, stream=True)
    try:
        kept = b""
        async for chunk in response.aiter_bytes():
            kept += chunk
            if len(kept) >= MAX_ANSWER_BYTES:
                break
    finally:
        await response.aclose()
    # The kept bytes are already decoded and cut: drop the headers that described the original.
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(response.status_code, headers=headers, content=kept[:MAX_ANSWER_BYTES])


# --- the request Cairn sends ----------------------------------------------------------------


def webhook_data(
    contact: Contact, tags: list[str], context: StepContext, sent_at: datetime
) -> dict[str, Any]:
    """The JSON form of a delivery; `form_fields` flattens it to ActiveCampaign's form shape."""
    return {
        "contact": {
            "id": contact.id,
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "phone": contact.phone,
            "tags": tags,
            "fields": dict(sorted((contact.fields or {}).items())),
        },
        "automation": context.automation_id,
        "step": context.step_id,
        "date_time": sent_at.astimezone(UTC).isoformat(timespec="seconds"),
    }


def _form_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def form_fields(data: dict[str, Any]) -> list[tuple[str, str]]:
    """`contact[email]=…&contact[tags]=a,b&contact[fields][plan]=…&automation=…`, in this order."""
    contact = data["contact"]
    fields: list[tuple[str, str]] = [
        (f"contact[{key}]", _form_value(contact[key]))
        for key in ("id", "email", "first_name", "last_name", "phone")
    ]
    fields.append(("contact[tags]", ",".join(contact["tags"])))
    fields += [(f"contact[fields][{k}]", _form_value(v)) for k, v in contact["fields"].items()]
    fields += [(key, _form_value(data[key])) for key in ("automation", "step", "date_time")]
    return fields


def encode(data: dict[str, Any], body_format: str) -> tuple[bytes, str]:
    """(signed bytes, content type) for the step's `format`."""
    if body_format == "json":
        return (
            json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(),
            "application/json",
        )
    return urlencode(form_fields(data)).encode(), "application/x-www-form-urlencoded"


def signature(secret: str, signed: bytes) -> str:
    """The `X-Cairn-Signature` value: the snippet in docs/integrations.md#webhooks checks exactly this."""
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def build_delivery(
    step: Any, data: dict[str, Any], context: StepContext, secret: str, now: float
) -> Delivery:
    """The signed request for one attempt. A GET has no body: it carries the form fields appended
    to the URL's query string, and the signature covers those appended bytes."""
    signed, content_type = encode(data, "form" if step.method == "GET" else step.format)
    url = step.url
    if step.method == "GET":
        target = httpx.URL(step.url)
        query = target.query + b"&" + signed if target.query else signed
        url = str(target.copy_with(query=query))
    headers = {
        "User-Agent": USER_AGENT,
        "X-Cairn-Signature": signature(secret, signed),
        "X-Cairn-Timestamp": str(int(now)),
        # Stable across retries of one step visit, so a receiver can drop a repeated delivery.
        "Idempotency-Key": context.visit_key,
    }
    if step.method != "GET":
        headers["Content-Type"] = content_type
    return Delivery(step.method, url, signed, headers, dict(step.headers))


# --- the activity ---------------------------------------------------------------------------


class WebhookActivities:
    def __init__(self, deps: Deps, resolver: Resolver = resolve) -> None:
        self.deps = deps
        self.resolver = resolver

    @step_activity("webhook")
    async def webhook(self, context: StepContext) -> StepOutcome:
        """Deliver the contact to the step's URL; 2xx is done, the rest per the retry rules."""
        step = await self.deps.step(context)
        async with self.deps.db.read() as session:
            remembered = await step_states.read_state(
                session, context.automation_id, context.step_id
            )
            gone = remembered.get(GONE_KEY)
            if gone and gone.get("url") == step.url:
                detail = {**gone, "url": url_origin(step.url)}
                return StepOutcome(outcome="skipped", reason="url_gone", detail=detail)
            contact = await step_contact(session, context)
            tags = (
                await session.scalars(
                    select(ContactTag.tag)
                    .where(ContactTag.contact_id == contact.id)
                    .order_by(ContactTag.tag)
                )
            ).all()
        # The first attempt's schedule time: every retry sends the same body.
        data = webhook_data(contact, list(tags), context, activity.info().scheduled_time)
        delivery = build_delivery(
            step, data, context, self.deps.settings.shared_key("webhook"), time.time()
        )
        # What failures say goes into the run's history: the origin only, never the path or
        # query, which may hold a token or (a GET's) contact fields.
        shown = f"webhook to {url_origin(step.url)}"
        try:
            async with deadline(), self.deps.http_client() as client:
                response = await deliver(
                    client,
                    delivery,
                    allow_private=self.deps.settings.webhook_allow_private,
                    resolver=self.resolver,
                )
        except RefusedDestination as err:
            raise give_up(f"{shown} {err}", kind="WebhookRefused") from None
        except TimeoutError:
            raise timed_out(shown, kind="WebhookTimeout") from None
        except httpx.HTTPError as err:
            raise network_failure(err, shown, kind="WebhookNetwork") from None
        return await self._outcome(context, step.url, response)

    async def _outcome(
        self, context: StepContext, url: str, response: httpx.Response
    ) -> StepOutcome:
        status = response.status_code
        if 200 <= status < 300:
            return StepOutcome(outcome="done", detail={"status": status})
        what = f"webhook to {url_origin(url)} answered {status}"
        if status >= 500 or status in RETRY_STATUSES:
            raise retry_later(
                f"{what}: {excerpt(response)}", delay=retry_after(response), kind="WebhookRetry"
            )
        if status == 410:
            # The receiver says the endpoint is gone for good: remember it, so later visits of
            # this step (by any contact) skip it instead of failing again.
            async with self.deps.db.write() as session:
                await step_states.merge_state(
                    session,
                    context.automation_id,
                    context.step_id,
                    {GONE_KEY: {"url": url, "at": datetime.now(UTC).isoformat()}},
                )
            # The step's record in the run says so too: `url_gone` first, with the URL.
            raise give_up(
                f"url_gone: {what} (Gone); later visits of this step skip it", kind="WebhookGone"
            )
        raise give_up(f"{what}: {excerpt(response)}", kind="WebhookRejected")
