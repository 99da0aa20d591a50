"""List membership as ActiveCampaign has it: only real memberships change, only real changes
fire triggers, and leaving a list one never joined changes nothing."""

from __future__ import annotations

from tests.helpers.providers import outcomes, run_steps
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually


async def _listener(stack: Stack, tag: str) -> str:
    """An automation that tags whoever unsubscribes from any list."""
    return await stack.automation(
        {
            "triggers": [{"type": "list_unsubscribed"}],
            "entry": "multiple",
            "start": "t",
            "steps": {"t": {"type": "add_tag", "tag": tag}},
        }
    )


async def test_unsubscribing_from_a_list_never_joined_changes_nothing(stack: Stack) -> None:
    heard = stack.unique("heard")
    await _listener(stack, heard)
    run, contact = await run_steps(
        stack,
        {
            "leave": {"type": "unsubscribe", "list": "news", "next": "mail"},
            "mail": {"type": "send_email", "subject": "Still here", "html": "<p>Hi</p>"},
        },
    )
    assert outcomes(run) == {
        "leave": ("skipped", "not_subscribed"),
        # On no list at all, the contact still receives email.
        "mail": ("done", None),
    }
    assert len(stack.mailbox.to(contact["email"])) == 1
    await stack.settled(contact["id"])
    record = await stack.record(contact["id"])
    assert record["lists"] == []
    assert heard not in record["tags"]

    # Through the API too: nothing to leave, nothing changed.
    response = await stack.http.post(
        f"/api/v1/contacts/{contact['id']}/lists", json={"list": "deals", "status": "unsubscribed"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is False
    await stack.settled(contact["id"])
    record = await stack.record(contact["id"])
    assert record["lists"] == []
    assert heard not in record["tags"]


async def test_unsubscribing_a_member_changes_the_list_and_fires(stack: Stack) -> None:
    heard = stack.unique("heard")
    await _listener(stack, heard)
    contact = await stack.contact()
    joined = await stack.http.post(
        f"/api/v1/contacts/{contact['id']}/lists", json={"list": "news", "status": "active"}
    )
    assert joined.json()["changed"] is True
    leaver = await stack.automation(
        {"start": "leave", "steps": {"leave": {"type": "unsubscribe", "list": "news"}}}
    )
    run = await finished(stack, (await stack.enroll(contact["id"], leaver)).id)
    assert outcomes(run) == {"leave": ("done", None)}

    async def fired() -> None:
        record = await stack.record(contact["id"])
        assert record["lists"] == [{"list": "news", "status": "unsubscribed"}]
        assert heard in record["tags"]

    await eventually(fired)
