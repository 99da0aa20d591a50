"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from store.db import open_database
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
