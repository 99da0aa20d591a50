"""Sending: email through SMTP (the dev mailbox by default), with tracking, and notifications.

`send_email` behaves like an ESP's: multipart text + HTML, every personalization tag, a stable
`Message-ID` per step visit, an open pixel, every link through the click redirect, an unsubscribe
link and RFC 8058 one-click `List-Unsubscribe` headers. `send_notification_email` goes to
internal addresses through the same SMTP path, without tracking.
"""

from __future__ import annotations

import email.policy
import html as html_lib
import re
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from typing import Any

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities.deps import Deps
from activities.http import give_up, retry_later
from store import contacts as contact_store
from store import crm as crm_store
from store.models import Contact, Subscription
from worker.settings import Settings
from workflows.contracts import StepContext, StepOutcome
from workflows.personalization import contact_values, render
from workflows.tracking import Kind, Token, sign

SMTP_TIMEOUT = 30
# Headers up to RFC 5322's 998 characters on one line: the usual 78 would turn a long
# List-Unsubscribe URL into encoded words, which mail clients do not read as a URL.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)
_LINK = re.compile(r"(?is)<a\b[^>]*?\bhref\s*=\s*([\"'])(.*?)\1[^>]*>(.*?)</a>")
_HREF = re.compile(r"(?is)(<a\b[^>]*?\bhref\s*=\s*)([\"'])(.*?)\2")
_BODY_END = re.compile(r"(?i)</body\s*>")
_LOOKS_LIKE_HTML = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9]*)\b[^>]*>")


def html_to_text(html: str) -> str:
    """A readable plain-text part for clients that do not show HTML; links keep their URL."""
    text = re.sub(r"(?is)<(script|style).*?</\1>", "", html)

    def link(match: re.Match[str]) -> str:
        url, label = html_lib.unescape(match.group(2)).strip(), match.group(3)
        shown = html_lib.unescape(re.sub(r"<[^>]+>", "", label)).strip()
        return f"{label} ({url})" if url and shown != url else label

    text = _LINK.sub(link, text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h[1-6]>|</li>|</tr>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"[ \t]+\n", "\n", html_lib.unescape(text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def message_id(context: StepContext) -> str:
    """Stable per step visit: a retried send carries the same id, so duplicates can be dropped."""
    local = re.sub(r"[^A-Za-z0-9.-]", ".", f"{context.workflow_id}.{context.visit}")
    return f"<{local}@cairn>"


async def skip_reason(session: AsyncSession, contact: Contact) -> str | None:
    """SPEC §2.1 sending rules; None means send."""
    if not contact.email:
        return "no_email"
    if contact.bounced:
        return "bounced"
    statuses = (
        await session.scalars(
            select(Subscription.status).where(Subscription.contact_id == contact.id)
        )
    ).all()
    if statuses and all(s == "unsubscribed" for s in statuses):
        return "unsubscribed"
    return None


async def tag_values(session: AsyncSession, contact: Contact) -> dict[str, str]:
    """Every personalization tag's value for `contact` (SPEC §4), CRM tags included."""
    return contact_values(
        {
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "phone": contact.phone,
            "fields": contact.fields or {},
        },
        today=date.today(),
        extra=await crm_store.personalization_values(session, contact.id),
    )


# --- SMTP, shared by every email Cairn sends -----------------------------------------------


class PermanentRejection(Exception):
    """The server refused the message with a 5xx reply: sending it again cannot work."""

    def __init__(self, code: int, reply: str, *, recipient: bool) -> None:
        super().__init__(f"{code} {reply}")
        self.code, self.reply, self.recipient = code, reply, recipient


async def send_smtp(settings: Settings, message: EmailMessage) -> dict[str, str]:
    """Hand `message` to the configured SMTP server; returns the recipients refused (when some
    others were accepted).

    Raises PermanentRejection on a 5xx reply (`recipient=True` when every recipient was refused),
    and a retryable ApplicationError on anything transient: connection refused or lost, timeouts,
    4xx replies, authentication trouble (an operator fixing the credentials is a retry away).
    """
    sender = parseaddr(str(message["From"]))[1]
    recipients = [address for _, address in getaddresses([str(message["To"])]) if address]
    try:
        refused_replies, _ = await aiosmtplib.send(
            message.as_bytes(policy=WIRE_POLICY),
            sender=sender,
            recipients=recipients,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=settings.smtp_password or None,
            start_tls=settings.smtp_starttls,
            timeout=SMTP_TIMEOUT,
        )
    except aiosmtplib.SMTPRecipientsRefused as err:
        permanent = [r for r in err.recipients if 500 <= r.code < 600]
        if permanent:
            raise PermanentRejection(
                permanent[0].code, permanent[0].message, recipient=True
            ) from err
        raise retry_later(f"recipients refused for now: {err}", kind="SmtpRetry") from err
    except aiosmtplib.SMTPAuthenticationError as err:
        raise retry_later(f"SMTP authentication failed: {err}", kind="SmtpRetry") from err
    except aiosmtplib.SMTPResponseException as err:
        if 500 <= err.code < 600:
            raise PermanentRejection(err.code, err.message, recipient=False) from err
        raise retry_later(
            f"SMTP server answered {err.code} {err.message}", kind="SmtpRetry"
        ) from err
    except (aiosmtplib.SMTPException, OSError) as err:
        where = f"{settings.smtp_host}:{settings.smtp_port}"
        raise retry_later(f"SMTP {where}: {type(err).__name__}: {err}", kind="SmtpRetry") from err
    return {address: f"{reply.code} {reply.message}" for address, reply in refused_replies.items()}


def _one_line(value: str) -> str:
    # Header values carry personalized contact data: a line break there would either add a
    # header (Bcc: ...) or, as the email library refuses it, fail the send on every retry.
    return re.sub(r"[\r\n]+\s*", " ", value)


def new_message(
    settings: Settings, context: StepContext, *, subject: str, to: str, sender: str | None = None
) -> EmailMessage:
    """The headers every email Cairn sends carries."""
    message = EmailMessage()
    message["Subject"] = _one_line(subject)
    message["From"] = _one_line(sender or settings.mail_from)
    message["To"] = _one_line(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(context)
    return message


# --- tracking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackingLinks:
    """The signed links of one email: pixel, click redirects and the unsubscribe page."""

    base_url: str
    secret: str
    contact: int
    automation: str
    step: str

    def _url(self, path: str, kind: Kind, link: str | None = None) -> str:
        token = sign(Token(kind, self.contact, self.automation, self.step, link), self.secret)
        return f"{self.base_url}{path}/{token}"

    @property
    def open_url(self) -> str:
        return self._url("/t/o", "open")

    @property
    def unsubscribe_url(self) -> str:
        return self._url("/unsubscribe", "unsubscribe")

    def click_url(self, target: str) -> str:
        return self._url("/t/c", "click", target)

    def track_clicks(self, html: str) -> str:
        """Every http(s) `href` through the click redirect, except the unsubscribe link itself."""

        def rewrite(match: re.Match[str]) -> str:
            target = html_lib.unescape(match.group(3)).strip()
            if not target.lower().startswith(("http://", "https://")) or target.startswith(
                f"{self.base_url}/unsubscribe/"
            ):
                return match.group(0)
            quote = match.group(2)
            return f"{match.group(1)}{quote}{html_lib.escape(self.click_url(target))}{quote}"

        return _HREF.sub(rewrite, html)

    def add_pixel(self, html: str) -> str:
        pixel = (
            f'<img src="{self.open_url}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px">'
        )
        return _add_before_body_end(html, pixel)


def unsubscribe_footer(url: str) -> str:
    """Added to an HTML body whose author wrote no %UNSUBSCRIBELINK%: every email must carry one."""
    return (
        '<p style="font-size:12px;color:#888888">'
        f'<a href="{html_lib.escape(url)}">Unsubscribe</a></p>'
    )


def build_email(
    settings: Settings, context: StepContext, step: Any, contact: Contact, values: dict[str, str]
) -> EmailMessage:
    """The complete tracked message for one `send_email` step visit."""
    links = TrackingLinks(
        settings.public_url.rstrip("/"),
        settings.secret_key,
        contact.id,
        context.automation_id,
        context.step_id,
    )
    unsubscribe = links.unsubscribe_url
    values = {**values, "UNSUBSCRIBELINK": unsubscribe}
    html = render(step.html, values, html=True)
    if unsubscribe not in html:
        html = _add_before_body_end(html, unsubscribe_footer(unsubscribe))
    text = render(step.text, values, html=False) if step.text else html_to_text(html)
    if unsubscribe not in text:
        text += f"\n\nUnsubscribe: {unsubscribe}"
    html = links.add_pixel(links.track_clicks(html))

    default_name, default_address = parseaddr(settings.mail_from)
    from_name = render(step.from_name, values, html=False) if step.from_name else None
    sender = formataddr(
        (from_name or ("" if step.from_email else default_name), step.from_email or default_address)
    )
    to = formataddr((values.get("FULLNAME", ""), contact.email or ""))
    message = new_message(
        settings, context, subject=render(step.subject, values, html=False), to=to, sender=sender
    )
    if step.reply_to:
        message["Reply-To"] = step.reply_to
    # RFC 2369 and RFC 8058: mail clients show their own unsubscribe button, which POSTs here.
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _add_before_body_end(html: str, fragment: str) -> str:
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + fragment
    return html[: ends[-1].start()] + fragment + html[ends[-1].start() :]


# --- the activities ------------------------------------------------------------------------


class MessagingActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="send_email")
    async def send_email(self, context: StepContext) -> StepOutcome:
        """Send the step's email to the contact, unless a sending rule says not to."""
        step = await self.deps.step(context)
        async with self.deps.db.read() as session:
            contact = await contact_store.get_contact(session, context.contact_id)
            if contact is None:
                return StepOutcome(outcome="skipped", reason="contact_deleted")
            reason = await skip_reason(session, contact)
            if reason:
                return StepOutcome(outcome="skipped", reason=reason)
            values = await tag_values(session, contact)
        message = build_email(self.deps.settings, context, step, contact, values)
        try:
            await send_smtp(self.deps.settings, message)
        except PermanentRejection as err:
            if err.recipient:
                await self._bounced(context, str(err))
            raise give_up(f"rejected by the SMTP server: {err}", kind="SmtpRejected") from err
        return StepOutcome(outcome="done", detail={"message_id": message["Message-ID"]})

    async def _bounced(self, context: StepContext, reply: str) -> None:
        async with self.deps.db.write() as session:
            contact = await contact_store.get_contact(session, context.contact_id)
            if contact is not None and not contact.bounced:
                data = {"automation": context.automation_id, "step": context.step_id}
                await contact_store.mark_bounced(
                    session, contact, {**data, "reply": reply}, origin=context.workflow_id
                )
        self.deps.kick()

    @activity.defn(name="send_notification_email")
    async def send_notification_email(self, context: StepContext) -> StepOutcome:
        """An internal email about the contact to the step's `to` addresses (no tracking)."""
        step = await self.deps.step(context)
        async with self.deps.db.read() as session:
            contact = await contact_store.get_contact(session, context.contact_id)
            if contact is None:
                return StepOutcome(outcome="skipped", reason="contact_deleted")
            values = await tag_values(session, contact)
        message = new_message(
            self.deps.settings,
            context,
            subject=render(step.subject, values, html=False),
            to=", ".join(step.to),
        )
        if _LOOKS_LIKE_HTML.search(step.body):
            html = render(step.body, values, html=True)
            message.set_content(html_to_text(html))
            message.add_alternative(html, subtype="html")
        else:
            message.set_content(render(step.body, values, html=False))
        try:
            refused = await send_smtp(self.deps.settings, message)
        except PermanentRejection as err:
            raise give_up(f"rejected by the SMTP server: {err}", kind="SmtpRejected") from err
        detail: dict[str, Any] = {"message_id": message["Message-ID"]}
        if refused:
            detail["refused"] = refused
        return StepOutcome(outcome="done", detail=detail)
