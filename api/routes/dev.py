"""The development mailbox (docs/integrations.md#the-development-mailbox): what the embedded SMTP server received, for newcomers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Query, Response

from api.deps import ServicesDep
from api.errors import answers
from api.schemas.mailbox import MailboxMessage
from store.mailbox import list_messages, message_body

router = APIRouter(prefix="/dev", tags=["development"])


@router.get("/outbox")
async def outbox(
    services: ServicesDep, limit: int = Query(50, ge=1, le=500)
) -> list[MailboxMessage]:
    """Newest first: subject, from, to, date, Message-ID of each email Cairn sent, and `body`:
    the link to its content."""
    messages = await asyncio.to_thread(list_messages, services.settings, limit)
    return [MailboxMessage(**m, body=f"/api/v1/dev/outbox/{m['id']}") for m in messages]


@router.get(
    "/outbox/{message_id}",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {}, "text/plain": {}}, "description": "the body"},
        **answers(404),
    },
)
async def outbox_message(message_id: str, services: ServicesDep) -> Response:
    """One message's body as it would be shown: its HTML part, else its text."""
    found = await asyncio.to_thread(message_body, services.settings, message_id)
    if found is None:
        raise HTTPException(status_code=404, detail="no such message in the development mailbox")
    content_type, body = found
    # The HTML is shown as sent; the sandbox keeps its scripts (if any) away from the API's origin.
    return Response(
        body,
        media_type=content_type,
        headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"},
    )
