"""Failures of what the API depends on become clear 503s, never a 500 (docs/api.md#conventions)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from temporalio.service import RPCError

from store.db import DatabaseBusy

log = logging.getLogger("cairn.api")


def install_error_handlers(app: FastAPI) -> None:
    declare_common_answers(app)

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


# --- what the OpenAPI schema declares: every error answer, as it is really sent ------------


class Message(BaseModel):
    """An error answer: `{"detail": "what went wrong"}`."""

    detail: str


class FieldError(BaseModel):
    """One problem with the input, FastAPI's shape: where (`loc`), what (`msg`), its kind."""

    loc: list[str | int]
    msg: str
    type: str


class Invalid(BaseModel):
    """A 422: the problems with the input, with their field paths; or one message for a body
    refused as a whole (too deep, a key given twice, a NUL character)."""

    detail: list[FieldError] | str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    temporal: bool
    # Outbox rows set aside after failing every delivery (docs/operations.md#dead-letters);
    # null when the database does not answer.
    outbox_dead_letters: int | None = None


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "required": True,
        "schema": {"type": "string"},
    }
}
SCHEMAS = (Message, FieldError, Invalid)


def _json(model: type[BaseModel]) -> dict[str, Any]:
    # By reference and always JSON, whatever the route's own media type (a GIF, an HTML page).
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


ERROR_ANSWERS: dict[int, dict[str, Any]] = {
    400: {"content": _json(Message), "description": "the body could not be read"},
    401: {"content": _json(Message), "description": "missing or wrong Api-Token header"},
    403: {"content": _json(Message), "description": "the token lacks the scope this needs"},
    404: {"content": _json(Message), "description": "no such record"},
    409: {"content": _json(Message), "description": "conflicts with what is stored"},
    413: {"content": _json(Message), "description": "request body too large"},
    422: {"content": _json(Invalid), "description": "invalid input"},
    429: {"content": _json(Message), "description": "too many requests: try again in a minute"},
    503: {
        "content": _json(Message),
        "description": "the database or Temporal is unavailable; retry shortly",
        "headers": RETRY_AFTER,
    },
}


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` declaration of a route's error answers, e.g. `answers(404, 409)`."""
    return {status: ERROR_ANSWERS[status] for status in statuses}


def declare_common_answers(app: FastAPI) -> None:
    """What api/request_limits.py answers before any route: a 422 with one message for any request (a
    NUL in the query, a body too deep…), and for an operation that takes a body, 400 (it could
    not be read) and 413 (too large). Declared once here, for every such operation."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in SCHEMAS:
            model_schema = model.model_json_schema(ref_template=REF)
            model_schema.pop("$defs", None)  # each of them is in SCHEMAS
            components.setdefault(model.__name__, model_schema)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation["responses"]
                if responses.get("422", {}).get("content") in (None, DEFAULT_422):
                    responses["422"] = ERROR_ANSWERS[422]
                if "requestBody" in operation:
                    for status in ("400", "413"):
                        responses.setdefault(status, ERROR_ANSWERS[int(status)])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


REF = "#/components/schemas/{model}"
DEFAULT_422 = {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}


def invalid(message: str, *loc: str | int) -> HTTPException:
    """A 422 in the same shape as FastAPI's own: the message at its field path."""
    return HTTPException(
        status_code=422, detail=[{"loc": ["body", *loc], "msg": message, "type": "value_error"}]
    )
