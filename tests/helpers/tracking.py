"""Reading tracking links out of sent mail and the events they record."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from store.models import Event
from tests.helpers.mail import parts, tracking_links
from tests.helpers.stack import Stack

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
