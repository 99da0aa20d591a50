"""Hostile automation documents: each is refused with a 422 (or 413) naming the problem, by
POST and by PUT, on every database; afterwards the service is healthy and still runs
automations. Also the request limits (docs/automations.md#limits) at the edges: streamed bodies, events.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.helpers.providers import outcomes, run_steps
from tests.helpers.served import served_api
from tests.helpers.stack import API_TOKEN, Stack
from workflows.limits import (
    MAX_DOCUMENT_BYTES,
    MAX_EVENT_BYTES,
    MAX_EVENT_DATA_DEPTH,
    MAX_JSON_DEPTH,
    MAX_STEPS,
    MAX_TEXT_CHARS,
    MAX_TRIGGERS,
)


def doc(steps: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A valid automation (one add_tag step), with `steps` and top-level keys replaced."""
    return {
        "name": "hostile",
        "start": "a",
        "steps": steps if steps is not None else {"a": {"type": "add_tag", "tag": "x"}},
        **top,
    }


def nested_condition(levels: int) -> dict[str, Any]:
    """`levels` conditions inside each other (json.dumps recurses: keep it modest)."""
    condition: dict[str, Any] = {"tag": "x"}
    for _ in range(levels - 1):
        condition = {"not": condition}
    return condition


def chain(count: int) -> dict[str, Any]:
    return {f"s{i}": {"type": "add_tag", "tag": "t", "next": f"s{i + 1}"} for i in range(count)}


IF_ELSE = {"type": "if_else", "condition": {"tag": "x"}, "yes": "b", "no": "b"}
END = {"type": "end"}
SCORE_STEP = {"type": "adjust_contact_score", "score": "lead", "op": "add"}

# (name, JSON body as sent, fragments the answer must contain). The body is text so that
# invalid JSON and duplicate keys can be sent exactly as a client would.
Case = tuple[str, Callable[[], str], tuple[str, ...]]


def js(value: Any) -> Callable[[], str]:
    return lambda: json.dumps(value)


CORPUS: list[Case] = [
    # dangling references, each naming its step and field
    (
        "dangling next",
        js(doc({"a": {"type": "end", "next": "nowhere"}})),
        ("steps.a.next", "nowhere"),
    ),
    (
        "dangling yes",
        js(doc({"a": {**IF_ELSE, "yes": "ghost"}, "b": END})),
        ("steps.a.yes", "ghost"),
    ),
    ("dangling no", js(doc({"a": {**IF_ELSE, "no": "ghost"}, "b": END})), ("steps.a.no", "ghost")),
    (
        "dangling split path",
        js(
            doc(
                {
                    "a": {
                        "type": "split",
                        "mode": "even",
                        "paths": [{"next": "b"}, {"next": "zz"}],
                    },
                    "b": END,
                }
            )
        ),
        ("steps.a.paths.1.next", "zz"),
    ),
    (
        "dangling goto",
        js(doc({"a": {"type": "goto", "target": "gone"}})),
        ("steps.a.target", "gone"),
    ),
    ("dangling start", js(doc(start="missing")), ('"start" names unknown step "missing"',)),
    # types and shapes
    ("unknown step type", js(doc({"a": {"type": "send_fax"}})), ('unknown step type "send_fax"',)),
    (
        "string for number",
        js(doc({"a": {"type": "wait", "for": {"days": "two"}}})),
        ("steps.a.for.days",),
    ),
    (
        "list for dict",
        js(doc({"a": {"type": "update_contact", "fields": ["x"]}})),
        ("steps.a.fields",),
    ),
    ("steps is a list", js({"name": "h", "start": "a", "steps": [END]}), ("steps",)),
    ("null where required", js(doc({"a": {"type": "add_tag", "tag": None}})), ("steps.a.tag",)),
    (
        "missing subject",
        js(doc({"a": {"type": "send_email", "html": "<p>x</p>"}})),
        ('"subject" is required',),
    ),
    ("missing start", js({"name": "h", "steps": {"a": END}}), ('"start" is required',)),
    ("not an object", js(["a", "b"]), ("must be a JSON object",)),
    ("invalid JSON", lambda: '{"name": "h", "steps": {', ("json_invalid",)),
    (
        "negative duration",
        js(doc({"a": {"type": "wait", "for": {"days": -1}}})),
        ("steps.a.for.days",),
    ),
    ("absurd duration", js(doc({"a": {"type": "wait", "for": {"weeks": 1e12}}})), ("steps.a.for",)),
    (
        "unknown trigger",
        js(doc(triggers=[{"type": "moon_phase"}])),
        ('unknown trigger type "moon_phase"',),
    ),
    (
        "bad condition operator",
        js(
            doc(
                {
                    "a": {**IF_ELSE, "condition": {"field": "x", "op": "resembles", "value": 1}},
                    "b": END,
                }
            )
        ),
        ("steps.a.condition",),
    ),
    (
        "condition 21 deep",
        js(doc({"a": {**IF_ELSE, "condition": nested_condition(21)}, "b": END})),
        ("steps.a.condition", "at most 20"),
    ),
    (
        "condition 1000 deep",
        lambda: json.dumps(doc({"a": {**IF_ELSE, "condition": "DEEP"}, "b": END})).replace(
            '"DEEP"', '{"not": ' * 999 + '{"tag": "x"}' + "}" * 999
        ),
        (f"nested more than {MAX_JSON_DEPTH} levels",),
    ),
    (
        "split weight 0",
        js(
            doc(
                {
                    "a": {
                        "type": "split",
                        "mode": "even",
                        "paths": [{"next": None, "weight": 0}, {"next": None}],
                    }
                }
            )
        ),
        ("steps.a.paths.0.weight",),
    ),
    (
        "split one path",
        js(doc({"a": {"type": "split", "mode": "even", "paths": [{"next": None}]}})),
        ("steps.a.paths",),
    ),
    ("bad status", js(doc(status="paused")), ("status",)),
    (
        "webhook javascript url",
        js(doc({"a": {"type": "webhook", "url": "javascript:alert(1)"}})),
        ("steps.a.url", "http"),
    ),
    (
        "malformed tag",
        js(doc({"a": {"type": "add_contact_note", "note": "Hi %first name%"}})),
        ("steps.a.note", "%FIRSTNAME%"),
    ),
    # sizes
    ("10,000 steps", js(doc(chain(10_000), start="s0")), (f"at most {MAX_STEPS} steps", "10000")),
    (
        "101 triggers",
        js(doc(triggers=[{"type": "api"}] * (MAX_TRIGGERS + 1))),
        (f"at most {MAX_TRIGGERS} triggers",),
    ),
    (
        "900 KB step name",
        js(doc({"a": {"type": "end", "name": "n" * 900_000}})),
        ("steps.a.name", "200"),
    ),
    (
        "300 KB email body",
        js(doc({"a": {"type": "send_email", "subject": "s", "html": "<p>" + "x" * 300_000}})),
        ("steps.a.html", f"{MAX_TEXT_CHARS:,}"),
    ),
    (
        "3 MB document",
        js(doc({"a": {"type": "end", "name": "n" * 3_000_000}})),
        (f"{MAX_DOCUMENT_BYTES:,} bytes",),
    ),
    ("1 MB step id", js(doc({"k" * 1_000_100: END})), (f"{MAX_DOCUMENT_BYTES:,} bytes",)),
    # unicode and ids
    ("RTL override in step id", js(doc({"a\u202eb": END}, start="a\u202eb")), ("invalid step id",)),
    ("zero-width in step id", js(doc({"a\u200bb": END}, start="a\u200bb")), ("invalid step id",)),
    ("emoji step id", js(doc({"🚀": END}, start="🚀")), ("invalid step id",)),
    (
        "NUL in step name",
        js(doc({"a": {"type": "end", "name": "a\u0000b"}})),
        ("NUL", "steps.a.name"),
    ),
    ("NUL in a tag", js(doc({"a": {"type": "add_tag", "tag": "\u0000"}})), ("NUL", "steps.a.tag")),
    ("path traversal id", js(doc(id="../../etc/passwd")), ("automation id",)),
    ("id with spaces", js(doc(id="my automation")), ("automation id",)),
    ("500-character id", js(doc(id="a" * 500)), ("automation id",)),
    ("id not a string", js(doc(id=["x"])), ("id",)),
    ("500-character step id", js(doc({"s" * 500: END}, start="s" * 500)), ("invalid step id",)),
    (
        "duplicate step ids",
        lambda: (
            '{"name": "h", "start": "a", "steps": {"a": {"type": "end"}, "a": {"type": "end"}}}'
        ),
        ('"a" appears twice',),
    ),
    # numbers JSON does not have, though Python's parser reads them
    (
        "NaN score",
        lambda: js(doc({"a": {**SCORE_STEP, "value": 1}}))().replace('"value": 1', '"value": NaN'),
        ("NaN is not a JSON number",),
    ),
    (
        "infinite score",
        lambda: js(doc({"a": {**SCORE_STEP, "value": 1}}))().replace(
            '"value": 1', '"value": -Infinity'
        ),
        ("-Infinity is not a JSON number",),
    ),
    (
        "score beyond a float",
        lambda: js(doc({"a": {**SCORE_STEP, "value": 1}}))().replace(
            '"value": 1', '"value": 1e999'
        ),
        ("1e999 is not a JSON number",),
    ),
    # references to other automations
    (
        "unknown start_automation",
        js(doc({"a": {"type": "start_automation", "automation": "nope"}})),
        ('unknown automation "nope"',),
    ),
    (
        "unknown end_automation",
        js(doc({"a": {"type": "end_automation", "automation": "nope"}})),
        ('unknown automation "nope"',),
    ),
    (
        "condition on unknown step",
        js(doc({"a": {**IF_ELSE, "condition": {"email": "opened", "step": "ghost"}}, "b": END})),
        ('condition names unknown step "ghost"',),
    ),
]

assert len(CORPUS) >= 30
TOO_LARGE = {"3 MB document", "1 MB step id"}
# PUT takes the id from its path, so a bad id in the body only matters to POST.
POST_ONLY = {"path traversal id", "id with spaces", "500-character id", "id not a string"}

# Hostile-looking but valid: template syntax of other engines and SQL are plain text in
# Cairn (only %TAG% is personalization); they are stored exactly and never interpreted.
INERT_TEXTS = [
    "{{7*7}}",
    "${7*7}",
    "#{7*7}",
    "<%= 7*7 %>",
    "{0.__class__.__mro__}",
    "%(password)s",
    "'; DROP TABLE contacts; --",
    '" OR 1=1 --',
    "Ünïcödé ‮RTL‬ 🎉 zero​width",
]


def described(detail: Any) -> str:
    """The answer's detail as one text: each problem's path and message, or the message."""
    if isinstance(detail, list):
        return "\n".join(
            f"{item.get('path', item.get('loc'))} {item.get('message', item.get('msg'))} "
            f"{item.get('type', '')}"
            for item in detail
        )
    return str(detail)


async def _existing(stack: Stack) -> str:
    return await stack.automation(doc())


@pytest.mark.parametrize("name,body,fragments", CORPUS, ids=[case[0] for case in CORPUS])
async def test_hostile_document_is_refused_naming_the_problem(
    any_stack: Stack, name: str, body: Callable[[], str], fragments: tuple[str, ...]
) -> None:
    content = body().encode()
    existing = await _existing(any_stack)
    headers = {"Content-Type": "application/json"}
    attempts = [("POST", "/api/v1/automations"), ("PUT", f"/api/v1/automations/{existing}")]
    for method, url in attempts[:1] if name in POST_ONLY else attempts:
        response = await any_stack.http.request(method, url, content=content, headers=headers)
        expected = 413 if name in TOO_LARGE else 422
        assert response.status_code == expected, (method, response.text[:2000])
        text = described(response.json()["detail"])
        for fragment in fragments:
            assert fragment in text, (method, fragment, text[:2000])
        assert len(response.content) < 100_000  # a hostile value is never echoed in full
    # The PUTs left the existing automation as it was.
    kept = await any_stack.http.get(f"/api/v1/automations/{existing}")
    assert kept.json()["version"] == 1


async def test_service_is_healthy_and_runs_after_the_corpus(any_stack: Stack) -> None:
    for _, body, _ in CORPUS:
        response = await any_stack.http.post("/api/v1/automations", content=body().encode())
        assert response.status_code in (413, 422)
    health = await any_stack.http.get("/healthz")
    assert health.status_code == 200, health.text
    if any_stack.flavour == "sqlite":  # one real run is enough; the worker is shared
        run, contact = await run_steps(any_stack, {"tagged": {"type": "add_tag", "tag": "ok"}})
        assert outcomes(run) == {"tagged": ("done", None)}
        assert "ok" in (await any_stack.record(contact["id"]))["tags"]


async def test_hostile_looking_text_is_stored_verbatim(any_stack: Stack) -> None:
    steps = {
        f"s{i}": {"type": "add_tag", "tag": text, "name": text, "next": f"s{i + 1}"}
        for i, text in enumerate(INERT_TEXTS)
    }
    steps[f"s{len(INERT_TEXTS) - 1}"]["next"] = None
    automation_id = await any_stack.automation(doc(steps, start="s0", description="{{7*7}}"))
    stored = (await any_stack.http.get(f"/api/v1/automations/{automation_id}")).json()
    assert [stored["document"]["steps"][f"s{i}"]["tag"] for i in range(len(INERT_TEXTS))] == (
        INERT_TEXTS
    )
    assert stored["document"]["description"] == "{{7*7}}"
    # The SQL strings did nothing to the database.
    assert (await any_stack.http.get(f"/api/v1/automations/{automation_id}")).status_code == 200
    await any_stack.contact()


async def test_goto_loop_without_wait_is_saved_with_a_warning(stack: Stack) -> None:
    response = await stack.http.post(
        "/api/v1/automations",
        json=doc(
            {
                "a": {"type": "add_tag", "tag": "x", "next": "b"},
                "b": {"type": "goto", "target": "a"},
            }
        ),
    )
    assert response.status_code == 201, response.text
    (warning,) = response.json()["warnings"]
    assert warning["path"] == "steps.b.target" and "goto_limit" in warning["message"]


# --- request limits at the edges --------------------------------------------------------


async def _chunks(total: int) -> AsyncIterator[bytes]:
    """A JSON document of `total` bytes or so, streamed without Content-Length (chunked)."""
    yield b'{"name": "big", "start": "a", "steps": {"a": {"type": "end", "name": "'
    for _ in range(total // 65536):
        yield b"n" * 65536
    yield b'"}}}'


async def test_chunked_body_is_answered_at_the_limit_not_at_its_end(stack: Stack) -> None:
    """Over a real socket: a chunked body that never ends gets its 413 once past the limit."""
    async with served_api(stack) as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                b"POST /api/v1/automations HTTP/1.1\r\nHost: cairn.test\r\n"
                + f"Api-Token: {API_TOKEN}\r\n".encode()
                + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"n" * 65536
            for _ in range(MAX_DOCUMENT_BYTES // len(chunk) + 2):  # just past the limit
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            # The body is not finished (no last chunk), yet the answer is already there.
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
            assert head.startswith(b"HTTP/1.1 413"), head
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            body = await asyncio.wait_for(reader.readexactly(length), timeout=30)
            assert f"{MAX_DOCUMENT_BYTES:,} bytes" in json.loads(body)["detail"]
        finally:
            writer.close()
        async with httpx.AsyncClient(base_url=base_url) as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_chunked_body_in_process_gets_413(stack: Stack) -> None:
    response = await stack.http.post("/api/v1/automations", content=_chunks(3_000_000))
    assert response.status_code == 413, response.text
    assert f"{MAX_DOCUMENT_BYTES:,} bytes" in response.json()["detail"]


async def test_event_limits(any_stack: Stack) -> None:
    contact = await any_stack.contact()

    async def event(data: Any, **extra: Any) -> httpx.Response:
        body = {"contact": contact["id"], "event": "hostile", "data": data, **extra}
        return await any_stack.http.post("/api/v1/events", json=body)

    too_big = await event({"blob": "x" * MAX_EVENT_BYTES})
    assert too_big.status_code == 413 and f"{MAX_EVENT_BYTES:,} bytes" in too_big.text

    nested: Any = "leaf"
    for _ in range(MAX_EVENT_DATA_DEPTH):
        nested = {"n": nested}
    assert (await event(nested)).status_code == 202  # data itself is the first level
    too_deep = await event({"n": nested})
    assert too_deep.status_code == 422 and f"at most {MAX_EVENT_DATA_DEPTH} levels" in too_deep.text

    # Built as text: json.dumps itself would recurse too deep on it.
    body = f'{{"contact": {contact["id"]}, "event": "deep", "data": {{"d": {"[" * 5000}{"]" * 5000}}}}}'
    response = await any_stack.http.post("/api/v1/events", content=body)
    assert response.status_code == 422 and f"more than {MAX_JSON_DEPTH} levels" in response.text

    for data, extra in (
        ({"note": "a\u0000b"}, {}),
        ({}, {"event": "a\u0000b"}),
        ({"k\u0000": 1}, {}),
    ):
        refused = await event(data, **extra)
        assert refused.status_code == 422 and "NUL" in refused.text, refused.text

    too_many = await event({f"k{i}": i for i in range(101)})
    assert too_many.status_code == 422

    fine = await event({"n": {"n": {"html": "<script>alert(1)</script>", "emoji": "🎉"}}})
    assert fine.status_code == 202, fine.text


async def test_contact_nul_and_nested_fields_are_refused(any_stack: Stack) -> None:
    """NUL would reach PostgreSQL (which refuses it in text) and custom fields are flat."""
    for body in (
        {"email": f"{any_stack.unique()}@example.com", "first_name": "Eve\u0000"},
        {"email": f"{any_stack.unique()}@example.com", "fields": {"plan": {"nested": {"x": 1}}}},
        {"email": f"{any_stack.unique()}\u0000@example.com"},
    ):
        response = await any_stack.http.post("/api/v1/contacts", json=body)
        assert response.status_code == 422, response.text
    assert (await any_stack.http.get("/healthz")).status_code == 200


async def test_other_engines_placeholders_are_saved_with_a_warning(stack: Stack) -> None:
    """`{{...}}` and `${...}` are plain text in Cairn: saved, sent as written, and flagged."""
    step = {"type": "send_email", "subject": "Hi {{ first_name }}", "html": "<p>${7*7}</p>"}
    response = await stack.http.post("/api/v1/automations", json=doc({"a": step}))
    assert response.status_code == 201, response.text
    warnings = {(w["path"], w["message"]) for w in response.json()["warnings"]}
    assert any(
        path == "steps.a.subject" and '"%FIRSTNAME%"' in message for path, message in warnings
    ), warnings
    assert any(path == "steps.a.html" and "${7*7}" in message for path, message in warnings)


async def test_hostile_ids_in_the_path_are_unknown_automations(any_stack: Stack) -> None:
    body = doc()
    for bad in ("..%2F..%2Fetc%2Fpasswd", "a" * 500, "%00", "a%00b", "%E2%80%AEx", "🚀"):
        for method in ("GET", "PUT", "DELETE"):
            response = await any_stack.http.request(
                method, f"/api/v1/automations/{bad}", json=body if method == "PUT" else None
            )
            assert response.status_code == 404, (method, bad, response.text)
    nul_query = await any_stack.http.get("/api/v1/deals", params={"pipeline": "a\u0000"})
    assert nul_query.status_code == 422 and "NUL" in nul_query.text, nul_query.text
