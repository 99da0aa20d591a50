"""Liveness, and whether Temporal and the database answer."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
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
