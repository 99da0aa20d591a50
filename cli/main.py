"""The `cairn` command: every process of the stack is one subcommand (docs/architecture.md#processes), so `cairn run`
and a production deployment run the same programs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.keys import SHARED_PURPOSES
from core.logs import configure_logging
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    import httpx
    from temporalio.client import Client

# Temporal keeps a finished run's history this long in a namespace `cairn setup` creates: long
# enough to look into last week's runs in the UI, short enough not to pile up.
DEFAULT_RETENTION_DAYS = 7


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as err:
        # A bad CAIRN_* variable: one line per problem, not a traceback.
        # (A check across settings names no single one: its message names them.)
        problems = "; ".join(
            f"{e['loc'][0]}: {e['msg']}" if e["loc"] else e["msg"] for e in err.errors()
        )
        parser.exit(2, f"cairn: invalid configuration: {problems}\n")
    configure_logging(settings)
    # Alembic announces each of its plugins at INFO on every start: noise in `cairn run`'s output.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    command: Callable[[Settings, argparse.Namespace], int] = args.command
    return command(settings, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cairn", description=__doc__)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="the embedded stack: Temporal dev server, mailbox, worker, API"
    )
    run.set_defaults(command=_run)

    worker = commands.add_parser("worker", help="the Temporal worker")
    worker.set_defaults(command=_worker)

    api = commands.add_parser("api", help="the HTTP API")
    api.set_defaults(command=_api)

    mailbox = commands.add_parser("mailbox", help="the development SMTP mailbox")
    mailbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    mailbox.add_argument("--port", type=int, help="port to listen on (default CAIRN_SMTP_PORT)")
    mailbox.set_defaults(command=_mailbox)

    setup = commands.add_parser(
        "setup",
        help="prepare a cluster: create the namespace if missing, register the search attributes",
    )
    setup.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to retry connecting to Temporal (it may still be starting)",
    )
    setup.add_argument(
        "--retention-days",
        type=float,
        default=DEFAULT_RETENTION_DAYS,
        metavar="DAYS",
        help="how long a new namespace keeps finished runs' histories "
        f"(default {DEFAULT_RETENTION_DAYS}; an existing namespace is left as it is)",
    )
    setup.set_defaults(command=_setup)

    keys = commands.add_parser("keys", help="the keys derived from CAIRN_SECRET_KEY")
    verbs = keys.add_subparsers(title="commands", required=True, metavar="COMMAND")
    show = verbs.add_parser(
        "show",
        help="print a key others must hold: webhook (receivers verify X-Cairn-Signature with "
        "it) or site (the website's backend signs visitors' emails with it)",
    )
    show.add_argument("purpose", choices=SHARED_PURPOSES, metavar="webhook|site")
    show.add_argument(
        "--old",
        action="store_true",
        help="also print the key of each CAIRN_SECRET_KEY_OLD secret, one a line after it",
    )
    show.set_defaults(command=_show_key)

    codec = commands.add_parser(
        "codec-endpoint",
        help="print the codec endpoint to give a separate Temporal UI (TEMPORAL_CODEC_ENDPOINT)",
    )
    codec.set_defaults(command=_codec_endpoint)
    _operator_commands(commands)
    return parser


def _operator_commands(commands: Any) -> None:
    """`cairn automations ...`, `contacts ...`, `tokens ...`: clients of a running API."""
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--api-url", help="the API's base URL (default http://API_HOST:API_PORT)")
    # Removed: a token on the command line shows in `ps` and in shell history. Still parsed, so
    # that a script passing it learns why it fails and what to do instead.
    remote.add_argument("--token", help=argparse.SUPPRESS)

    automations = commands.add_parser("automations", help="apply automations, read reports")
    verbs = automations.add_subparsers(title="commands", required=True, metavar="COMMAND")
    apply = verbs.add_parser(
        "apply", parents=[remote], help="validate FILE.yaml|json, then create or update it"
    )
    apply.add_argument("file", type=Path, metavar="FILE")
    apply.set_defaults(command=_remote(_apply))
    report = verbs.add_parser("report", parents=[remote], help="an automation's step report")
    report.add_argument("automation", metavar="ID")
    report.set_defaults(command=_remote(_report))

    simulate = commands.add_parser(
        "simulate",
        parents=[remote],
        help="what an automation would do to a contact: a timeline on virtual time",
    )
    simulate.add_argument("target", metavar="FILE_OR_ID", help="a draft file or a saved automation")
    who = simulate.add_mutually_exclusive_group()
    who.add_argument("--contact", type=Path, metavar="FILE.json", help="a made-up contact")
    who.add_argument("--contact-id", type=int, metavar="ID", help="a copy of a real contact")
    simulate.add_argument(
        "--event",
        action="append",
        default=[],
        metavar="'OFFSET WHAT'",
        help="e.g. '3d purchase', '2h click welcome', '1d tag vip' (see docs/simulation.md)",
    )
    simulate.add_argument("--start-at", metavar="ISO", help="virtual start (default: now)")
    simulate.add_argument("--horizon", metavar="OFFSET", help="how far to look (default 90d)")
    simulate.add_argument("--json", action="store_true", help="print the API's answer")
    simulate.set_defaults(command=_remote(_simulate))

    outbox = commands.add_parser("outbox", help="the outbox's dead letters")
    verbs = outbox.add_subparsers(title="commands", required=True, metavar="COMMAND")
    dead = verbs.add_parser(
        "dead", parents=[remote], help="list rows set aside after failing every delivery"
    )
    dead.set_defaults(command=_remote(_dead_letters))
    retry = verbs.add_parser(
        "retry", parents=[remote], help="put a dead letter back in the outbox (by its id)"
    )
    retry.add_argument("dead_letter", type=int, metavar="ID")
    retry.set_defaults(command=_remote(_retry_dead_letter))

    contacts = commands.add_parser("contacts", help="import contacts")
    verbs = contacts.add_subparsers(title="commands", required=True, metavar="COMMAND")
    imports = verbs.add_parser(
        "import", parents=[remote], help="upsert contacts from a CSV file with a header row"
    )
    imports.add_argument("file", type=Path, metavar="FILE.csv")
    imports.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN=FIELD",
        help="store COLUMN as FIELD ('-' skips it); by default email, first_name, last_name "
        "and phone are standard fields and other columns custom fields of the same name",
    )
    imports.add_argument(
        "--tag", action="append", default=[], help="tag every contact (repeatable)"
    )
    imports.add_argument("--list", help="subscribe every contact to this list")
    imports.add_argument("--enroll", metavar="AUTOMATION", help="enroll every contact")
    imports.add_argument(
        "--concurrency", type=int, default=8, help="requests in flight at once (default 8)"
    )
    imports.set_defaults(command=_remote(_import))

    tokens = commands.add_parser("tokens", help="create, list and revoke scoped API tokens")
    verbs = tokens.add_subparsers(title="commands", required=True, metavar="COMMAND")
    create = verbs.add_parser(
        "create", parents=[remote], help="create a named token and print it (only this once)"
    )
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=["admin", "events:write", "site"],
        help="what it may call (repeatable): admin (everything), events:write "
        "(POST /api/v1/events), site (POST /api/v1/site/visits)",
    )
    create.set_defaults(command=_remote(_token_create))
    listing = verbs.add_parser("list", parents=[remote], help="every token, never their text")
    listing.set_defaults(command=_remote(_token_list))
    revoke = verbs.add_parser("revoke", parents=[remote], help="refuse a token from now on")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(command=_remote(_token_revoke))

    demo = commands.add_parser(
        "demo", parents=[remote], help="load the examples and sample contacts, watch the runs"
    )
    demo.add_argument("--examples", type=Path, help="the examples folder (default examples/)")
    demo.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the runs to settle"
    )
    demo.set_defaults(command=_remote(_demo))


def _remote(
    action: Callable[[httpx.AsyncClient, argparse.Namespace, Settings], Coroutine[Any, Any, int]],
) -> Callable[[Settings, argparse.Namespace], int]:
    """A command run against the API; a `CommandError` is printed and exits 1."""
    from cli.operate import CommandError, api_client

    def command(settings: Settings, args: argparse.Namespace) -> int:
        if args.token is not None:
            print(
                "cairn: --token is no longer accepted (other users see it in `ps`): "
                "set CAIRN_API_TOKEN instead",
                file=sys.stderr,
            )
            return 2
        # httpx logs each request at INFO: the command's own output says what happened.
        logging.getLogger("httpx").setLevel(logging.WARNING)

        async def run() -> int:
            async with api_client(settings, args.api_url) as client:
                return await action(client, args, settings)

        try:
            return asyncio.run(run())
        except CommandError as err:
            print(f"cairn: {err}", file=sys.stderr)
            return 1

    return command


async def _apply(client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings) -> int:
    from cli.operate import apply_automation

    return await apply_automation(client, args.file)


async def _simulate(client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings) -> int:
    from cli.simulate import request_body, simulate, target_request

    body = request_body(args.contact, args.contact_id, args.event, args.start_at, args.horizon)
    url, body = target_request(args.target, body)
    return await simulate(client, url, body, sys.stdout, as_json=args.json)


async def _report(client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings) -> int:
    from cli.operate import show_report

    return await show_report(client, args.automation, sys.stdout)


async def _dead_letters(
    client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings
) -> int:
    from cli.operate import show_dead_letters

    return await show_dead_letters(client, sys.stdout)


async def _retry_dead_letter(
    client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings
) -> int:
    from cli.operate import retry_dead_letter

    return await retry_dead_letter(client, args.dead_letter, sys.stdout)


async def _demo(client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings) -> int:
    from cli.demo import EXAMPLES, run_demo

    return await run_demo(client, examples=args.examples or EXAMPLES, settle_within=args.timeout)


async def _import(client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings) -> int:
    from cli.operate import ImportOptions, parse_mapping, run_import

    options = ImportOptions(
        mapping=parse_mapping(args.map),
        tags=args.tag,
        list=args.list,
        enroll=args.enroll,
        concurrency=args.concurrency,
    )
    return await run_import(client, args.file, options)


async def _token_create(
    client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings
) -> int:
    from cli.operate import create_token

    return await create_token(client, args.name, args.scope, sys.stdout)


async def _token_list(
    client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings
) -> int:
    from cli.operate import list_tokens

    return await list_tokens(client, sys.stdout)


async def _token_revoke(
    client: httpx.AsyncClient, args: argparse.Namespace, settings: Settings
) -> int:
    from cli.operate import revoke_token

    return await revoke_token(client, args.name, sys.stdout)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from cli.launcher import run_embedded

    return run_embedded(settings)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from worker.main import run_worker  # type: ignore[import-not-found, unused-ignore]

    return _run_until_signalled(lambda: run_worker(settings))


def _api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    # JSON logs: uvicorn's own loggers then go through the root handler instead of its text ones.
    log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_config=log_config,
    )
    return 0


def _mailbox(settings: Settings, args: argparse.Namespace) -> int:
    from cli.mailbox import serve_mailbox

    return _run_until_signalled(lambda: serve_mailbox(settings, host=args.host, port=args.port))


def _show_key(settings: Settings, args: argparse.Namespace) -> int:
    print(settings.shared_key(args.purpose))
    if args.old:
        for key in settings.old_shared_keys(args.purpose):
            print(key)
    return 0


def _codec_endpoint(settings: Settings, args: argparse.Namespace) -> int:
    """On CAIRN_PUBLIC_URL, with the key derived from CAIRN_SECRET_KEY: both must be the API's."""
    from core.codec import ui_codec_endpoint

    print(ui_codec_endpoint(settings))
    return 0


def _setup(settings: Settings, args: argparse.Namespace) -> int:
    from core.temporal import ensure_namespace, register_search_attributes

    if args.retention_days <= 0:
        print("cairn: --retention-days must be positive", file=sys.stderr)
        return 2

    async def setup() -> int:
        client = await _connect_with_retry(settings, args.wait)
        namespace = settings.temporal_namespace
        where = f"namespace {namespace!r} at {settings.temporal_address}"
        retention = timedelta(days=args.retention_days)
        if await ensure_namespace(client, namespace, retention):
            print(f"created {where} (retention {args.retention_days:g} days)")
        else:
            print(f"{where} already exists")
        added = await register_search_attributes(client, namespace)
        if added:
            print(f"registered search attributes {', '.join(added)} in {where}")
        else:
            print(f"search attributes already registered in {where}")
        return 0

    code = asyncio.run(setup())
    # The Temporal client's Rust threads can abort a short-lived process's interpreter teardown
    # (SIGABRT, "PyGILState_Release": temporalio/sdk-python#300) after the work is done and
    # reported: nothing is left to clean up, so skip the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def _connect_with_retry(settings: Settings, wait: float) -> Client:
    from temporalio.client import Client

    from core.codec import data_converter

    # In docker-compose `cairn setup` starts alongside the Temporal server, which takes a while.
    deadline = time.monotonic() + wait
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=data_converter(settings),
            )
        except RuntimeError as err:
            if time.monotonic() >= deadline:
                raise SystemExit(
                    f"cairn: cannot connect to Temporal at {settings.temporal_address}: {err}"
                ) from err
            logging.getLogger("cairn.setup").info("Temporal not reachable yet (%s), retrying", err)
            await asyncio.sleep(2)


def _run_until_signalled(make: Callable[[], Coroutine[Any, Any, Any]]) -> int:
    """Run a long-lived coroutine; SIGINT/SIGTERM cancel it, which is a clean exit (code 0)."""

    async def supervise() -> None:
        task = asyncio.ensure_future(make())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    asyncio.run(supervise())
    return 0


if __name__ == "__main__":
    sys.exit(main())
