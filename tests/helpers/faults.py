"""Helpers of the fault tests: `cairn` subprocesses (a worker, an API) to kill, and a Cairn stack of a test's
own (its database, API and outbox dispatcher, no in-process worker), so nothing else in the
session (another stack's dispatcher, another test's runs) touches what the test measures."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from temporalio.client import Client

from core.settings import Settings
from store.db import open_database
from store.models import ActionLog
from tests.helpers.stack import (
    POSTGRES_URL,
    Mailbox,
    Stack,
    api_client,
    drop_postgres_database,
    free_port,
    stack_settings,
)


@asynccontextmanager
async def cairn_process(
    command: str, env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`cairn <command>` as its own process, this environment plus `env`, its output in `log`;
    stopped on exit (SIGTERM, then SIGKILL after 20 s) unless the test killed it already."""
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            command,
            env={**os.environ, **env},
            cwd=log.parent,  # no stray .env file is read
            stdout=output,
            stderr=output,
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()


@asynccontextmanager
async def worker_process(
    settings: Settings, temporal_address: str, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`cairn worker` as its own process, configured from `settings`; stopped on exit."""
    env = {
        "CAIRN_TEMPORAL_ADDRESS": temporal_address,
        "CAIRN_DATABASE_URL": settings.database_url,
        "CAIRN_TASK_QUEUE": settings.task_queue,
        "CAIRN_SMTP_HOST": settings.smtp_host,
        "CAIRN_SMTP_PORT": str(settings.smtp_port),
        "CAIRN_OUTBOX_POLL_SECONDS": str(settings.outbox_poll_seconds),
    }
    async with cairn_process("worker", env, log) as process:
        yield process


async def count(stack: Stack, query: Any) -> int:
    async with stack.db.read() as session:
        return int(await session.scalar(query) or 0)


@asynccontextmanager
async def own_stack(
    client: Client, mailbox: Mailbox, tmp: Path, flavour: str = "sqlite"
) -> AsyncIterator[Stack]:
    """A fresh database with Cairn's API (over ASGI) and its outbox dispatcher on a queue of
    its own; the worker is left to the test (a subprocess it can kill)."""
    settings = await stack_settings(tmp, mailbox, flavour, "cairn-fault")
    url = settings.database_url
    db = await open_database(url)
    try:
        async with api_client(settings, client, db, request_timeout=60) as http:
            # No WorkflowEnvironment: this stack's Temporal may be a server the test owns.
            yield Stack(settings, db, client, None, http, mailbox, flavour)  # type: ignore[arg-type]
    finally:
        await db.dispose()
        if flavour == "postgres" and POSTGRES_URL:
            await drop_postgres_database(POSTGRES_URL, url)


@contextmanager
def commit_lost_once(automation_id: str, write: int = 1) -> Iterator[list[str]]:
    """The database connection "drops" right after committing the `write`-th action-log row of
    `automation_id`'s runs: the step's write went through, yet its activity fails and is
    retried. Yields the action-log keys written, in order (a retry that finds its key writes
    none)."""
    keys: list[str] = []
    lost: list[bool] = []

    def note_the_write(session: Session, _context: Any, _instances: Any) -> None:
        for row in session.new:
            if isinstance(row, ActionLog) and row.key.startswith(f"cairn:{automation_id}:"):
                keys.append(row.key)
                if len(keys) == write:
                    session.info["lose_this_commit"] = True

    def lose_the_connection(session: Session) -> None:
        if session.info.pop("lose_this_commit", False) and not lost:
            lost.append(True)
            raise OperationalError("COMMIT", {}, Exception("connection lost after commit"))

    event.listen(Session, "before_flush", note_the_write)
    event.listen(Session, "after_commit", lose_the_connection)
    try:
        yield keys
    finally:
        event.remove(Session, "before_flush", note_the_write)
        event.remove(Session, "after_commit", lose_the_connection)
    assert lost, f"no commit of write {write} was lost: {keys}"


class TcpProxy:
    """A TCP relay to the database on a port of its own: cut, it refuses new connections and
    drops open ones, as when the database host goes away; restored on the same port."""

    def __init__(self, target_port: int) -> None:
        self.port, self.target_port = free_port(), target_port
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._open:
            writer.transport.abort()
        self._open.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


def held_until(event: str) -> dict[str, Any]:
    """Contacts wait (a day at most) for `event`, then are tagged: passing it = woken by it."""
    return {
        "start": "hold",
        "steps": {
            "hold": {
                "type": "wait",
                "condition": {"event": event},
                "timeout": {"days": 1},
                "next": "woken",
            },
            "woken": {"type": "add_tag", "tag": event},
        },
    }
