"""A page visit recorded through the API, and the site messages to show there."""

from __future__ import annotations

import nh3
from pydantic import BaseModel

from store import models


def shown_html(html: str) -> str:
    """A message's HTML as site.js may put it in the page (`innerHTML`): sanitized by ammonia's
    allow-list, so no script, event handler or `javascript:` link reaches the website, whoever
    wrote the step and whatever a personalization tag held."""
    return nh3.clean(html)


class SiteMessagePublic(BaseModel):
    id: int
    html: str
    automation: str
    step: str

    @classmethod
    def of(cls, message: models.SiteMessage) -> SiteMessagePublic:
        return cls(
            id=message.id,
            html=shown_html(message.html),
            automation=message.automation_id,
            step=message.step_id,
        )


class VisitRecorded(BaseModel):
    contact: int
    url: str
    # False: the contact may not be tracked (site_tracking_consent), so nothing was recorded.
    tracked: bool
    messages: list[SiteMessagePublic]
