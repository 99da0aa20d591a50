"""Sending: email through SMTP (the dev mailbox by default), with tracking, and notifications.

`send_email` behaves like an ESP's: multipart text + HTML, every personalization tag, a stable
`Message-ID` per step visit, an open pixel, every link through the click redirect, an unsubscribe
link and RFC 8058 one-click `List-Unsubscribe` headers. `send_notification_email` goes to
internal addresses through the same SMTP path, without tracking.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activities.deps import Deps
from activities.http import give_up
from activities.smtp import PermanentRejection
from activities.step_activity import step_activity, step_contact
from core.settings import Settings
from store import contacts as contact_store
from store import crm as crm_store
from store import runs as run_store
from store.models import Contact, Subscription
from workflows.contracts import StepContext, StepOutcome
from workflows.personalization import contact_values, render
from workflows.tracking import MAX_TOKEN_LENGTH, Kind, Token, sign

# An `<a …>` start tag (quoted values may hold ">"), then each attribute of it: a real attribute
# tokenizer, so `data-href=` or `title="href=…"` is never taken for the link, and an unquoted
# `href=https://…` is (browsers follow it).
_A_TAG = r"""<a(?=[\s/>])(?:[^>"']|"[^"]*"|'[^']*')*>"""
_A_START = re.compile(rf"(?is){_A_TAG}")
_LINK = re.compile(rf"(?is)({_A_TAG})(.*?)</a\s*>")
_ATTRIBUTE = re.compile(r"""(?s)([^\s/>"'=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_BODY_END = re.compile(r"(?i)</body\s*>")
_LOOKS_LIKE_HTML = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9]*)\b[^>]*>")


def _href_span(tag: str) -> tuple[int, int] | None:
    """Where the `href` value of the `<a …>` start tag `tag` is, quotes included; None: none."""
    for attribute in _ATTRIBUTE.finditer(tag, 2, len(tag) - 1):
        if attribute.group(1).lower() == "href":
            return attribute.span(2) if attribute.group(2) is not None else None
    return None


def _unquoted(value: str) -> str:
    if value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) >= 2:
        value = value[1:-1]
    return html_lib.unescape(value).strip()


def _href(tag: str) -> str | None:
    span = _href_span(tag)
    return None if span is None else _unquoted(tag[span[0] : span[1]])


def html_to_text(html: str) -> str:
    """A readable plain-text part for clients that do not show HTML; links keep their URL."""
    text = re.sub(r"(?is)<(script|style).*?</\1>", "", html)

    def link(match: re.Match[str]) -> str:
        url, label = _href(match.group(1)) or "", match.group(2)
        shown = html_lib.unescape(re.sub(r"<[^>]+>", "", label)).strip()
        return f"{label} ({url})" if url and shown != url else label

    text = _LINK.sub(link, text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h[1-6]>|</li>|</tr>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"[ \t]+\n", "\n", html_lib.unescape(text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def message_id(context: StepContext, public_url: str) -> str:
    """Stable per step visit: a retried send carries the same id, so duplicates can be dropped.

    The workflow id is percent-encoded (`.` too), so `.{visit}` ends it unambiguously and two
    runs never share an id; the domain is CAIRN_PUBLIC_URL's host, which this installation owns.
    """
    workflow = quote(context.workflow_id, safe="").replace(".", "%2E")
    domain = urlsplit(public_url).hostname or "cairn.invalid"
    return f"<{workflow}.{context.visit}@{domain}>"


async def skip_reason(session: AsyncSession, contact: Contact) -> str | None:
    """Why not to send (docs/integrations.md#email): a skip reason; None means send."""
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


async def tag_values(
    session: AsyncSession, contact: Contact, deal_id: int | None = None
) -> dict[str, str]:
    """Every personalization tag's value for `contact` (docs/automations.md#personalization),
    CRM tags included (those of `deal_id`, the run's deal, when it has one)."""
    return contact_values(
        {
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "phone": contact.phone,
            "fields": contact.fields or {},
        },
        today=date.today(),
        extra=await crm_store.personalization_values(session, contact.id, deal_id=deal_id),
    )


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
    message["Message-ID"] = message_id(context, settings.public_url)
    return message


# --- tracking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackingLinks:
    """The signed links of one email: pixel, click redirects and the unsubscribe page."""

    base_url: str
    key: bytes  # the tracking key
    contact: int
    automation: str
    step: str

    def _token(self, kind: Kind, link: str | None = None) -> str:
        return sign(Token(kind, self.contact, self.automation, self.step, link), self.key)

    def _url(self, path: str, kind: Kind) -> str:
        return f"{self.base_url}{path}/{self._token(kind)}"

    @property
    def open_url(self) -> str:
        return self._url("/t/o", "open")

    @property
    def unsubscribe_url(self) -> str:
        return self._url("/unsubscribe", "unsubscribe")

    def click_url(self, target: str) -> str | None:
        """The click redirect to `target`; None when its token would be too long to be accepted
        back (a link of thousands of characters then stays as written: untracked, not dead)."""
        token = self._token("click", target)
        return None if len(token) > MAX_TOKEN_LENGTH else f"{self.base_url}/t/c/{token}"

    def track_clicks(self, html: str) -> str:
        """Every http(s) `href` through the click redirect, except the unsubscribe link itself."""

        def rewrite(match: re.Match[str]) -> str:
            tag = match.group(0)
            span = _href_span(tag)
            if span is None:
                return tag
            target = _unquoted(tag[span[0] : span[1]])
            if not target.lower().startswith(("http://", "https://")) or target.startswith(
                f"{self.base_url}/unsubscribe/"
            ):
                return tag
            tracked = self.click_url(target)
            if tracked is None:
                return tag
            return f'{tag[: span[0]]}"{html_lib.escape(tracked)}"{tag[span[1] :]}'

        return _A_START.sub(rewrite, html)

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
        settings.signing_key("tracking"),
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

    @step_activity("send_email")
    async def send_email(self, context: StepContext) -> StepOutcome:
        """Send the step's email to the contact, unless a sending rule says not to."""
        step = await self.deps.step(context)
        async with self.deps.db.read() as session:
            contact = await step_contact(session, context)
            reason = await skip_reason(session, contact)
            if reason:
                return StepOutcome(outcome="skipped", reason=reason)
            values = await tag_values(session, contact, context.deal_id)
        message = build_email(self.deps.settings, context, step, contact, values)
        try:
            await self.deps.send_mail(message)
        except PermanentRejection as err:
            if err.recipient:
                await self._bounced(context, str(err))
            raise give_up(f"rejected by the SMTP server: {err}", kind="SmtpRejected") from err
        await self._sent(context, message["Message-ID"])
        return StepOutcome(outcome="done", detail={"message_id": message["Message-ID"]})

    async def _sent(self, context: StepContext, message_id: str) -> None:
        """Record `email_sent` (for the email leaf `sent`), once per step visit: a retry after
        the send finds it recorded."""
        data = {"automation": context.automation_id, "step": context.step_id}

        async def record() -> dict[str, Any]:
            await contact_store.record_event(
                session,
                context.contact_id,
                "email_sent",
                {**data, "message_id": message_id},
                origin=context.workflow_id,
            )
            return {"event": "email_sent"}

        async with self.deps.db.write() as session:
            if await contact_store.get_contact(session, context.contact_id) is not None:
                await run_store.once_per_visit(session, f"{context.visit_key}:sent", record)
        self.deps.kick()

    async def _bounced(self, context: StepContext, reply: str) -> None:
        async with self.deps.db.write() as session:
            contact = await contact_store.get_contact(session, context.contact_id)
            if contact is not None and not contact.bounced:
                data = {"automation": context.automation_id, "step": context.step_id}
                await contact_store.mark_bounced(
                    session, contact, {**data, "reply": reply}, origin=context.workflow_id
                )
        self.deps.kick()

    @step_activity("send_notification_email")
    async def send_notification_email(self, context: StepContext) -> StepOutcome:
        """An internal email about the contact to the step's `to` addresses (no tracking)."""
        step = await self.deps.step(context)
        async with self.deps.db.read() as session:
            contact = await step_contact(session, context)
            values = await tag_values(session, contact, context.deal_id)
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
            refused = await self.deps.send_mail(message)
        except PermanentRejection as err:
            raise give_up(f"rejected by the SMTP server: {err}", kind="SmtpRejected") from err
        detail: dict[str, Any] = {"message_id": message["Message-ID"]}
        if refused:
            detail["refused"] = refused
        return StepOutcome(outcome="done", detail=detail)
