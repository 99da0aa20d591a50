"""Failures of what the API depends on become clear 503s, never a 500 (SPEC §5)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from temporalio.service import RPCError

from store.db import DatabaseBusy

log = logging.getLogger("cairn.api")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(DatabaseBusy)
    # The database host unreachable: asyncpg's connect raises OSError (refused, no route, DNS),
    # which SQLAlchemy does not wrap. The API's only other peer, Temporal, raises RPCError.
    @app.exception_handler(OSError)
    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return JSONResponse(
            {"detail": "the database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(RPCError)
    async def temporal_unavailable(request: Request, exc: RPCError) -> JSONResponse:
        log.warning("temporal unavailable: %s", exc)
        return JSONResponse(
            {"detail": "the Temporal service is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
