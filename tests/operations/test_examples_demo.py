"""examples/ are valid automations, and `make demo` completes against a real API."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cli.demo import EXAMPLES
from cli.operate import load_document
from tests.helpers.served import served_api
from tests.helpers.stack import API_TOKEN, Stack
from workflows.document import validate_automation

REPO = EXAMPLES.parent
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


async def test_make_demo_completes(stack: Stack, api_url: str) -> None:
    """`make demo` as a user runs it, pointed at the test stack's API by CAIRN_* variables."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    process = await asyncio.create_subprocess_exec(
        make,
        "--no-print-directory",
        # Never a pip install from a test, even if pyproject.toml is newer than the stamp.
        "--old-file=.venv/.installed",
        "demo",
        cwd=REPO,
        env={
            **os.environ,
            "CAIRN_API_HOST": "127.0.0.1",
            "CAIRN_API_PORT": str(urlsplit(api_url).port),
            "CAIRN_API_TOKEN": API_TOKEN,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    out = output.decode()
    assert process.returncode == 0, out
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

    # Grace, qualified by sales, went through the webhook + Salesforce example: the placeholder
    # warehouse URL does not resolve (a failed step the run goes past), Salesforce is not
    # configured (skipped), and the run completed.
    grace = (await stack.http.post("/api/v1/contacts", json={"email": "grace@example.com"})).json()
    assert "qualified" in grace["tags"]
    synced = next(a for a in grace["automations"] if a["automation"] == "webhook-salesforce")
    assert synced["status"] == "completed", synced
    run = await stack.run(synced["workflow_id"])
    outcomes = {s["step"]: (s["outcome"], s["reason"]) for s in run["steps"]}
    assert outcomes["warehouse"][0] == "failed"
    assert "hooks.example.com" in outcomes["warehouse"][1]
    assert outcomes["salesforce"] == ("skipped", "provider_not_configured")
