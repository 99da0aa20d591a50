"""Request dependencies: the API token and scope check, and the process-wide services."""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.security import APIKeyHeader
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.routing import compile_path
from temporalio.client import Client

from api.rate_limits import TrackingLimits
from core.settings import Settings
from domain.outbox import OutboxDispatcher
from store import api_tokens
from store.db import Database, DatabaseBusy
from store.models import utcnow


@dataclass
class Services:
    """Made once in the app's lifespan and shared by every request."""

    settings: Settings
    db: Database
    client: Client
    dispatcher: OutboxDispatcher
    tracking_limits: TrackingLimits


# Dependencies are `async def` though they do no I/O: FastAPI runs a plain `def` one in a
# worker thread, a hop on every request (seen in a profile of POST /events).
async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


API_PREFIX = "/api/v1"  # every route under it needs a token; the public ones live elsewhere
UNAUTHORIZED = "missing or wrong Api-Token header"
# Declares the header as the API's security scheme in the OpenAPI schema.
api_token_header = APIKeyHeader(
    name="Api-Token",
    auto_error=False,
    description="CAIRN_API_TOKEN, or a token made with POST /api/v1/tokens: it may call the "
    "operations its scopes allow (`admin`: all; others are named by each operation's "
    "`x-cairn-scope`).",
)
BOOTSTRAP = "CAIRN_API_TOKEN"  # the name the bootstrap token goes by
SCOPE_KEY = "x-cairn-scope"  # in a route's openapi_extra: the scope it accepts besides admin
# Errors of the database a token lookup may meet: answered 503 like a route's (api/errors.py).
_DATABASE_ERRORS = (OperationalError, DBAPIError, DatabaseBusy, OSError)


@dataclass(frozen=True)
class Caller:
    """Who a request's token is: its name and scopes."""

    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def accepts_scope(scope: str) -> dict[str, Any]:
    """A route's `openapi_extra=`: tokens with `scope` may call it (admin ones may call any)."""
    assert scope in api_tokens.SCOPES, scope
    return {SCOPE_KEY: scope}


def _scoped_routes(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str], str]]:
    """(path pattern, methods, scope) of the routes that declare a scope, read once per app."""
    table = getattr(app.state, "scoped_routes", None)
    if table is None:
        table = []
        for route in iter_route_contexts(app.routes):
            declared = (getattr(route.original_route, "openapi_extra", None) or {}).get(SCOPE_KEY)
            if declared:
                pattern, _, _ = compile_path(str(route.path))
                table.append((pattern, frozenset(route.methods or ()), str(declared)))
        app.state.scoped_routes = table
    return table  # type: ignore[no-any-return]


def required_scope(app: FastAPI, method: str, path: str) -> str:
    """The scope a request needs: its route's declared one, else admin (also for a path no
    route answers: only admin tokens learn which paths exist)."""
    for pattern, methods, scope in _scoped_routes(app):
        if method in methods and pattern.match(path):
            return scope
    return "admin"


def token_matches(given: str | None, expected: str) -> bool:
    # Constant-time comparison: the answer's timing says nothing about the token.
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def identify(services: Services, given: str | None) -> Caller | None:
    """The caller a token names: the bootstrap token, or a stored unrevoked one; None if none."""
    if given is None:
        return None
    if token_matches(given, services.settings.api_token):
        return Caller(BOOTSTRAP, frozenset({"admin"}))
    if not given.startswith(api_tokens.PREFIX) or len(given) > api_tokens.MAX_LENGTH:
        return None  # not one Cairn made: no database lookup
    async with services.db.read() as session:
        record = await api_tokens.find_active(session, given)
        if record is None:
            return None
        caller = Caller(record.name, frozenset(record.scopes))
        stale = api_tokens.last_use_is_stale(record, utcnow())
    if stale:
        async with services.db.write() as session:
            await api_tokens.mark_used(session, record.id, utcnow())
    return caller


def forbidden(caller: Caller, needed: str, request: Request) -> str:
    return (
        f"the token {caller.name!r} may not call {request.method} {request.url.path}: "
        f"that needs the {needed!r} scope (or admin); it has {sorted(caller.scopes)}"
    )


async def require_token(
    request: Request, api_token: Annotated[str | None, Security(api_token_header)]
) -> Caller:
    """Who calls, as the middleware found it (the parameter declares the security scheme).
    The scope is checked again here, on the route FastAPI actually chose."""
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is None:
        raise HTTPException(status_code=401, detail=UNAUTHORIZED)
    route = request.scope.get("route")
    needed = str((getattr(route, "openapi_extra", None) or {}).get(SCOPE_KEY, "admin"))
    if not caller.may(needed):
        raise HTTPException(status_code=403, detail=forbidden(caller, needed, request))
    return caller


CallerDep = Annotated[Caller, Depends(require_token)]


def install_token_check(app: FastAPI) -> None:
    """Refuse every /api/v1 request without a known token, or whose token lacks the route's
    scope, before anything reads it: FastAPI parses a JSON body before it runs a route's
    dependencies, so `require_token` alone would answer a malformed body's 422 to a caller
    without the token. Unknown /api/v1 paths are refused the same way: the routes are not
    revealed either."""

    @app.middleware("http")
    async def check_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.scope["path"]  # what the router matches
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            try:
                caller = await identify(
                    request.app.state.services, request.headers.get("api-token")
                )
            except _DATABASE_ERRORS:
                return JSONResponse(
                    {"detail": "the database is unavailable; retry shortly"},
                    status_code=503,
                    headers={"Retry-After": "5"},
                )
            if caller is None:
                return JSONResponse({"detail": UNAUTHORIZED}, status_code=401)
            needed = (
                "admin" if "admin" in caller.scopes else required_scope(app, request.method, path)
            )
            if not caller.may(needed):
                return JSONResponse({"detail": forbidden(caller, needed, request)}, status_code=403)
            request.state.caller = caller
        return await call_next(request)
