"""Events: recorded, then delivered to the contact's runs and to triggers through the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from api.deps import ServicesDep, accepts_scope
from api.errors import answers, invalid
from api.schemas.events import EventRecorded
from store import contacts as contact_store
from store.contacts import InvalidChange
from workflows.limits import MAX_EVENT_DATA_DEPTH, MAX_EVENT_DATA_KEYS

router = APIRouter(prefix="/events", tags=["events"])


def _storable(data: dict[str, Any]) -> dict[str, Any]:
    """Event data within MAX_EVENT_DATA_DEPTH levels and free of NUL characters, which
    PostgreSQL refuses in JSON text (walked iteratively: no recursion on hostile input)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_EVENT_DATA_DEPTH:
                raise ValueError(f"data may be nested at most {MAX_EVENT_DATA_DEPTH} levels deep")
            children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(node, str) and "\x00" in node:
            raise ValueError("data may not contain the NUL character (\\u0000)")
    return data


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: Annotated[int | None, Field(ge=1, le=2**62)] = None
    email: Annotated[str | None, Field(max_length=320)] = None
    event: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    data: Annotated[dict[str, Any], AfterValidator(_storable)] = Field(
        default_factory=dict, max_length=MAX_EVENT_DATA_KEYS
    )
    occurred_at: datetime | None = None

    @model_validator(mode="after")
    def _one_contact(self) -> EventIn:
        if (self.contact is None) == (self.email is None):
            raise ValueError("give exactly one of contact (id) or email")
        return self


@router.post(
    "", status_code=202, responses=answers(404), openapi_extra=accepts_scope("events:write")
)
async def record_event(body: EventIn, services: ServicesDep) -> EventRecorded:
    try:
        async with services.db.write() as session:
            if body.contact is not None:
                contact = await contact_store.get_contact(session, body.contact)
            else:
                contact = await contact_store.find_by_email(session, body.email or "")
            if contact is None:
                raise HTTPException(status_code=404, detail="contact not found")
            event = await contact_store.record_event(
                session, contact.id, body.event, body.data, occurred_at=body.occurred_at
            )
            await session.flush()
            event_id, contact_id = event.id, contact.id
    except InvalidChange as err:
        raise invalid(str(err)) from None
    services.dispatcher.kick()
    return EventRecorded(id=event_id, contact=contact_id, event=body.event)
