"""Opens, clicks and unsubscribes through the public tracking routes, as a mail reader makes them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.codec import ui_codec_key
from core.settings import Settings
from tests.helpers.mail import parts, tracking_links
from tests.helpers.providers import configured, fake_server, outcomes, run_steps
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, api_client, eventually
from tests.helpers.tracking import MAIL, NO_TOKEN, PUBLIC, events_of, links_for
from workflows.tracking import Token, sign


async def test_a_click_releases_a_waiting_contact_and_fires_triggers(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "mail",
            "steps": {
                "mail": {**MAIL, "next": "wait"},
                "wait": {
                    "type": "wait",
                    "condition": {"email": "clicked", "step": "mail"},
                    "timeout": {"days": 3},
                    "next": "hot",
                },
                "hot": {"type": "add_tag", "tag": "clicked"},
            },
        }
    )
    await stack.automation(
        {
            "triggers": [
                {
                    "type": "email_clicked",
                    "automation": automation_id,
                    "step": "mail",
                    "link": "https://shop.test/sale",
                }
            ],
            "start": "fan",
            "steps": {"fan": {"type": "add_tag", "tag": "fan"}},
        }
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)

        async def mailed() -> None:
            assert stack.mailbox.to(contact["email"])

        await eventually(mailed)
        click = links_for(stack, contact["email"])["click"]
        clicked_at = time.monotonic()
        answer = await stack.http.get(click, headers=NO_TOKEN)
        assert (answer.status_code, answer.headers["location"]) == (302, "https://shop.test/sale")
        # The click wakes the wait at once (the outbox kick, then a signal), not at a poll: the
        # run is through the wait and its last step within a second or so (2 s on a loaded box).
        await asyncio.wait_for(handle.result(), timeout=10)
        released_in = time.monotonic() - clicked_at
        assert released_in < 2.0, f"released {released_in:.2f} s after the click"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("cairn_contact=") and "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
        run = await finished(stack, handle.id)  # the 3-day timeout cannot have passed
    assert outcomes(run) == {
        "mail": ("done", None),
        "wait": ("done", "condition_met"),
        "hot": ("done", None),
    }
    assert await events_of(stack, contact["id"], "email_clicked") == [
        {"automation": automation_id, "step": "mail", "link": "https://shop.test/sale"}
    ]

    async def triggered() -> None:
        assert "fan" in (await stack.record(contact["id"]))["tags"]

    await eventually(triggered)


async def test_open_pixel_records_the_open(stack: Stack) -> None:
    run, contact = await run_steps(stack, {"mail": MAIL})
    pixel = links_for(stack, contact["email"])["open"]
    answer = await stack.http.get(pixel, headers=NO_TOKEN)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    assert answer.content.startswith(b"GIF89a") and "no-store" in answer.headers["cache-control"]
    assert await events_of(stack, contact["id"], "email_opened") == [
        {"automation": run["automation"], "step": "mail"}
    ]


async def test_forged_altered_or_misused_tokens_are_404(stack: Stack) -> None:
    run, contact = await run_steps(stack, {"mail": MAIL})
    links = links_for(stack, contact["email"])
    payload, signature = links["click"].rsplit("/", 1)[1].split(".")
    forged_target = sign(
        Token("click", contact["id"], run["automation"], "mail", "https://evil.test"), b"guess"
    )
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    attempts = [
        f"/t/c/{payload}.{flipped}",  # altered signature
        f"/t/c/{payload[:-2]}xx.{signature}",  # altered payload
        f"/t/c/{forged_target}",  # signed with another key
        f"/t/c/{links['open'].rsplit('/', 1)[1]}",  # an open token used as a click
        f"/t/o/{links['click'].rsplit('/', 1)[1]}",  # and the other way round
        f"/unsubscribe/{links['open'].rsplit('/', 1)[1]}",
        "/t/o/garbage",
        "/t/c/" + "A" * 5000 + ".B",
        "/unsubscribe/%00.%ff",
    ]
    for path in attempts:
        assert (await stack.http.get(path, headers=NO_TOKEN)).status_code == 404, path
    assert (await stack.http.post(attempts[0].replace("/t/c/", "/unsubscribe/"))).status_code == 404
    assert await events_of(stack, contact["id"], "email_clicked") == []


async def test_the_redirect_target_comes_only_from_the_token(stack: Stack) -> None:
    _, contact = await run_steps(stack, {"mail": MAIL})
    click = links_for(stack, contact["email"])["click"]
    answer = await stack.http.get(f"{click}?url=https://evil.test&next=https://evil.test")
    assert answer.headers["location"] == "https://shop.test/sale"


async def test_unsubscribe_link_unsubscribes_and_later_emails_are_skipped(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "first",
            "steps": {
                "first": {**MAIL, "next": "wait"},
                "wait": {
                    "type": "wait",
                    "condition": {"list": "news", "status": "unsubscribed"},
                    "timeout": {"days": 3},
                    "next": "second",
                },
                "second": {**MAIL, "subject": "More news"},
            },
        }
    )
    contact = await stack.contact()
    for name in ("news", "offers"):
        response = await stack.http.post(
            f"/api/v1/contacts/{contact['id']}/lists", json={"list": name, "status": "active"}
        )
        assert response.status_code in (200, 201), response.text
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)

        async def mailed() -> None:
            assert stack.mailbox.to(contact["email"])

        await eventually(mailed)
        unsubscribe = links_for(stack, contact["email"])["unsubscribe"]
        page = await stack.http.get(unsubscribe, headers=NO_TOKEN)
        assert page.status_code == 200 and '<form method="post"' in page.text
        assert (await stack.record(contact["id"]))["lists"][0]["status"] == "active"  # GET: no
        done = await stack.http.post(unsubscribe, headers=NO_TOKEN)
        assert done.status_code == 200 and "Unsubscribed" in done.text
        run = await finished(stack, handle.id)
    assert outcomes(run)["second"] == ("skipped", "unsubscribed")
    assert len(stack.mailbox.to(contact["email"])) == 1
    lists = (await stack.record(contact["id"]))["lists"]
    assert sorted((entry["list"], entry["status"]) for entry in lists) == [
        ("news", "unsubscribed"),
        ("offers", "unsubscribed"),
    ]


async def test_one_click_unsubscribe_post(stack: Stack) -> None:
    _, contact = await run_steps(stack, {"mail": MAIL})  # on no list at all: it still receives
    message = stack.mailbox.to(contact["email"])[0]
    url = message["List-Unsubscribe"].strip("<>").removeprefix(PUBLIC)
    answer = await stack.http.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded", **NO_TOKEN},
    )
    assert answer.status_code == 200
    record = await stack.record(contact["id"])
    assert record["lists"] == [{"list": "all", "status": "unsubscribed"}]
    automation_id = await stack.automation({"start": "mail", "steps": {"mail": MAIL}})
    handle = await stack.enroll(contact["id"], automation_id)
    run = await finished(stack, handle.id)
    assert outcomes(run) == {"mail": ("skipped", "unsubscribed")}


# --- the `email` condition leaf --------------------------------------------------------------


async def click_first_link(stack: Stack, email: str, link: int = 0) -> None:
    async def mailed() -> None:
        assert stack.mailbox.to(email)

    await eventually(mailed)
    html = parts(stack.mailbox.to(email)[0])["text/html"]
    click = tracking_links(html)["click"][link].removeprefix(PUBLIC)
    assert (await stack.http.get(click, headers=NO_TOKEN)).status_code == 302


def clicked_wait(step: str = "mail", then: str | None = None) -> dict[str, Any]:
    return {
        "type": "wait",
        "condition": {"email": "clicked", "step": step},
        "timeout": {"days": 3},
        "next": then,
    }


async def test_a_step_without_automation_is_this_automations_step(stack: Stack) -> None:
    """A click in automation A never meets B's condition on B's own step of the same name; naming
    A with `automation` does."""
    first = await stack.automation(
        {"start": "mail", "steps": {"mail": {**MAIL, "next": "wait"}, "wait": clicked_wait()}}
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], first)
        await click_first_link(stack, contact["email"])
        await finished(stack, handle.id)
    second = await stack.automation(
        {
            "start": "mail",
            "steps": {
                "mail": {**MAIL, "subject": "Second", "next": "own"},
                "own": {
                    "type": "if_else",
                    "condition": {"email": "clicked", "step": "mail"},
                    "yes": "other",
                    "no": "other",
                },
                "other": {
                    "type": "if_else",
                    "condition": {"email": "clicked", "step": "mail", "automation": first},
                    "yes": None,
                    "no": None,
                },
            },
        }
    )
    run = await finished(stack, (await stack.enroll(contact["id"], second)).id)
    assert outcomes(run) == {
        "mail": ("done", None),
        "own": ("done", "no"),  # the click was in `first`
        "other": ("done", "yes"),
    }
    # Stored as meant: the leaf names its automation, so any reader sees the same thing.
    document = (await stack.http.get(f"/api/v1/automations/{second}")).json()["document"]
    assert document["steps"]["own"]["condition"] == {
        "email": "clicked",
        "step": "mail",
        "automation": second,
    }


async def test_an_email_condition_must_name_a_send_email_step(stack: Stack) -> None:
    document = {
        "name": stack.unique("bad"),
        "start": "tag",
        "steps": {
            "tag": {"type": "add_tag", "tag": "x", "next": "check"},
            "check": {
                "type": "if_else",
                "condition": {"email": "opened", "step": "tag"},
                "yes": None,
                "no": None,
            },
        },
    }
    answer = await stack.http.post("/api/v1/automations", json=document)
    assert answer.status_code == 422, answer.text
    (problem,) = answer.json()["detail"]
    assert problem["path"] == "steps.check.condition.step"
    assert 'step "tag" sends no email' in problem["message"]


def check(name: str, condition: dict[str, Any], then: str | None) -> dict[str, Any]:
    return {name: {"type": "if_else", "condition": condition, "yes": then, "no": then}}


async def test_link_within_and_the_negative_leaves_in_if_else(stack: Stack) -> None:
    mail = {
        **MAIL,
        "html": '<p><a href="https://shop.test/sale">Sale</a> <a href="https://shop.test/x">X</a>',
    }
    clicked = {"email": "clicked", "step": "mail"}
    automation_id = await stack.automation(
        {
            "start": "mail",
            "steps": {
                "mail": {**mail, "next": "wait"},
                **{"wait": clicked_wait(then="later")},
                # Real seconds: this run does not skip time (it must wait for the click).
                "later": {"type": "wait", "for": {"seconds": 3}, "next": "sale"},
                **check("sale", {**clicked, "link": "https://shop.test/sale"}, "x"),
                **check("x", {**clicked, "link": "https://shop.test/x"}, "not_clicked"),
                **check("not_clicked", {"email": "not_clicked", "step": "mail"}, "not_opened"),
                **check("not_opened", {"email": "not_opened", "step": "mail"}, "recent"),
                **check("recent", {**clicked, "within": {"seconds": 2}}, "day"),
                **check("day", {**clicked, "within": {"days": 1}}, None),
            },
        }
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)
        await click_first_link(stack, contact["email"])  # the sale link
        run = await finished(stack, handle.id)
    assert {step: reason for step, (_, reason) in outcomes(run).items()} == {
        "mail": None,
        "wait": "condition_met",
        "later": None,
        "sale": "yes",
        "x": "no",  # not that link
        "not_clicked": "no",
        "not_opened": "yes",  # no pixel fetched
        "recent": "no",  # clicked over 3 s ago
        "day": "yes",
    }


async def test_an_open_meets_a_goal_and_fires_the_email_opened_trigger(stack: Stack) -> None:
    automation_id = await stack.automation(
        {
            "start": "mail",
            "steps": {
                "mail": {**MAIL, "next": "pause"},
                "pause": {"type": "wait", "for": {"days": 3}, "next": "reminder"},
                "reminder": {**MAIL, "subject": "Reminder", "next": "read"},
                "read": {
                    "type": "goal",
                    "condition": {"email": "opened", "step": "mail"},
                    "next": "tag",
                },
                "tag": {"type": "add_tag", "tag": "reader"},
            },
        }
    )
    await stack.automation(
        {
            "triggers": [{"type": "email_opened", "automation": automation_id, "step": "mail"}],
            "start": "fan",
            "steps": {"fan": {"type": "add_tag", "tag": "opener"}},
        }
    )
    contact = await stack.contact()
    with stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)

        async def mailed() -> None:
            assert stack.mailbox.to(contact["email"])

        await eventually(mailed)
        pixel = links_for(stack, contact["email"])["open"]
        assert (await stack.http.get(pixel, headers=NO_TOKEN)).status_code == 200
        run = await finished(stack, handle.id)  # the open, not the 3 days, ended the wait
    steps = outcomes(run)
    assert steps["read"][0] == "done" and steps["tag"] == ("done", None)
    assert "reminder" not in steps and len(stack.mailbox.to(contact["email"])) == 1

    async def triggered() -> None:
        assert {"reader", "opener"} <= set((await stack.record(contact["id"]))["tags"])

    await eventually(triggered)


# --- the tracking secret ---------------------------------------------------------------------


async def test_a_webhook_receiver_cannot_forge_tracking_links_or_cookies(stack: Stack) -> None:
    """The key a webhook receiver holds (the one its X-Cairn-Signature checks with) signs
    nothing the tracking routes accept: no unsubscribe for contacts 1..N, no click (an open
    redirect that also sets the identity cookie), no visitor cookie."""
    with fake_server() as receiver, configured(stack.settings, webhook_allow_private=True):
        run, contact = await run_steps(
            stack,
            {
                "hook": {"type": "webhook", "url": f"{receiver.url}/in", "next": "mail"},
                "mail": MAIL,
            },
        )
        (request,) = receiver.received
    # What the receiver holds: the key that verifies what it was sent.
    held = stack.settings.shared_key("webhook")
    digest = hmac.new(held.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.header("X-Cairn-Signature") == f"sha256={digest}"
    assert held != stack.settings.secret_key and len(held) == 64
    # Its links still work; the same tokens signed with what the receiver holds do not.
    genuine = links_for(stack, contact["email"])
    assert (await stack.http.get(genuine["unsubscribe"], headers=NO_TOKEN)).status_code == 200
    keys = (held.encode(), bytes.fromhex(held))
    for key in keys:
        for kind, path, link in (
            ("unsubscribe", "/unsubscribe", None),
            ("click", "/t/c", "https://evil.test/"),
            ("open", "/t/o", None),
        ):
            token = sign(Token(kind, contact["id"], run["automation"], "mail", link), key)  # type: ignore[arg-type]
            assert (await stack.http.get(f"{path}/{token}", headers=NO_TOKEN)).status_code == 404
            if kind == "unsubscribe":
                answer = await stack.http.post(f"{path}/{token}", headers=NO_TOKEN)
                assert answer.status_code == 404
        cookie = sign(Token("visitor", contact["id"]), key)
        visit = await stack.http.post(
            "/t/visit",
            content=b'{"url": "https://shop.test/"}',
            headers={"Content-Type": "text/plain", "Cookie": f"cairn_contact={cookie}", **NO_TOKEN},
        )
        assert visit.status_code == 200
    assert await events_of(stack, contact["id"], "email_unsubscribed") == []
    assert await events_of(stack, contact["id"], "page_visited") == []
    # Nor does it lead to the Temporal UI's codec path.
    assert held[:32] != ui_codec_key(stack.settings)
    assert stack.settings.shared_key("site") != held


async def test_links_signed_before_a_secret_rotation_keep_working(stack: Stack) -> None:
    """CAIRN_SECRET_KEY_OLD: unsubscribe (and other) links already in inboxes still verify;
    everything new is signed with the new secret only."""
    _, contact = await run_steps(stack, {"mail": MAIL})
    before = links_for(stack, contact["email"])
    old, new = stack.settings.secret_key, "rotated-secret-0123456789abcdef"
    with configured(stack.settings, secret_key=new, secret_key_old=old):
        assert (await stack.http.get(before["open"], headers=NO_TOKEN)).status_code == 200
        clicked = await stack.http.get(before["click"], headers=NO_TOKEN)
        assert clicked.status_code == 302
        cookie = clicked.cookies["cairn_contact"]
        stack.http.cookies.clear()
        _, later = await run_steps(stack, {"mail": MAIL})
        after = links_for(stack, later["email"])
    # The new cookie and links verify with the new secret alone, not with the old one.
    with configured(stack.settings, secret_key=new, secret_key_old=""):
        assert (await stack.http.get(after["unsubscribe"], headers=NO_TOKEN)).status_code == 200
        assert (await stack.http.get(before["unsubscribe"], headers=NO_TOKEN)).status_code == 404
        visit = await stack.http.post(
            "/t/visit",
            content=b'{"url": "https://shop.test/"}',
            headers={"Content-Type": "text/plain", "Cookie": f"cairn_contact={cookie}", **NO_TOKEN},
        )
        assert visit.status_code == 200
    assert (await stack.http.get(after["unsubscribe"], headers=NO_TOKEN)).status_code == 404
    with configured(
        stack.settings, secret_key=new, secret_key_old=f" other-old-secret-123 , {old}"
    ):
        assert stack.settings.secret_key_old  # as set (the validator trims it at startup)
        leaving = await stack.http.post(before["unsubscribe"], headers=NO_TOKEN)
        assert leaving.status_code == 200
    assert len(await events_of(stack, contact["id"], "email_unsubscribed")) == 1
    assert len(await events_of(stack, contact["id"], "page_visited")) == 1
    stack.http.cookies.clear()


def test_published_secrets_are_refused_off_localhost(tmp_path: Path) -> None:
    cairn = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "cairn"
    env = {"PATH": "/usr/bin:/bin", "CAIRN_PUBLIC_URL": "https://mail.example.com"}
    answer = subprocess.run(
        [str(cairn), "setup"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert answer.returncode == 2, answer
    assert "CAIRN_SECRET_KEY and CAIRN_API_TOKEN still has a published default" in answer.stderr
    assert "Traceback" not in answer.stderr

    def settings(**values: Any) -> Settings:
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    public = "https://mail.example.com"
    with pytest.raises(ValueError, match="CAIRN_SECRET_KEY still"):
        settings(public_url=public, api_token="a-long-random-token")
    with pytest.raises(ValueError, match="CAIRN_API_TOKEN still"):
        settings(public_url=public, secret_key="a-long-random-secret", api_token="change-me")
    assert settings(public_url=public, secret_key="s" * 32, api_token="t" * 32).public_url == public
    for local in ("http://localhost:8000", "http://127.0.0.1:8000", "http://cairn.localhost"):
        assert settings(public_url=local).secret_key == "dev-secret-change-me"


def test_published_or_short_secrets_are_refused_off_loopback(tmp_path: Path) -> None:
    """Binding the API to anything but loopback exposes it like a public URL does."""
    cairn = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "cairn"
    env = {"PATH": "/usr/bin:/bin", "CAIRN_API_HOST": "0.0.0.0"}
    answer = subprocess.run(
        [str(cairn), "api"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert answer.returncode == 2, answer
    assert "still has a published default value while CAIRN_API_HOST" in answer.stderr
    assert "Traceback" not in answer.stderr

    def settings(**values: Any) -> Settings:
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    long_ones = {"secret_key": "s" * 32, "api_token": "t" * 32}
    for host in ("0.0.0.0", "::", "192.168.1.10", ""):
        with pytest.raises(ValueError, match="CAIRN_SECRET_KEY and CAIRN_API_TOKEN still"):
            settings(api_host=host)
        with pytest.raises(ValueError, match="CAIRN_API_TOKEN is shorter than 16"):
            settings(api_host=host, secret_key="s" * 32, api_token="short-token")
        with pytest.raises(ValueError, match="CAIRN_SECRET_KEY is shorter than 16"):
            settings(api_host=host, secret_key="short-secret", api_token="t" * 32)
        with pytest.raises(ValueError, match="CAIRN_SECRET_KEY_OLD still"):
            settings(api_host=host, secret_key_old="dev-secret-change-me", **long_ones)
        assert settings(api_host=host, **long_ones).api_host == host
    with pytest.raises(ValueError, match="CAIRN_API_TOKEN is shorter"):
        settings(public_url="https://mail.example.com", secret_key="s" * 32, api_token="x" * 15)
    # On loopback with a localhost public URL (`make run`, the tests) the defaults are fine.
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert settings(api_host=host).api_token == "dev-token"


async def test_a_replayed_pixel_or_click_is_recorded_once_within_the_hour(stack: Stack) -> None:
    """A pixel loaded again (a mail client, a replay) once wrote an event, and fired the
    triggers, per request."""
    html = '<p><a href="https://shop.test/a">A</a> <a href="https://shop.test/b">B</a></p>'
    run, contact = await run_steps(stack, {"mail": {**MAIL, "html": html}})
    found = tracking_links(parts(stack.mailbox.to(contact["email"])[0])["text/html"])
    pixel = found["open"][0].removeprefix(PUBLIC)
    first, second = (link.removeprefix(PUBLIC) for link in found["click"][:2])
    for path in (pixel, pixel, pixel, first, first, second):
        assert (await stack.http.get(path, headers=NO_TOKEN)).status_code in (200, 302)
    message = {"automation": run["automation"], "step": "mail"}
    assert await events_of(stack, contact["id"], "email_opened") == [message]
    clicks = await events_of(stack, contact["id"], "email_clicked")
    assert sorted(c["link"] for c in clicks) == ["https://shop.test/a", "https://shop.test/b"]


CHROME = {
    **NO_TOKEN,
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0 Safari/537.36",
}
TWO_LINKS = '<p><a href="https://shop.test/a">A</a> <a href="https://shop.test/b">B</a></p>'


@asynccontextmanager
async def tracking_app(stack: Stack, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the stack's database with its own tracking settings (the stack's turn the
    bot heuristics and the rate limits off)."""
    changed = stack.settings.model_copy(update=settings)
    async with api_client(changed, stack.client, stack.db) as http:
        yield http


async def _mailed(stack: Stack, html: str = TWO_LINKS) -> tuple[dict[str, Any], list[str]]:
    _, contact = await run_steps(stack, {"mail": {**MAIL, "html": html}})
    found = tracking_links(parts(stack.mailbox.to(contact["email"])[0])["text/html"])
    return contact, [link.removeprefix(PUBLIC) for link in found["click"]]


async def test_link_scanner_clicks_are_marked_suspected_bot_and_redirected_alike(
    stack: Stack,
) -> None:
    """A mail gateway fetching every link seconds after delivery once counted as a click."""
    # Seconds after the send: a scanner, whatever its User-Agent says.
    contact, (first, _) = await _mailed(stack)
    async with tracking_app(stack, tracking_bot_click_seconds=10) as http:
        answer = await http.get(first, headers=CHROME)
    assert (answer.status_code, answer.headers["location"]) == (302, "https://shop.test/a")
    assert answer.headers["set-cookie"].startswith("cairn_contact=")
    [click] = await events_of(stack, contact["id"], "email_clicked")
    assert click["suspected_bot"] is True
    # A scanner's User-Agent; a browser's later click of another link is a person's.
    contact, (first, second) = await _mailed(stack)
    async with tracking_app(stack) as http:
        scanner = {**NO_TOKEN, "User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}
        answer = await http.get(first, headers=scanner)
        assert (answer.status_code, answer.headers["location"]) == (302, "https://shop.test/a")
        assert (await http.get(second, headers=CHROME)).status_code == 302
    clicks = {c["link"]: c for c in await events_of(stack, contact["id"], "email_clicked")}
    assert clicks["https://shop.test/a"]["suspected_bot"] is True
    assert "suspected_bot" not in clicks["https://shop.test/b"]
    # Every link within a couple of seconds: both clicks, the first one marked afterwards.
    contact, (first, second) = await _mailed(stack)
    async with tracking_app(stack, tracking_bot_burst_seconds=2) as http:
        for path in (first, second):
            assert (await http.get(path, headers=CHROME)).status_code == 302
    clicks_of_burst = await events_of(stack, contact["id"], "email_clicked")
    assert [c.get("suspected_bot") for c in clicks_of_burst] == [True, True]


async def test_a_burst_from_one_address_records_at_most_the_limit(stack: Stack) -> None:
    """The public tracking routes once recorded every request of a flood."""
    html = "".join(f'<a href="https://shop.test/{i}">{i}</a> ' for i in range(6))
    contact, clicks = await _mailed(stack, html)
    assert len(clicks) == 6
    async with tracking_app(stack, tracking_rate_per_address=3) as http:
        for i, path in enumerate(clicks):
            answer = await http.get(path, headers=CHROME)  # a person's click always redirects
            assert (answer.status_code, answer.headers["location"]) == (
                302,
                f"https://shop.test/{i}",
            )
        visit = await http.post("/t/visit", content=b'{"url": "https://shop.test/"}')
        assert visit.status_code == 429
    assert len(await events_of(stack, contact["id"], "email_clicked")) == 3
    # Per token: a replayed unsubscribe link is refused past the limit, and writes once.
    unsubscribe = links_for(stack, contact["email"])["unsubscribe"]
    async with tracking_app(stack, tracking_rate_per_token=2) as http:
        assert (await http.post(unsubscribe, headers=NO_TOKEN)).status_code == 200
        assert (await http.post(unsubscribe, headers=NO_TOKEN)).status_code == 200
        assert (await http.post(unsubscribe, headers=NO_TOKEN)).status_code == 429
    assert len(await events_of(stack, contact["id"], "email_unsubscribed")) == 1
