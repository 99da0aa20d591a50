"""Cairn Studio in Chromium against the real stack (docs/studio.md): sign in, the automations
list, the live canvas, a step's side panel, a contact's timeline, contact search paging. Each
page is screenshotted to test-artifacts/studio/ and audited with axe-core."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from tests.helpers.browser import Studio
from tests.helpers.stack import Stack, eventually

WAIT_DOCUMENT: dict[str, Any] = {
    "triggers": [{"type": "tag_added", "tag": "studio-trigger"}],
    "start": "welcome",
    "steps": {
        "welcome": {"type": "add_tag", "tag": "welcomed", "next": "pause"},
        "pause": {"type": "wait", "for": {"days": 30}, "next": "check"},
        "check": {
            "type": "if_else",
            "condition": {"tag": "vip"},
            "yes": "vip",
            "no": None,
        },
        "vip": {"type": "add_tag", "tag": "vip-done"},
    },
}


async def test_sign_in_keeps_the_token_for_the_tab_only(studio: Studio) -> None:
    page = studio.page
    await studio.goto("/automations")
    await page.wait_for_url(re.compile(r".*/signin$"))
    await studio.check("signin")
    await page.get_by_label("API token").fill("not-the-token")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("alert").filter(has_text="refused").wait_for()
    assert await page.evaluate("sessionStorage.getItem('cairn.token')") is None

    await studio.sign_in()
    assert await page.evaluate("sessionStorage.getItem('cairn.token')") == "test-token"
    assert await page.evaluate("localStorage.length") == 0
    assert "test-token" not in page.url
    # Signing out forgets it.
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(re.compile(r".*/signin$"))
    assert await page.evaluate("sessionStorage.getItem('cairn.token')") is None


async def test_the_automations_list_shows_status_and_switches_it(
    signed_in: Studio, stack: Stack
) -> None:
    page = signed_in.page
    automation = await stack.automation(WAIT_DOCUMENT)
    name = (await stack.http.get(f"/api/v1/automations/{automation}")).json()["name"]
    row = page.get_by_role("row").filter(has_text=name)
    await row.wait_for()
    assert "active" in await row.inner_text()
    assert "tag_added" in await row.inner_text()
    await signed_in.check("automations")

    await row.get_by_role("button", name=f"Deactivate {name}").click()

    async def inactive() -> None:
        answer = await stack.http.get(f"/api/v1/automations/{automation}")
        assert answer.json()["status"] == "inactive"

    await eventually(inactive)
    await row.get_by_role("button", name=f"Activate {name}").click()

    async def active() -> None:
        answer = await stack.http.get(f"/api/v1/automations/{automation}")
        assert answer.json()["status"] == "active"
        assert answer.json()["version"] == 3

    try:
        await eventually(active, within=30)
    except AssertionError as err:
        # Say what the page said (an API error shows in the row) and keep a picture of it.
        alerts = await page.get_by_role("alert").all_inner_texts()
        await signed_in.screenshot("automations-reactivate-failed")
        raise AssertionError(f"not reactivated; the page shows {alerts}") from err


async def _node_count(studio: Studio, step: str, count: str) -> str:
    node = studio.page.locator(f'[data-step="{step}"] .fc-counts span[title="{count}"]')
    await node.wait_for()
    return ((await node.text_content()) or "").split()[-1]


async def test_the_canvas_counts_move_as_contacts_enter(signed_in: Studio, stack: Stack) -> None:
    page = signed_in.page
    automation = await stack.automation(WAIT_DOCUMENT)
    await signed_in.goto(f"/automations/{automation}")
    await page.locator('[data-step="pause"]').wait_for()
    assert await _node_count(signed_in, "pause", "waiting now") == "0"
    for node in ("welcome", "pause", "check", "vip"):
        assert await page.locator(f'[data-step="{node}"]').count() == 1
    # The if/else's two branches are drawn, the empty one ending the run.
    await page.get_by_text("yes", exact=True).first.wait_for()

    with stack.env.with_time_skipping_disabled():  # the 30 days must really be waited
        for _ in range(3):
            contact = await stack.contact()
            await stack.enroll(contact["id"], automation)

    async def three_waiting() -> None:
        assert await _node_count(signed_in, "pause", "waiting now") == "3"
        assert await _node_count(signed_in, "welcome", "entered") == "3"

    await eventually(three_waiting, within=20)
    await signed_in.check("automation")


async def test_a_step_panel_leads_to_a_waiting_contact_and_its_run(
    signed_in: Studio, stack: Stack
) -> None:
    page = signed_in.page
    automation = await stack.automation(WAIT_DOCUMENT)
    contact = await stack.contact(first_name="Ada", last_name="Panel")
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation)
    await signed_in.goto(f"/automations/{automation}")
    await page.get_by_role("button", name=re.compile(r"^Step pause:")).click()
    panel = page.get_by_role("complementary", name="Step pause")
    await panel.wait_for()
    assert '"for"' in await panel.locator("pre").inner_text()
    waiting = panel.get_by_role("link", name=contact["email"], exact=True)
    await waiting.wait_for(timeout=20_000)
    run_link = panel.get_by_role("link", name=re.compile("Temporal UI"))
    expected = f"{stack.settings.temporal_ui_url}/namespaces/{stack.settings.temporal_namespace}"
    href = unquote(await run_link.get_attribute("href") or "")
    assert href.startswith(expected) and handle.id in href, href
    await signed_in.check("step-panel")

    await waiting.click()
    await page.wait_for_url(re.compile(rf".*/contacts/{contact['id']}$"))
    await page.get_by_role("heading", name="Ada Panel").wait_for()
    run = page.locator('[data-kind="run"]').first
    await run.wait_for()
    link = run.get_by_role("link", name=re.compile("Temporal UI"))
    href = unquote(await link.get_attribute("href") or "")
    assert href.startswith(expected) and handle.id in href, href
    assert "welcome" in await run.get_by_role("list", name="Step trail").inner_text()
    await signed_in.check("contact")


async def test_contact_search_pages_forward_and_back(signed_in: Studio, stack: Stack) -> None:
    page = signed_in.page
    tag = stack.unique("page")
    emails = set()
    for i in range(30):
        contact = await stack.contact(first_name=f"Pager{i}")
        emails.add(contact["email"])
        answer = await stack.http.post(f"/api/v1/contacts/{contact['id']}/tags", json={"tag": tag})
        assert answer.status_code in (200, 201), answer.text
    await signed_in.goto("/contacts")
    await page.get_by_label("Tag").fill(tag)
    await page.get_by_role("button", name="Search").click()

    rows = page.locator("tbody tr")

    async def shown() -> set[str]:
        await page.wait_for_function("!document.querySelector('table[aria-busy=true]')")
        return {
            (await rows.nth(i).locator("td").nth(1).inner_text()) for i in range(await rows.count())
        }

    await page.get_by_text("Page 1").wait_for()
    await rows.filter(has_text="@").first.wait_for()
    first = await shown()
    assert len(first) == 25 and first <= emails
    await signed_in.check("contacts")
    await page.get_by_role("button", name="Next").click()
    await page.get_by_text("Page 2").wait_for()

    async def second_page() -> set[str]:
        seen = await shown()
        assert len(seen) == 5, seen
        return seen

    second = await eventually(second_page)
    assert first | second == emails and not first & second
    assert await page.get_by_role("button", name="Next").is_disabled()
    await page.get_by_role("button", name="Previous").click()
    await page.get_by_text("Page 1").wait_for()

    async def back() -> None:
        assert await shown() == first

    await eventually(back)
