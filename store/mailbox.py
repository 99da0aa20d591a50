"""Reading the development mailbox: the Maildir under `<data_dir>/mailbox` that `cairn mailbox`
delivers to, listed and opened for the API's `/dev` pages."""

from __future__ import annotations

import mailbox
import os
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path

from core.settings import Settings


def mailbox_path(settings: Settings) -> Path:
    """Where the development mailbox keeps its messages."""
    return Path(settings.data_dir) / "mailbox"


def list_messages(settings: Settings, limit: int = 100) -> list[dict[str, str]]:
    """The newest `limit` messages of the development mailbox, newest first."""
    path = mailbox_path(settings)
    if not path.is_dir():
        return []
    # Sort on the files' delivery times without parsing every message: the mailbox may hold many.
    delivered: list[tuple[int, str]] = []
    for sub in ("new", "cur"):
        with os.scandir(path / sub) as entries:
            for entry in entries:
                if entry.is_file() and not entry.name.startswith("."):
                    key = entry.name.split(":", 1)[0]  # cur/ names carry ":2,<flags>"
                    delivered.append((entry.stat().st_mtime_ns, key))
    delivered.sort(reverse=True)
    box = mailbox.Maildir(path, create=False)
    parser = BytesParser(policy=default_policy)
    messages = []
    for mtime_ns, key in delivered[:limit]:
        try:
            headers = parser.parsebytes(box.get_bytes(key), headersonly=True)
        except KeyError:  # deleted between the scan and the read
            continue
        messages.append(
            {
                "id": key,
                "from": str(headers.get("From", "")),
                "to": str(headers.get("To", "") or headers.get("X-Original-To", "")),
                "subject": str(headers.get("Subject", "")),
                "date": _message_date(headers.get("Date"), mtime_ns),
                "message_id": str(headers.get("Message-ID", "")),
            }
        )
    return messages


def _message_date(header: object, mtime_ns: int) -> str:
    """The Date header as ISO 8601, else the delivery time."""
    if header:
        try:
            return parsedate_to_datetime(str(header)).isoformat()
        except (TypeError, ValueError):
            pass
    return datetime.fromtimestamp(mtime_ns / 1e9, UTC).isoformat()


def message_body(settings: Settings, key: str) -> tuple[str, str] | None:
    """(content type, body) of one message: its HTML part if any, else its text; None if the
    mailbox holds no message `key` (keys come from the mailbox's own index, never a path)."""
    path = mailbox_path(settings)
    if not path.is_dir():
        return None
    try:
        raw = mailbox.Maildir(path, create=False).get_bytes(key)
    except KeyError:
        return None
    message = BytesParser(policy=default_policy).parsebytes(raw)
    part = message.get_body(preferencelist=("html", "plain"))  # type: ignore[attr-defined]
    if part is None:
        return "text/plain", ""
    return part.get_content_type(), str(part.get_content())
