"""Tag and list names are one name whatever their case, as in ActiveCampaign: in storage, the API,
steps, triggers and conditions; the spelling first used is the one shown."""

from __future__ import annotations

from typing import Any

from tests.helpers.providers import outcomes
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually


async def _tag(stack: Stack, contact_id: int, tag: str) -> dict[str, Any]:
    response = await stack.http.post(f"/api/v1/contacts/{contact_id}/tags", json={"tag": tag})
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_tag_is_one_tag_whatever_its_case(stack: Stack) -> None:
    first = stack.unique("VIP")  # e.g. "VIP-1a2b3c4d": the spelling every contact then shows
    ada, bob = await stack.contact(), await stack.contact()
    assert (await _tag(stack, ada["id"], first))["added"] is True
    assert (await _tag(stack, ada["id"], first.lower()))["added"] is False
    assert (await stack.record(ada["id"]))["tags"] == [first]
    await _tag(stack, bob["id"], first.lower())
    assert (await stack.record(bob["id"]))["tags"] == [first]

    removed = await stack.http.delete(f"/api/v1/contacts/{bob['id']}/tags/{first.upper()}")
    assert removed.status_code == 200, removed.text
    assert (await stack.record(bob["id"]))["tags"] == []


async def test_triggers_conditions_and_steps_ignore_the_case_of_tags(stack: Stack) -> None:
    vip = stack.unique("VIP")
    automation_id = await stack.automation(
        {
            "triggers": [{"type": "tag_added", "tag": vip}],
            "start": "check",
            "steps": {
                "check": {
                    "type": "if_else",
                    "condition": {"tag": vip},
                    "yes": "thanks",
                    "no": None,
                },
                "thanks": {"type": "add_tag", "tag": "was-vip", "next": "drop"},
                "drop": {"type": "remove_tag", "tag": vip.upper()},
            },
        }
    )
    contact = await stack.contact()
    await _tag(stack, contact["id"], vip.lower())

    async def ran() -> dict[str, Any]:
        runs = (await stack.record(contact["id"]))["automations"]
        assert [r["automation"] for r in runs] == [automation_id]
        return runs[0]  # type: ignore[no-any-return]

    run = await finished(stack, (await eventually(ran))["workflow_id"])
    assert outcomes(run) == {
        "check": ("done", "yes"),
        "thanks": ("done", None),
        "drop": ("done", None),
    }
    assert [s["step"] for s in run["steps"]] == ["check", "thanks", "drop"]
    assert (await stack.record(contact["id"]))["tags"] == ["was-vip"]


async def test_a_list_is_one_list_whatever_its_case(stack: Stack) -> None:
    news = stack.unique("News")
    contact = await stack.contact()
    joined = await stack.http.post(
        f"/api/v1/contacts/{contact['id']}/lists", json={"list": news, "status": "active"}
    )
    assert joined.json()["changed"] is True
    again = await stack.http.post(
        f"/api/v1/contacts/{contact['id']}/lists", json={"list": news.upper(), "status": "active"}
    )
    assert again.json()["changed"] is False
    automation_id = await stack.automation(
        {
            "start": "member",
            "steps": {
                "member": {
                    "type": "if_else",
                    "condition": {"list": news.lower()},
                    "yes": "leave",
                    "no": None,
                },
                "leave": {"type": "unsubscribe", "list": news.lower()},
            },
        }
    )
    run = await finished(stack, (await stack.enroll(contact["id"], automation_id)).id)
    assert outcomes(run) == {"member": ("done", "yes"), "leave": ("done", None)}
    assert [s["step"] for s in run["steps"]] == ["member", "leave"]
    assert (await stack.record(contact["id"]))["lists"] == [
        {"list": news, "status": "unsubscribed"}
    ]
