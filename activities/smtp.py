"""SMTP, shared by every email Cairn sends: one message handed to the configured relay, its
refusals sorted into permanent (the contact's address) and retryable (everything else)."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import aiosmtplib

from activities.http import give_up, retry_later
from core.settings import Settings

SMTP_TIMEOUT = 30
IMPLICIT_TLS_PORT = 465  # SMTPS (RFC 8314): TLS from the first byte, no STARTTLS
# Headers up to RFC 5322's 998 characters on one line: the usual 78 would turn a long
# List-Unsubscribe URL into encoded words, which mail clients do not read as a URL.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


class PermanentRejection(Exception):
    """The server refused the recipient or this message for good: sending it again cannot work."""

    def __init__(self, code: int, reply: str, *, recipient: bool) -> None:
        super().__init__(f"{code} {reply}")
        self.code, self.reply, self.recipient = code, reply, recipient


def _about_us(code: int, reply: str) -> bool:
    # 530 and enhanced status 5.7.x (authentication required, relay denied, policy): a refusal
    # of this installation's configuration, which its operator fixes; then the mail must flow.
    return code == 530 or reply.lstrip().startswith("5.7.")


async def send_smtp(settings: Settings, message: EmailMessage) -> dict[str, str]:
    """Hand `message` to the configured SMTP server; returns the recipients refused (when some
    others were accepted).

    Raises PermanentRejection when every recipient was refused with a 5xx (`recipient=True`), or
    the message itself was (a 5xx after DATA, say too large). Anything else raises a retryable
    ApplicationError: connection trouble, timeouts, 4xx replies, and refusals of this sender or
    server configuration (authentication, relaying, a 5.7.x policy, the MAIL FROM address): the
    operator fixing them is a retry away.
    """
    sender = parseaddr(str(message["From"]))[1]
    recipients = [address for _, address in getaddresses([str(message["To"])]) if address]
    implicit = settings.smtp_tls == "implicit" or (
        settings.smtp_tls == "auto" and settings.smtp_port == IMPLICIT_TLS_PORT
    )
    smtp = aiosmtplib.SMTP(
        hostname=settings.smtp_relay_host,
        port=settings.smtp_port,
        use_tls=implicit,
        # None: upgrade whenever the server offers STARTTLS; True: refuse a server that does not.
        start_tls=None if implicit else (True if settings.smtp_starttls else None),
        cert_bundle=settings.smtp_ca_file or None,
        timeout=SMTP_TIMEOUT,
    )
    try:
        async with smtp:
            if settings.smtp_username:
                if smtp.get_transport_info("sslcontext") is None:
                    # Credentials are never sent in clear. A configuration error, not the
                    # relay's: retrying would only repeat it, so the step fails at once.
                    raise give_up(
                        f"SMTP {settings.smtp_relay_host}:{settings.smtp_port} offers no TLS: "
                        "refusing to send CAIRN_SMTP_USERNAME/PASSWORD in clear (use a relay "
                        "with STARTTLS, or implicit TLS with CAIRN_SMTP_TLS=implicit)",
                        kind="SmtpInsecure",
                    )
                await smtp.login(settings.smtp_username, settings.smtp_password)
            refused_replies, _ = await smtp.sendmail(
                sender, recipients, message.as_bytes(policy=WIRE_POLICY)
            )
    except aiosmtplib.SMTPRecipientsRefused as err:
        permanent = [
            r for r in err.recipients if 500 <= r.code < 600 and not _about_us(r.code, r.message)
        ]
        if len(permanent) == len(err.recipients) and permanent:
            raise PermanentRejection(
                permanent[0].code, permanent[0].message, recipient=True
            ) from err
        raise retry_later(f"recipients refused for now: {err}", kind="SmtpRetry") from err
    except aiosmtplib.SMTPDataError as err:
        if 500 <= err.code < 600 and not _about_us(err.code, err.message):
            raise PermanentRejection(err.code, err.message, recipient=False) from err
        raise retry_later(
            f"SMTP server answered {err.code} {err.message} to the message", kind="SmtpRetry"
        ) from err
    except aiosmtplib.SMTPResponseException as err:
        # Authentication, MAIL FROM, HELO…: about this installation, never about the contact.
        raise retry_later(
            f"SMTP server answered {err.code} {err.message} ({type(err).__name__})",
            kind="SmtpRetry",
        ) from err
    except (aiosmtplib.SMTPException, OSError) as err:
        where = f"{settings.smtp_relay_host}:{settings.smtp_port}"
        raise retry_later(f"SMTP {where}: {type(err).__name__}: {err}", kind="SmtpRetry") from err
    return {address: f"{reply.code} {reply.message}" for address, reply in refused_replies.items()}
