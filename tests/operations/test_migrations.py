"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from store.db import alembic_config, open_database
from store.models import Base
from tests.helpers.stack import POSTGRES_URL, drop_postgres_database, fresh_postgres_database


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, Base.metadata))


async def _check(url: str) -> None:
    db = await open_database(url)
    await db.migrate()  # a second run is a no-op
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
    await db.dispose()


async def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.skipif(not POSTGRES_URL, reason="CAIRN_TEST_POSTGRES_URL not set")
async def test_postgres_schema_matches_models() -> None:
    assert POSTGRES_URL
    url = await fresh_postgres_database(POSTGRES_URL)
    try:
        await _check(url)
    finally:
        await drop_postgres_database(POSTGRES_URL, url)


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def _merges_spellings(url: str) -> None:
    """Tags and lists spelled in several cases before 0008 become one name, the first spelling."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_to, "0007")
        await conn.execute(
            text(
                "INSERT INTO contacts (id, email, fields, bounced, created_at, updated_at) VALUES "
                "(1, 'a@x.test', '{}', false, :t, :t), (2, 'b@x.test', '{}', false, :t, :t)"
            ),
            {"t": datetime(2026, 1, 1)},
        )
        await conn.execute(
            text("INSERT INTO contact_tags (contact_id, tag, created_at) VALUES (:c, :tag, :t)"),
            [
                {"c": 1, "tag": "VIP", "t": datetime(2026, 1, 1)},  # first spelling
                {"c": 1, "tag": "vip", "t": datetime(2026, 1, 2)},  # same contact, twice
                {"c": 2, "tag": "Vip", "t": datetime(2026, 1, 3)},
                {"c": 2, "tag": "lead", "t": datetime(2026, 1, 3)},
            ],
        )
        await conn.execute(
            text(
                "INSERT INTO subscriptions (contact_id, list, status, updated_at) "
                "VALUES (:c, :list, :status, :t)"
            ),
            [
                {"c": 1, "list": "News", "status": "active", "t": datetime(2026, 1, 1)},
                {"c": 1, "list": "news", "status": "unsubscribed", "t": datetime(2026, 1, 5)},
                {"c": 2, "list": "NEWS", "status": "active", "t": datetime(2026, 1, 2)},
            ],
        )
    await engine.dispose()
    db = await open_database(url)  # migrates to head
    async with db.read() as session:
        tags = (await session.execute(text("SELECT contact_id, tag FROM contact_tags"))).all()
        lists = (
            await session.execute(text("SELECT contact_id, list, status FROM subscriptions"))
        ).all()
    await db.dispose()
    assert sorted(tags) == [(1, "VIP"), (2, "VIP"), (2, "lead")]
    # A contact on both spellings keeps its most recent status.
    assert sorted(lists) == [(1, "News", "unsubscribed"), (2, "News", "active")]


async def test_sqlite_merges_tag_and_list_spellings(tmp_path: Path) -> None:
    await _merges_spellings(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.skipif(not POSTGRES_URL, reason="CAIRN_TEST_POSTGRES_URL not set")
async def test_postgres_merges_tag_and_list_spellings() -> None:
    assert POSTGRES_URL
    url = await fresh_postgres_database(POSTGRES_URL)
    try:
        await _merges_spellings(url)
    finally:
        await drop_postgres_database(POSTGRES_URL, url)
