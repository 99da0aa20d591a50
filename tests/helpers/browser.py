"""Cairn Studio in a real browser: the test stack's API served over real HTTP (with the built
bundle), headless Chromium at 1280×800 driven by Playwright, a screenshot of each page under
test-artifacts/studio/ and an axe-core audit that fails on serious or critical violations.

Chromium is the system's (`/usr/bin/chromium`, or CAIRN_TEST_CHROMIUM): nothing is downloaded.
`missing()` says what is needed when the browser tests cannot run (docs/studio.md#tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.served import served_api
from tests.helpers.stack import API_TOKEN, Stack

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CAIRN_TEST_CHROMIUM", "/usr/bin/chromium"))
BUNDLE = ROOT / "ui" / "dist" / "index.html"
AXE = ROOT / "ui" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "studio"
VIEWPORT = {"width": 1280, "height": 800}
# What a screenshot or an audit may wait for at most (ms): the pages poll every 3 s.
TIMEOUT_MS = 15_000


def missing() -> list[str]:
    """What this machine lacks to run the browser tests, each with how to get it."""
    lacks = []
    if not CHROMIUM.is_file():
        lacks.append(f"{CHROMIUM} (apt-get install -y chromium, or set CAIRN_TEST_CHROMIUM)")
    if not BUNDLE.is_file() or not AXE.is_file():
        lacks.append("the Studio's bundle and ui/node_modules (Node.js >= 20, then `make ui`)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        lacks.append("the playwright Python package (`make .venv` installs the dev extra)")
    return lacks


@dataclass
class Studio:
    """One browser page on the Studio, signed in or not."""

    base_url: str
    page: Any  # playwright.async_api.Page
    stack: Stack
    console_errors: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path

    async def goto(self, path: str) -> None:
        await self.page.goto(self.url(path))

    async def sign_in(self, token: str = API_TOKEN) -> None:
        await self.goto("/signin")
        await self.page.get_by_label("API token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.wait_for_url(re.compile(r".*/automations$"), timeout=TIMEOUT_MS)

    async def screenshot(self, name: str, *, path: Path | None = None) -> Path:
        """Saves the page as test-artifacts/studio/<name>.png (or `path`)."""
        target = path or ARTIFACTS / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(target))
        return target

    async def audit(self, name: str) -> None:
        """axe-core on the page as it is: fails on serious or critical violations."""
        if not await self.page.evaluate("typeof window.axe !== 'undefined'"):
            await self.page.add_script_tag(path=str(AXE))
        result = await self.page.evaluate(
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))"
        )
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not bad, f"accessibility violations on {name}: {bad}"

    async def check(self, name: str) -> None:
        """The screenshot and the audit every page gets."""
        await self.screenshot(name)
        await self.audit(name)


@asynccontextmanager
async def studio_browser(stack: Stack) -> AsyncIterator[Any]:
    """Headless Chromium (the system's), closed at the end."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def open_studio(stack: Stack, browser: Any, *, base_url: str) -> AsyncIterator[Studio]:
    """A fresh browser context (its own sessionStorage) on the served Studio."""
    context = await browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    studio = Studio(base_url, page, stack)
    page.on(
        "console",
        lambda message: (
            studio.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    try:
        yield studio
    finally:
        await context.close()


@asynccontextmanager
async def served_studio(stack: Stack) -> AsyncIterator[str]:
    """The stack's API and the built Studio over real HTTP; yields the base URL."""
    async with served_api(stack) as base_url:
        yield base_url
