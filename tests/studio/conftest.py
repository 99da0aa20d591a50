"""Fixtures for the Studio's browser tests: the served app, one Chromium per session, a fresh
page per test. Without Chromium, Node.js or a built bundle the browser tests are skipped and
the run's summary says which and how to enable them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers.browser import Studio, missing, open_studio, served_studio, studio_browser
from tests.helpers.stack import Stack

BROWSER_FIXTURES = {"studio", "signed_in"}
_skipped: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lacks = missing()
    if not lacks:
        return
    reason = "Studio browser test needs " + "; ".join(lacks)
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.skip(reason=reason))
            _skipped.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _skipped:
        return
    terminalreporter.section("Cairn Studio browser tests SKIPPED", sep="!", yellow=True, bold=True)
    for line in missing():
        terminalreporter.write_line(f"missing: {line}", yellow=True)
    for nodeid in _skipped:
        terminalreporter.write_line(f"skipped: {nodeid}", yellow=True)
    terminalreporter.write_line(
        "enable them: apt-get install -y chromium; Node.js >= 20; make ui (docs/studio.md#tests)",
        yellow=True,
    )


@pytest.fixture(scope="session")
async def studio_url(stack: Stack) -> AsyncIterator[str]:
    async with served_studio(stack) as base_url:
        yield base_url


@pytest.fixture(scope="session")
async def browser(stack: Stack) -> AsyncIterator[Any]:
    async with studio_browser(stack) as chromium:
        yield chromium


@pytest.fixture
async def studio(stack: Stack, browser: Any, studio_url: str) -> AsyncIterator[Studio]:
    """A fresh page on the Studio, not signed in."""
    async with open_studio(stack, browser, base_url=studio_url) as page:
        yield page


@pytest.fixture
async def signed_in(studio: Studio) -> Studio:
    await studio.sign_in()
    return studio
