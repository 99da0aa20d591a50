"""A contact's timeline (docs/api.md#a-contacts-timeline): its events, the emails it was sent with
their opens and clicks, and its runs with their step trails, newest first, paged by key."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.helpers.mail import parts, tracking_links
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually
from tests.helpers.tracking import NO_TOKEN, PUBLIC

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"
FLOW: dict[str, Any] = {
    "entry": "multiple",
    "start": "hello",
    "steps": {
        "hello": {
            "type": "send_email",
            "subject": "Hello %FIRSTNAME%",
            "html": '<p><a href="https://shop.test/a">A</a> <a href="https://shop.test/b">B</a></p>',
            "next": "news",
        },
        "news": {"type": "send_email", "subject": "News", "html": "<p>News</p>", "next": "pause"},
        "pause": {"type": "wait", "for": {"days": 3}, "next": "done"},
        "done": {"type": "add_tag", "tag": "timeline-done"},
    },
}


async def _timeline(stack: Stack, contact_id: int, **params: Any) -> dict[str, Any]:
    answer = await stack.http.get(f"/api/v1/contacts/{contact_id}/timeline", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _every_page(stack: Stack, contact_id: int, limit: int) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = await _timeline(
            stack, contact_id, limit=limit, **({"cursor": cursor} if cursor else {})
        )
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next"]
        if cursor is None:
            return items


async def test_a_timeline_merges_events_emails_and_runs(any_stack: Stack) -> None:
    stack = any_stack
    automation_id = await stack.automation(FLOW)
    contact = await stack.contact(first_name="Ada")
    cid, email = contact["id"], contact["email"]
    # Event names of this test's own: no other test's automation has a trigger on them.
    signed_up, purchase = stack.unique("signed-up"), stack.unique("purchase")
    old = {"contact": cid, "event": signed_up, "occurred_at": "2020-01-02T03:04:05Z"}
    assert (await stack.http.post("/api/v1/events", json=old)).status_code == 202
    first = await finished(stack, (await stack.enroll(cid, automation_id)).id)

    async def mailed() -> None:
        assert len(stack.mailbox.to(email)) == 2

    await eventually(mailed)
    hello = next(m for m in stack.mailbox.to(email) if m["Subject"] == "Hello Ada")
    links = tracking_links(parts(hello)["text/html"])
    opened = await stack.http.get(links["open"][0].removeprefix(PUBLIC), headers=NO_TOKEN)
    assert opened.status_code == 200
    for link, agent in zip(links["click"], (BROWSER, "curl/8.5.0"), strict=True):
        clicked = await stack.http.get(
            link.removeprefix(PUBLIC), headers={**NO_TOKEN, "User-Agent": agent}
        )
        assert clicked.status_code == 302
    bought = {"contact": cid, "event": purchase, "data": {"plan": "pro"}}
    assert (await stack.http.post("/api/v1/events", json=bought)).status_code == 202
    second = await stack.enroll(cid, automation_id)  # entry "multiple": a second run
    await finished(stack, second.id)

    page = await _timeline(stack, cid)
    items = page["items"]
    assert page["next"] is None and page["limit"] == 50
    ats = [item["at"] for item in items]
    assert ats == sorted(ats, reverse=True)
    assert [i["kind"] for i in items].count("run") == 2
    assert [i["kind"] for i in items].count("email") == 4  # two per run
    # The tracking events are inside their emails, not beside them.
    assert [(i["name"], i["data"]) for i in items if i["kind"] == "event"] == [
        (purchase, {"plan": "pro"}),
        (signed_up, {}),
    ]
    assert items[-1]["at"] == "2020-01-02T03:04:05Z"

    runs = [i for i in items if i["kind"] == "run"]
    assert [r["workflow_id"] for r in runs] == [second.id, first["workflow_id"]]
    run = runs[1]
    assert run["automation"] == automation_id and run["status"] == "completed"
    assert run["version"] == 1 and run["ended_at"] is not None and run["goals"] == []
    assert [(s["step"], s["type"], s["outcome"]) for s in run["steps"]] == [
        ("hello", "send_email", "done"),
        ("news", "send_email", "done"),
        ("pause", "wait", "done"),
        ("done", "add_tag", "done"),
    ]
    assert run["temporal_ui_url"] == (
        f"{stack.settings.temporal_ui_url}/namespaces/default/workflows/"
        f"{quote(run['workflow_id'], safe='')}"
    )

    emails = [i for i in items if i["kind"] == "email"]
    assert [(e["step"], e["subject"]) for e in emails] == [
        ("news", "News"),
        ("hello", "Hello %FIRSTNAME%"),
        ("news", "News"),
        ("hello", "Hello %FIRSTNAME%"),
    ]
    first_hello = emails[3]
    assert first_hello["automation"] == automation_id
    assert first_hello["message_id"] == hello["Message-ID"]
    assert len(first_hello["opens"]) == 1
    assert [(c["url"], c["suspected_bot"]) for c in first_hello["clicks"]] == [
        ("https://shop.test/a", False),
        ("https://shop.test/b", True),  # curl: a link scanner's look
    ]
    # The other emails were neither opened nor clicked: the first one's opens stay its own.
    assert all(e["opens"] == [] and e["clicks"] == [] for e in emails[:3])

    # Page by page, two at a time: the same items, in the same order, once each.
    assert await _every_page(stack, cid, limit=2) == items
    assert await _every_page(stack, cid, limit=5) == items


async def test_entries_at_the_same_instant_page_without_gaps(any_stack: Stack) -> None:
    stack = any_stack
    contact = await stack.contact()
    at = "2026-03-01T12:00:00.123456Z"
    for n in range(7):
        event = {"contact": contact["id"], "event": f"tick{n}", "occurred_at": at}
        assert (await stack.http.post("/api/v1/events", json=event)).status_code == 202
    items = await _every_page(stack, contact["id"], limit=3)
    assert [i["name"] for i in items] == [f"tick{n}" for n in reversed(range(7))]
    assert {i["at"] for i in items} == {at}


async def test_unknown_contacts_and_bad_cursors(stack: Stack) -> None:
    answer = await stack.http.get("/api/v1/contacts/987654321/timeline")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "contact 987654321 not found"}
    contact = await stack.contact()
    for cursor in ("garbage", "WzEwMDBd", "WyJub3QgYSB0aW1lIiwwLDFd"):  # [1000], ["not a time",0,1]
        answer = await stack.http.get(
            f"/api/v1/contacts/{contact['id']}/timeline", params={"cursor": cursor}
        )
        assert answer.status_code == 422, (cursor, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["query", "cursor"]
    empty = await _timeline(stack, contact["id"])
    assert empty == {"items": [], "limit": 50, "next": None}
