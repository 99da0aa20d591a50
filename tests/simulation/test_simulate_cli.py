"""`cairn simulate` against a real HTTP API, and a server that cannot skip time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cli.main import main
from core.settings import get_settings
from core.temporal import SEARCH_ATTRIBUTES
from tests.helpers.served import served_api
from tests.helpers.stack import API_TOKEN, TEMPORAL_BIN, Mailbox, Stack, stack_of, stack_settings

DRAFT = """\
name: Welcome series
start: welcome
steps:
  welcome:
    type: send_email
    subject: "Welcome, %FIRSTNAME%"
    html: "<p>Glad you're here, %FIRSTNAME%.</p>"
    next: pause
  pause: {type: wait, for: {days: 2}, next: offer}
  offer:
    type: send_email
    subject: "20% off, %FIRSTNAME%"
    html: "<p>Your code: WELCOME20</p>"
    next: later
  later: {type: wait, for: {days: 5}, next: reminder}
  reminder: {type: send_email, subject: "Last chance", html: "<p>Ends today</p>"}
  bought:
    type: goal
    condition: {event: purchase}
    next: thanks
  thanks: {type: add_tag, tag: customer}
"""


@pytest.fixture(scope="module")
async def api_url(stack: Stack) -> AsyncIterator[str]:
    async with served_api(stack) as url:
        yield url


@pytest.fixture(autouse=True)
def token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CAIRN_API_TOKEN", API_TOKEN)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def cairn(api_url: str, *argv: str) -> int:
    return await asyncio.to_thread(main, [*argv, "--api-url", api_url])


async def test_simulate_prints_a_timeline_with_the_messages(
    api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = tmp_path / "welcome.yaml"
    draft.write_text(DRAFT)
    ada = tmp_path / "ada.json"
    ada.write_text(json.dumps({"first_name": "Ada", "email": "ada@example.com"}))

    code = await cairn(
        api_url,
        "simulate",
        str(draft),
        "--contact",
        str(ada),
        "--event",
        "2h click welcome",
        "--event",
        "3d purchase",
    )
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["+0s", "welcome", "send_email", "done", '"Welcome,', '%FIRSTNAME%"']
    assert "reminder" not in out and "Last chance" not in out
    assert any(
        line.split()[:4] == ["+0s", "✉", "email", "to"] and "Welcome, Ada" in line for line in lines
    )
    assert any(line.split()[:5] == ["+2h", "»", "script", "email", "of"] for line in lines)
    assert any(line.split()[:4] == ["+2d", "offer", "send_email", "done"] for line in lines)
    assert any(line.split()[:5] == ["+3d", "»", "script", "event", "purchase"] for line in lines)
    assert any(line.split()[:4] == ["+3d", "thanks", "add_tag", "done"] for line in lines)
    assert "completed after +3d of virtual time" in out
    assert "goals: bought" in out
    assert "Glad you're here, Ada." in out and "Your code: WELCOME20" in out
    assert "Temporal UI: http" in out


async def test_simulate_says_what_is_wrong(
    api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cairn(api_url, "simulate", "no-such-automation") == 1
    assert "simulation refused (404)" in capsys.readouterr().err
    draft = tmp_path / "draft.yaml"
    draft.write_text(DRAFT.replace('subject: "Welcome, %FIRSTNAME%"', "subject: ''"))
    assert await cairn(api_url, "simulate", str(draft)) == 1
    assert "welcome:" in capsys.readouterr().err
    assert await cairn(api_url, "simulate", str(draft), "--event", "soon purchase") == 1
    assert "'soon' is not an offset" in capsys.readouterr().err


async def test_a_server_without_time_skipping_answers_501_naming_the_setting(
    mailbox: Mailbox, tmp_path: Path
) -> None:
    plain = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_BIN),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
    )
    try:
        settings = await stack_settings(tmp_path, mailbox, "sqlite", "cairn-no-skipping")
        async with stack_of(settings, plain, mailbox) as stack:
            automation = await stack.automation(
                {"start": "t", "steps": {"t": {"type": "add_tag", "tag": "x"}}}
            )
            answer = await stack.http.post(f"/api/v1/automations/{automation}/simulate", json={})
            assert answer.status_code == 501, answer.text
            assert "frontend.WorkflowTimeSkippingEnabled=true" in answer.json()["detail"]
    finally:
        await plain.shutdown()
