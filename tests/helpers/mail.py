"""Taking apart the messages the test SMTP server received."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import Message

TOKEN = r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"  # a signed tracking token


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
