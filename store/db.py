"""Engines and sessions for SQLite (embedded) and PostgreSQL (production), and migrations at start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.logs import quiet_leaky_loggers

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# The API and the worker write the same SQLite file concurrently: a busy timeout makes a writer
# wait for another process's transaction instead of failing at once with "database is locked".
# Any sane transaction ends well within it; a lock held longer (a stuck process, a long manual
# transaction) then shows as errors that are handled (activities retry, the API answers 503)
# rather than as writers silently queued behind it.
SQLITE_BUSY_TIMEOUT_MS = 10_000


class DatabaseBusy(Exception):
    """A write waited longer than its process allows for the database's lock."""


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool, busy_timeout_ms: int) -> None:
    """Let SQLAlchemy, not the driver, open transactions; writers take the lock up front.

    A deferred transaction that reads and then writes cannot wait for the lock when another
    writer committed in between (SQLite returns SQLITE_BUSY at once, busy timeout or not).
    `BEGIN IMMEDIATE` takes the write lock at the start, where the busy timeout applies.
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        _sqlite_pragmas(dbapi_connection, busy_timeout_ms)

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One per process: `write()` for transactions that change data, `read()` for the rest.

    `lock_wait` (seconds) bounds how long a statement waits for a lock before failing (SQLite:
    also the wait for this process's other writers): the API sets it, so that a locked database
    answers a clear 503 soon rather than hanging requests. None: the defaults, for the worker.
    """

    def __init__(self, url: str, *, pool_size: int = 10, lock_wait: float | None = None) -> None:
        self.url = url
        self.lock_wait = lock_wait
        quiet_leaky_loggers()  # every process holding contact data opens the database
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.is_sqlite:
            self._prepare_sqlite_dir(url)
            busy_ms = SQLITE_BUSY_TIMEOUT_MS if lock_wait is None else int(lock_wait * 1000)
            self.engine = create_async_engine(url, hide_parameters=True)
            self.read_engine = create_async_engine(url, hide_parameters=True)
            _configure_sqlite(self.engine, immediate=True, busy_timeout_ms=busy_ms)
            _configure_sqlite(self.read_engine, immediate=False, busy_timeout_ms=busy_ms)
        else:
            self.engine = create_async_engine(
                url,
                # A database error's text (logged by the API, raised in activities) without the
                # statement's values: they are contacts' emails, phones and fields.
                hide_parameters=True,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                connect_args=_postgres_lock_timeout(url, lock_wait),
            )
            self.read_engine = self.engine
        self._write_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time. Writers of this process queue here, in order, rather
        # than in SQLite's busy handler, which polls with sleeps of up to 100 ms: measured as
        # most of the goal latency under load. Other processes still wait in the busy handler.
        self._writer = asyncio.Lock() if self.is_sqlite else None
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @staticmethod
    def _prepare_sqlite_dir(url: str) -> None:
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed on success."""
        async with self._writer_turn(), self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        """This process's turn to write (SQLite), waited for `lock_wait` s at most if set."""
        if self._writer is None:
            yield
            return
        try:
            async with asyncio.timeout(self.lock_wait):
                await self._writer.acquire()
        except TimeoutError:
            raise DatabaseBusy(f"no turn to write within {self.lock_wait:g} s") from None
        try:
            yield
        finally:
            self._writer.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session:
            yield session

    async def migrate(self) -> None:
        """Apply Alembic migrations up to head (idempotent; safe from several processes)."""
        async with self.engine.connect() as conn:
            await conn.run_sync(_upgrade)
            await conn.commit()

    async def ping(self) -> bool:
        try:
            async with self.read_engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def _postgres_lock_timeout(url: str, lock_wait: float | None) -> dict[str, Any]:
    """asyncpg connection arguments that make a statement fail after `lock_wait` s on a lock."""
    if lock_wait is None or make_url(url).get_driver_name() != "asyncpg":
        return {}
    return {"server_settings": {"lock_timeout": str(int(lock_wait * 1000))}}


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def open_database(url: str, *, lock_wait: float | None = None) -> Database:
    """Open and migrate: every process that touches the database starts here."""
    db = Database(url, lock_wait=lock_wait)
    for attempt in range(5):
        try:
            await db.migrate()
            break
        except Exception:
            # Two processes migrating a fresh database at once: the loser retries and finds
            # the tables in place.
            if attempt == 4:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    return db
