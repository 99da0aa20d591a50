"""Liveness, and whether Temporal and the database answer."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.errors import Health
from domain.outbox import dead_letter_count
from store.db import Database

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "the database or Temporal does not answer"}},
)
async def healthz(services: ServicesDep) -> JSONResponse:
    database = await services.db.ping()
    try:
        await asyncio.wait_for(services.client.service_client.check_health(), timeout=3)
        temporal = True
    except Exception:
        temporal = False
    body: dict[str, Any] = {
        "status": "ok" if database and temporal else "degraded",
        "database": database,
        "temporal": temporal,
        "outbox_dead_letters": await _dead_letters(services.db) if database else None,
    }
    return JSONResponse(body, status_code=200 if database and temporal else 503)


async def _dead_letters(db: Database) -> int | None:
    """Dead letters are worth an operator's look, not a restart: reported, never a 503."""
    try:
        async with db.read() as session:
            return await dead_letter_count(session)
    except Exception:
        return None
