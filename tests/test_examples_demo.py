"""examples/ are valid automations, and `make demo` (`cairn demo`) completes against a real API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import API_TOKEN, Stack
from tests.served import served_api
from worker.cli import main
from worker.demo import EXAMPLES
from worker.operate import load_document
from workflows.document import validate_automation

FILES = sorted(p for p in EXAMPLES.iterdir() if p.suffix in {".json", ".yaml", ".yml"})
FAMILIES = {
    "welcome-series",
    "abandoned-cart",
    "lead-scoring",
    "sales-pipeline",
    "re-engagement",
    "webhook-salesforce",
    "facebook-retargeting",
    "birthday",
}


def test_one_example_per_family() -> None:
    assert {load_document(p)["id"] for p in FILES} == FAMILIES


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_is_valid(path: Path) -> None:
    automation, problems = validate_automation(load_document(path), known_automations=FAMILIES)
    assert automation is not None, problems
    assert problems == []


@pytest.fixture
async def api_url(stack: Stack) -> AsyncIterator[str]:
    async with served_api(stack) as url:
        yield url
    # The examples listen to common triggers (the newsletter list, tags): switched off again
    # so that they enroll no contact of the tests that follow.
    for path in FILES:
        await stack.http.delete(f"/api/v1/automations/{load_document(path)['id']}")


async def test_demo_completes(
    stack: Stack, api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--api-url", api_url, "--token", API_TOKEN, "--timeout", "240"]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    for family in FAMILIES:
        assert f" {family} (version " in out
    assert "imported 10 of 11 rows" in out
    assert "contacts.csv:12: invalid email 'not-an-email' (left out)" in out
    assert "settled" in out
    assert (
        f"{stack.settings.temporal_ui_url}/namespaces/default/workflows/cairn%3Asales-pipeline%3A"
        in out
    )

    # What the personas did reached the automations.
    ada = (await stack.http.post("/api/v1/contacts", json={"email": "ada@example.com"})).json()
    assert ada["scores"]["lead"] >= 50
    assert {"sales-pipeline", "lead-scoring", "welcome-series"} <= {
        a["automation"] for a in ada["automations"]
    }
    assert ada["deals"], ada
    edsger = (
        await stack.http.post("/api/v1/contacts", json={"email": "edsger@example.com"})
    ).json()
    cart = next(a for a in edsger["automations"] if a["automation"] == "abandoned-cart")
    run = await stack.run(cart["workflow_id"])
    assert run["goals"] == ["purchased"]
