"""Request limits (docs/automations.md#limits): body size per route, JSON nesting, duplicate keys, NUL.

One ASGI middleware reads every request body as it streams in: a Content-Length over the
limit is answered before anything is read, a chunked body is cut off as soon as it passes
the limit, so no body larger than the limit is ever held in memory. Then, before any route
parses it, a JSON body is checked for what Python's parser would take badly: nesting deep
enough to make it recurse, keys given twice (it silently keeps the last) and the NUL
character, which PostgreSQL cannot store in text or JSON. Every refusal is a JSON
`{"detail"}` naming the limit (FastAPI's own `max_body_size` answers a bare text 413).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflows.limits import (
    MAX_CODEC_BYTES,
    MAX_DOCUMENT_BYTES,
    MAX_EVENT_BYTES,
    MAX_JSON_DEPTH,
    MAX_REQUEST_BYTES,
)

# Body limits by path prefix, most specific first; any other path: MAX_REQUEST_BYTES.
BODY_LIMITS = (
    ("/api/v1/events", MAX_EVENT_BYTES),
    ("/api/v1/automations", MAX_DOCUMENT_BYTES),
    ("/codec", MAX_CODEC_BYTES),
)

# A JSON string, escapes included (unrolled so it runs in linear time).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# JSON can only carry NUL as the escape \u0000 (an odd run of backslashes: "\\u0000" is text).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON text `body` nests arrays/objects more than `limit` levels (no parsing)."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def _duplicate_key(body: bytes) -> str | None:
    """A key given twice in one JSON object of `body`, or None. Parsers keep the last one
    silently: a second step "welcome" would replace the first without a word."""
    try:
        json.loads(body, object_pairs_hook=_refuse_duplicates)  # safe: depth checked first
    except _DuplicateKey as duplicate:
        return str(duplicate)
    except (ValueError, RecursionError):
        pass  # not JSON: the route's own parsing answers that
    return None


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise _NonFinite(text)
    return number


def _non_finite_number(body: bytes) -> str | None:
    """NaN, Infinity or a number beyond a float (1e999) in `body`, or None. Python's parser
    takes them though JSON has no such numbers: no database stores them and no JSON answer
    can echo them back (a 422 repeating the input failed as a 500)."""
    try:
        json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NonFinite as number:
        return str(number)
    except (ValueError, RecursionError):
        pass  # not JSON: the route's own parsing answers that
    return None


def _nul_path(body: bytes) -> str | None:
    """Where the JSON text `body` holds a NUL character ("" for the top level), or None."""
    if not _NUL_ESCAPE.search(body):
        return None
    try:
        document = json.loads(body)  # safe: the depth was checked first
    except (ValueError, RecursionError):
        return None  # not JSON: the route's own parsing answers that
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    return where
                stack.append((where, value))
        elif isinstance(node, list):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(node))
        elif isinstance(node, str) and "\x00" in node:
            return path
    return None


def _refuse(status: int, detail: str) -> HTTPException:
    # Raised where the route reads its body: FastAPI answers its HTTPException as is (any
    # other exception there would become "400 There was an error parsing the body").
    return HTTPException(status_code=status, detail=detail)


def body_limit(path: str) -> int:
    return next(
        (limit for prefix, limit in BODY_LIMITS if path.startswith(prefix)), MAX_REQUEST_BYTES
    )


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes, this route's limit"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _json_problem(body: bytes) -> str | None:
    if json_depth_exceeds(body, MAX_JSON_DEPTH):
        return (
            f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep "
            "(arrays and objects inside each other)"
        )
    if (key := _duplicate_key(body)) is not None:
        return f'the key "{key[:200]}" appears twice in one JSON object'
    if (number := _non_finite_number(body)) is not None:
        return f"{number[:40]} is not a JSON number: numbers must be finite"
    if (where := _nul_path(body)) is not None:
        return "text may not contain the NUL character (\\u0000); found at " + (
            where[:200] or "the top level"
        )
    return None


class InputGuard:
    """The limits of this module, as ASGI middleware around the whole app (a NUL in the URL
    is refused here too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # No id or name holds a NUL (every body refuses it), and PostgreSQL would fail on it.
        if "\x00" in scope["path"]:
            detail = "not found: no URL path contains the NUL character (%00)"
            await JSONResponse({"detail": detail}, status_code=404)(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b""):
            detail = "a query may not contain the NUL character (%00)"
            await JSONResponse({"detail": detail}, status_code=422)(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        length = _content_length(scope)
        if length is not None and length > limit:
            await JSONResponse({"detail": _too_large(limit)}, status_code=413)(scope, receive, send)
            return
        check_json = _may_be_json(scope)
        chunks: list[bytes] = []
        received = 0

        async def guarded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                chunks.clear()
                raise _refuse(413, _too_large(limit))
            if check_json:
                chunks.append(chunk)
                if not message.get("more_body", False):
                    body = b"".join(chunks)
                    chunks.clear()
                    if (problem := _json_problem(body)) is not None:
                        raise _refuse(422, problem)
            return message

        await self.app(scope, guarded_receive, send)


def _may_be_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return True  # FastAPI reads a body without a content type as JSON


def install_limits(app: FastAPI) -> None:
    """Guard every request body. Add it before any `@app.middleware("http")`: those read the
    body in a task group, which would wrap this guard's refusals in an ExceptionGroup."""
    app.add_middleware(InputGuard)
