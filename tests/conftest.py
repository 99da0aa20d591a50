"""Shared fixtures: a real Temporal dev server (time-skipping v2), real SMTP, real databases.

One dev server per session; one Cairn stack (database, worker, API, outbox dispatchers) per
database flavour. SQLite always; PostgreSQL too when CAIRN_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core.temporal import SEARCH_ATTRIBUTES
from tests.helpers.stack import DATABASES, TEMPORAL_BIN, Mailbox, Stack, flavoured_stack


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=str(TEMPORAL_BIN),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
            # Continue-as-new after 50 events, so tests see it happen in a short loop.
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=50",
        ],
    )
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="session")
def mailbox() -> Any:
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture(scope="session")
async def stack(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The SQLite stack: the embedded default, used by the workflow tests."""
    async for s in flavoured_stack(env, mailbox, tmp_path_factory.mktemp("sqlite"), "sqlite"):
        yield s


@pytest.fixture(scope="session")
async def pg_stack(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async for s in flavoured_stack(env, mailbox, tmp_path_factory.mktemp("postgres"), "postgres"):
        yield s


@pytest.fixture(params=DATABASES)
def any_stack(request: pytest.FixtureRequest) -> Stack:
    """Store and API tests run against every database flavour available."""
    return request.getfixturevalue("stack" if request.param == "sqlite" else "pg_stack")  # type: ignore[no-any-return]
