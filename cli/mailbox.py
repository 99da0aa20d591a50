"""The development mailbox: an SMTP server that keeps every message it receives in a Maildir under
`<data_dir>/mailbox`, so the embedded stack can send email without a real relay (docs/integrations.md#the-development-mailbox)."""

from __future__ import annotations

import asyncio
import logging
import mailbox
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from core.settings import Settings
from store.mailbox import mailbox_path

log = logging.getLogger("cairn.mailbox")


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
