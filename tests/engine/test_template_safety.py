"""Personalization is data, never code (docs/automations.md#personalization): through real runs, every channel a template
reaches (email HTML and text, SMS, site message, contact note, webhook) shows the contact's
own values, HTML-escaped only in HTML, expanded once, and nothing from any other contact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.mail import header, parts
from tests.helpers.providers import FakeServer, configured, fake_server, outcomes, run_steps
from tests.helpers.stack import Stack

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
TEMPLATE = "Dear %FIRSTNAME% %LASTNAME% (%PLAN%) [%NO_SUCH_FIELD%]"


@pytest.fixture
def providers(stack: Stack) -> Iterator[tuple[FakeServer, FakeServer]]:
    """A Twilio-compatible SMS API and a webhook receiver, on 127.0.0.1."""
    with (
        fake_server() as sms,
        fake_server() as hooks,
        configured(
            stack.settings,
            sms_base_url=sms.url,
            sms_account_sid="AC1",
            sms_auth_token="secret",
            sms_from="+15005550006",
            webhook_allow_private=True,
        ),
    ):
        sms.reply(201, {"sid": "SM1", "status": "queued"})
        yield sms, hooks


def every_channel(template: str, hook_url: str) -> dict[str, dict[str, Any]]:
    """One step per templated channel, in a row."""
    return {
        "mail": {
            "type": "send_email",
            "subject": template,
            "html": f"<p>{template}</p>",
            "next": "mail_text",
        },
        "mail_text": {
            "type": "send_email",
            "subject": "text part",
            "html": "<p>html part</p>",
            "text": template,
            "next": "sms",
        },
        "sms": {"type": "send_sms", "body": template, "next": "site"},
        "site": {"type": "send_site_message", "html": f"<div>{template}</div>", "next": "note"},
        "note": {"type": "add_contact_note", "note": template, "next": "hook"},
        "hook": {"type": "webhook", "url": f"{hook_url}/hook", "format": "json"},
    }


async def deliveries(
    stack: Stack, providers: tuple[FakeServer, FakeServer], template: str, contact: dict[str, Any]
) -> dict[str, Any]:
    """Run a fresh contact through every channel; what each channel delivered."""
    sms, hooks = providers
    sms.received.clear()
    hooks.received.clear()
    run, created = await run_steps(
        stack,
        every_channel(template, hooks.url),
        {
            "phone": "+33 6 12 34 56 78",
            **contact,
            "fields": {"sms_consent": True, **contact.get("fields", {})},
        },
    )
    assert set(outcomes(run).values()) == {("done", None)}, outcomes(run)
    first, second = stack.mailbox.to(created["email"])
    visit = await stack.http.post(
        "/api/v1/site/visits", json={"contact": created["id"], "url": "https://shop.test/"}
    )
    (shown,) = visit.json()["messages"]
    record = await stack.record(created["id"])
    (sent,) = sms.received
    (hooked,) = hooks.received
    return {
        "subject": header(first, "Subject"),
        "html": parts(first)["text/html"],
        "derived_text": parts(first)["text/plain"],
        # The text as written, without the unsubscribe line Cairn adds when it is missing.
        "text": re.split(r"(?:\r?\n){2}Unsubscribe: ", parts(second)["text/plain"])[0],
        "sms": sent.form()["Body"],
        "site": shown["html"],
        "note": record["notes"][0]["note"],
        "webhook": hooked.json()["contact"],
        "contact": created,
    }


async def test_markup_in_contact_data_is_escaped_in_html_and_plain_in_text(
    stack: Stack, providers: tuple[FakeServer, FakeServer]
) -> None:
    got = await deliveries(
        stack,
        providers,
        TEMPLATE,
        {"first_name": SCRIPT, "last_name": ATTRIBUTE, "fields": {"plan": "<b onmouseover=x()>"}},
    )
    plain = f"Dear {SCRIPT} {ATTRIBUTE} (<b onmouseover=x()>) []"

    # HTML bodies: every value escaped, so no element or attribute comes from contact data.
    escaped = (
        "Dear &lt;script&gt;alert(1)&lt;/script&gt; &quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        " (&lt;b onmouseover=x()&gt;) []"
    )
    assert f"<p>{escaped}</p>" in got["html"]
    # A site message also passes the sanitizer (nh3), which writes a quote in text as is: the
    # same text, and still no markup from the contact.
    sanitized = escaped.replace("&quot;", '"')
    assert f"<div>{sanitized}</div>" == got["site"]
    for html in (got["html"], got["site"]):
        assert "<script" not in html and "<img src=x" not in html and "<b " not in html

    # Text channels: the same values exactly as the contact gave them.
    for channel in ("subject", "text", "sms", "note"):
        assert got[channel] == plain, channel
    assert plain in got["derived_text"]  # the text part made from the HTML reads plainly too

    # The webhook carries the contact as data: JSON strings, byte for byte what was stored.
    assert got["webhook"]["first_name"] == SCRIPT
    assert got["webhook"]["last_name"] == ATTRIBUTE


async def test_template_syntax_in_contact_data_is_never_expanded(
    stack: Stack, providers: tuple[FakeServer, FakeServer]
) -> None:
    """One pass: a value that looks like a tag, or like another engine's or Python's template
    syntax, is printed as written."""
    values = {
        "first_name": "%EMAIL%",
        "last_name": "{{7*7}} ${7*7} {0.__class__} %(email)s",
        "fields": {"plan": "%PHONE% %FIRSTNAME%"},
    }
    got = await deliveries(stack, providers, TEMPLATE, values)
    expected = "Dear %EMAIL% {{7*7}} ${7*7} {0.__class__} %(email)s (%PHONE% %FIRSTNAME%) []"
    for channel in ("subject", "text", "sms", "note"):
        assert got[channel] == expected, channel
    assert got["contact"]["email"] not in got["text"]
    assert "+33" not in got["text"] and "49" not in got["text"]


async def test_templates_read_only_the_current_contact(
    stack: Stack, providers: tuple[FakeServer, FakeServer]
) -> None:
    """No tag reaches another contact: ids, paths and look-alike tags are inert."""
    victim = await stack.contact(
        first_name="Victoria", last_name="Secretkeeper", fields={"plan": "victim-plan"}
    )
    vid = victim["id"]
    template = (
        f"A[%CONTACT_FIELD:{vid}:EMAIL%] B[%CONTACT_{vid}_EMAIL%] C[%CONTACTS.{vid}.EMAIL%] "
        f"D[%{vid}%] E[%EMAIL:{vid}%] F[%../{vid}/FIRSTNAME%] G[%FIRSTNAME%] H[%PLAN%]"
    )
    # A custom field named like a standard tag cannot stand in for it either.
    got = await deliveries(
        stack,
        providers,
        template + " I[%FULLNAME%]",
        {"first_name": "Own", "fields": {"plan": "own-plan", "fullname": "Victoria"}},
    )
    for channel in ("subject", "text", "sms", "note", "html", "site"):
        for secret in (victim["email"], "Victoria", "Secretkeeper", "victim-plan"):
            assert secret not in got[channel], (channel, secret)
    expected = (
        f"A[%CONTACT_FIELD:{vid}:EMAIL%] B[] C[%CONTACTS.{vid}.EMAIL%] "
        f"D[%{vid}%] E[%EMAIL:{vid}%] F[%../{vid}/FIRSTNAME%] G[Own] H[own-plan] I[Own]"
    )
    assert got["text"] == expected


async def test_a_line_break_in_a_name_cannot_add_an_email_header(
    stack: Stack, providers: tuple[FakeServer, FakeServer]
) -> None:
    run, created = await run_steps(
        stack,
        {"mail": {"type": "send_email", "subject": "Hi %FIRSTNAME%", "html": "<p>x</p>"}},
        {"first_name": "Eve\r\nBcc: attacker@evil.test", "last_name": "X\nReply-To: a@evil.test"},
    )
    assert outcomes(run) == {"mail": ("done", None)}
    (message,) = stack.mailbox.to(created["email"])
    assert message["Bcc"] is None and message["Reply-To"] is None
    assert "attacker@evil.test" in header(message, "Subject")  # shown as text, on one line
    assert all(
        "evil.test" not in address for address in message.get_all("To", []) if "<" not in address
    )


async def test_tags_naming_no_custom_field_are_warned_at_save(any_stack: Stack) -> None:
    stack = any_stack
    field = f"shoe size {stack.unique('f')[-8:]}"  # a field only this test's contact has
    tag = field.upper().replace(" ", "_").replace("-", "_")
    await stack.contact(fields={field: 42})
    document: dict[str, Any] = {
        "start": "mail",
        "steps": {
            "mail": {
                "type": "send_email",
                "subject": "%FIRSTNAME%, size %" + tag + "%",
                "html": "<p>%NO_SUCH_FIELD_ANYWHERE% %UNSUBSCRIBELINK%</p>",
                "next": "sms",
            },
            "sms": {"type": "send_sms", "body": "%PLAN_NAME_NOBODY_HAS%"},
        },
    }
    answer = await stack.http.post(
        "/api/v1/automations", json={"name": stack.unique("tags"), **document}
    )
    assert answer.status_code == 201, answer.text  # warnings, never errors
    warned = {(w["path"], w["message"].split('"')[1]) for w in answer.json()["warnings"]}
    assert warned == {
        ("steps.mail.html", "%NO_SUCH_FIELD_ANYWHERE%"),
        ("steps.sms.body", "%PLAN_NAME_NOBODY_HAS%"),
    }
    assert all(w["severity"] == "warning" for w in answer.json()["warnings"])
    # A new version is checked the same way.
    automation_id = answer.json()["id"]
    document["steps"]["sms"]["body"] = "%" + tag + "%"
    again = await stack.http.put(
        f"/api/v1/automations/{automation_id}", json={"name": "tags", **document}
    )
    assert again.status_code == 200, again.text
    assert [w["path"] for w in again.json()["warnings"]] == ["steps.mail.html"]
