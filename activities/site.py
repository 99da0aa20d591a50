"""The `send_site_message` step: a message queued for the contact's next matching page visit.

Cairn's own write, so a local activity, exactly once per step visit (docs/architecture.md#exactly-once-writes): a retried
attempt finds the action-log row and queues nothing twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from activities.deps import Deps
from activities.messaging import tag_values
from activities.step_activity import step_activity
from activities.writes import write_once
from store.models import Contact, SiteMessage, utcnow
from store.site import tracking_allowed
from workflows.contracts import StepContext, StepOutcome
from workflows.personalization import render


class SiteActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @step_activity("send_site_message")
    async def send_site_message(self, context: StepContext) -> StepOutcome:
        """Queue the step's personalized HTML; `expires` counts from now."""
        step = await self.deps.step(context)

        async def write(session: AsyncSession, contact: Contact) -> dict[str, Any]:
            if not tracking_allowed(contact.fields, self.deps.settings.site_require_consent):
                return {"outcome": "skipped", "reason": "no_site_consent"}
            now = utcnow()
            message = SiteMessage(
                contact_id=contact.id,
                automation_id=context.automation_id,
                step_id=context.step_id,
                workflow_id=context.workflow_id,
                html=render(
                    step.html, await tag_values(session, contact, context.deal_id), html=True
                ),
                page=step.page,
                created_at=now,
                expires_at=now + step.expires.to_timedelta() if step.expires else None,
            )
            session.add(message)
            await session.flush()
            detail = {"message": message.id, "page": step.page}
            if message.expires_at is not None:
                detail["expires"] = message.expires_at.isoformat()
            return {"outcome": "done", "detail": detail}

        return await write_once(self.deps, context, write)
