"""Request dependencies: the API token check and the process-wide services."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from temporalio.client import Client

from core.settings import Settings
from domain.outbox import OutboxDispatcher
from store.db import Database


@dataclass
class Services:
    """Made once in the app's lifespan and shared by every request."""

    settings: Settings
    db: Database
    client: Client
    dispatcher: OutboxDispatcher


# Dependencies are `async def` though they do no I/O: FastAPI runs a plain `def` one in a
# worker thread, a hop on every request (seen in a profile of POST /events).
async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


API_PREFIX = "/api/v1"  # every route under it needs the token; the public ones live elsewhere
UNAUTHORIZED = "missing or wrong Api-Token header"
# Declares the header as the API's security scheme in the OpenAPI schema.
api_token_header = APIKeyHeader(name="Api-Token", auto_error=False)


def token_matches(given: str | None, expected: str) -> bool:
    # Constant-time comparison: the answer's timing says nothing about the token.
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def require_token(
    services: ServicesDep, api_token: Annotated[str | None, Security(api_token_header)]
) -> None:
    if not token_matches(api_token, services.settings.api_token):
        raise HTTPException(status_code=401, detail=UNAUTHORIZED)


def install_token_check(app: FastAPI) -> None:
    """Refuse every /api/v1 request without the right token before anything reads it: FastAPI
    parses a JSON body before it runs a route's dependencies, so `require_token` alone would
    answer a malformed body's 422 to a caller without the token. Unknown /api/v1 paths are
    refused the same way: the routes are not revealed either."""

    @app.middleware("http")
    async def check_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.scope["path"]  # what the router matches
        if (path == API_PREFIX or path.startswith(API_PREFIX + "/")) and not token_matches(
            request.headers.get("api-token"), request.app.state.services.settings.api_token
        ):
            return JSONResponse({"detail": UNAUTHORIZED}, status_code=401)
        return await call_next(request)
