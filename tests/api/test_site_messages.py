"""Site messages and page visits: queued by a step, shown once on a matching page, never elsewhere."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.helpers.providers import configured, outcomes, run_steps
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually
from tests.helpers.tracking import MAIL, NO_TOKEN, events_of, links_for
from workflows.tracking import Token, email_signature, sign

INTEGRATIONS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


async def visit(stack: Stack, url: str, **who: Any) -> list[dict[str, Any]]:
    response = await stack.http.post("/api/v1/site/visits", json={**who, "url": url})
    assert response.status_code == 200, response.text
    return response.json()["messages"]  # type: ignore[no-any-return]


async def test_shown_exactly_once_on_a_matching_page_never_on_another(any_stack: Stack) -> None:
    stack = any_stack
    run, contact = await run_steps(
        stack,
        {
            "pricing": {
                "type": "send_site_message",
                "html": "<b>%FIRSTNAME%</b>, 10% off the <i>pro</i> plan",
                "page": "https://shop.test/pricing*",
                "next": "anywhere",
            },
            "anywhere": {"type": "send_site_message", "html": "Welcome back"},
        },
        {"first_name": "<Ada>"},
    )
    assert outcomes(run) == {"pricing": ("done", None), "anywhere": ("done", None)}
    who = {"contact": contact["id"]}

    shown = await visit(stack, "https://shop.test/blog", **who)
    assert [m["html"] for m in shown] == ["Welcome back"]  # no page: any page
    assert await visit(stack, "https://shop.test/blog/2", **who) == []
    shown = await visit(stack, "https://shop.test/pricing?plan=pro", email=contact["email"])
    assert [(m["html"], m["step"]) for m in shown] == [
        ("<b>&lt;Ada&gt;</b>, 10% off the <i>pro</i> plan", "pricing")
    ]
    assert shown[0]["automation"] == run["automation"]
    assert await visit(stack, "https://shop.test/pricing", **who) == []
    assert [e["url"] for e in await events_of(stack, contact["id"], "page_visited")] == [
        "https://shop.test/blog",
        "https://shop.test/blog/2",
        "https://shop.test/pricing?plan=pro",
        "https://shop.test/pricing",
    ]


async def test_a_message_reaches_the_page_sanitized(stack: Stack) -> None:
    """site.js puts a message in the page with innerHTML: scripts, event handlers and
    `javascript:` links are taken out on the way, the rest is kept."""
    html = (
        '<p class="offer">Hi <b>%FIRSTNAME%</b> <a href="https://shop.test/pro">pro</a></p>'
        "<script>steal(document.cookie)</script>"
        '<img src="https://shop.test/x.png" onerror="steal(document.cookie)">'
        '<a href="javascript:steal(document.cookie)">click</a>'
        '<iframe src="https://evil.test/"></iframe>'
    )
    run, contact = await run_steps(
        stack, {"msg": {"type": "send_site_message", "html": html}}, {"first_name": "Ada"}
    )
    assert outcomes(run) == {"msg": ("done", None)}
    (shown,) = await visit(stack, "https://shop.test/", contact=contact["id"])
    assert '<b>Ada</b> <a href="https://shop.test/pro"' in shown["html"]
    assert '<img src="https://shop.test/x.png"' in shown["html"]
    for gone in ("<script", "steal", "onerror", "javascript:", "<iframe"):
        assert gone not in shown["html"], shown["html"]


async def test_concurrent_visits_show_a_message_once(any_stack: Stack) -> None:
    stack = any_stack
    _, contact = await run_steps(stack, {"hi": {"type": "send_site_message", "html": "Hi"}})
    answers = await asyncio.gather(
        *(visit(stack, f"https://shop.test/{n}", contact=contact["id"]) for n in range(5))
    )
    assert sorted(len(a) for a in answers) == [0, 0, 0, 0, 1]


async def test_an_expired_message_is_never_shown(stack: Stack) -> None:
    _, contact = await run_steps(
        stack, {"hi": {"type": "send_site_message", "html": "Soon gone", "expires": {"seconds": 1}}}
    )
    await asyncio.sleep(1.5)  # the expiry is wall-clock time, counted from the step
    assert await visit(stack, "https://shop.test/", contact=contact["id"]) == []


async def test_page_visited_fires_triggers_and_conditions(stack: Stack) -> None:
    contact = await stack.contact()
    await stack.automation(
        {
            "triggers": [{"type": "page_visited", "url": "https://shop.test/pricing*"}],
            "start": "check",
            "steps": {
                "check": {
                    "type": "if_else",
                    "condition": {"page_visited": "*/pricing*", "within": {"days": 1}},
                    "yes": "tag",
                    "no": None,
                },
                "tag": {"type": "add_tag", "tag": "pricing-visitor"},
            },
        }
    )
    await visit(stack, "https://shop.test/about", contact=contact["id"])
    await visit(stack, "https://shop.test/pricing", contact=contact["id"])

    async def tagged() -> None:
        assert "pricing-visitor" in (await stack.record(contact["id"]))["tags"]

    await eventually(tagged)


async def test_visit_api_input_errors(stack: Stack) -> None:
    contact = await stack.contact()
    url = "https://shop.test/"
    cases = [
        ({"url": url}, 422),
        ({"url": url, "contact": contact["id"], "email": contact["email"]}, 422),
        ({"contact": contact["id"]}, 422),
        ({"url": "", "contact": contact["id"]}, 422),
        ({"url": "x" * 2001, "contact": contact["id"]}, 422),
        ({"url": url, "contact": contact["id"], "extra": 1}, 422),
        ({"url": url, "email": "not an email"}, 422),
        ({"url": url, "contact": 2**40}, 404),
        ({"url": url, "email": "nobody-here@example.com"}, 404),
    ]
    for body, status in cases:
        response = await stack.http.post("/api/v1/site/visits", json=body)
        assert response.status_code == status, (body, response.text)
    no_token = await stack.http.post(
        "/api/v1/site/visits", json={"url": url, "contact": contact["id"]}, headers=NO_TOKEN
    )
    assert no_token.status_code == 401


async def test_public_visit_by_the_cookie_of_a_click_or_by_email(stack: Stack) -> None:
    stack.http.cookies.clear()
    try:
        _, contact = await run_steps(
            stack,
            {
                "mail": {**MAIL, "next": "site"},
                "site": {"type": "send_site_message", "html": "Cookie", "page": "*/sale"},
            },
        )
        public = {"Content-Type": "text/plain", "Origin": "https://shop.test", **NO_TOKEN}
        body = b'{"url": "https://shop.test/sale"}'
        with configured(stack.settings, site_origins="https://other.test, https://shop.test"):
            anonymous = await stack.http.post("/t/visit", content=body, headers=public)
            assert anonymous.json() == {"messages": []}
            assert anonymous.headers["access-control-allow-origin"] == "https://shop.test"
            assert anonymous.headers["access-control-allow-credentials"] == "true"

            click = await stack.http.get(
                links_for(stack, contact["email"])["click"], headers=NO_TOKEN
            )
            cookie = click.cookies["cairn_contact"]
            stack.http.cookies.clear()
            known = await stack.http.post(
                "/t/visit", content=body, headers={**public, "Cookie": f"cairn_contact={cookie}"}
            )
            assert [m["html"] for m in known.json()["messages"]] == ["Cookie"]
            forged = await stack.http.post(
                "/t/visit", content=body, headers={**public, "Cookie": f"cairn_contact={cookie}x"}
            )
            assert forged.json() == {"messages": []}
            assert len(await events_of(stack, contact["id"], "page_visited")) == 1

        by_email = await stack.http.post(
            "/t/visit",
            json={
                "url": "https://shop.test/home",
                "email": contact["email"],
                "email_signature": site_signature(stack, contact["email"]),
            },
            headers=NO_TOKEN,
        )
        assert by_email.status_code == 200 and by_email.json() == {"messages": []}
        assert len(await events_of(stack, contact["id"], "page_visited")) == 2
        bad = await stack.http.post("/t/visit", content=b'{"url": 3}', headers=public)
        assert bad.status_code == 422
        assert (await stack.http.post("/t/visit", content=b"{", headers=public)).status_code == 422
    finally:
        stack.http.cookies.clear()


def site_signature(stack: Stack, email: str, expires: float | None = None) -> str:
    """What a website's backend computes, with the snippet in docs/integrations.md as is."""
    section = INTEGRATIONS.read_text().split("## Site messages", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None, "docs/integrations.md's Site messages section has no snippet"
    namespace: dict[str, Any] = {
        "user": SimpleNamespace(email=email),
        "site_key": stack.settings.shared_key("site"),
    }
    code = snippet.group(1)
    if expires is not None:  # the same code, with the expiry it would compute at another time
        code = code.replace("int(time.time()) + 3600", str(int(expires)))
    exec(code, namespace)
    return str(namespace["signature"])


async def test_without_configured_origins_no_website_reads_a_visitor_by_cookie(
    stack: Stack,
) -> None:
    """No CAIRN_SITE_ORIGINS: a page on any website may report a signed email, but answers
    never allow credentials and the cookie names no one, so a page on another website cannot
    read (or trigger on) the site messages of whoever visits it."""
    stack.http.cookies.clear()
    _, contact = await run_steps(stack, {"site": {"type": "send_site_message", "html": "Mine"}})
    cookie = sign(Token("visitor", contact["id"]), stack.settings.signing_key("visitor"))
    evil = {
        "Content-Type": "text/plain",
        "Origin": "https://evil.test",
        "Cookie": f"cairn_contact={cookie}",
        **NO_TOKEN,
    }
    body = b'{"url": "https://evil.test/"}'
    preflight = await stack.http.options("/t/visit", headers={"Origin": "https://evil.test"})
    assert "access-control-allow-credentials" not in preflight.headers
    answer = await stack.http.post("/t/visit", content=body, headers=evil)
    assert answer.status_code == 200 and answer.json() == {"messages": []}
    assert "access-control-allow-credentials" not in answer.headers
    assert await events_of(stack, contact["id"], "page_visited") == []
    # Configured, another website is not let in either; the configured one is, cookie and all.
    with configured(stack.settings, site_origins="https://shop.test"):
        refused = await stack.http.post("/t/visit", content=body, headers=evil)
        assert "access-control-allow-origin" not in refused.headers
        assert refused.json() == {"messages": []}
        shop = {**evil, "Origin": "https://shop.test"}
        shown = await stack.http.post("/t/visit", content=body, headers=shop)
        assert [m["html"] for m in shown.json()["messages"]] == ["Mine"]
        assert shown.headers["access-control-allow-credentials"] == "true"
    stack.http.cookies.clear()


async def test_site_js_is_served_publicly(stack: Stack) -> None:
    script = await stack.http.get("/site.js", headers=NO_TOKEN)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert '"/t/visit"' in script.text and "credentials" in script.text


async def test_a_browser_supplied_email_needs_its_signature_when_required(stack: Stack) -> None:
    stack.http.cookies.clear()
    _, contact = await run_steps(
        stack,
        {
            "one": {"type": "send_site_message", "html": "Signed", "next": "two"},
            "two": {"type": "send_site_message", "html": "By cookie"},
        },
    )
    email = contact["email"]
    # What the website's backend computes (docs/integrations.md#site-messages): an expiry and
    # the HMAC of it and the email, trimmed and lower-cased, keyed with the site key.
    signature = site_signature(stack, f" {email.upper()} ")
    expires = int(signature.split(".")[0])
    assert time.time() + 3500 < expires <= time.time() + 3600
    assert signature == email_signature(email, stack.settings.shared_key("site"), expires)
    url = "https://shop.test/"

    async def public(**body: Any) -> Any:
        return await stack.http.post(
            "/t/visit",
            content=json.dumps({"url": url, **body}).encode(),
            headers={"Content-Type": "text/plain", **NO_TOKEN},
        )

    # Required by default (the test stack, like any process but `cairn run` on loopback).
    assert stack.settings.site_require_signed_email
    unsigned = await public(email=email)
    assert unsigned.status_code == 403 and "email_signature" in unsigned.json()["detail"]
    forged = await public(email=email, email_signature="0" * 64)
    assert forged.status_code == 403
    other = await public(email=email, email_signature=site_signature(stack, "x@y.test"))
    assert other.status_code == 403
    expired = await public(email=email, email_signature=site_signature(stack, email, time.time()))
    assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    # Keyed with the secret key itself (the former scheme), or the webhook key: refused.
    for key in (stack.settings.secret_key, stack.settings.shared_key("webhook")):
        wrong_key = email_signature(email, key, expires)
        assert (await public(email=email, email_signature=wrong_key)).status_code == 403
    assert await events_of(stack, contact["id"], "page_visited") == []  # nothing recorded
    signed = await public(email=email.upper(), email_signature=signature.upper())
    assert [m["html"] for m in signed.json()["messages"]] == ["Signed", "By cookie"]
    # The signed cookie of a tracked click still identifies a visitor without an email.
    cookie = sign(Token("visitor", contact["id"]), stack.settings.signing_key("visitor"))
    by_cookie = await stack.http.post(
        "/t/visit",
        content=json.dumps({"url": url}).encode(),
        headers={"Content-Type": "text/plain", "Cookie": f"cairn_contact={cookie}"},
    )
    assert by_cookie.status_code == 200
    # Not required (what `cairn run` sets on loopback): an unsigned email is accepted, a wrong
    # signature never is.
    with configured(stack.settings, site_require_signed_email=False):
        assert (await public(email=email)).status_code == 200
        assert (await public(email=email, email_signature="0" * 64)).status_code == 403
    assert len(await events_of(stack, contact["id"], "page_visited")) == 3
    stack.http.cookies.clear()


QUEUED = {"offer": {"type": "send_site_message", "html": "10% off"}}


async def _opt(stack: Stack, contact_id: int, consent: bool | None) -> None:
    response = await stack.http.patch(
        f"/api/v1/contacts/{contact_id}", json={"fields": {"site_tracking_consent": consent}}
    )
    assert response.status_code == 200, response.text


async def test_a_visitor_who_opted_out_is_neither_tracked_nor_shown_messages(stack: Stack) -> None:
    run, contact = await run_steps(stack, QUEUED)
    assert outcomes(run) == {"offer": ("done", None)}
    await _opt(stack, contact["id"], False)  # the website records the visitor's "no"

    response = await stack.http.post(
        "/api/v1/site/visits", json={"contact": contact["id"], "url": "https://shop.test/"}
    )
    assert response.json() == {
        "contact": contact["id"],
        "url": "https://shop.test/",
        "tracked": False,
        "messages": [],
    }
    assert await events_of(stack, contact["id"], "page_visited") == []
    # Later site messages are not even queued for them.
    automation_id = await stack.automation({"start": "offer", "steps": QUEUED})
    again = await finished(stack, (await stack.enroll(contact["id"], automation_id)).id)
    assert outcomes(again) == {"offer": ("skipped", "no_site_consent")}

    await _opt(stack, contact["id"], True)  # opted back in: the first message is still there
    shown = await visit(stack, "https://shop.test/", contact=contact["id"])
    assert [m["html"] for m in shown] == ["10% off"]
    assert len(await events_of(stack, contact["id"], "page_visited")) == 1


async def test_with_consent_required_only_those_who_opted_in_are_tracked(stack: Stack) -> None:
    with configured(stack.settings, site_require_consent=True):
        run, silent = await run_steps(stack, QUEUED)
        assert outcomes(run) == {"offer": ("skipped", "no_site_consent")}
        assert await visit(stack, "https://shop.test/", contact=silent["id"]) == []
        assert await events_of(stack, silent["id"], "page_visited") == []

        willing = await stack.contact(fields={"site_tracking_consent": "yes"})
        automation_id = await stack.automation({"start": "offer", "steps": QUEUED})
        run = await finished(stack, (await stack.enroll(willing["id"], automation_id)).id)
        assert outcomes(run) == {"offer": ("done", None)}
        shown = await visit(stack, "https://shop.test/", contact=willing["id"])
        assert [m["html"] for m in shown] == ["10% off"]
