"""The README's Studio screenshots (docs/images/studio-*.png), taken with the browser harness
against the test stack with some data. Only on demand, as they change the repository:

    CAIRN_STUDIO_SCREENSHOTS=1 .venv/bin/pytest tests/studio/test_doc_screenshots.py
"""

from __future__ import annotations

import os
import re

import pytest

from tests.helpers.browser import ROOT, Studio
from tests.helpers.stack import Stack, eventually

pytestmark = pytest.mark.skipif(
    not os.environ.get("CAIRN_STUDIO_SCREENSHOTS"),
    reason="rewrites docs/images: run with CAIRN_STUDIO_SCREENSHOTS=1",
)
IMAGES = ROOT / "docs" / "images"

WELCOME = {
    "name": "Welcome series",
    "triggers": [{"type": "tag_added", "tag": "lead"}],
    "start": "welcome",
    "steps": {
        "welcome": {
            "type": "send_email",
            "subject": "Welcome, %FIRSTNAME%",
            "html": "<p>Hello!</p>",
            "next": "pause",
        },
        "pause": {"type": "wait", "for": {"days": 2}, "name": "Give them two days", "next": "test"},
        "test": {
            "type": "split",
            "mode": "even",
            "paths": [{"next": "short"}, {"next": "long"}],
        },
        "short": {"type": "add_tag", "tag": "short-copy", "next": "check"},
        "long": {"type": "add_tag", "tag": "long-copy", "next": "check"},
        "check": {
            "type": "if_else",
            "condition": {"event": "purchase"},
            "yes": "customer",
            "no": "reminder",
        },
        "customer": {"type": "add_tag", "tag": "customer"},
        "reminder": {
            "type": "send_email",
            "subject": "Still thinking, %FIRSTNAME%?",
            "html": "<p>10% off today.</p>",
        },
    },
}


async def test_take_the_readme_screenshots(signed_in: Studio, stack: Stack) -> None:
    page = signed_in.page
    automation = await stack.automation(WELCOME)
    for name, tag in (("Re-engagement", "dormant"), ("Trial follow-up", "trial")):
        other = await stack.automation(
            {
                "name": name,
                "triggers": [{"type": "tag_added", "tag": tag}],
                "start": "nudge",
                "steps": {"nudge": {"type": "add_tag", "tag": "nudged"}},
            }
        )
        for _ in range(3):
            await stack.enroll((await stack.contact())["id"], other)
    for i in range(6):  # through the whole flow (time skipping: the two days pass at once)
        contact = await stack.contact(first_name=f"Done{i}")
        await stack.enroll(contact["id"], automation)
    with stack.env.with_time_skipping_disabled():  # these wait at "pause"
        for i in range(4):
            contact = await stack.contact(first_name=f"Wait{i}")
            await stack.enroll(contact["id"], automation)

    async def settled() -> None:
        report = (await stack.http.get(f"/api/v1/automations/{automation}/report")).json()
        assert report["runs"]["running"] == 4 and report["runs"]["completed"] == 6, report["runs"]

    await eventually(settled, within=30)
    await signed_in.goto("/automations")
    await page.get_by_role("row").filter(has_text="Welcome series").wait_for()
    await page.wait_for_timeout(3500)  # one more poll
    await signed_in.screenshot("readme-automations", path=IMAGES / "studio-automations.png")

    await signed_in.goto(f"/automations/{automation}")
    await page.get_by_role("button", name=re.compile(r"^Step pause:")).click()
    await page.get_by_role("complementary", name="Step pause").get_by_role("link").first.wait_for()
    await page.wait_for_timeout(1000)
    await signed_in.screenshot("readme-automation", path=IMAGES / "studio-automation.png")
