"""Opens, clicks and unsubscribes through the public tracking routes, as a mail reader makes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from store.models import Event
from tests.conftest import Stack, eventually
from tests.fakes import outcomes, run_steps
from tests.test_email import parts, tracking_links
from tests.test_engine import finished
from workflows.tracking import Token, sign

PUBLIC = "http://localhost:8000"
NO_TOKEN = {"Api-Token": "not-the-token"}  # the tracking routes ignore it either way


def links_for(stack: Stack, email: str, nth: int = 0) -> dict[str, str]:
    """The tracking paths of the nth email `email` received: open, first click, unsubscribe."""
    html = parts(stack.mailbox.to(email)[nth])["text/html"]
    found = tracking_links(html)
    return {kind: urls[0].removeprefix(PUBLIC) for kind, urls in found.items() if urls}


async def events_of(stack: Stack, contact_id: int, name: str) -> list[dict[str, Any]]:
    async with stack.db.read() as session:
        rows = await session.scalars(
            select(Event).where(Event.contact_id == contact_id, Event.name == name)
        )
        return [e.data for e in rows]


MAIL = {
    "type": "send_email",
    "subject": "News",
    "html": '<p><a href="https://shop.test/sale">Sale</a></p>',
}


async def test_a_click_releases_a_waiting_contact_and_fires_triggers(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "mail",
            "steps": {
                "mail": {**MAIL, "next": "wait"},
                "wait": {
                    "type": "wait",
                    "condition": {"email": "clicked", "step": "mail"},
                    "timeout": {"days": 3},
                    "next": "hot",
                },
                "hot": {"type": "add_tag", "tag": "clicked"},
            },
        }
    )
    await stack.automation(
        {
            "triggers": [
                {
                    "type": "email_clicked",
                    "automation": automation_id,
                    "step": "mail",
                    "link": "https://shop.test/sale",
                }
            ],
            "start": "fan",
            "steps": {"fan": {"type": "add_tag", "tag": "fan"}},
        }
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)

        async def mailed() -> None:
            assert stack.mailbox.to(contact["email"])

        await eventually(mailed)
        click = links_for(stack, contact["email"])["click"]
        answer = await stack.http.get(click, headers=NO_TOKEN)
        assert (answer.status_code, answer.headers["location"]) == (302, "https://shop.test/sale")
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("cairn_contact=") and "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
        run = await finished(stack, handle.id)  # the 3-day timeout cannot have passed
    assert outcomes(run) == {
        "mail": ("done", None),
        "wait": ("done", "condition_met"),
        "hot": ("done", None),
    }
    assert await events_of(stack, contact["id"], "email_clicked") == [
        {"automation": automation_id, "step": "mail", "link": "https://shop.test/sale"}
    ]

    async def triggered() -> None:
        assert "fan" in (await stack.record(contact["id"]))["tags"]

    await eventually(triggered)


async def test_open_pixel_records_the_open(stack: Stack) -> None:
    run, contact = await run_steps(stack, {"mail": MAIL})
    pixel = links_for(stack, contact["email"])["open"]
    answer = await stack.http.get(pixel, headers=NO_TOKEN)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    assert answer.content.startswith(b"GIF89a") and "no-store" in answer.headers["cache-control"]
    assert await events_of(stack, contact["id"], "email_opened") == [
        {"automation": run["automation"], "step": "mail"}
    ]


async def test_forged_altered_or_misused_tokens_are_404(stack: Stack) -> None:
    run, contact = await run_steps(stack, {"mail": MAIL})
    links = links_for(stack, contact["email"])
    payload, signature = links["click"].rsplit("/", 1)[1].split(".")
    forged_target = sign(
        Token("click", contact["id"], run["automation"], "mail", "https://evil.test"), "guess"
    )
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    attempts = [
        f"/t/c/{payload}.{flipped}",  # altered signature
        f"/t/c/{payload[:-2]}xx.{signature}",  # altered payload
        f"/t/c/{forged_target}",  # signed with another key
        f"/t/c/{links['open'].rsplit('/', 1)[1]}",  # an open token used as a click
        f"/t/o/{links['click'].rsplit('/', 1)[1]}",  # and the other way round
        f"/unsubscribe/{links['open'].rsplit('/', 1)[1]}",
        "/t/o/garbage",
        "/t/c/" + "A" * 5000 + ".B",
        "/unsubscribe/%00.%ff",
    ]
    for path in attempts:
        assert (await stack.http.get(path, headers=NO_TOKEN)).status_code == 404, path
    assert (await stack.http.post(attempts[0].replace("/t/c/", "/unsubscribe/"))).status_code == 404
    assert await events_of(stack, contact["id"], "email_clicked") == []


async def test_the_redirect_target_comes_only_from_the_token(stack: Stack) -> None:
    _, contact = await run_steps(stack, {"mail": MAIL})
    click = links_for(stack, contact["email"])["click"]
    answer = await stack.http.get(f"{click}?url=https://evil.test&next=https://evil.test")
    assert answer.headers["location"] == "https://shop.test/sale"


async def test_unsubscribe_link_unsubscribes_and_later_emails_are_skipped(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "first",
            "steps": {
                "first": {**MAIL, "next": "wait"},
                "wait": {
                    "type": "wait",
                    "condition": {"list": "news", "status": "unsubscribed"},
                    "timeout": {"days": 3},
                    "next": "second",
                },
                "second": {**MAIL, "subject": "More news"},
            },
        }
    )
    contact = await stack.contact()
    for name in ("news", "offers"):
        response = await stack.http.post(
            f"/api/v1/contacts/{contact['id']}/lists", json={"list": name, "status": "active"}
        )
        assert response.status_code in (200, 201), response.text
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)

        async def mailed() -> None:
            assert stack.mailbox.to(contact["email"])

        await eventually(mailed)
        unsubscribe = links_for(stack, contact["email"])["unsubscribe"]
        page = await stack.http.get(unsubscribe, headers=NO_TOKEN)
        assert page.status_code == 200 and '<form method="post"' in page.text
        assert (await stack.record(contact["id"]))["lists"][0]["status"] == "active"  # GET: no
        done = await stack.http.post(unsubscribe, headers=NO_TOKEN)
        assert done.status_code == 200 and "Unsubscribed" in done.text
        run = await finished(stack, handle.id)
    assert outcomes(run)["second"] == ("skipped", "unsubscribed")
    assert len(stack.mailbox.to(contact["email"])) == 1
    lists = (await stack.record(contact["id"]))["lists"]
    assert sorted((entry["list"], entry["status"]) for entry in lists) == [
        ("news", "unsubscribed"),
        ("offers", "unsubscribed"),
    ]


async def test_one_click_unsubscribe_post(stack: Stack) -> None:
    _, contact = await run_steps(stack, {"mail": MAIL})  # on no list at all: it still receives
    message = stack.mailbox.to(contact["email"])[0]
    url = message["List-Unsubscribe"].strip("<>").removeprefix(PUBLIC)
    answer = await stack.http.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded", **NO_TOKEN},
    )
    assert answer.status_code == 200
    record = await stack.record(contact["id"])
    assert record["lists"] == [{"list": "all", "status": "unsubscribed"}]
    automation_id = await stack.automation({"start": "mail", "steps": {"mail": MAIL}})
    handle = await stack.enroll(contact["id"], automation_id)
    run = await finished(stack, handle.id)
    assert outcomes(run) == {"mail": ("skipped", "unsubscribed")}
