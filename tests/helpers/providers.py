"""A real HTTP server on 127.0.0.1 standing in for a provider (webhook receiver, Graph API,
Salesforce): it records every request exactly as received and answers from a programmable queue.
Plus the few helpers the integration tests share: settings for a while, one-contact runs.

The server runs `http.server` in a thread, so it answers while the test's event loop (which also
runs the worker) is busy awaiting.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.helpers.runs import finished
from tests.helpers.stack import Stack
from workflows.contracts import StepOutcome


@dataclass
class Received:
    """One request as it arrived: nothing parsed away."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    at: float = 0.0  # when it arrived, time.monotonic(): gaps between requests are checkable

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def form(self) -> dict[str, str]:
        """The urlencoded body as a dict (for readable asserts next to the byte-for-byte ones)."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def query_params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to hold the answer (a slow provider: the caller's timeout)
    # Record the request, then close the connection unanswered: the provider did the work but
    # the caller never learnt it (a crash between the provider's create and storing its id).
    hang_up: bool = False


class FakeServer:
    """Answers queued replies in order, then `default` once the queue is empty."""

    def __init__(self, default: Reply | None = None, *, port: int = 0) -> None:
        self.received: list[Received] = []
        self.answered: list[Reply] = []  # what each request in `received` was answered
        self.replies: deque[Reply] = deque()
        self.default = default or Reply(200, b"{}", {"Content-Type": "application/json"})
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(
        self,
        status: int = 200,
        body: bytes | str | dict[str, Any] | list[Any] = b"",
        headers: dict[str, str] | None = None,
        *,
        delay: float = 0.0,
        hang_up: bool = False,
    ) -> FakeServer:
        """Queue one answer; a dict or list body is sent as JSON. `delay` holds it that many
        seconds; `hang_up` closes the connection instead of answering."""
        headers = dict(headers or {})
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        with self._lock:
            self.replies.append(Reply(status, body, headers, delay, hang_up))
        return self

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.answered.clear()
            self.replies.clear()

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: Received) -> Reply:
        with self._lock:
            self.received.append(request)
            reply = self.replies.popleft() if self.replies else self.default
            self.answered.append(reply)
            return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                received = Received(
                    self.command, path, query, list(self.headers.items()), body, time.monotonic()
                )
                reply = fake._next(received)
                if reply.hang_up:
                    self.close_connection = True
                    return
                time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the caller stopped waiting (a held answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


@contextmanager
def fake_server(default: Reply | None = None, *, port: int = 0) -> Iterator[FakeServer]:
    """A started FakeServer; `port` 0 picks a free one (a fixed one: a provider back on its port)."""
    server = FakeServer(default, port=port).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def configured(settings: Any, **values: Any) -> Iterator[None]:
    """Set some of a running stack's settings (shared in-process with its worker) for a while."""
    saved = {name: getattr(settings, name) for name in values}
    for name, value in values.items():
        setattr(settings, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)


async def run_steps(
    stack: Stack, steps: dict[str, dict[str, Any]], contact: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a fresh contact through an automation of `steps` (the first one starts it).

    Returns (the finished run as the API shows it, the contact as created).
    """
    automation_id = await stack.automation({"start": next(iter(steps)), "steps": steps})
    return await run_contact(stack, automation_id, contact)


async def run_contact(
    stack: Stack, automation_id: str, contact: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a fresh contact through an existing automation; (finished run, contact)."""
    values = dict(contact or {})
    tags = values.pop("tags", [])
    created = await stack.contact(**values)
    for tag in tags:
        response = await stack.http.post(
            f"/api/v1/contacts/{created['id']}/tags", json={"tag": tag}
        )
        assert response.status_code in (200, 201), response.text
    handle = await stack.enroll(created["id"], automation_id)
    return await finished(stack, handle.id), created


def outcomes(run: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Step id → (outcome, reason) of a finished run."""
    return {s["step"]: (s["outcome"], s["reason"]) for s in run["steps"]}


def _scheduled(history: Any) -> dict[int, str]:
    return {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }


async def started_activities(stack: Stack, workflow_id: str, activity_type: str) -> list[Any]:
    """The ActivityTaskStarted events of one activity type: its attempt and last failure."""
    history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = _scheduled(history)
    return [
        e.activity_task_started_event_attributes
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and scheduled[e.activity_task_started_event_attributes.scheduled_event_id] == activity_type
    ]


async def activity_results(stack: Stack, workflow_id: str) -> dict[str, StepOutcome]:
    """Activity type → what its completed task returned, decoded: what the Temporal UI shows."""
    history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = _scheduled(history)
    results = {}
    for event in history.events:
        if event.HasField("activity_task_completed_event_attributes"):
            done = event.activity_task_completed_event_attributes
            (outcome,) = await stack.client.data_converter.decode(
                done.result.payloads, [StepOutcome]
            )
            results[scheduled[done.scheduled_event_id]] = outcome
    return results
