"""Opaque cursors of the lists paged by key (`?cursor=`): what the last row of a page sorted by,
so the next page starts below it. A cursor no list gave is a 422, never a 500."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import HTTPException, Query

MAX_CURSOR_LENGTH = 200
MAX_INT = 2**62  # no id is larger; a larger number would overflow a BIGINT parameter
CursorParam = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="`next` of the previous page; leave it out for the first page",
    ),
]


def encode_cursor(*values: int | str) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def bad_cursor() -> HTTPException:
    return HTTPException(
        status_code=422,
        detail=[
            {
                "loc": ["query", "cursor"],
                "msg": "not a cursor of this list: pass the `next` of its previous page",
                "type": "value_error",
            }
        ],
    )


def _fits(value: Any, wanted: type) -> bool:
    if wanted is int:  # bool is an int to isinstance: refused where an int is wanted
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT
    return isinstance(value, wanted)


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The values `encode_cursor` was given, checked against `types`; a 422 otherwise."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise bad_cursor() from None
    if (
        not isinstance(values, list)
        or len(values) != len(types)
        or not all(_fits(v, t) for v, t in zip(values, types, strict=True))
    ):
        raise bad_cursor()
    return values


def cursor_time(text: str) -> datetime:
    """An instant a cursor holds (ISO 8601; UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_cursor() from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
