"""send_sms against a real HTTP server standing in for Twilio: what it received, how answers count."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from activities.sms import to_e164
from tests.helpers.providers import FakeServer, configured, fake_server, outcomes, run_steps
from tests.helpers.stack import Stack

SID, AUTH, FROM = "AC0123456789abcdef", "secret-token", "+15005550006"
SMS = {"sms": {"type": "send_sms", "body": "Hi %FIRSTNAME%, 20% off today"}}
CONSENTING = {"first_name": "Ada", "phone": "+33 6 12 34 56 78", "fields": {"sms_consent": True}}


@contextmanager
def twilio(stack: Stack) -> Iterator[FakeServer]:
    with (
        fake_server() as server,
        configured(
            stack.settings,
            sms_base_url=server.url,
            sms_account_sid=SID,
            sms_auth_token=AUTH,
            sms_from=FROM,
        ),
    ):
        yield server


def created(to: str) -> dict[str, Any]:
    return {"sid": "SM123", "status": "queued", "to": to}


async def test_sms_sent_as_twilio_expects_it(stack: Stack) -> None:
    with twilio(stack) as server:
        server.reply(201, created("+33612345678"))
        run, _ = await run_steps(stack, SMS, CONSENTING)
    assert outcomes(run) == {"sms": ("done", None)}
    (request,) = server.received
    assert (request.method, request.path) == ("POST", f"/2010-04-01/Accounts/{SID}/Messages.json")
    assert request.body == b"To=%2B33612345678&From=%2B15005550006&Body=Hi+Ada%2C+20%25+off+today"
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert request.header("Authorization") == "Basic " + base64.b64encode(
        f"{SID}:{AUTH}".encode()
    ).decode("ascii")
    assert request.header("Idempotency-Key") == f"{run['workflow_id']}:1"  # the visit key


async def test_429_retried_after_the_delay_asked_with_the_same_idempotency_key(
    stack: Stack,
) -> None:
    with twilio(stack) as server:
        server.reply(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "1"})
        server.reply(503, "unavailable")
        server.reply(201, created("+33612345678"))
        run, _ = await run_steps(stack, SMS, CONSENTING)
    assert outcomes(run) == {"sms": ("done", None)}
    keys = {r.header("Idempotency-Key") for r in server.received}
    assert len(server.received) == 3 and len(keys) == 1


async def test_invalid_number_fails_for_good(stack: Stack) -> None:
    with twilio(stack) as server:
        server.reply(
            400, {"code": 21211, "message": "The 'To' number is not a valid phone number."}
        )
        run, _ = await run_steps(stack, SMS, CONSENTING)
    outcome, reason = outcomes(run)["sms"]
    assert outcome == "failed" and "cannot receive SMS (code 21211)" in (reason or "")
    assert len(server.received) == 1


async def test_a_stop_reply_revokes_consent_and_later_sms_are_skipped(stack: Stack) -> None:
    stopped = {
        "first": {"type": "send_sms", "body": "Sale!", "next": "second"},
        "second": {"type": "send_sms", "body": "Last chance"},
    }
    with twilio(stack) as server:
        server.reply(
            400,
            {"code": 21610, "message": "Attempt to send to unsubscribed recipient"},
        )
        run, contact = await run_steps(stack, stopped, CONSENTING)
    first_outcome, reason = outcomes(run)["first"]
    assert first_outcome == "failed" and "replied STOP" in (reason or ""), reason
    assert outcomes(run)["second"] == ("skipped", "no_sms_consent")
    assert len(server.received) == 1
    assert (await stack.record(contact["id"]))["fields"]["sms_consent"] is False


@pytest.mark.parametrize(
    ("contact", "reason"),
    [
        ({"phone": "+33612345678"}, "no_sms_consent"),
        ({"phone": "+33612345678", "fields": {"sms_consent": False}}, "no_sms_consent"),
        ({"fields": {"sms_consent": True}}, "no_phone"),
        ({"phone": "06 12 34 56 78", "fields": {"sms_consent": True}}, "invalid_phone"),
        ({"phone": "call me", "fields": {"sms_consent": True}}, "invalid_phone"),
    ],
)
async def test_skipped_with_reason_and_nothing_sent(
    stack: Stack, contact: dict[str, Any], reason: str
) -> None:
    with twilio(stack) as server:
        run, _ = await run_steps(stack, SMS, contact)
    assert outcomes(run) == {"sms": ("skipped", reason)}
    assert server.received == []


async def test_provider_not_configured(stack: Stack) -> None:
    with configured(stack.settings, sms_account_sid="", sms_auth_token=""):
        run, _ = await run_steps(stack, SMS, CONSENTING)
    assert outcomes(run) == {"sms": ("skipped", "provider_not_configured")}


async def test_a_national_number_with_a_default_country_code(stack: Stack) -> None:
    national = {**CONSENTING, "phone": "06 12 34 56 78"}
    with twilio(stack) as server, configured(stack.settings, sms_default_country_code="33"):
        server.reply(201, created("+33612345678"))
        run, _ = await run_steps(stack, SMS, national)
    assert outcomes(run) == {"sms": ("done", None)}
    assert server.received[0].form()["To"] == "+33612345678"


@pytest.mark.parametrize(
    ("phone", "country", "e164"),
    [
        ("+33 6 12 34 56 78", "", "+33612345678"),
        ("0033 6 12 34 56 78", "", "+33612345678"),
        ("+44 (0)20 7946 0000", "", "+442079460000"),
        ("(415) 555-0100", "1", "+14155550100"),
        ("06 12 34 56 78", "+33", "+33612345678"),
        ("06 12 34 56 78", "", None),
        ("+33 6", "", None),
        ("+1 234 567 890 123 456", "", None),
        ("+0 612 345 678", "", None),
        ("phone: 0612", "33", None),
        ("", "33", None),
    ],
)
def test_e164_normalization(phone: str, country: str, e164: str | None) -> None:
    assert to_e164(phone, country) == e164


async def test_retry_after_longer_than_the_backoff_is_honoured(stack: Stack) -> None:
    with twilio(stack) as server, stack.env.with_time_skipping_disabled():
        server.reply(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "4"})
        server.reply(201, created("+33612345678"))
        run, _ = await run_steps(stack, SMS, CONSENTING)
    assert outcomes(run) == {"sms": ("done", None)}
    first, second = server.received
    waited = second.at - first.at
    # The policy's own first backoff is 1 s: 4 s apart means the provider's delay was used.
    assert 3.9 <= waited < 12, f"retried {waited:.2f} s after the 429"
