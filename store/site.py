"""Site messages and page visits (docs/integrations.md#site-messages)."""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store import contacts as contact_store
from store.models import SiteMessage

MAX_URL_LENGTH = 2000
# The contact field a website sets through the API when the visitor opts in to (true) or out of
# (false) site tracking; as ActiveCampaign's "ayant choisi de participer".
CONSENT_FIELD = "site_tracking_consent"


def tracking_allowed(fields: dict[str, Any], require_consent: bool) -> bool:
    """May the contact's visits be recorded and site messages shown to them? Never after an
    explicit no; without an answer, only when consent is not required."""
    answer = contact_store.yes_or_no((fields or {}).get(CONSENT_FIELD))
    return answer is True or (answer is None and not require_consent)


def page_matches(pattern: str | None, url: str) -> bool:
    """Wildcards as in triggers and conditions (`*`, `?`, `[...]`); no pattern = any page."""
    return pattern is None or fnmatch.fnmatchcase(url, pattern)


async def record_visit(
    session: AsyncSession, contact_id: int, url: str, now: datetime
) -> list[SiteMessage]:
    """Record a `page_visited` event and claim the contact's pending messages for `url`.

    Each message is claimed by a conditional UPDATE (`shown_at` still empty), so two visits
    racing on two processes never both show it: it is shown exactly once.
    """
    await contact_store.record_event(session, contact_id, "page_visited", {"url": url})
    pending = (
        await session.scalars(
            select(SiteMessage)
            .where(
                SiteMessage.contact_id == contact_id,
                SiteMessage.shown_at.is_(None),
                or_(SiteMessage.expires_at.is_(None), SiteMessage.expires_at > now),
            )
            .order_by(SiteMessage.id)
        )
    ).all()
    shown: list[SiteMessage] = []
    for message in pending:
        if not page_matches(message.page, url):
            continue
        claimed = await session.execute(
            update(SiteMessage)
            .where(SiteMessage.id == message.id, SiteMessage.shown_at.is_(None))
            .values(shown_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            shown.append(message)
    return shown
