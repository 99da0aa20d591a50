"""Facebook custom audiences: `facebook_audience_add` / `facebook_audience_remove` (docs/integrations.md#facebook-custom-audiences).

The contact goes to `{CAIRN_FACEBOOK_GRAPH_URL}/{audience}/users` as Meta's SDKs send it: the
parameters (`payload`, `access_token`) form-encoded in the body of a POST, in the query string of
a DELETE. The payload holds only SHA-256 hashes of the normalized email and phone:

- email only: `{"schema": "EMAIL_SHA256", "data": ["<hash>"]}` (Meta's single-key schema);
- email and phone: `{"schema": ["EMAIL", "PHONE"], "data": [["<hash>", "<hash>"]]}` (multi-key:
  Meta names the keys EMAIL/PHONE there, the values are hashed all the same);
- phone only: `{"schema": "PHONE_SHA256", "data": ["<hash>"]}`.

With `create_if_missing`, a customer-list audience named `audience_name` is created in
`CAIRN_FACEBOOK_AD_ACCOUNT` when the step has no audience id or Graph says it no longer exists; its
id is remembered in the step's state and used by every later visit (of this step, or of another
step of the automation naming the same audience). A retried attempt first looks the audience up by
name: the previous attempt may have created it and lost the answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

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
from store.models import utcnow
from workflows.contracts import StepContext, StepOutcome

# Graph error codes worth retrying: unknown/service errors, app, user and ad-account rate limits,
# and the custom-audience throttle (80003).
RETRY_CODES = frozenset({1, 2, 4, 17, 32, 613, 80003})
# "Object with ID … does not exist": the audience was deleted (or never was).
MISSING_OBJECT = (100, 33)
AUDIENCE_KEY = "facebook_audience"  # this module's keys in a step's remembered state
CLAIM_KEY = "facebook_audience_claim"
# A run creating the audience holds a claim this long at most (an activity attempt lasts ≤ 60 s),
# so a crashed creator does not block the step forever.
CLAIM_TTL = timedelta(minutes=2)
CLAIM_WAIT = timedelta(seconds=2)


class NotConfigured(Exception):
    """A setting the step needs is empty: the step is skipped, not failed."""


class AudienceMissing(Exception):
    """Graph says the audience does not exist (or this token cannot see it)."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def normalize_email(email: str | None) -> str | None:
    """Trimmed and lower-cased, as Meta hashes it."""
    value = (email or "").strip().lower()
    return value or None


def normalize_phone(phone: str | None) -> str | None:
    """Digits only, country code included: `+33 6 12 34 56 78` and `0033612345678` both give
    `33612345678`; `+44 (0)20…` drops the bracketed trunk zero. A number stored without its
    country code cannot be completed here."""
    text = (phone or "").strip().replace("(0)", "")
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]  # the international dialing prefix, written instead of "+"
    return digits or None


def audience_payload(email: str | None, phone: str | None) -> dict[str, Any] | None:
    """The Graph `payload` for one contact, or None when it has neither email nor phone."""
    hashed = {
        key: sha256(value)
        for key, value in (("EMAIL", normalize_email(email)), ("PHONE", normalize_phone(phone)))
        if value is not None
    }
    if len(hashed) == 2:
        return {"schema": list(hashed), "data": [list(hashed.values())]}
    for key, value in hashed.items():
        return {"schema": f"{key}_SHA256", "data": [value]}
    return None


class Graph:
    """A few Graph API calls with Cairn's retry rules: rate limits and 5xx retry, the rest fails."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, access_token: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token

    async def call(
        self, method: str, path: str, params: dict[str, str], *, may_be_missing: bool = False
    ) -> dict[str, Any]:
        """The answer's JSON; with `may_be_missing`, a missing object raises AudienceMissing
        (which the caller may cure by creating it) instead of failing the step."""
        url = f"{self.base_url}/{path}"
        params = {**params, "access_token": self.access_token}
        try:
            async with deadline():
                if method in ("GET", "DELETE"):
                    response = await self.client.request(method, url, params=params)
                else:
                    response = await self.client.request(method, url, data=params)
        except TimeoutError:
            raise timed_out(f"Graph API {method} {path}", kind="FacebookTimeout") from None
        except httpx.HTTPError as err:
            raise network_failure(
                err, f"Graph API {method} {path}", kind="FacebookNetwork"
            ) from None
        body = _json(response)
        if response.is_success:
            return body
        found = body.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        code, subcode = error.get("code"), error.get("error_subcode")
        message = error.get("error_user_msg") or error.get("message") or excerpt(response)
        what = f"Graph API {method} {path}: {message} (code {code}, HTTP {response.status_code})"
        if response.status_code >= 500 or code in RETRY_CODES or error.get("is_transient"):
            raise retry_later(what, delay=retry_after(response), kind="FacebookRetry")
        if may_be_missing and (code, subcode) == MISSING_OBJECT:
            raise AudienceMissing(what)
        raise give_up(what, kind="FacebookRejected")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _remembered(states: dict[str, dict[str, Any]], step: Any) -> str | None:
    """An audience this automation created under the step's name, for the step's audience id."""
    for data in states.values():
        record = data.get(AUDIENCE_KEY)
        if (
            record
            and record.get("name") == step.audience_name
            and record.get("replaces") == step.audience
        ):
            return str(record["id"])
    return None


async def _find_audience(
    graph: Graph, account: str, name: str, description: str
) -> dict[str, Any] | None:
    """The audience Cairn created under this name and description (an earlier attempt of this
    visit that crashed, or lost Graph's answer, after the create), or None."""
    answer = await graph.call(
        "GET",
        f"act_{account}/customaudiences",
        {
            "fields": "id,name,description",
            "filtering": json.dumps(
                [{"field": "name", "operator": "EQUAL", "value": name}], separators=(",", ":")
            ),
        },
    )
    found = answer.get("data")
    for audience in found if isinstance(found, list) else []:
        if (
            isinstance(audience, dict)
            and audience.get("id")
            and audience.get("name") == name
            and audience.get("description") == description
        ):
            return audience
    return None


class FacebookActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @step_activity("facebook_audience_add")
    async def facebook_audience_add(self, context: StepContext) -> StepOutcome:
        return await self._change_membership(context, "POST")

    @step_activity("facebook_audience_remove")
    async def facebook_audience_remove(self, context: StepContext) -> StepOutcome:
        return await self._change_membership(context, "DELETE")

    async def _change_membership(self, context: StepContext, method: str) -> StepOutcome:
        settings = self.deps.settings
        if not settings.facebook_access_token:
            return StepOutcome(outcome="skipped", reason="provider_not_configured")
        step = await self.deps.step(context)
        async with self.deps.db.read() as session:
            contact = await step_contact(session, context)
            payload = audience_payload(contact.email, contact.phone)
            states = (
                await step_states.states_of(session, context.automation_id)
                if step.create_if_missing
                else {}
            )
        if payload is None:
            return StepOutcome(outcome="skipped", reason="no_email_or_phone")
        params = {"payload": json.dumps(payload, separators=(",", ":"))}
        adding = method == "POST"
        async with self.deps.http_client() as client:
            graph = Graph(client, settings.facebook_graph_url, settings.facebook_access_token)
            created = False
            try:
                audience = _remembered(states, step) or step.audience
                if audience is None:
                    if not adding:  # nothing was ever created under this name: nothing to remove
                        return StepOutcome(outcome="skipped", reason="audience_not_found")
                    audience, created = await self._create(context, step, graph, None), True
                curable = step.create_if_missing and adding and not created
                try:
                    answer = await graph.call(
                        method, f"{audience}/users", params, may_be_missing=curable
                    )
                except AudienceMissing:
                    # Deleted (or never existed): create it, once, and send the contact there.
                    audience, created = await self._create(context, step, graph, audience), True
                    answer = await graph.call(method, f"{audience}/users", params)
            except NotConfigured:
                return StepOutcome(outcome="skipped", reason="provider_not_configured")
        detail = {
            "audience": audience,
            "num_received": answer.get("num_received"),
            "num_invalid_entries": answer.get("num_invalid_entries"),
        }
        if created:
            detail["created"] = True
        return StepOutcome(outcome="done", detail=detail)

    async def _create(
        self, context: StepContext, step: Any, graph: Graph, missing: str | None
    ) -> str:
        """Create the step's customer-list audience once per automation, and remember its id.

        `missing` is an audience id Graph just said does not exist: never the answer. A claim in
        the step's state keeps concurrent runs from creating one audience each: the others wait
        (retry) and then find the id.
        """
        settings = self.deps.settings
        account = settings.facebook_ad_account.removeprefix("act_")
        if not account:
            raise NotConfigured("CAIRN_FACEBOOK_AD_ACCOUNT")
        now = utcnow()
        async with self.deps.db.write() as session:
            row = await step_states.lock_state(session, context.automation_id, context.step_id)
            existing = _remembered({context.step_id: row.data}, step)
            if existing is not None and existing != missing:
                return existing  # another run created it while this one waited
            claim = (row.data or {}).get(CLAIM_KEY)
            if (
                claim
                and claim["key"] != context.visit_key
                and now - datetime.fromisoformat(claim["at"]) < CLAIM_TTL
            ):
                raise retry_later(
                    f'audience "{step.audience_name}" is being created by {claim["key"]}',
                    delay=CLAIM_WAIT,
                    kind="FacebookAudienceBeingCreated",
                )
            await step_states.merge_state(
                session,
                context.automation_id,
                context.step_id,
                {CLAIM_KEY: {"key": context.visit_key, "at": now.isoformat()}},
            )
        description = (
            f"Created by Cairn: automation {context.automation_id}, step {context.step_id}"
        )
        try:
            answer: dict[str, Any] | None = None
            if activity.info().attempt > 1:
                answer = await _find_audience(graph, account, step.audience_name, description)
            if answer is None or answer["id"] == missing:
                answer = await graph.call(
                    "POST",
                    f"act_{account}/customaudiences",
                    {
                        "name": step.audience_name,
                        "subtype": "CUSTOM",
                        "customer_file_source": settings.facebook_customer_file_source,
                        "description": description,
                    },
                )
        except ApplicationError as err:
            if err.non_retryable:  # no later attempt will come back for the claim
                await self._remember(context, {CLAIM_KEY: None})
            raise
        if not answer.get("id"):
            await self._remember(context, {CLAIM_KEY: None})
            raise give_up(f"Graph API created no audience id: {answer}", kind="FacebookRejected")
        record = {
            "id": str(answer["id"]),
            "name": step.audience_name,
            "replaces": step.audience,
            "created_at": utcnow().isoformat(),
        }
        await self._remember(context, {AUDIENCE_KEY: record, CLAIM_KEY: None})
        return record["id"]

    async def _remember(self, context: StepContext, changes: dict[str, Any]) -> None:
        async with self.deps.db.write() as session:
            await step_states.merge_state(session, context.automation_id, context.step_id, changes)
