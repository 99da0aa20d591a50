"""Salesforce steps against a real HTTP server standing in for the REST API: the request byte for
byte, the id stored on the contact (and the change reaching triggers), duplicates, expired
tokens, limits and retries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from activities import http
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
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually

TOKEN = "00Dxx0000001gPL!AQ4AQ.fake"
CONTACTS = "/services/data/v60.0/sobjects/Contact/"
LEADS = "/services/data/v60.0/sobjects/Lead/"
QUERY = "/services/data/v60.0/query"
NOTHING_FOUND = {"totalSize": 0, "done": True, "records": []}


@pytest.fixture
async def salesforce(stack: Stack) -> AsyncIterator[FakeServer]:
    """A fake Salesforce instance, and the stack's settings pointing at it for one test."""
    with (
        fake_server() as server,
        configured(
            stack.settings, salesforce_instance_url=server.url, salesforce_access_token=TOKEN
        ),
    ):
        yield server


def created(record_id: str) -> dict[str, Any]:
    return {"id": record_id, "success": True, "errors": []}


def compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def found(record_id: str, entity: str = "Contact") -> dict[str, Any]:
    """A SOQL query answer with one record."""
    return {
        "totalSize": 1,
        "done": True,
        "records": [
            {
                "attributes": {
                    "type": entity,
                    "url": f"/services/data/v60.0/sobjects/{entity}/{record_id}",
                },
                "Id": record_id,
            }
        ],
    }


def duplicates(*ids: str, entity: str = "Contact") -> list[dict[str, Any]]:
    """Salesforce's DUPLICATES_DETECTED answer (REST): DuplicateResult → MatchResult → MatchRecord."""
    return [
        {
            "duplicateResult": {
                "allowSave": False,
                "duplicateRule": f"Standard_{entity}_Duplicate_Rule",
                "duplicateRuleEntityType": entity,
                "errorMessage": "You're creating a duplicate record.",
                "matchResults": [
                    {
                        "entityType": entity,
                        "errors": [],
                        "matchEngine": "FuzzyMatchEngine",
                        "matchRecords": [
                            {
                                "additionalInformation": [],
                                "fieldDiffs": [],
                                "matchConfidence": 100.0,
                                "record": {
                                    "attributes": {
                                        "type": entity,
                                        "url": f"/services/data/v60.0/sobjects/{entity}/{i}",
                                    },
                                    "Id": i,
                                },
                            }
                            for i in ids
                        ],
                        "rule": f"Standard_{entity}_Match_Rule_v1_1",
                        "size": len(ids),
                        "success": True,
                    }
                ],
            },
            "errorCode": "DUPLICATES_DETECTED",
            "message": "Use one of these records?",
        }
    ]


async def test_create_contact_stores_the_id_tags_and_fires_field_changed(
    stack: Stack, salesforce: FakeServer
) -> None:
    # Storing the id is a contact change like any other: it reaches triggers.
    follower = await stack.automation(
        {
            "triggers": [{"type": "field_changed", "field": "salesforce_contact_id"}],
            "start": "mark",
            "steps": {"mark": {"type": "add_tag", "tag": "synced"}},
        }
    )
    salesforce.reply(201, created("003AAAAAAAAAAAAAAA"))

    run, contact = await run_steps(
        stack,
        {"sf": {"type": "salesforce_create_contact"}},
        {"first_name": "Ada", "last_name": "Lovelace", "phone": "+44 20 7946 0000"},
    )

    assert outcomes(run)["sf"] == ("done", None)
    (request,) = salesforce.received
    assert (request.method, request.path, request.query) == ("POST", CONTACTS, "")
    assert request.header("Authorization") == f"Bearer {TOKEN}"
    assert request.header("Content-Type") == "application/json"
    assert request.body == compact(
        {
            "FirstName": "Ada",
            "LastName": "Lovelace",
            "Email": contact["email"],
            "Phone": "+44 20 7946 0000",
        }
    )

    async def synced() -> dict[str, Any]:
        record = await stack.record(contact["id"])
        assert "synced" in record["tags"], record["tags"]
        return record

    record = await eventually(synced)
    assert record["fields"]["salesforce_contact_id"] == "003AAAAAAAAAAAAAAA"
    assert "added-to-salesforce-contact" in record["tags"]
    assert follower in {a["automation"] for a in record["automations"]}


async def test_an_id_already_stored_creates_no_second_record(
    stack: Stack, salesforce: FakeServer
) -> None:
    run, _ = await run_steps(
        stack,
        {"sf": {"type": "salesforce_create_contact"}},
        {"fields": {"salesforce_contact_id": "003EXISTING"}},
    )

    assert outcomes(run)["sf"] == ("skipped", "already_in_salesforce")
    assert salesforce.received == []


async def test_a_lead_without_last_name_or_account(stack: Stack, salesforce: FakeServer) -> None:
    salesforce.reply(201, created("00QAAA")).reply(201, created("00QBBB"))
    automation_id = await stack.automation(
        {"start": "sf", "steps": {"sf": {"type": "salesforce_create_lead"}}}
    )

    with_company, grace = await run_contact(
        stack, automation_id, {"first_name": "Grace", "fields": {"company": "US Navy"}}
    )
    bare, nobody = await run_contact(stack, automation_id)

    assert outcomes(with_company)["sf"] == ("done", None)
    assert outcomes(bare)["sf"] == ("done", None)
    first, second = salesforce.received
    assert first.path == second.path == LEADS
    local_part = grace["email"].split("@")[0]
    assert first.body == compact(
        {
            "FirstName": "Grace",
            "LastName": local_part,
            "Email": grace["email"],
            "Company": "US Navy",
        }
    )
    assert second.json() == {
        "LastName": nobody["email"].split("@")[0],
        "Email": nobody["email"],
        "Company": "[not provided]",
    }
    record = await stack.record(grace["id"])
    assert record["fields"]["salesforce_lead_id"] == "00QAAA"
    assert "added-to-salesforce-lead" in record["tags"]


async def test_a_leads_company_is_its_crm_accounts_name(
    stack: Stack, salesforce: FakeServer
) -> None:
    salesforce.reply(201, created("00QACCOUNT"))
    account = await stack.http.post("/api/v1/accounts", json={"name": stack.unique("Initech")})
    assert account.status_code == 201, account.text
    contact = await stack.contact(first_name="Peter", fields={"company": "not this one"})
    linked = await stack.http.post(
        f"/api/v1/accounts/{account.json()['id']}/contacts", json={"contact": contact["id"]}
    )
    assert linked.status_code == 201, linked.text
    automation_id = await stack.automation(
        {"start": "sf", "steps": {"sf": {"type": "salesforce_create_lead"}}}
    )

    handle = await stack.enroll(contact["id"], automation_id)
    run = await finished(stack, handle.id)

    assert outcomes(run)["sf"] == ("done", None)
    (request,) = salesforce.received
    assert request.path == LEADS
    assert request.body == compact(
        {
            "FirstName": "Peter",
            "LastName": contact["email"].split("@")[0],
            "Email": contact["email"],
            "Company": account.json()["name"],
        }
    )


async def test_a_retry_links_the_record_its_lost_create_made(
    stack: Stack, salesforce: FakeServer
) -> None:
    salesforce.reply(hang_up=True)  # Salesforce created the record; its answer never came back
    salesforce.reply(200, found("003CREATEDBEFORE"))
    name = stack.unique()  # an apostrophe is valid in an email address, and quoted in SOQL

    run, contact = await run_steps(
        stack,
        {"sf": {"type": "salesforce_create_contact"}},
        {"email": f"o'brien-{name}@example.com"},
    )

    assert outcomes(run)["sf"] == ("done", "linked_existing")
    create, lookup = salesforce.received  # no second create
    assert (create.method, create.path) == ("POST", CONTACTS)
    assert (lookup.method, lookup.path) == ("GET", QUERY)
    assert lookup.header("Authorization") == f"Bearer {TOKEN}"
    assert lookup.query_params() == {
        "q": f"SELECT Id FROM Contact WHERE Email = 'o\\'brien-{name}@example.com' "
        "ORDER BY CreatedDate DESC LIMIT 1"
    }
    record = await stack.record(contact["id"])
    assert record["fields"]["salesforce_contact_id"] == "003CREATEDBEFORE"
    assert "added-to-salesforce-contact" in record["tags"]


async def test_a_salesforce_slower_than_the_deadline_is_retried(
    stack: Stack, salesforce: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "TOTAL_SECONDS", 1.0)  # 30 s in production
    salesforce.reply(201, created("003LATE"), delay=2.5)
    salesforce.reply(200, NOTHING_FOUND)  # the slow attempt had not created it after all
    salesforce.reply(201, created("003INTIME"))

    run, contact = await run_steps(stack, {"sf": {"type": "salesforce_create_lead"}})

    assert outcomes(run)["sf"] == ("done", None)
    assert [(r.method, r.path) for r in salesforce.received] == [
        ("POST", LEADS),
        ("GET", QUERY),
        ("POST", LEADS),
    ]
    (attempt,) = await started_activities(stack, run["workflow_id"], "salesforce_create_lead")
    assert attempt.attempt == 2
    assert attempt.last_failure.message == "Salesforce create Lead: no answer within 1 s"
    assert (await stack.record(contact["id"]))["fields"]["salesforce_lead_id"] == "003INTIME"


async def test_a_duplicate_is_linked_instead_of_failing(
    stack: Stack, salesforce: FakeServer
) -> None:
    salesforce.reply(400, duplicates("003DUPLICATE0001"))

    run, contact = await run_steps(stack, {"sf": {"type": "salesforce_create_contact"}})

    assert outcomes(run)["sf"] == ("done", "linked_duplicate")
    assert len(salesforce.received) == 1
    record = await stack.record(contact["id"])
    assert record["fields"]["salesforce_contact_id"] == "003DUPLICATE0001"
    assert "added-to-salesforce-contact" in record["tags"]


async def test_an_expired_token_fails_for_good_with_a_clear_message(
    stack: Stack, salesforce: FakeServer
) -> None:
    salesforce.reply(
        401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    )

    run, contact = await run_steps(
        stack,
        {
            "sf": {"type": "salesforce_create_contact", "next": "after"},
            "after": {"type": "add_tag", "tag": "after-salesforce"},
        },
    )

    assert outcomes(run)["sf"] == (
        "failed",
        "Salesforce create Contact: Salesforce refused the access token (INVALID_SESSION_ID: "
        "Session expired or invalid); set CAIRN_SALESFORCE_ACCESS_TOKEN to a valid session token",
    )
    assert outcomes(run)["after"] == ("done", None)
    assert len(salesforce.received) == 1
    assert "salesforce_contact_id" not in (await stack.record(contact["id"]))["fields"]


async def test_an_expired_token_is_refreshed_once_and_the_call_made_again(
    stack: Stack, salesforce: FakeServer
) -> None:
    """With a connected app's refresh token, a 401 INVALID_SESSION_ID refreshes the access
    token (OAuth refresh_token grant, form-encoded) and the create is sent again with it; the
    new token is kept for the next call."""
    salesforce.reply(
        401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    )
    salesforce.reply(
        200,
        {
            "access_token": "00Dxx!fresh",
            "instance_url": salesforce.url,
            "token_type": "Bearer",
            "issued_at": "1700000000000",
        },
    )
    salesforce.reply(201, created("003AAAAAAAAAAAAAAB"))
    salesforce.reply(201, created("003AAAAAAAAAAAAAAC"))
    oauth = {
        "salesforce_client_id": "3MVG9-client",
        "salesforce_client_secret": "c-secret",
        "salesforce_refresh_token": "5Aep-refresh",
        "salesforce_token_url": f"{salesforce.url}/services/oauth2/token",
    }
    steps = {"sf": {"type": "salesforce_create_contact"}}
    with configured(stack.settings, **oauth):
        run, _ = await run_steps(stack, steps)
        again, _ = await run_steps(stack, steps)

    assert outcomes(run)["sf"] == ("done", None)
    assert outcomes(again)["sf"] == ("done", None)
    expired, refresh, retried, later = salesforce.received
    assert expired.header("Authorization") == f"Bearer {TOKEN}"
    assert (refresh.method, refresh.path) == ("POST", "/services/oauth2/token")
    assert refresh.header("Content-Type") == "application/x-www-form-urlencoded"
    assert parse_qs(refresh.body.decode(), strict_parsing=True) == {
        "grant_type": ["refresh_token"],
        "client_id": ["3MVG9-client"],
        "client_secret": ["c-secret"],
        "refresh_token": ["5Aep-refresh"],
    }
    assert (retried.method, retried.path) == ("POST", CONTACTS)
    assert retried.header("Authorization") == "Bearer 00Dxx!fresh"
    assert later.header("Authorization") == "Bearer 00Dxx!fresh"  # cached, no second refresh

    # Other credentials (the settings changed) never use a token refreshed from the old ones.
    salesforce.reply(201, created("003AAAAAAAAAAAAAAD"))
    with configured(stack.settings, salesforce_access_token="00Dxx!replaced"):
        replaced, _ = await run_steps(stack, steps)
    assert outcomes(replaced)["sf"] == ("done", None)
    assert salesforce.received[-1].header("Authorization") == "Bearer 00Dxx!replaced"


async def test_limits_and_server_errors_are_retried(stack: Stack, salesforce: FakeServer) -> None:
    salesforce.reply(
        403,
        [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    )
    salesforce.reply(200, NOTHING_FOUND)  # every retry looks for a record first
    salesforce.reply(503, "Service Unavailable")
    salesforce.reply(200, NOTHING_FOUND)
    salesforce.reply(201, created("003CCC"))

    run, contact = await run_steps(stack, {"sf": {"type": "salesforce_create_contact"}})

    assert outcomes(run)["sf"] == ("done", None)
    assert [r.method for r in salesforce.received] == ["POST", "GET", "POST", "GET", "POST"]
    assert len({r.body for r in salesforce.received if r.method == "POST"}) == 1
    assert (await stack.record(contact["id"]))["fields"]["salesforce_contact_id"] == "003CCC"


async def test_other_errors_fail_with_salesforces_message(
    stack: Stack, salesforce: FakeServer
) -> None:
    salesforce.reply(
        400,
        [
            {
                "message": "Email: invalid email address: bad",
                "errorCode": "INVALID_EMAIL_ADDRESS",
                "fields": ["Email"],
            }
        ],
    )

    run, _ = await run_steps(stack, {"sf": {"type": "salesforce_create_lead"}})

    assert outcomes(run)["sf"] == (
        "failed",
        "Salesforce create Lead: INVALID_EMAIL_ADDRESS: Email: invalid email address: bad "
        "(HTTP 400)",
    )


async def test_without_credentials_the_step_is_skipped(
    stack: Stack, salesforce: FakeServer
) -> None:
    stack.settings.salesforce_access_token = ""

    run, _ = await run_steps(stack, {"sf": {"type": "salesforce_create_lead"}})

    assert outcomes(run)["sf"] == ("skipped", "provider_not_configured")
    assert salesforce.received == []
    # The Temporal UI shows it too: the activity's result carries the reason.
    result = (await activity_results(stack, run["workflow_id"]))["salesforce_create_lead"]
    assert (result.outcome, result.reason) == ("skipped", "provider_not_configured")
