"""The `send_sms` step: a text message through a Twilio-compatible REST API (docs/integrations.md#sms).

`POST {CAIRN_SMS_BASE_URL}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded To/From/Body,
HTTP basic auth (account SID, auth token), `Idempotency-Key` = the step visit's key so a retried
attempt can be dropped by the provider. Skips (recorded, not failed): no phone, a phone that is
not a valid E.164 number, no SMS consent, no provider configured. A recipient who replied STOP
(Twilio's 21610) has their consent revoked, so later SMS steps skip them.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from activities.deps import Deps
from activities.http import (
    TOTAL_SECONDS,
    excerpt,
    give_up,
    network_failure,
    retry_after,
    retry_later,
)
from activities.messaging import tag_values
from activities.step_activity import step_activity, step_contact
from store import contacts as contact_store
from workflows.contracts import StepContext, StepOutcome
from workflows.personalization import render

CONSENT_FIELD = "sms_consent"
# Twilio error codes saying this number can never receive this message: no retry fixes them.
# 21211 invalid To, 21214 not reachable, 21217 not a valid phone, 21401 invalid number,
# 21407 unsupported region, 21408 region not enabled, 21610 recipient replied STOP,
# 21612 unreachable route, 21614 not a mobile number.
UNDELIVERABLE_CODES = frozenset({21211, 21214, 21217, 21401, 21407, 21408, 21610, 21612, 21614})
OPTED_OUT = 21610  # the recipient replied STOP: their consent is revoked
E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def to_e164(phone: str | None, default_country_code: str = "") -> str | None:
    """`+33 6 12 34 56 78`, `0033612345678` → `+33612345678`; a national number (`06 12…`) only
    with a default country code (its trunk zero dropped). None when it cannot be made E.164."""
    text = (phone or "").strip().replace("(0)", "")
    if re.search(r"[^\d\s()+./-]", text):
        return None  # letters or other symbols: not a phone number
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        candidate = "+" + digits
    elif text.startswith("00"):
        candidate = "+" + digits[2:]
    elif default_country_code:
        candidate = "+" + default_country_code.lstrip("+") + digits.lstrip("0")
    else:
        return None
    return candidate if E164.match(candidate) else None


def has_consent(fields: dict[str, Any]) -> bool:
    """Only an explicit yes counts: true, or the text "true"/"yes"/"1" a CSV import may store."""
    return contact_store.yes_or_no(fields.get(CONSENT_FIELD)) is True


class SmsActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @step_activity("send_sms")
    async def send_sms(self, context: StepContext) -> StepOutcome:
        """Send the step's body to the contact's phone, when it may be sent."""
        step = await self.deps.step(context)
        settings = self.deps.settings
        async with self.deps.db.read() as session:
            contact = await step_contact(session, context)
            values = await tag_values(session, contact, context.deal_id)
        if not (contact.phone or "").strip():
            return StepOutcome(outcome="skipped", reason="no_phone")
        to = to_e164(contact.phone, settings.sms_default_country_code)
        if to is None:
            return StepOutcome(
                outcome="skipped", reason="invalid_phone", detail={"phone": contact.phone}
            )
        if not has_consent(contact.fields or {}):
            return StepOutcome(outcome="skipped", reason="no_sms_consent")
        if not (settings.sms_account_sid and settings.sms_auth_token and settings.sms_from):
            return StepOutcome(outcome="skipped", reason="provider_not_configured")
        url = (
            f"{settings.sms_base_url.rstrip('/')}/2010-04-01/Accounts/"
            f"{settings.sms_account_sid}/Messages.json"
        )
        form = {"To": to, "From": settings.sms_from, "Body": render(step.body, values, html=False)}
        try:
            async with asyncio.timeout(TOTAL_SECONDS), self.deps.http_client() as client:
                response = await client.post(
                    url,
                    data=form,
                    auth=(settings.sms_account_sid, settings.sms_auth_token),
                    headers={"Idempotency-Key": context.visit_key, "Accept": "application/json"},
                )
        except TimeoutError as err:
            raise retry_later(f"SMS provider at {url}: no answer in time", kind="SmsRetry") from err
        except httpx.HTTPError as err:
            raise network_failure(err, f"SMS provider at {url}", kind="SmsRetry") from err
        if _code(response) == OPTED_OUT:
            await self._revoke_consent(context)
        return outcome_of(response, to)

    async def _revoke_consent(self, context: StepContext) -> None:
        """The recipient replied STOP: no later SMS may go to them until they opt in again
        (a `field_changed` of sms_consent, which triggers and conditions see)."""
        async with self.deps.db.write() as session:
            contact = await step_contact(session, context)
            await contact_store.update_fields(
                session, contact, {CONSENT_FIELD: False}, origin=context.workflow_id
            )


def outcome_of(response: httpx.Response, to: str) -> StepOutcome:
    """2xx is sent; 429 and 5xx retry (after Retry-After); an undeliverable number or any other
    4xx fails the step for good."""
    status = response.status_code
    if 200 <= status < 300:
        answer = _json(response)
        return StepOutcome(
            outcome="done",
            detail={"to": to, "sid": answer.get("sid"), "status": answer.get("status")},
        )
    what = f"SMS provider answered {status}"
    if status == 429 or status >= 500:
        raise retry_later(
            f"{what}: {excerpt(response)}", delay=retry_after(response), kind="SmsRetry"
        )
    code = _code(response)
    if code == OPTED_OUT:
        raise give_up(
            f"{what}: {to} replied STOP to earlier messages (code {code}); "
            f"{CONSENT_FIELD} is now false",
            kind="SmsUndeliverable",
        )
    if code in UNDELIVERABLE_CODES:
        raise give_up(f"{what}: {to} cannot receive SMS (code {code})", kind="SmsUndeliverable")
    raise give_up(f"{what}: {excerpt(response)}", kind="SmsRejected")


def _code(response: httpx.Response) -> Any:
    """Twilio's error code of a 4xx answer, if any."""
    return _json(response).get("code") if 400 <= response.status_code < 500 else None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
