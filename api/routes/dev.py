"""The development mailbox (SPEC §6): what the embedded SMTP server received, for newcomers."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query

from api.deps import ServicesDep
from worker.mailbox import list_messages

router = APIRouter(prefix="/dev", tags=["development"])


@router.get("/outbox")
async def outbox(
    services: ServicesDep, limit: int = Query(50, ge=1, le=500)
) -> list[dict[str, Any]]:
    """Newest first: subject, from, to, date, Message-ID of each email Cairn sent."""
    return await asyncio.to_thread(list_messages, services.settings, limit)
