"""send_email as an ESP sends it, and send_notification_email: what a real SMTP server received."""

from __future__ import annotations

import asyncio
import html as html_lib
import re
from datetime import date
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import select

from store.models import Contact, Event
from tests.conftest import Stack, eventually, free_port
from tests.fakes import configured, outcomes, run_steps
from tests.test_engine import finished
from worker.mailbox import serve_mailbox

TOKEN = r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"


def parts(message: Message) -> dict[str, str]:
    """Content type → decoded text of each leaf part."""
    return {
        part.get_content_type(): part.get_payload(decode=True).decode(  # type: ignore[union-attr]
            part.get_content_charset() or "utf-8"
        )
        for part in message.walk()
        if not part.is_multipart()
    }


def header(message: Message, name: str) -> str:
    """A header as a reader sees it: unfolded, encoded words decoded."""
    raw = str(message[name]).replace("\r\n", "").replace("\n", "")
    return str(make_header(decode_header(raw)))


def tracking_links(html: str) -> dict[str, list[str]]:
    """The tracking URLs in an HTML body, by kind."""
    return {
        kind: re.findall(rf"http://localhost:8000{path}/{TOKEN}", html)
        for kind, path in (("open", "/t/o"), ("click", "/t/c"), ("unsubscribe", "/unsubscribe"))
    }


async def test_mime_structure_headers_and_tracking(stack: Stack) -> None:
    run, contact = await run_steps(
        stack,
        {
            "mail": {
                "type": "send_email",
                "subject": "Hello %FIRSTNAME%",
                "html": '<html><body><p>Hi %FIRSTNAME%, <a href="https://shop.test/a?x=1&amp;y=2">'
                "shop</a> or <a href='mailto:help@shop.test'>write</a> or "
                '<a href="%UNSUBSCRIBELINK%">leave</a>.</p></body></html>',
                "from_email": "news@shop.test",
                "from_name": "Shop of %FIRSTNAME%",
                "reply_to": "help@shop.test",
            }
        },
        {"first_name": "Zoë", "last_name": "O'Neil"},
    )
    assert outcomes(run) == {"mail": ("done", None)}
    (message,) = stack.mailbox.to(contact["email"])

    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.get_payload()] == ["text/plain", "text/html"]  # type: ignore[union-attr]
    assert header(message, "Subject") == "Hello Zoë"
    assert header(message, "From") == "Shop of Zoë <news@shop.test>"
    assert header(message, "To") == f"Zoë O'Neil <{contact['email']}>"
    assert message["Reply-To"] == "help@shop.test"
    assert message["Message-ID"] == f"<{run['workflow_id'].replace(':', '.')}.1@cairn>"
    assert message["Date"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (unsubscribe,) = re.findall(r"^<(http://[^ >]*)>$", message["List-Unsubscribe"])

    body = parts(message)
    html, text = body["text/html"], body["text/plain"]
    links = tracking_links(html)
    assert len(links["open"]) == 1 and html.index(links["open"][0]) < html.index("</body>")
    assert (
        len(links["click"]) == 1
    )  # the shop link; mailto and the unsubscribe link stay as they are
    assert links["unsubscribe"] == [unsubscribe]
    assert "mailto:help@shop.test" in html
    assert "https://shop.test" not in html  # only inside the signed click token
    assert "Hi Zoë" in html and "Hi Zoë, shop (https://shop.test/a?x=1&y=2)" in text
    assert f"leave ({unsubscribe})" in text
    # The click redirect goes where the author's link went, & decoded.
    answer = await stack.http.get(links["click"][0].removeprefix("http://localhost:8000"))
    assert (answer.status_code, answer.headers["location"]) == (302, "https://shop.test/a?x=1&y=2")


async def test_every_personalization_tag(stack: Stack) -> None:
    pipeline = stack.unique("Sales")
    response = await stack.http.post(
        "/api/v1/pipelines", json={"name": pipeline, "stages": ["Lead", "Won"]}
    )
    assert response.status_code == 201, response.text
    tags = (
        "FIRSTNAME LASTNAME FULLNAME EMAIL PHONE TODAY FAVORITE_COLOR DEAL_TITLE DEAL_VALUE "
        "ACCOUNT_NAME NOPE"
    ).split()
    template = " | ".join(f"{tag}=%{tag}%" for tag in tags)
    run, contact = await run_steps(
        stack,
        {
            "account": {"type": "add_to_account", "account": "Acme & Sons", "next": "deal"},
            "deal": {
                "type": "add_deal",
                "title": "Big <one>",
                "value": 125000,  # minor units
                "currency": "USD",
                "pipeline": pipeline,
                "stage": "Lead",
                "next": "mail",
            },
            "mail": {
                "type": "send_email",
                "subject": template,
                "html": f"<p>{template}</p>",
                "text": template,
            },
        },
        {
            "first_name": "Ada",
            "last_name": "<Lovelace>",
            "phone": "+44 20 7946 0000",
            "fields": {"favorite color": "blue & green"},
        },
    )
    assert outcomes(run)["mail"] == ("done", None)
    (message,) = stack.mailbox.to(contact["email"])
    values = {
        "FIRSTNAME": "Ada",
        "LASTNAME": "<Lovelace>",
        "FULLNAME": "Ada <Lovelace>",
        "EMAIL": contact["email"],
        "PHONE": "+44 20 7946 0000",
        "TODAY": date.today().isoformat(),
        "FAVORITE_COLOR": "blue & green",
        "DEAL_TITLE": "Big <one>",
        "DEAL_VALUE": "$1,250.00",
        "ACCOUNT_NAME": "Acme & Sons",
        "NOPE": "",
    }
    expected = " | ".join(f"{tag}={values[tag]}" for tag in tags)
    assert header(message, "Subject") == expected
    body = parts(message)
    assert body["text/plain"].startswith(expected)
    escaped = " | ".join(f"{tag}={html_lib.escape(values[tag])}" for tag in tags)
    assert f"<p>{escaped}</p>" in body["text/html"]


async def test_smtp_down_then_back_delivers_once_and_the_flow_goes_on(stack: Stack) -> None:
    port = free_port()  # nothing listens here yet: every attempt is refused
    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    automation_id = await stack.automation(
        {
            "start": "mail",
            "steps": {
                "mail": {
                    "type": "send_email",
                    "subject": "Late",
                    "html": "<p>x</p>",
                    "next": "tag",
                },
                "tag": {"type": "add_tag", "tag": "mailed"},
            },
        }
    )
    contact = await stack.contact()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    with configured(stack.settings, smtp_port=port), stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)

        async def retrying() -> None:
            description = await handle.describe()
            pending = description.raw_description.pending_activities
            assert pending and pending[0].attempt >= 2, pending

        await eventually(retrying, within=30)
        controller.start()
        try:
            run = await finished(stack, handle.id)
        finally:
            controller.stop()
    assert outcomes(run) == {"mail": ("done", None), "tag": ("done", None)}
    assert len(received) == 1 and received[0].rcpt_tos == [contact["email"]]


class Refusing:
    """An SMTP server that refuses one recipient for good (550) and accepts the others."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.received: list[Any] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == self.refused:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 OK"


async def test_permanent_rejection_fails_the_step_and_marks_the_contact_bounced(
    stack: Stack,
) -> None:
    contact = await stack.contact()
    handler = Refusing(contact["email"])
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        automation_id = await stack.automation(
            {
                "start": "mail",
                "steps": {
                    "mail": {"type": "send_email", "subject": "a", "html": "a", "next": "again"},
                    "again": {"type": "send_email", "subject": "b", "html": "b"},
                },
            }
        )
        with configured(stack.settings, smtp_port=port):
            handle = await stack.enroll(contact["id"], automation_id)
            run = await finished(stack, handle.id)
    finally:
        controller.stop()
    first, second = run["steps"]
    assert first["outcome"] == "failed" and "550 5.1.1 no such user" in first["reason"], first
    assert (second["outcome"], second["reason"]) == ("skipped", "bounced")
    assert handler.received == []

    async def bounced_event() -> None:
        async with stack.db.read() as session:
            assert (await session.get(Contact, contact["id"])).bounced  # type: ignore[union-attr]
            names = (
                await session.scalars(select(Event.name).where(Event.contact_id == contact["id"]))
            ).all()
            assert "email_bounced" in names

    await eventually(bounced_event)


async def test_notification_email_goes_to_internal_addresses_personalized(stack: Stack) -> None:
    run, contact = await run_steps(
        stack,
        {
            "notify": {
                "type": "send_notification_email",
                "to": ["sales@shop.test", "boss@shop.test"],
                "subject": "New lead: %FULLNAME%",
                "body": "<p>%FIRSTNAME% (%EMAIL%) wants a demo</p>",
            },
            "plain": {
                "type": "send_notification_email",
                "to": ["sales@shop.test"],
                "subject": "Plain %FIRSTNAME%",
                "body": "%FIRSTNAME% <%EMAIL%>",
            },
        },
        {"first_name": "<b>Eve</b>", "last_name": "Doe"},
    )
    assert outcomes(run)["notify"] == ("done", None)
    (message,) = [m for m in stack.mailbox.to("boss@shop.test") if contact["email"] in str(m)]
    assert message["To"] == "sales@shop.test, boss@shop.test"
    assert header(message, "Subject") == "New lead: <b>Eve</b> Doe"
    assert message["List-Unsubscribe"] is None  # internal: no tracking, no unsubscribe
    body = parts(message)
    assert f"<p>&lt;b&gt;Eve&lt;/b&gt; ({contact['email']}) wants a demo</p>" in body["text/html"]
    assert "/t/o/" not in body["text/html"]
    assert body["text/plain"].strip() == f"<b>Eve</b> ({contact['email']}) wants a demo"


async def test_dev_outbox_lists_messages_with_a_link_to_their_body(stack: Stack) -> None:
    port = free_port()
    server = asyncio.create_task(serve_mailbox(stack.settings, port=port))
    try:
        await asyncio.sleep(0.2)
        with configured(stack.settings, smtp_port=port):
            run, contact = await run_steps(
                stack,
                {"mail": {"type": "send_email", "subject": "Dev", "html": "<p>In the box</p>"}},
            )
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
    assert outcomes(run) == {"mail": ("done", None)}
    listed = (await stack.http.get("/api/v1/dev/outbox")).json()
    (entry,) = [m for m in listed if contact["email"] in m["to"]]
    assert entry["subject"] == "Dev" and entry["body"] == f"/api/v1/dev/outbox/{entry['id']}"
    body = await stack.http.get(entry["body"])
    assert body.status_code == 200 and body.headers["content-type"].startswith("text/html")
    assert "<p>In the box</p>" in body.text
    assert (await stack.http.get("/api/v1/dev/outbox/nope")).status_code == 404
