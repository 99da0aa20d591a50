"""A page visit recorded through the API, and the site messages to show there."""

from __future__ import annotations

from pydantic import BaseModel

from store import models


class SiteMessagePublic(BaseModel):
    id: int
    html: str
    automation: str
    step: str

    @classmethod
    def of(cls, message: models.SiteMessage) -> SiteMessagePublic:
        return cls(
            id=message.id, html=message.html, automation=message.automation_id, step=message.step_id
        )


class VisitRecorded(BaseModel):
    contact: int
    url: str
    # False: the contact may not be tracked (site_tracking_consent), so nothing was recorded.
    tracked: bool
    messages: list[SiteMessagePublic]
