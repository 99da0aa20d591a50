"""Which committed change fires which trigger: the matching rules, one trigger type at a time,
and the `field_changed` / `event` filters through a real run."""

from __future__ import annotations

from typing import Any

import pytest

from domain.trigger_matching import trigger_matches
from tests.helpers.stack import Stack, eventually


@pytest.mark.parametrize(
    ("trigger", "kind", "data", "fires"),
    [
        ({"type": "tag_added", "tag": "VIP"}, "tag_added", {"tag": "vip"}, True),
        ({"type": "tag_added", "tag": "vip"}, "tag_added", {"tag": "lead"}, False),
        ({"type": "tag_added", "tag": "vip"}, "tag_removed", {"tag": "vip"}, False),
        ({"type": "list_subscribed"}, "list_subscribed", {"list": "news"}, True),
        ({"type": "list_subscribed", "list": "News"}, "list_subscribed", {"list": "news"}, True),
        ({"type": "list_subscribed", "list": "news"}, "list_subscribed", {"list": "deals"}, False),
        # field_changed: absent `to` = any change; `to: null` = cleared; `to: v` = became v.
        (
            {"type": "field_changed", "field": "plan"},
            "field_changed",
            {"field": "plan", "to": "pro"},
            True,
        ),
        (
            {"type": "field_changed", "field": "plan"},
            "field_changed",
            {"field": "plan", "to": None},
            True,
        ),
        (
            {"type": "field_changed", "field": "plan"},
            "field_changed",
            {"field": "tier", "to": "pro"},
            False,
        ),
        (
            {"type": "field_changed", "field": "plan", "to": None},
            "field_changed",
            {"field": "plan", "to": None},
            True,
        ),
        (
            {"type": "field_changed", "field": "plan", "to": None},
            "field_changed",
            {"field": "plan", "to": "pro"},
            False,
        ),
        (
            {"type": "field_changed", "field": "plan", "to": None},
            "field_changed",
            {"field": "plan", "to": "None"},
            False,
        ),
        (
            {"type": "field_changed", "field": "plan", "to": "Pro"},
            "field_changed",
            {"field": "plan", "to": "pro"},
            True,
        ),
        (
            {"type": "field_changed", "field": "plan", "to": "pro"},
            "field_changed",
            {"field": "plan", "to": "trial"},
            False,
        ),
        (
            {"type": "field_changed", "field": "plan", "to": "pro"},
            "field_changed",
            {"field": "plan", "to": None},
            False,
        ),
        # event: the trigger's data must be a subset of the event's.
        (
            {"type": "event", "event": "purchase"},
            "event",
            {"event": "purchase", "data": {"sku": "A"}},
            True,
        ),
        (
            {"type": "event", "event": "purchase", "data": {"sku": "A"}},
            "event",
            {"event": "purchase", "data": {"sku": "A", "qty": 2}},
            True,
        ),
        (
            {"type": "event", "event": "purchase", "data": {"sku": "A"}},
            "event",
            {"event": "purchase", "data": {"sku": "B"}},
            False,
        ),
        (
            {"type": "event", "event": "purchase", "data": {"sku": "A"}},
            "event",
            {"event": "purchase", "data": {}},
            False,
        ),
        ({"type": "event", "event": "purchase"}, "event", {"event": "refund", "data": {}}, False),
        (
            {"type": "page_visited", "url": "https://shop.test/p/*"},
            "event",
            {"event": "page_visited", "data": {"url": "https://shop.test/p/1"}},
            True,
        ),
        (
            {"type": "page_visited", "url": "https://shop.test/p/*"},
            "event",
            {"event": "page_visited", "data": {"url": "https://shop.test/blog"}},
            False,
        ),
        (
            {"type": "email_clicked", "step": "mail"},
            "event",
            {"event": "email_clicked", "data": {"step": "mail", "link": "x"}},
            True,
        ),
        (
            {"type": "email_clicked", "step": "mail"},
            "event",
            {"event": "email_opened", "data": {"step": "mail"}},
            False,
        ),
        (
            {"type": "email_clicked", "link": "https://a.test"},
            "event",
            {"event": "email_clicked", "data": {"link": "https://b.test"}},
            False,
        ),
        # A click a link scanner likely made fires only a trigger that includes bots.
        (
            {"type": "email_clicked", "step": "mail"},
            "event",
            {"event": "email_clicked", "data": {"step": "mail", "suspected_bot": True}},
            False,
        ),
        (
            {"type": "email_clicked", "step": "mail", "include_bots": True},
            "event",
            {"event": "email_clicked", "data": {"step": "mail", "suspected_bot": True}},
            True,
        ),
        # score_changed fires on crossing the threshold, not on every change past it.
        (
            {"type": "score_changed", "score": "lead", "op": "gte", "value": 50},
            "score_changed",
            {"score": "lead", "from": 40, "to": 55},
            True,
        ),
        (
            {"type": "score_changed", "score": "lead", "op": "gte", "value": 50},
            "score_changed",
            {"score": "lead", "from": 55, "to": 60},
            False,
        ),
        (
            {"type": "score_changed", "score": "lead", "op": "gte", "value": 50},
            "score_changed",
            {"score": "lead", "from": 10, "to": 20},
            False,
        ),
        (
            {"type": "deal_stage_changed", "stage": "Won"},
            "deal_stage_changed",
            {"pipeline": "Sales", "stage": "won"},
            True,
        ),
        (
            {"type": "deal_stage_changed", "pipeline": "Sales", "stage": "Won"},
            "deal_stage_changed",
            {"pipeline": "Support", "stage": "Won"},
            False,
        ),
        (
            {"type": "goal_achieved", "automation": "a", "goal": "g"},
            "goal_achieved",
            {"automation": "a", "goal": "g"},
            True,
        ),
        (
            {"type": "goal_achieved", "automation": "a", "goal": "g"},
            "goal_achieved",
            {"automation": "a", "goal": "h"},
            False,
        ),
        ({"type": "api"}, "event", {"event": "api"}, False),
    ],
)
def test_trigger_matches(
    trigger: dict[str, Any], kind: str, data: dict[str, Any], fires: bool
) -> None:
    assert trigger_matches(trigger, kind, data) is fires


async def _enrolled(stack: Stack, contact_id: int) -> list[str]:
    return [a["automation"] for a in (await stack.record(contact_id))["automations"]]


async def _patch(stack: Stack, contact_id: int, fields: dict[str, Any]) -> None:
    response = await stack.http.patch(f"/api/v1/contacts/{contact_id}", json={"fields": fields})
    assert response.status_code == 200, response.text


async def _tagged_after_settling(stack: Stack, contact_id: int, tag: str) -> bool:
    await stack.settled(contact_id)
    return tag in (await stack.record(contact_id))["tags"]


async def test_field_changed_to_null_fires_when_the_field_is_cleared_only(stack: Stack) -> None:
    tag = stack.unique("cleared")
    automation_id = await stack.automation(
        {
            "triggers": [{"type": "field_changed", "field": "coupon", "to": None}],
            "entry": "multiple",
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": tag}},
        }
    )
    stored = await stack.http.get(f"/api/v1/automations/{automation_id}")
    assert stored.json()["document"]["triggers"][0]["to"] is None
    contact = await stack.contact(fields={"coupon": "WELCOME"})
    await _patch(stack, contact["id"], {"coupon": "SUMMER"})  # changed, not cleared
    assert not await _tagged_after_settling(stack, contact["id"], tag)
    assert await _enrolled(stack, contact["id"]) == []

    await _patch(stack, contact["id"], {"coupon": None})  # cleared

    async def fired() -> None:
        assert tag in (await stack.record(contact["id"]))["tags"]

    await eventually(fired)
    assert await _enrolled(stack, contact["id"]) == [automation_id]


async def test_field_changed_with_to_ignores_other_values(stack: Stack) -> None:
    tag = stack.unique("customer")
    automation_id = await stack.automation(
        {
            "triggers": [{"type": "field_changed", "field": "stage", "to": "customer"}],
            "entry": "multiple",
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": tag}},
        }
    )
    contact = await stack.contact(fields={"stage": "lead"})
    await _patch(stack, contact["id"], {"stage": "trial"})
    assert not await _tagged_after_settling(stack, contact["id"], tag)
    assert await _enrolled(stack, contact["id"]) == []

    await _patch(stack, contact["id"], {"stage": "customer"})

    async def fired() -> None:
        assert tag in (await stack.record(contact["id"]))["tags"]

    await eventually(fired)
    assert await _enrolled(stack, contact["id"]) == [automation_id]


async def test_event_trigger_data_filter_ignores_other_events(stack: Stack) -> None:
    tag = stack.unique("bought-a")
    automation_id = await stack.automation(
        {
            "triggers": [{"type": "event", "event": "purchase", "data": {"sku": "A"}}],
            "entry": "multiple",
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": tag}},
        }
    )
    contact = await stack.contact()

    async def event(data: dict[str, Any]) -> None:
        response = await stack.http.post(
            "/api/v1/events", json={"contact": contact["id"], "event": "purchase", "data": data}
        )
        assert response.status_code == 202, response.text

    await event({"sku": "B"})
    assert not await _tagged_after_settling(stack, contact["id"], tag)
    assert await _enrolled(stack, contact["id"]) == []

    await event({"sku": "A", "qty": 1})

    async def fired() -> None:
        assert tag in (await stack.record(contact["id"]))["tags"]

    await eventually(fired)
    assert await _enrolled(stack, contact["id"]) == [automation_id]
