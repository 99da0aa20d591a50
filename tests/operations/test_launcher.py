"""The embedded stack's parts, for real: the dev server's command line, the development mailbox
over SMTP, child supervision, and the Temporal dev server keeping its state across restarts."""

from __future__ import annotations

import asyncio
import io
import socket
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from cli.launcher import (
    Child,
    ChildFailed,
    EmbeddedStack,
    child_env,
    embedded_settings,
    port_open,
    start_child,
    start_temporal_dev_server,
)
from cli.mailbox import serve_mailbox
from cli.temporal_dev_server import dev_server_args
from core.settings import Settings
from core.temporal import SEARCH_ATTRIBUTES, register_search_attributes
from store.mailbox import list_messages
from tests.helpers.stack import Mailbox, local_settings
from workflows.contracts import AUTOMATION_KEY


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == option]


# --- the dev server's command line ---------------------------------------------------------------


def test_dev_server_args_follow_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        temporal_address="localhost:7300",
        temporal_ui_url="http://localhost:9300",
        temporal_namespace="marketing",
    )
    args = dev_server_args(settings)
    assert Path(args[0]).name == "temporal"
    assert args[1:3] == ["server", "start-dev"]
    assert option_values(args, "--db-filename") == [str(tmp_path.resolve() / "temporal.db")]
    assert option_values(args, "--ip") == ["127.0.0.1"]
    assert option_values(args, "--port") == ["7300"]
    assert option_values(args, "--ui-port") == ["9300"]
    assert option_values(args, "--namespace") == ["marketing"]
    assert option_values(args, "--search-attribute") == [
        "CairnAutomation=Keyword",
        "CairnContact=Keyword",
        "CairnStep=Keyword",
        "CairnVersion=Int",
        "CairnSimulation=Bool",
    ]
    assert option_values(args, "--dynamic-config-value") == [
        "frontend.WorkflowTimeSkippingEnabled=true"
    ]
    assert option_values(args, "--log-level") == ["error"]


def test_dev_server_defaults_are_the_documented_ports() -> None:
    args = dev_server_args(Settings())
    assert option_values(args, "--port") == ["7233"]
    assert option_values(args, "--ui-port") == ["8233"]


def test_sqlite_pragmas_can_be_turned_off() -> None:
    with_pragmas = dev_server_args(Settings())
    assert option_values(with_pragmas, "--sqlite-pragma") == [
        "journal_mode=wal",
        "synchronous=normal",
    ]
    without = dev_server_args(Settings(), sqlite_pragmas=False)
    assert "--sqlite-pragma" not in without


def test_children_get_the_launchers_settings(tmp_path: Path) -> None:
    env = child_env(Settings(data_dir=tmp_path / "rel", api_port=8123, smtp_starttls=True))
    assert env["CAIRN_DATA_DIR"] == str((tmp_path / "rel").resolve())
    assert env["CAIRN_API_PORT"] == "8123"
    assert env["CAIRN_SMTP_STARTTLS"] == "true"


def test_cairn_run_on_loopback_accepts_unsigned_site_emails_unless_told_otherwise(
    tmp_path: Path,
) -> None:
    """Signed site emails are required by default; the embedded stack on a laptop relaxes that
    (so site.js can be tried without a website backend), never once reachable or when set."""

    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]

    assert settings().site_require_signed_email  # every process but `cairn run`
    laptop = EmbeddedStack(settings())
    assert not laptop.settings.site_require_signed_email
    assert child_env(laptop.settings)["CAIRN_SITE_REQUIRE_SIGNED_EMAIL"] == "false"
    assert embedded_settings(settings(site_require_signed_email=True)).site_require_signed_email
    secrets = {"secret_key": "s" * 32, "api_token": "t" * 32}
    for reachable in (
        settings(api_host="0.0.0.0", **secrets),
        settings(public_url="https://mail.example.com", **secrets),
    ):
        assert EmbeddedStack(reachable).settings.site_require_signed_email


# --- the development mailbox ---------------------------------------------------------------------


async def test_mailbox_keeps_what_it_receives(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    port = settings.smtp_port
    server = asyncio.create_task(serve_mailbox(settings, port=port))
    try:
        deadline = time.monotonic() + 5
        while not await port_open("127.0.0.1", port):
            assert time.monotonic() < deadline, "mailbox never listened"
            await asyncio.sleep(0.05)
        for n in (1, 2):
            message = EmailMessage()
            message["From"] = "Cairn <cairn@localhost>"
            message["To"] = "ada@example.com"
            message["Subject"] = f"Welcome #{n} — café"
            message["Message-ID"] = f"<run-{n}@cairn>"
            message.set_content("Hello Ada")
            await aiosmtplib.send(
                message,
                hostname="127.0.0.1",
                port=port,
                recipients=["ada@example.com", "audit@example.com"],
            )
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server

    messages = list_messages(settings)
    assert [m["subject"] for m in messages] == ["Welcome #2 — café", "Welcome #1 — café"]
    newest = messages[0]
    assert newest["to"] == "ada@example.com"
    assert newest["from"] == "Cairn <cairn@localhost>"
    assert newest["message_id"] == "<run-2@cairn>"
    assert newest["date"]
    assert list_messages(settings, limit=1) == messages[:1]
    # The envelope is kept too: a Bcc'd recipient is visible nowhere else.
    stored = next((settings.data_dir / "mailbox" / "new").iterdir()).read_text()
    assert "X-Original-To: ada@example.com, audit@example.com" in stored


def test_the_dev_mailbox_is_used_only_when_no_relay_is_set(tmp_path: Path) -> None:
    def mailbox(**values: object) -> tuple[bool, str]:
        settings = Settings(data_dir=tmp_path, _env_file=None, **values)  # type: ignore[call-arg]
        return settings.uses_dev_mailbox, settings.smtp_relay_host

    assert mailbox() == (True, "localhost")
    # A relay on this machine (a local Postfix, another catcher) is a relay like any other.
    assert mailbox(smtp_host="localhost") == (False, "localhost")
    assert mailbox(smtp_host="mail.example.com") == (False, "mail.example.com")
    assert mailbox(dev_mailbox=True, smtp_host="127.0.0.1") == (True, "127.0.0.1")
    assert mailbox(dev_mailbox=False) == (False, "localhost")
    with pytest.raises(ValueError, match="CAIRN_DEV_MAILBOX=true catches mail on this machine"):
        mailbox(dev_mailbox=True, smtp_host="mail.example.com")


async def test_a_relay_listening_on_localhost_is_used_not_fought_over(tmp_path: Path) -> None:
    relay = Mailbox()  # a real SMTP server on the port the dev mailbox would take
    relay.controller.start()
    settings = local_settings(tmp_path, smtp_host="localhost", smtp_port=relay.port)
    out = io.StringIO()
    stack = EmbeddedStack(settings, out=out)
    running = asyncio.create_task(stack.run())
    try:
        deadline = time.monotonic() + 120
        while "Cairn is running" not in out.getvalue():
            assert not running.done(), out.getvalue()
            assert time.monotonic() < deadline, out.getvalue()
            await asyncio.sleep(0.2)
        assert [child.name for child in stack.children] == ["temporal", "worker", "api"]
        assert f"SMTP relay      localhost:{relay.port}" in out.getvalue()
        assert "Dev mailbox" not in out.getvalue()
    finally:
        stack.stop()
        assert await running == 0
        relay.controller.stop()


def test_the_box_shows_the_api_token_only_when_it_is_the_published_default(
    tmp_path: Path,
) -> None:
    secret = "box-token-7c2e9f4a1b"
    for token, shown in (("dev-token", "dev-token"), (secret, "not shown")):
        out = io.StringIO()
        EmbeddedStack(local_settings(tmp_path, api_token=token), out=out)._print_box()
        (line,) = [line for line in out.getvalue().splitlines() if "API token" in line]
        assert shown in line, out.getvalue()
    assert secret not in out.getvalue()


def test_an_empty_mailbox_lists_nothing(tmp_path: Path) -> None:
    assert list_messages(Settings(data_dir=tmp_path)) == []


# --- child supervision ---------------------------------------------------------------------------


def python_child(name: str, code: str, out: io.StringIO) -> Child:
    return Child(name, [sys.executable, "-c", code], out=out, label_width=8)


async def test_a_child_that_dies_is_reported_with_its_last_lines() -> None:
    out = io.StringIO()
    child = python_child(
        "worker", "import sys\nfor i in range(60): print('line', i)\nsys.exit(3)", out
    )

    async def never() -> bool:
        return False

    with pytest.raises(ChildFailed) as failed:
        await start_child(child, never, within=10)
    assert failed.value.reason == "exited with code 3"
    assert len(child.tail) == 50 and child.tail[-1] == "line 59"
    assert "worker   | line 0\n" in out.getvalue()


async def test_a_child_that_ignores_sigterm_is_killed() -> None:
    out = io.StringIO()
    child = python_child(
        "stubborn",
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)",
        out,
    )

    async def ready() -> bool:
        return "ready" in child.tail

    await start_child(child, ready, within=10)
    started = time.monotonic()
    assert await child.stop(grace=0.5) == -9
    assert time.monotonic() - started < 5


async def test_the_stack_refuses_to_start_on_a_busy_port(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", settings.api_port))
        busy.listen()
        out = io.StringIO()
        assert await EmbeddedStack(settings, out=out).run() == 1
    assert f"already in use: 127.0.0.1:{settings.api_port}" in out.getvalue()


# --- the Temporal dev server ---------------------------------------------------------------------


async def test_temporal_dev_server_keeps_its_state_across_restarts(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, temporal_namespace="cairn-test")
    workflow_id = "cairn:welcome:contact-1"

    server, client = await start_temporal_dev_server(settings, out=io.StringIO(), within=30)
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="cairn-test")
        )
        assert {k.name: int(k.indexed_value_type) for k in SEARCH_ATTRIBUTES} == {
            name: int(listed.custom_attributes[name])
            for name in (k.name for k in SEARCH_ATTRIBUTES)
        }
        # No worker: the workflow just waits for one, which is all this test needs.
        await client.start_workflow(
            "Nothing",
            id=workflow_id,
            task_queue="nobody",
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(AUTOMATION_KEY, "welcome")]
            ),
        )
    finally:
        assert await server.stop() == 0

    assert (settings.data_dir / "temporal.db").exists()
    server, client = await start_temporal_dev_server(settings, out=io.StringIO(), within=30)
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        found = [wf.id async for wf in client.list_workflows('CairnAutomation = "welcome"')]
        assert found == [workflow_id]
    finally:
        assert await server.stop() == 0


async def test_register_search_attributes_is_idempotent(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    server, client = await start_temporal_dev_server(settings, out=io.StringIO(), within=30)
    try:
        # A namespace as `cairn setup` finds it on a new cluster: none of Cairn's attributes.
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace="fresh", workflow_execution_retention_period=Duration(seconds=86400)
            )
        )
        added = await register_search_attributes(client, "fresh")
        assert added == [
            "CairnAutomation",
            "CairnContact",
            "CairnSimulation",
            "CairnStep",
            "CairnVersion",
        ]
        assert await register_search_attributes(client, "fresh") == []
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="fresh")
        )
        assert listed.custom_attributes["CairnVersion"] == IndexedValueType.INDEXED_VALUE_TYPE_INT
    finally:
        await server.stop()
