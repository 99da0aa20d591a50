"""Liveness, and whether Temporal and the database answer."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.errors import Health

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
    }
    return JSONResponse(body, status_code=200 if database and temporal else 503)
