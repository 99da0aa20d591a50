"""Site tracking through the API (docs/integrations.md#site-messages): a page visit recorded, the site messages to show."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import Services, ServicesDep, accepts_scope
from api.errors import answers, invalid
from api.schemas.site import SiteMessagePublic, VisitRecorded
from store import contacts as contact_store
from store import site as site_store
from store.contacts import InvalidChange

router = APIRouter(prefix="/site", tags=["site"])

Url = Annotated[str, Field(min_length=1, max_length=site_store.MAX_URL_LENGTH)]


class VisitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: Annotated[int | None, Field(ge=1, le=2**62)] = None
    email: Annotated[str | None, Field(max_length=320)] = None
    url: Url

    @model_validator(mode="after")
    def _one_contact(self) -> VisitIn:
        if (self.contact is None) == (self.email is None):
            raise ValueError("give exactly one of contact (id) or email")
        return self


async def record_visit(
    services: Services, url: str, *, contact_id: int | None = None, email: str | None = None
) -> tuple[int, list[SiteMessagePublic] | None] | None:
    """Record the visit and claim the messages to show; None when no such contact exists, no
    messages (None) when the contact may not be tracked.

    Raises InvalidChange for an email that is not one."""
    async with services.db.write() as session:
        if contact_id is not None:
            contact = await contact_store.get_contact(session, contact_id)
        else:
            contact = await contact_store.find_by_email(session, email or "")
        if contact is None:
            return None
        found = contact.id
        if not site_store.tracking_allowed(contact.fields, services.settings.site_require_consent):
            return found, None  # not recorded, nothing shown: the visitor opted out
        claimed = await site_store.record_visit(session, contact.id, url, datetime.now(UTC))
        messages = [SiteMessagePublic.of(message) for message in claimed]
    services.dispatcher.kick()  # the page_visited event wakes runs and fires triggers
    return found, messages


@router.post("/visits", responses=answers(404), openapi_extra=accepts_scope("site"))
async def visit(body: VisitIn, services: ServicesDep) -> VisitRecorded:
    """`{"contact": id}` or `{"email"}`, and the `url` visited → the messages to show there."""
    try:
        recorded = await record_visit(services, body.url, contact_id=body.contact, email=body.email)
    except InvalidChange as err:
        raise invalid(str(err), "email") from None
    if recorded is None:
        raise HTTPException(status_code=404, detail="contact not found")
    contact_id, messages = recorded
    return VisitRecorded(
        contact=contact_id, url=body.url, tracked=messages is not None, messages=messages or []
    )
