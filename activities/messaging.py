"""Sending: email through SMTP (the dev mailbox by default)."""

from __future__ import annotations

import re
from datetime import date
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from html import unescape
from typing import Any

import aiosmtplib
from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import Deps
from store import contacts as contact_store
from store import crm as crm_store
from store.models import Contact, Subscription
from workflows.contracts import StepContext, StepOutcome
from workflows.personalization import contact_values, render


def html_to_text(html: str) -> str:
    """A readable plain-text part for clients that do not show HTML."""
    text = re.sub(r"(?is)<(script|style).*?</\1>", "", html)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h[1-6]>|</li>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"\n{3,}", "\n\n", unescape(text)).strip()


def message_id(context: StepContext) -> str:
    """Stable per step visit: a retried send carries the same id, so duplicates can be dropped."""
    local = re.sub(r"[^A-Za-z0-9.-]", ".", f"{context.workflow_id}.{context.visit}")
    return f"<{local}@cairn>"


async def skip_reason(session: Any, contact: Contact) -> str | None:
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


class MessagingActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="send_email")
    async def send_email(self, context: StepContext) -> StepOutcome:
        step = await self.deps.step(context)
        settings = self.deps.settings
        async with self.deps.db.read() as session:
            contact = await contact_store.get_contact(session, context.contact_id)
            if contact is None:
                return StepOutcome(outcome="skipped", reason="contact_deleted")
            reason = await skip_reason(session, contact)
            crm_values = await crm_store.personalization_values(session, contact.id)
        if reason:
            return StepOutcome(outcome="skipped", reason=reason)
        values = contact_values(
            {
                "email": contact.email,
                "first_name": contact.first_name,
                "last_name": contact.last_name,
                "phone": contact.phone,
                "fields": contact.fields or {},
            },
            today=date.today(),
            extra=crm_values,
        )
        html = render(step.html, values, html=True)
        text = render(step.text, values, html=False) if step.text else html_to_text(html)
        default_name, default_address = parseaddr(settings.mail_from)
        message = EmailMessage()
        message["Subject"] = render(step.subject, values, html=False)
        message["From"] = formataddr(
            (step.from_name or default_name, step.from_email or default_address)
        )
        message["To"] = formataddr((values.get("FULLNAME", ""), contact.email or ""))
        if step.reply_to:
            message["Reply-To"] = step.reply_to
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = message_id(context)
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username or None,
                password=settings.smtp_password or None,
                start_tls=settings.smtp_starttls,
                timeout=30,
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            permanent = [r for r in err.recipients if 500 <= r.code < 600]
            if permanent:
                raise ApplicationError(
                    f"recipient refused: {permanent[0].code} {permanent[0].message}",
                    non_retryable=True,
                ) from err
            raise
        return StepOutcome(outcome="done", detail={"message_id": message["Message-ID"]})
