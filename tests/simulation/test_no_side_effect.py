"""A simulation changes nothing: no row, no outbox entry, no email, no provider call, no report."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select

from store.models import (
    ActionLog,
    Automation,
    Base,
    OutboxEntry,
    Run,
    SplitState,
    StepEvent,
    StepState,
)
from tests.helpers.providers import configured, fake_server
from tests.helpers.stack import Stack


async def counts(stack: Stack, contact_id: int, automation_id: str) -> dict[str, int]:
    """Every table's rows about this contact or this automation (other tests' runs may write
    meanwhile: the session's stack is shared)."""
    found: dict[str, int] = {}
    async with stack.db.read() as session:
        for table in Base.metadata.sorted_tables:
            columns = table.c
            scope = []
            if "contact_id" in columns:
                scope.append(columns.contact_id == contact_id)
            if "automation_id" in columns:
                scope.append(columns.automation_id == automation_id)
            if table.name == "contacts":
                scope.append(columns.id == contact_id)
            if table.name in (Automation.__tablename__,):
                scope.append(columns.id == automation_id)
            if table.name == ActionLog.__tablename__:
                scope.append(columns.key.contains(automation_id))
            if table.name in ("users", "pipelines", "stages", "deals", "accounts", "api_tokens"):
                scope.append(True)  # type: ignore[arg-type]  # small: all of them
            if scope:
                found[table.name] = (
                    await session.scalar(select(func.count()).select_from(table).where(or_(*scope)))
                    or 0
                )
        found["simulated runs"] = (
            await session.scalar(
                select(func.count()).select_from(Run).where(Run.workflow_id.like("cairn-sim:%"))
            )
            or 0
        )
    for model in (OutboxEntry, StepEvent, SplitState, StepState):
        assert model.__tablename__ in found
    return found


async def test_a_simulation_of_every_kind_of_side_effect_changes_nothing(stack: Stack) -> None:
    with fake_server() as receiver, fake_server() as twilio, fake_server() as salesforce:
        pipeline = stack.unique("Sales")
        sales = f"{stack.unique('sales')}@example.com"  # the mailbox is every test's
        created = await stack.http.post(
            "/api/v1/pipelines", json={"name": pipeline, "stages": ["New", "Won"]}
        )
        assert created.status_code == 201, created.text
        other = await stack.automation(
            {"start": "t", "steps": {"t": {"type": "add_tag", "tag": "other"}}}
        )
        automation = await stack.automation(
            {
                "start": "welcome",
                "steps": {
                    "welcome": {
                        "type": "send_email",
                        "subject": "Hi %FIRSTNAME%",
                        "html": '<p>Hi</p><a href="https://shop.test/">shop</a>',
                        "next": "text",
                    },
                    "text": {"type": "send_sms", "body": "Hi %FIRSTNAME%", "next": "hook"},
                    "hook": {
                        "type": "webhook",
                        "url": f"{receiver.url}/hook?api_key=s3cret&x=1",
                        "headers": {"Authorization": "Bearer s3cret"},
                        "next": "tag",
                    },
                    "tag": {"type": "add_tag", "tag": "simulated", "next": "score"},
                    "score": {
                        "type": "adjust_contact_score",
                        "score": "lead",
                        "op": "add",
                        "value": 5,
                        "next": "deal",
                    },
                    "deal": {
                        "type": "add_deal",
                        "title": "D",
                        "value": 1,
                        "currency": "USD",
                        "pipeline": pipeline,
                        "stage": "New",
                        "next": "site",
                    },
                    "site": {"type": "send_site_message", "html": "Welcome back", "next": "tell"},
                    "tell": {
                        "type": "send_notification_email",
                        "to": [sales],
                        "subject": "New lead",
                        "body": "Look",
                        "next": "other",
                    },
                    "other": {"type": "start_automation", "automation": other, "next": "sf"},
                    "sf": {"type": "salesforce_create_lead"},
                },
            }
        )
        contact = await stack.contact(
            first_name="Ada", phone="+15550100", fields={"sms_consent": True}
        )
        cid = contact["id"]
        await stack.settled(cid)  # its creation delivered: no outbox row left of its own
        before = await counts(stack, cid, automation)
        record = await stack.record(cid)
        report = (await stack.http.get(f"/api/v1/automations/{automation}/report")).json()
        with configured(
            stack.settings,
            webhook_allow_private=True,
            sms_base_url=twilio.url,
            sms_account_sid="AC123",
            sms_auth_token="twilio-secret",
            sms_from="+15550199",
            salesforce_instance_url=salesforce.url,
            salesforce_access_token="00Dxx!token",
        ):
            answer = await stack.http.post(
                f"/api/v1/automations/{automation}/simulate", json={"contact_id": cid}
            )
        assert answer.status_code == 200, answer.text
        result = answer.json()

        # It did everything, in the sandbox ...
        assert result["status"] == "completed", result
        outcomes = {p["step"]: p["outcome"] for p in result["path"]}
        assert set(outcomes.values()) == {"done"}, result["path"]
        channels = sorted((m["channel"], m["step"]) for m in result["messages"])
        assert channels == [
            ("email", "welcome"),
            ("notification", "tell"),
            ("site", "site"),
            ("sms", "text"),
        ]
        assert {w["step"]: w["kind"] for w in result["writes"]} == {
            "tag": "add_tag",
            "score": "adjust_contact_score",
            "deal": "add_deal",
            "other": "start_automation",
        }
        hook = next(r for r in result["requests"] if r["step"] == "hook")
        assert hook["method"] == "POST" and hook["url"].startswith(f"{receiver.url}/hook?")
        assert "s3cret" not in str(result) and "twilio-secret" not in str(result)
        assert "api_key=***" in hook["url"]
        assert any(r["step"] == "sf" for r in result["requests"])
        # Its links are signed with a key of its own: following them records nothing real.
        [email] = [m for m in result["messages"] if m["channel"] == "email"]
        for link in re.findall(r'href="([^"]+)"', email["html"]):
            path = link.split("://", 1)[1].split("/", 1)[1]
            assert (await stack.http.get(f"/{path}")).status_code in (400, 403, 404), link
            assert (await stack.http.post(f"/{path}")).status_code in (400, 403, 404, 405), link
        [pixel] = re.findall(r'src="([^"]+/t/o/[^"]+)"', email["html"])
        assert (
            await stack.http.get("/" + pixel.split("://", 1)[1].split("/", 1)[1])
        ).status_code in (400, 403, 404)

        # ... and nothing outside it.
        assert await counts(stack, cid, automation) == before
        assert await stack.record(cid) == record
        assert (await stack.http.get(f"/api/v1/automations/{automation}/report")).json() | {
            "generated_at": None
        } == report | {"generated_at": None}
        assert receiver.received == [] and twilio.received == [] and salesforce.received == []
        assert stack.mailbox.to(contact["email"]) == [] and stack.mailbox.to(sales) == []
        started = await stack.client.count_workflows(f"CairnAutomation = '{other}'")
        assert started.count == 0
