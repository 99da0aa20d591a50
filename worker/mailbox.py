"""The development mailbox: an SMTP server that keeps every message it receives in a Maildir under
`<data_dir>/mailbox`, so the embedded stack can send email without a real relay (SPEC §6)."""

from __future__ import annotations

import asyncio
import logging
import mailbox
import os
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from worker.settings import Settings

log = logging.getLogger("cairn.mailbox")


def mailbox_path(settings: Settings) -> Path:
    """Where the development mailbox keeps its messages."""
    return Path(settings.data_dir) / "mailbox"


class MaildirHandler:
    """aiosmtpd handler that delivers every message to one Maildir."""

    def __init__(self, maildir: mailbox.Maildir) -> None:
        self._maildir = maildir

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        # The envelope is what the sender really asked for (Bcc recipients appear nowhere else);
        # keep it the way MTAs do, in front of the message.
        recipients = ", ".join(envelope.rcpt_tos)
        trace = f"Return-Path: <{envelope.mail_from}>\nX-Original-To: {recipients}\n".encode()
        raw = trace + content.replace(b"\r\n", b"\n")
        await asyncio.to_thread(self._maildir.add, raw)
        headers = BytesParser(policy=default_policy).parsebytes(content, headersonly=True)
        log.info(
            "mail from=%s to=%s subject=%r",
            envelope.mail_from,
            recipients,
            str(headers.get("Subject", "")),
        )
        return "250 Message accepted for delivery"


def _accept_any_login(*_args: Any) -> AuthResult:
    # A development mailbox: whatever CAIRN_SMTP_USERNAME/PASSWORD say, sending must just work.
    return AuthResult(success=True)


async def serve_mailbox(
    settings: Settings, *, host: str = "127.0.0.1", port: int | None = None
) -> None:
    """Serve the development mailbox on `host:port` (default `smtp_port`) until cancelled."""
    # aiosmtpd logs every SMTP command at INFO; one line per message (ours) is what people read.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    path = mailbox_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = MaildirHandler(mailbox.Maildir(path, create=True))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="cairn-mailbox",
            ident="Cairn development mailbox",
            authenticator=_accept_any_login,
            auth_require_tls=False,
        ),
        host=host,
        port=port if port is not None else settings.smtp_port,
    )
    bound = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets)
    log.info("development mailbox listening on %s, delivering to %s", bound, path)
    async with server:
        await server.serve_forever()


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
