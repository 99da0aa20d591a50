"""send_email as an ESP sends it, and send_notification_email: what a real SMTP server received."""

from __future__ import annotations

import asyncio
import html as html_lib
import ipaddress
import re
import ssl
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from activities.messaging import message_id
from cli.mailbox import serve_mailbox
from store.models import Contact, Event
from tests.helpers.mail import header, parts, tracking_links
from tests.helpers.providers import configured, outcomes, run_steps, started_activities
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually, free_port
from tests.helpers.tracking import events_of
from workflows.contracts import StepContext


async def test_mime_structure_headers_and_tracking(stack: Stack) -> None:
    run, contact = await run_steps(
        stack,
        {
            "mail": {
                "type": "send_email",
                "subject": "Hello %FIRSTNAME%",
                "html": '<html><body><p>Hi %FIRSTNAME%, <a href="https://shop.test/a?x=1&amp;y=2">'
                "shop</a> or <a href='mailto:help@shop.test'>write</a> or "
                '<a href="%UNSUBSCRIBELINK%">leave</a>.</p></body></html>',
                "from_email": "news@shop.test",
                "from_name": "Shop of %FIRSTNAME%",
                "reply_to": "help@shop.test",
            }
        },
        {"first_name": "Zoë", "last_name": "O'Neil"},
    )
    assert outcomes(run) == {"mail": ("done", None)}
    (message,) = stack.mailbox.to(contact["email"])

    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.get_payload()] == ["text/plain", "text/html"]  # type: ignore[union-attr]
    assert header(message, "Subject") == "Hello Zoë"
    assert header(message, "From") == "Shop of Zoë <news@shop.test>"
    assert header(message, "To") == f"Zoë O'Neil <{contact['email']}>"
    assert message["Reply-To"] == "help@shop.test"
    encoded = quote(run["workflow_id"], safe="").replace(".", "%2E")
    assert message["Message-ID"] == f"<{encoded}.1@localhost>"  # CAIRN_PUBLIC_URL's host
    assert message["Date"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (unsubscribe,) = re.findall(r"^<(http://[^ >]*)>$", message["List-Unsubscribe"])

    body = parts(message)
    html, text = body["text/html"], body["text/plain"]
    links = tracking_links(html)
    assert len(links["open"]) == 1 and html.index(links["open"][0]) < html.index("</body>")
    assert (
        len(links["click"]) == 1
    )  # the shop link; mailto and the unsubscribe link stay as they are
    assert links["unsubscribe"] == [unsubscribe]
    assert "mailto:help@shop.test" in html
    assert "https://shop.test" not in html  # only inside the signed click token
    assert "Hi Zoë" in html and "Hi Zoë, shop (https://shop.test/a?x=1&y=2)" in text
    assert f"leave ({unsubscribe})" in text
    # The click redirect goes where the author's link went, & decoded.
    answer = await stack.http.get(links["click"][0].removeprefix("http://localhost:8000"))
    assert (answer.status_code, answer.headers["location"]) == (302, "https://shop.test/a?x=1&y=2")


async def test_every_personalization_tag(stack: Stack) -> None:
    pipeline = stack.unique("Sales")
    response = await stack.http.post(
        "/api/v1/pipelines", json={"name": pipeline, "stages": ["Lead", "Won"]}
    )
    assert response.status_code == 201, response.text
    tags = (
        "FIRSTNAME LASTNAME FULLNAME EMAIL PHONE TODAY FAVORITE_COLOR DEAL_TITLE DEAL_VALUE "
        "ACCOUNT_NAME NOPE"
    ).split()
    template = " | ".join(f"{tag}=%{tag}%" for tag in tags)
    run, contact = await run_steps(
        stack,
        {
            "account": {"type": "add_to_account", "account": "Acme & Sons", "next": "deal"},
            "deal": {
                "type": "add_deal",
                "title": "Big <one>",
                "value": 125000,  # minor units
                "currency": "USD",
                "pipeline": pipeline,
                "stage": "Lead",
                "next": "mail",
            },
            "mail": {
                "type": "send_email",
                "subject": template,
                "html": f"<p>{template}</p>",
                "text": template,
            },
        },
        {
            "first_name": "Ada",
            "last_name": "<Lovelace>",
            "phone": "+44 20 7946 0000",
            "fields": {"favorite color": "blue & green"},
        },
    )
    assert outcomes(run)["mail"] == ("done", None)
    (message,) = stack.mailbox.to(contact["email"])
    values = {
        "FIRSTNAME": "Ada",
        "LASTNAME": "<Lovelace>",
        "FULLNAME": "Ada <Lovelace>",
        "EMAIL": contact["email"],
        "PHONE": "+44 20 7946 0000",
        "TODAY": date.today().isoformat(),
        "FAVORITE_COLOR": "blue & green",
        "DEAL_TITLE": "Big <one>",
        "DEAL_VALUE": "$1,250.00",
        "ACCOUNT_NAME": "Acme & Sons",
        "NOPE": "",
    }
    expected = " | ".join(f"{tag}={values[tag]}" for tag in tags)
    assert header(message, "Subject") == expected
    body = parts(message)
    assert body["text/plain"].startswith(expected)
    escaped = " | ".join(f"{tag}={html_lib.escape(values[tag])}" for tag in tags)
    assert f"<p>{escaped}</p>" in body["text/html"]


async def test_smtp_down_then_back_delivers_once_and_the_flow_goes_on(stack: Stack) -> None:
    port = free_port()  # nothing listens here yet: every attempt is refused
    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    automation_id = await stack.automation(
        {
            "start": "mail",
            "steps": {
                "mail": {
                    "type": "send_email",
                    "subject": "Late",
                    "html": "<p>x</p>",
                    "next": "tag",
                },
                "tag": {"type": "add_tag", "tag": "mailed"},
            },
        }
    )
    contact = await stack.contact()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    with configured(stack.settings, smtp_port=port), stack.env.with_time_skipping_disabled():
        handle = await stack.enroll(contact["id"], automation_id)

        async def retrying() -> None:
            description = await handle.describe()
            pending = description.raw_description.pending_activities
            assert pending and pending[0].attempt >= 2, pending

        await eventually(retrying, within=30)
        controller.start()
        try:
            run = await finished(stack, handle.id)
        finally:
            controller.stop()
    assert outcomes(run) == {"mail": ("done", None), "tag": ("done", None)}
    assert len(received) == 1 and received[0].rcpt_tos == [contact["email"]]


class Refusing:
    """An SMTP server that refuses one recipient for good (550) and accepts the others."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.received: list[Any] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == self.refused:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 OK"


async def test_permanent_rejection_fails_the_step_and_marks_the_contact_bounced(
    stack: Stack,
) -> None:
    contact = await stack.contact()
    handler = Refusing(contact["email"])
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        automation_id = await stack.automation(
            {
                "start": "mail",
                "steps": {
                    "mail": {"type": "send_email", "subject": "a", "html": "a", "next": "again"},
                    "again": {"type": "send_email", "subject": "b", "html": "b"},
                },
            }
        )
        with configured(stack.settings, smtp_port=port):
            handle = await stack.enroll(contact["id"], automation_id)
            run = await finished(stack, handle.id)
    finally:
        controller.stop()
    first, second = run["steps"]
    assert first["outcome"] == "failed" and "550 5.1.1 no such user" in first["reason"], first
    assert (second["outcome"], second["reason"]) == ("skipped", "bounced")
    assert handler.received == []

    async def bounced_event() -> None:
        async with stack.db.read() as session:
            assert (await session.get(Contact, contact["id"])).bounced  # type: ignore[union-attr]
            names = (
                await session.scalars(select(Event.name).where(Event.contact_id == contact["id"]))
            ).all()
            assert "email_bounced" in names

    await eventually(bounced_event)


async def test_notification_email_goes_to_internal_addresses_personalized(stack: Stack) -> None:
    run, contact = await run_steps(
        stack,
        {
            "notify": {
                "type": "send_notification_email",
                "to": ["sales@shop.test", "boss@shop.test"],
                "subject": "New lead: %FULLNAME%",
                "body": "<p>%FIRSTNAME% (%EMAIL%) wants a demo</p>",
                "next": "plain",
            },
            "plain": {
                "type": "send_notification_email",
                "to": ["sales@shop.test"],
                "subject": "Plain %FIRSTNAME%",
                "body": "%FIRSTNAME% <%EMAIL%>",
            },
        },
        {"first_name": "<b>Eve</b>", "last_name": "Doe"},
    )
    assert outcomes(run) == {"notify": ("done", None), "plain": ("done", None)}
    (message,) = [m for m in stack.mailbox.to("boss@shop.test") if contact["email"] in str(m)]
    assert message["To"] == "sales@shop.test, boss@shop.test"
    assert header(message, "Subject") == "New lead: <b>Eve</b> Doe"
    assert message["List-Unsubscribe"] is None  # internal: no tracking, no unsubscribe
    body = parts(message)
    assert f"<p>&lt;b&gt;Eve&lt;/b&gt; ({contact['email']}) wants a demo</p>" in body["text/html"]
    assert "/t/o/" not in body["text/html"]
    assert body["text/plain"].strip() == f"<b>Eve</b> ({contact['email']}) wants a demo"
    (plain,) = [
        m
        for m in stack.mailbox.to("sales@shop.test")
        if str(m["Subject"]).startswith("Plain") and contact["email"] in str(m)
    ]
    assert plain.get_content_type() == "text/plain" and not plain.is_multipart()
    assert plain.get_payload(decode=True).decode().strip() == (  # type: ignore[union-attr]
        f"<b>Eve</b> <{contact['email']}>"  # plain text: nothing escaped
    )
    assert header(plain, "From") == stack.settings.mail_from  # CAIRN_MAIL_FROM


async def test_dev_outbox_lists_messages_with_a_link_to_their_body(stack: Stack) -> None:
    port = free_port()
    server = asyncio.create_task(serve_mailbox(stack.settings, port=port))
    try:
        await asyncio.sleep(0.2)
        with configured(stack.settings, smtp_port=port):
            run, contact = await run_steps(
                stack,
                {"mail": {"type": "send_email", "subject": "Dev", "html": "<p>In the box</p>"}},
            )
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
    assert outcomes(run) == {"mail": ("done", None)}
    listed = (await stack.http.get("/api/v1/dev/outbox")).json()
    (entry,) = [m for m in listed if contact["email"] in m["to"]]
    assert entry["subject"] == "Dev" and entry["body"] == f"/api/v1/dev/outbox/{entry['id']}"
    body = await stack.http.get(entry["body"])
    assert body.status_code == 200 and body.headers["content-type"].startswith("text/html")
    assert "<p>In the box</p>" in body.text
    assert (await stack.http.get("/api/v1/dev/outbox/nope")).status_code == 404


# --- links, Message-ID, the default sender ---------------------------------------------------


async def test_links_by_attribute_not_by_substring_and_overlong_links_left_working(
    stack: Stack,
) -> None:
    long_link = "https://shop.test/long?" + "q=" + "x" * 3100  # its click token would be > 4096
    run, contact = await run_steps(
        stack,
        {
            "mail": {
                "type": "send_email",
                "subject": "Links",
                "html": '<p><a data-href="https://data.test/" href="https://real.test/">real</a> '
                '<a data-href="https://only-data.test/">no link</a> '
                "<a href=https://bare.test/a?b=1&amp;c=2 class=x>bare</a> "
                f'<a href="{long_link}">long</a></p>',
            }
        },
    )
    assert outcomes(run) == {"mail": ("done", None)}
    (message,) = stack.mailbox.to(contact["email"])
    body = parts(message)
    html, text = body["text/html"], body["text/plain"]
    assert 'data-href="https://data.test/"' in html  # a data attribute is not the link
    assert 'data-href="https://only-data.test/"' in html
    clicks = tracking_links(html)["click"]
    assert len(clicks) == 2  # real.test and the unquoted bare.test
    targets = []
    for click in clicks:
        answer = await stack.http.get(click.removeprefix("http://localhost:8000"))
        assert answer.status_code == 302
        targets.append(answer.headers["location"])
    assert targets == ["https://real.test/", "https://bare.test/a?b=1&c=2"]
    assert "https://bare.test" not in html  # only inside its signed token
    assert "bare (https://bare.test/a?b=1&c=2)" in text  # the text part keeps the unquoted URL
    assert "no link" in text and "only-data.test" not in text
    # Too long to track: left as written (it works, untracked) rather than a dead 404 link.
    assert f'<a href="{long_link}">long</a>' in html and f"long ({long_link})" in text


def test_message_id_is_unambiguous_stable_and_of_the_public_host() -> None:
    def context(workflow_id: str, visit: int = 2) -> StepContext:
        return StepContext(
            workflow_id=workflow_id,
            automation_id="a",
            version=1,
            contact_id=1,
            step_id="mail",
            visit=visit,
        )

    public = "https://mail.example.com/cairn"
    ids = {
        message_id(context(w, v), public)
        for w, v in [("cairn:a:1:2", 2), ("cairn:a_1:2", 2), ("cairn:a.1:2", 2), ("cairn:a", 12)]
    }
    assert len(ids) == 4  # `:`, `_` and `.` never collide, nor the visit with the id
    assert message_id(context("cairn:a:1:2"), public) == "<cairn%3Aa%3A1%3A2.2@mail.example.com>"
    assert message_id(context("cairn:a:1:2"), public) == message_id(context("cairn:a:1:2"), public)
    for mid in ids:
        assert re.fullmatch(r"<[A-Za-z0-9%_~-]+(\.[0-9]+)@mail\.example\.com>", mid), mid


async def test_default_sender_is_cairn_mail_from(stack: Stack) -> None:
    with configured(stack.settings, mail_from="Shop News <news@shop.test>"):
        run, contact = await run_steps(
            stack, {"mail": {"type": "send_email", "subject": "Hi", "html": "<p>Hi</p>"}}
        )
    assert outcomes(run) == {"mail": ("done", None)}
    (message,) = stack.mailbox.to(contact["email"])
    assert header(message, "From") == "Shop News <news@shop.test>"
    assert message["Reply-To"] is None


SENT_THEN_CHECKED = {
    "mail": {"type": "send_email", "subject": "News", "html": "<p>x</p>", "next": "check"},
    "check": {
        "type": "if_else",
        "condition": {"email": "sent", "step": "mail"},
        "yes": "sent",
        "no": "unsent",
    },
    "sent": {"type": "add_tag", "tag": "was-sent"},
    "unsent": {"type": "add_tag", "tag": "not-sent"},
}


async def test_the_sent_leaf_is_true_once_the_step_sent_its_email(stack: Stack) -> None:
    run, contact = await run_steps(stack, SENT_THEN_CHECKED)
    assert outcomes(run)["check"] == ("done", "yes")
    (event,) = await events_of(stack, contact["id"], "email_sent")
    (message,) = stack.mailbox.to(contact["email"])
    assert event["step"] == "mail" and event["message_id"] == message["Message-ID"]

    # A skipped send is not "sent": unsubscribed from the one list it was on.
    leaver = await stack.contact()
    for status in ("active", "unsubscribed"):
        await stack.http.post(
            f"/api/v1/contacts/{leaver['id']}/lists", json={"list": "news", "status": status}
        )
    automation_id = await stack.automation({"start": "mail", "steps": SENT_THEN_CHECKED})
    run = await finished(stack, (await stack.enroll(leaver["id"], automation_id)).id)
    assert outcomes(run)["mail"][0] == "skipped"
    assert outcomes(run)["check"] == ("done", "no")
    assert await events_of(stack, leaver["id"], "email_sent") == []


async def test_a_contact_without_email_is_skipped(stack: Stack) -> None:
    # The API never leaves a contact without an email (required on create, cannot be removed);
    # other writers of the database might: the sending rule still holds.
    contact = await stack.contact()
    async with stack.db.write() as session:
        row = await session.get(Contact, contact["id"])
        assert row is not None
        row.email = None
    automation_id = await stack.automation(
        {"start": "mail", "steps": {"mail": {"type": "send_email", "subject": "x", "html": "x"}}}
    )
    handle = await stack.enroll(contact["id"], automation_id)
    run = await finished(stack, handle.id)
    assert outcomes(run) == {"mail": ("skipped", "no_email")}


# --- SMTP replies: what is retried, what fails -----------------------------------------------


class Moody:
    """An SMTP relay answering scripted replies, attempt by attempt, then accepting."""

    def __init__(self, script: list[tuple[str, str]]) -> None:
        self.script = script  # (phase, reply): the next attempt's refusal at that phase
        self.attempts: list[str] = []
        self.received: list[Any] = []

    def _refusal(self, phase: str) -> str | None:
        if self.script and self.script[0][0] == phase:
            self.attempts.append(phase)
            return self.script.pop(0)[1]
        return None

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        refusal = self._refusal("MAIL")
        if refusal:
            return refusal
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        refusal = self._refusal("RCPT")
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        refusal = self._refusal("DATA")
        if refusal:
            return refusal
        self.received.append(envelope)
        return "250 OK"


async def test_configuration_refusals_and_4xx_are_retried_until_the_relay_accepts(
    stack: Stack,
) -> None:
    relay = Moody(
        [
            ("MAIL", "530 5.7.0 Authentication required"),  # the operator's to fix: retried
            ("RCPT", "451 4.3.0 try again later"),
            ("DATA", "451 4.3.0 try again later"),
            ("DATA", "554 5.7.1 relay access denied"),  # policy: about us, not the contact
        ]
    )
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with configured(stack.settings, smtp_port=port), stack.env.with_time_skipping_disabled():
            run, contact = await run_steps(
                stack,
                {
                    "mail": {"type": "send_email", "subject": "a", "html": "a", "next": "tag"},
                    "tag": {"type": "add_tag", "tag": "mailed"},
                },
            )
    finally:
        controller.stop()
    assert relay.attempts == ["MAIL", "RCPT", "DATA", "DATA"]
    assert outcomes(run) == {"mail": ("done", None), "tag": ("done", None)}
    assert len(relay.received) == 1 and relay.received[0].rcpt_tos == [contact["email"]]
    assert not (await stack.record(contact["id"]))["bounced"]


# --- STARTTLS and AUTH against a real relay --------------------------------------------------


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cairn test relay")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "relay.pem", directory / "relay.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Relay:
    """Keeps each message with how its session was: TLS or not, who logged in."""

    def __init__(self) -> None:
        self.sessions: list[tuple[bool, Any, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # session.ssl: after STARTTLS; the transport's context: TLS from the first byte.
        encrypted = session.ssl is not None or server.transport.get_extra_info("sslcontext")
        self.sessions.append((bool(encrypted), session.auth_data, envelope))
        return "250 OK"


async def test_starttls_and_auth_against_a_relay_with_its_own_certificate(
    stack: Stack, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        ok = (auth.login, auth.password) == (b"cairn", b"s3cret")
        return AuthResult(success=ok, auth_data=auth.login if ok else None)

    relay, port = Relay(), free_port()
    controller = Controller(
        relay,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    relay_settings = {
        "smtp_port": port,
        "smtp_starttls": True,
        "smtp_username": "cairn",
        "smtp_password": "s3cret",
    }
    mail = {"mail": {"type": "send_email", "subject": "Secure", "html": "<p>tls</p>"}}
    try:
        with configured(stack.settings, **relay_settings, smtp_ca_file=str(cert)):
            run, contact = await run_steps(stack, mail)
        assert outcomes(run) == {"mail": ("done", None)}
        ((encrypted, login, envelope),) = relay.sessions
        assert encrypted and login == b"cairn" and envelope.rcpt_tos == [contact["email"]]

        # Without the CA file the certificate is not trusted: never sent in clear, retried.
        with (
            configured(stack.settings, **relay_settings, smtp_ca_file=""),
            stack.env.with_time_skipping_disabled(),
        ):
            automation_id = await stack.automation({"start": "mail", "steps": mail})
            other = await stack.contact()
            handle = await stack.enroll(other["id"], automation_id)

            async def retrying() -> None:
                pending = (await handle.describe()).raw_description.pending_activities
                assert pending and pending[0].attempt >= 2, pending
                assert "certificate" in pending[0].last_failure.message.lower(), pending

            await eventually(retrying, within=30)
            await handle.terminate("test over")
        assert len(relay.sessions) == 1
    finally:
        controller.stop()


def relay_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A relay's server-side TLS context and the certificate to trust for it."""
    cert, key = self_signed_certificate(directory)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    return tls, cert


SECURE_MAIL = {"mail": {"type": "send_email", "subject": "Secure", "html": "<p>tls</p>"}}


async def test_a_relay_offering_starttls_gets_an_encrypted_session_by_default(
    stack: Stack, tmp_path: Path
) -> None:
    """CAIRN_SMTP_STARTTLS unset (false) once meant no upgrade at all, even when offered."""
    tls, cert = relay_tls(tmp_path)
    relay, port = Relay(), free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port, tls_context=tls)
    controller.start()
    try:
        with configured(stack.settings, smtp_port=port, smtp_ca_file=str(cert)):
            run, contact = await run_steps(stack, SECURE_MAIL)
        assert outcomes(run) == {"mail": ("done", None)}
        ((encrypted, _, envelope),) = relay.sessions
        assert encrypted and envelope.rcpt_tos == [contact["email"]]
    finally:
        controller.stop()


async def test_credentials_are_never_sent_to_a_relay_without_tls(stack: Stack) -> None:
    """A relay that offers no TLS and would take AUTH in clear: the step fails at once with a
    configuration error (no retries), and the relay sees neither a login nor a message."""
    logins: list[Any] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        logins.append(auth)
        return AuthResult(success=True, auth_data=auth.login)

    relay, port = Relay(), free_port()
    controller = Controller(
        relay,
        hostname="127.0.0.1",
        port=port,
        auth_require_tls=False,
        authenticator=authenticate,
    )
    controller.start()
    try:
        with configured(
            stack.settings, smtp_port=port, smtp_username="cairn", smtp_password="s3cret"
        ):
            run, _ = await run_steps(stack, SECURE_MAIL)
        ((outcome, reason),) = outcomes(run).values()
        assert outcome == "failed" and reason and "in clear" in reason, run
        assert logins == [] and relay.sessions == []
        (attempt,) = await started_activities(stack, run["workflow_id"], "send_email")
        assert attempt.attempt == 1  # no retry storm
    finally:
        controller.stop()


async def test_implicit_tls_to_a_tls_wrapped_relay(stack: Stack, tmp_path: Path) -> None:
    """SMTPS (TLS from the first byte, port 465 in production): CAIRN_SMTP_TLS=implicit."""
    tls, cert = relay_tls(tmp_path)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        return AuthResult(success=True, auth_data=auth.login)

    relay, port = Relay(), free_port()
    controller = Controller(
        relay,
        hostname="127.0.0.1",
        port=port,
        ssl_context=tls,
        auth_required=True,
        # aiosmtpd counts only STARTTLS as TLS; this session is encrypted from its first byte.
        auth_require_tls=False,
        authenticator=authenticate,
    )
    controller.start()
    try:
        with configured(
            stack.settings,
            smtp_port=port,
            smtp_tls="implicit",
            smtp_ca_file=str(cert),
            smtp_username="cairn",
            smtp_password="s3cret",
        ):
            run, contact = await run_steps(stack, SECURE_MAIL)
        assert outcomes(run) == {"mail": ("done", None)}
        ((encrypted, login, envelope),) = relay.sessions
        assert encrypted and login == b"cairn" and envelope.rcpt_tos == [contact["email"]]
    finally:
        controller.stop()
