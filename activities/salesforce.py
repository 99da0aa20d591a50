"""Salesforce: `salesforce_create_contact` / `salesforce_create_lead` (docs/integrations.md#salesforce).

`POST {instance}/services/data/v{version}/sobjects/{Contact|Lead}/` with a bearer token; the new
record's id is stored on the contact (custom field `salesforce_contact_id` / `salesforce_lead_id`)
and the contact tagged, both through the store so `field_changed` / `tag_added` reach runs and
triggers. A contact that already has the id is not created twice; a duplicate Salesforce detects
is linked instead of failing the step; a retried attempt first looks the record up by email (the
previous attempt may have created it and crashed, or lost the answer, before storing its id).
With a refresh token, an expired access token is renewed (OAuth) and the call made once more.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
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
from store import contacts as contact_store
from store import crm as crm_store
from store import runs as run_store
from store.models import ActionLog, Contact
from workflows.contracts import StepContext, StepOutcome

# What Salesforce's own integrations put in a required field Cairn has no value for.
NOT_PROVIDED = "[not provided]"
RETRY_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"})
# Salesforce refuses longer values (STRING_TOO_LONG); a cut name beats a failed step.
MAX_LENGTHS = {"FirstName": 40, "LastName": 80, "Email": 80, "Phone": 40, "Company": 255}


@dataclass(frozen=True)
class SObjectKind:
    """One Salesforce object Cairn creates, and how the contact remembers it."""

    sobject: str
    id_field: str
    tag: str
    needs_company: bool


KINDS = {
    "salesforce_create_contact": SObjectKind(
        "Contact", "salesforce_contact_id", "added-to-salesforce-contact", needs_company=False
    ),
    "salesforce_create_lead": SObjectKind(
        "Lead", "salesforce_lead_id", "added-to-salesforce-lead", needs_company=True
    ),
}


def record_fields(contact: Contact, kind: SObjectKind, account_name: str | None) -> dict[str, str]:
    """The record to create; LastName (and a Lead's Company) are required, so never empty."""
    email = contact.email or None
    last_name = contact.last_name or (email.split("@")[0] if email else None) or NOT_PROVIDED
    values: dict[str, str | None] = {
        "FirstName": contact.first_name or None,
        "LastName": last_name,
        "Email": email,
        "Phone": contact.phone or None,
    }
    if kind.needs_company:
        company = (contact.fields or {}).get("company")
        values["Company"] = account_name or (str(company) if company else None) or NOT_PROVIDED
    return {name: value[: MAX_LENGTHS[name]] for name, value in values.items() if value}


async def account_name(session: AsyncSession, contact_id: int) -> str | None:
    """The name of the contact's CRM account (a contact has one at most), if it has one."""
    membership = await crm_store.contact_account(session, contact_id)
    return membership[0].name if membership else None


def soql_string(value: str) -> str:
    """`value` as a SOQL string literal: backslashes and single quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def duplicate_id(errors: list[dict[str, Any]], sobject: str) -> str | None:
    """The existing record's id in a DUPLICATES_DETECTED answer (duplicateResult → matchResults →
    matchRecords → record.Id), preferring a match of the object Cairn tried to create."""
    matches: list[tuple[bool, str]] = []
    for error in errors:
        result = error.get("duplicateResult") or {}
        for match in result.get("matchResults") or []:
            for record in match.get("matchRecords") or []:
                record_id = (record.get("record") or {}).get("Id")
                if record_id:
                    matches.append((match.get("entityType") != sobject, str(record_id)))
    return min(matches)[1] if matches else None


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        body = [body]
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []


class SalesforceActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        # The access token from the last refresh, shared by every activity of this worker,
        # with the credentials it came from: new credentials (settings changed) never use a
        # token refreshed from the old ones. The lock makes the activities that met the same
        # 401 refresh it once.
        self._refreshed: tuple[tuple[str, ...], str] | None = None
        self._refreshing = asyncio.Lock()

    @step_activity("salesforce_create_contact")
    async def salesforce_create_contact(self, context: StepContext) -> StepOutcome:
        return await self._create(context, KINDS["salesforce_create_contact"])

    @step_activity("salesforce_create_lead")
    async def salesforce_create_lead(self, context: StepContext) -> StepOutcome:
        return await self._create(context, KINDS["salesforce_create_lead"])

    async def _create(self, context: StepContext, kind: SObjectKind) -> StepOutcome:
        settings = self.deps.settings
        if not (
            settings.salesforce_instance_url
            and (settings.salesforce_access_token or _can_refresh(settings))
        ):
            return StepOutcome(outcome="skipped", reason="provider_not_configured")
        async with self.deps.db.read() as session:
            recorded = await session.get(ActionLog, context.visit_key)
            if recorded is not None:  # this visit already stored its id: a retry after commit
                return StepOutcome.model_validate(recorded.outcome)
            contact = await step_contact(session, context)
            existing = (contact.fields or {}).get(kind.id_field)
            if existing:
                return StepOutcome(
                    outcome="skipped", reason="already_in_salesforce", detail={"id": existing}
                )
            account = await account_name(session, contact.id) if kind.needs_company else None
            fields = record_fields(contact, kind, account)
        record_id, how = None, None
        if activity.info().attempt > 1 and "Email" in fields:
            record_id, how = await self._find(kind, fields["Email"]), "linked_existing"
        if record_id is None:
            record_id, duplicate = await self._post(kind, fields)
            how = "linked_duplicate" if duplicate else None

        async with self.deps.db.write() as session:

            async def store_id() -> dict[str, Any]:
                contact = await step_contact(session, context)
                await contact_store.update_fields(
                    session, contact, {kind.id_field: record_id}, origin=context.workflow_id
                )
                await contact_store.add_tag(
                    session, contact.id, kind.tag, origin=context.workflow_id
                )
                return {
                    "outcome": "done",
                    "reason": how,
                    "detail": {"sobject": kind.sobject, "id": record_id},
                }

            outcome = await run_store.once_per_visit(session, context.visit_key, store_id)
        self.deps.kick()
        return StepOutcome.model_validate(outcome)

    def _url(self, path: str) -> str:
        settings = self.deps.settings
        version = settings.salesforce_api_version.removeprefix("v")
        return f"{settings.salesforce_instance_url.rstrip('/')}/services/data/v{version}/{path}"

    async def _send(self, what: str, method: str, url: str, **request: Any) -> httpx.Response:
        """One REST call with the bearer token; on a 401, with a refresh token configured, the
        token is refreshed and the call made once more."""
        settings = self.deps.settings
        token = self._refreshed_token() or settings.salesforce_access_token
        if not token:  # only a refresh token is configured: no access token yet
            token = await self._refresh(what, stale="")
        response = await self._call(what, method, url, token, **request)
        if response.status_code == 401 and _can_refresh(settings):
            token = await self._refresh(what, stale=token)
            response = await self._call(what, method, url, token, **request)
        return response

    async def _call(
        self, what: str, method: str, url: str, token: str, **request: Any
    ) -> httpx.Response:
        """One HTTP call, bounded by `deadline()`; network trouble retries."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            **request.get("headers", {}),
        }
        rest = {k: v for k, v in request.items() if k != "headers"}
        try:
            async with deadline(), self.deps.http_client() as client:
                return await client.request(method, url, headers=headers, **rest)
        except TimeoutError:
            raise timed_out(what, kind="SalesforceTimeout") from None
        except httpx.HTTPError as err:
            raise network_failure(err, what, kind="SalesforceNetwork") from None

    def _refreshed_token(self) -> str | None:
        """The last refreshed token, if it came from the credentials configured now."""
        if self._refreshed is None:
            return None
        credentials, token = self._refreshed
        return token if credentials == _credentials(self.deps.settings) else None

    async def _refresh(self, what: str, *, stale: str) -> str:
        """A new access token from the refresh token (OAuth 2.0 refresh_token grant), unless
        another activity already replaced `stale` meanwhile."""
        settings = self.deps.settings
        async with self._refreshing:
            current = self._refreshed_token()
            if current and current != stale:
                return current
            form = {
                "grant_type": "refresh_token",
                "client_id": settings.salesforce_client_id,
                "refresh_token": settings.salesforce_refresh_token,
            }
            if settings.salesforce_client_secret:
                form["client_secret"] = settings.salesforce_client_secret
            try:
                async with deadline(), self.deps.http_client() as client:
                    response = await client.post(
                        settings.salesforce_token_url,
                        data=form,
                        headers={"Accept": "application/json"},
                    )
            except TimeoutError:
                raise timed_out(f"{what} (token refresh)", kind="SalesforceTimeout") from None
            except httpx.HTTPError as err:
                raise network_failure(
                    err, f"{what} (token refresh)", kind="SalesforceNetwork"
                ) from None
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            token = answer.get("access_token") if isinstance(answer, dict) else None
            if response.is_success and isinstance(token, str) and token:
                self._refreshed = (_credentials(settings), token)
                return token
            if response.status_code >= 500:
                raise retry_later(
                    f"{what}: token refresh answered HTTP {response.status_code}",
                    delay=retry_after(response),
                    kind="SalesforceRetry",
                )
            # invalid_grant (refresh token revoked or expired), invalid_client: the operator's.
            problem = (
                f"{answer.get('error')}: {answer.get('error_description')}"
                if isinstance(answer, dict) and answer.get("error")
                else excerpt(response) or f"HTTP {response.status_code}"
            )
            raise give_up(
                f"{what}: Salesforce refused the refresh token ({problem}); check "
                "CAIRN_SALESFORCE_CLIENT_ID, _CLIENT_SECRET and _REFRESH_TOKEN",
                kind="SalesforceUnauthorized",
            )

    async def _find(self, kind: SObjectKind, email: str) -> str | None:
        """The newest record of `kind` with this email (SOQL), or None."""
        what = f"Salesforce query {kind.sobject}"
        soql = (
            f"SELECT Id FROM {kind.sobject} WHERE Email = {soql_string(email)} "
            "ORDER BY CreatedDate DESC LIMIT 1"
        )
        response = await self._send(what, "GET", self._url("query"), params={"q": soql})
        if not response.is_success:
            raise _failure(what, response, _errors(response))
        try:
            records = response.json().get("records") or []
        except (ValueError, AttributeError):
            raise give_up(
                f"{what}: unreadable answer {excerpt(response)}", kind="SalesforceRejected"
            ) from None
        ids = [str(r["Id"]) for r in records if isinstance(r, dict) and r.get("Id")]
        return ids[0] if ids else None

    async def _post(self, kind: SObjectKind, fields: dict[str, str]) -> tuple[str, bool]:
        """(record id, whether it is an existing duplicate) or a retryable/final error."""
        what = f"Salesforce create {kind.sobject}"
        response = await self._send(
            what,
            "POST",
            self._url(f"sobjects/{kind.sobject}/"),
            content=json.dumps(fields, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json"},
        )
        if response.is_success:
            try:
                record_id = response.json().get("id")
            except (ValueError, AttributeError):
                record_id = None
            if not record_id:
                raise give_up(f"{what}: no id in {excerpt(response)}", kind="SalesforceRejected")
            return str(record_id), False
        errors = _errors(response)
        if any(e.get("errorCode") == "DUPLICATES_DETECTED" for e in errors):
            existing = duplicate_id(errors, kind.sobject)
            if existing is None:
                raise give_up(
                    f"{what}: duplicates detected but no matching record id returned "
                    f"({_message(response, errors)})",
                    kind="SalesforceDuplicate",
                )
            return existing, True
        raise _failure(what, response, errors)


def _message(response: httpx.Response, errors: list[dict[str, Any]]) -> str:
    message = "; ".join(f"{e.get('errorCode')}: {e.get('message')}" for e in errors)
    return message or excerpt(response) or f"HTTP {response.status_code}"


def _failure(what: str, response: httpx.Response, errors: list[dict[str, Any]]) -> ApplicationError:
    """A Salesforce error answer as Cairn's retry rules see it."""
    codes = {str(e.get("errorCode")) for e in errors}
    message = _message(response, errors)
    if response.status_code == 401 or "INVALID_SESSION_ID" in codes:
        return give_up(
            f"{what}: Salesforce refused the access token ({message}); "
            "set CAIRN_SALESFORCE_ACCESS_TOKEN to a valid session token",
            kind="SalesforceUnauthorized",
        )
    if response.status_code >= 500 or RETRY_CODES.intersection(codes):
        return retry_later(
            f"{what}: {message} (HTTP {response.status_code})",
            delay=retry_after(response),
            kind="SalesforceRetry",
        )
    return give_up(f"{what}: {message} (HTTP {response.status_code})", kind="SalesforceRejected")


def _credentials(settings: Any) -> tuple[str, ...]:
    """What a refreshed access token is valid for: this instance, with these credentials."""
    return (
        settings.salesforce_instance_url,
        settings.salesforce_access_token,
        settings.salesforce_client_id,
        settings.salesforce_refresh_token,
    )


def _can_refresh(settings: Any) -> bool:
    return bool(settings.salesforce_client_id and settings.salesforce_refresh_token)
