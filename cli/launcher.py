"""`make run`'s embedded stack (docs/architecture.md#processes): the Temporal dev server, the development mailbox, the
worker and the API as child processes that this launcher starts in order, watches and stops."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

import httpx
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
)
from temporalio.client import Client

from cli.temporal_dev_server import DEFAULT_GRPC_PORT, dev_server_args, split_host_port, ui_port
from core.codec import data_converter
from core.settings import KNOWN_API_TOKENS, Settings

HEALTH_TIMEOUT = 60.0  # seconds a child has to become healthy
STOP_TIMEOUT = 10.0  # seconds a child has to exit after SIGTERM before it is killed
TAIL_LINES = 50  # lines of each child's output kept to explain its death

HealthCheck = Callable[[], Awaitable[bool]]
T = TypeVar("T")


class ChildFailed(Exception):
    """A child died or never became healthy."""

    def __init__(self, child: Child, reason: str) -> None:
        super().__init__(f"{child.name} {reason}")
        self.child = child
        self.reason = reason


if sys.platform == "linux":
    _libc = ctypes.CDLL(None, use_errno=True)
    _PR_SET_PDEATHSIG = 1

    def _die_with_launcher() -> None:
        # Runs in the forked child: if the launcher is killed outright (SIGKILL, OOM), the kernel
        # kills its children too instead of leaving orphans that hold the ports. SIGKILL, not
        # SIGTERM: with the server dying at the same moment, a worker's graceful shutdown was seen
        # to hang; every child is crash-safe (Temporal's SQLite is in WAL mode, Maildir is atomic).
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    _PREEXEC: Callable[[], None] | None = _die_with_launcher
else:
    _PREEXEC = None


@dataclass
class Child:
    """One child process whose output is echoed line by line, prefixed with its name."""

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    out: TextIO | None = field(default=None, repr=False)  # None: sys.stdout at write time
    label_width: int = 0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES), repr=False)
    started_at: float = 0.0  # wall-clock time, comparable with Temporal's timestamps
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _pump: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        self.started_at = time.time()
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group: Ctrl-C in the terminal reaches only the launcher, which then
            # stops the children in reverse order (the worker before the server it talks to).
            process_group=0,
            preexec_fn=_PREEXEC,
            limit=1 << 20,
        )
        self._pump = asyncio.create_task(self._echo_output(), name=f"echo {self.name}")

    async def _echo_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        prefix = f"{self.name:<{self.label_width}} | "
        while True:
            try:
                raw = await self.process.stdout.readline()
            except ValueError:  # a line over the 1 MiB limit: asyncio dropped it
                raw = b"[line too long, dropped]\n"
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.tail.append(line)
            out = self.out or sys.stdout
            out.write(prefix + line + "\n")
            out.flush()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process else None

    async def wait(self) -> int:
        """Wait for the process to exit and its last output to be echoed; its exit code."""
        assert self.process is not None
        code = await self.process.wait()
        if self._pump is not None:
            # A grandchild may hold the pipe open after the child exits: don't wait for it forever.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pump), 2)
        return code

    async def stop(self, grace: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code (None if never started)."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.wait(), grace)
            except TimeoutError:
                self.kill()
        return await self.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


def describe_exit(code: int | None) -> str:
    """`exited with code 1`, `was killed by SIGKILL`."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


async def wait_healthy(child: Child, healthy: HealthCheck, within: float = HEALTH_TIMEOUT) -> None:
    """Poll `healthy` until it answers True; raise `ChildFailed` if the child exits or time runs out."""
    deadline = time.monotonic() + within
    while True:
        if child.returncode is not None:
            raise ChildFailed(child, describe_exit(await child.wait()))
        with contextlib.suppress(Exception):  # not up yet: refused, reset, timed out, 503...
            if await asyncio.wait_for(healthy(), 5):
                return
        if time.monotonic() >= deadline:
            raise ChildFailed(child, f"was not healthy after {within:.0f} s")
        await asyncio.sleep(0.2)


async def start_child(child: Child, healthy: HealthCheck, within: float = HEALTH_TIMEOUT) -> Child:
    """Start `child` and wait until it is healthy; on failure it is stopped and `ChildFailed` raised."""
    await child.start()
    try:
        await wait_healthy(child, healthy, within)
    except BaseException:
        await child.stop()
        raise
    return child


async def port_open(host: str, port: int, within: float = 1.0) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def child_env(settings: Settings) -> dict[str, str]:
    """The launcher's environment plus `settings` as `CAIRN_*` variables, so every child sees
    exactly the configuration the launcher was given (data_dir made absolute)."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:  # unset: the child decides as the launcher did
            continue
        if name == "data_dir":
            value = Path(value).resolve()
        env[f"CAIRN_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env["PYTHONUNBUFFERED"] = "1"  # children's lines should show up as they are written
    return env


def cairn_command(command: str) -> list[str]:
    """A `cairn` CLI subcommand run with this interpreter (works without the console script)."""
    return [sys.executable, "-m", "cli.main", command]


def _connect_host(host: str) -> str:
    # A server bound to every interface is reached through loopback.
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def _temporal_health(settings: Settings, clients: list[Client]) -> HealthCheck:
    host, port = split_host_port(settings.temporal_address, DEFAULT_GRPC_PORT)

    async def healthy() -> bool:
        if not await port_open(_connect_host(host), port):
            return False
        # Cairn's converter, like every client: this one is handed on to the launcher's checks.
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
        )
        # The namespace answering, not just the port: workers and the API need it.
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.temporal_namespace)
        )
        clients[:] = [client]
        return True

    return healthy


def temporal_dev_server(
    settings: Settings,
    *,
    sqlite_pragmas: bool = True,
    out: TextIO | None = None,
    label_width: int = 0,
) -> Child:
    """The embedded Temporal dev server as a child, not started yet."""
    return Child(
        "temporal",
        dev_server_args(settings, sqlite_pragmas=sqlite_pragmas),
        env=child_env(settings),
        out=out,
        label_width=label_width,
    )


async def start_temporal_dev_server(
    settings: Settings,
    *,
    sqlite_pragmas: bool = True,
    out: TextIO | None = None,
    within: float = HEALTH_TIMEOUT,
) -> tuple[Child, Client]:
    """Start the embedded Temporal dev server; return it once healthy, with a connected client."""
    await asyncio.to_thread(Path(settings.data_dir).mkdir, parents=True, exist_ok=True)
    child = temporal_dev_server(settings, sqlite_pragmas=sqlite_pragmas, out=out)
    return child, await _start_temporal(child, settings, within)


async def _start_temporal(child: Child, settings: Settings, within: float) -> Client:
    clients: list[Client] = []
    await start_child(child, _temporal_health(settings, clients), within)
    return clients[0]


def _worker_health(settings: Settings, client: Client, child: Child) -> HealthCheck:
    async def healthy() -> bool:
        # The worker is up when it polls its task queue. Pollers are remembered for minutes, so
        # only one that polled since this child started counts (not a previous run's worker).
        described = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.temporal_namespace,
                task_queue=TaskQueue(
                    name=settings.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
                ),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return any(
            p.last_access_time.ToSeconds() >= int(child.started_at) - 1 for p in described.pollers
        )

    return healthy


def _api_health(settings: Settings) -> HealthCheck:
    url = f"http://{_connect_host(settings.api_host)}:{settings.api_port}/healthz"

    async def healthy() -> bool:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(url)).status_code == 200

    return healthy


def _port_health(host: str, port: int) -> HealthCheck:
    async def healthy() -> bool:
        return await port_open(host, port)

    return healthy


def embedded_settings(settings: Settings) -> Settings:
    """What the embedded stack runs with: `settings`, except that on a laptop (API on loopback,
    localhost public URL) an unset CAIRN_SITE_REQUIRE_SIGNED_EMAIL is off, so site.js can be
    tried with a plain email and no website backend. Reachable, or set explicitly: as given."""
    if settings.reachable or "site_require_signed_email" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"site_require_signed_email": False})


class EmbeddedStack:
    """The children of `cairn run`, started in dependency order and stopped in reverse."""

    def __init__(self, settings: Settings, out: TextIO | None = None) -> None:
        self.settings = settings = embedded_settings(settings)
        self.out = out
        self.with_mailbox = settings.uses_dev_mailbox
        self.children: list[Child] = []
        self._stopping = asyncio.Event()
        self._label_width = len("temporal")

    def say(self, text: str) -> None:
        out = self.out or sys.stdout
        out.write(text + "\n")
        out.flush()

    async def run(self) -> int:
        """Start everything, wait for Ctrl-C or a death; the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            busy = await self._busy_ports()
            if busy:
                self.say(f"cairn: cannot start, already in use: {', '.join(busy)}")
                self.say("cairn: is another `cairn run` still running?")
                return 1
            return await self._run_children()
        finally:
            if self.children:
                await self._stop_all()
                self.say("cairn: stopped")
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def stop(self) -> None:
        """Stop everything, as Ctrl-C does; a second call kills what is still stopping."""
        if self._stopping.is_set():
            # A second Ctrl-C: the user does not want to wait for graceful shutdowns.
            for child in self.children:
                child.kill()
        self._stopping.set()

    async def _busy_ports(self) -> list[str]:
        # Checked up front: a health check against someone else's server would pass and hide
        # that our child is dying of "address already in use".
        s = self.settings
        _, grpc_port = split_host_port(s.temporal_address, DEFAULT_GRPC_PORT)
        wanted = [("127.0.0.1", grpc_port), ("127.0.0.1", ui_port(s))]
        if self.with_mailbox:
            wanted.append(("127.0.0.1", s.smtp_port))
        wanted.append((_connect_host(s.api_host), s.api_port))
        return [f"{h}:{p}" for h, p in wanted if await port_open(h, p)]

    async def _run_children(self) -> int:
        s = self.settings
        await asyncio.to_thread(Path(s.data_dir).mkdir, parents=True, exist_ok=True)
        env = child_env(s)
        try:
            temporal = self._register(
                temporal_dev_server(s, out=self.out, label_width=self._label_width)
            )
            client = await self._until_stopped(_start_temporal(temporal, s, HEALTH_TIMEOUT))
            if self.with_mailbox:
                mailbox = self._child("mailbox", cairn_command("mailbox"), env)
                await self._until_stopped(
                    start_child(mailbox, _port_health("127.0.0.1", s.smtp_port))
                )
            worker = self._child("worker", cairn_command("worker"), env)
            await self._until_stopped(start_child(worker, _worker_health(s, client, worker)))
            api = self._child("api", cairn_command("api"), env)
            await self._until_stopped(start_child(api, _api_health(s)))
        except _Stopped:
            return 0
        except ChildFailed as failure:
            self._report(failure)
            return 1

        self._print_box()
        deaths = {asyncio.create_task(child.wait()): child for child in self.children}
        stop = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait([stop, *deaths], return_when=asyncio.FIRST_COMPLETED)
        for task in [stop, *deaths]:
            task.cancel()
        if stop in done:
            return 0
        dead = next(deaths[t] for t in done if t in deaths)
        self._report(ChildFailed(dead, describe_exit(dead.returncode)))
        return 1

    def _child(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        return self._register(
            Child(name, argv, env=env, out=self.out, label_width=self._label_width)
        )

    def _register(self, child: Child) -> Child:
        # Registered before it starts, so a Ctrl-C during its startup still stops it.
        self.children.append(child)
        return child

    async def _until_stopped(self, starting: Awaitable[T]) -> T:
        start = asyncio.ensure_future(starting)
        stop = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([start, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not start.done():
            start.cancel()  # start_child stops the half-started child on cancellation
            with contextlib.suppress(asyncio.CancelledError):
                await start
            raise _Stopped
        return start.result()

    async def _stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process is not None and child.returncode is None:
                self.say(f"cairn: stopping {child.name}")
            await child.stop()
        self.children.clear()

    def _report(self, failure: ChildFailed) -> None:
        child = failure.child
        self.say(f"cairn: {child.name} {failure.reason}")
        if child.tail:
            self.say(f"cairn: last {len(child.tail)} lines of {child.name}:")
            for line in child.tail:
                self.say(f"    {line}")
        self.say("cairn: stopping the others")

    def _print_box(self) -> None:
        s = self.settings
        api_url = f"http://{_display_host(s.api_host)}:{s.api_port}"
        smtp = f"{s.smtp_relay_host}:{s.smtp_port}"
        studio = (
            f"{api_url}/"
            if (Path(s.ui_dir) / "index.html").is_file()
            else f"{api_url}/ (not built: Node.js >= 20, then make ui)"
        )
        rows = [
            ("Studio", studio),
            ("Temporal UI", s.temporal_ui_url),
            ("Temporal gRPC", s.temporal_address),
            ("API", api_url),
            ("API docs", f"{api_url}/docs"),
            ("API token", shown_token(s.api_token)),
            ("Dev mailbox" if self.with_mailbox else "SMTP relay", smtp),
            ("Data", str(Path(s.data_dir).resolve())),
        ]
        lines = ["Cairn is running", ""]
        lines += [f"{label:<16}{value}" for label, value in rows]
        lines += ["", "Ctrl-C to stop"]
        width = max(len(line) for line in lines)
        self.say("┌" + "─" * (width + 2) + "┐")
        for line in lines:
            self.say(f"│ {line:<{width}} │")
        self.say("└" + "─" * (width + 2) + "┘")


def shown_token(token: str) -> str:
    """The API token as the box shows it: a published default in full (it is no secret, and the
    tour needs it), any other value never (terminals are logged, shared and recorded)."""
    if token.strip() in KNOWN_API_TOKENS:
        return token
    return "set by CAIRN_API_TOKEN (not shown)"


def _display_host(host: str) -> str:
    return "localhost" if host in {"0.0.0.0", "::", ""} else host


class _Stopped(Exception):
    """Ctrl-C arrived while a child was starting."""


def run_embedded(settings: Settings) -> int:
    """Run the embedded stack until Ctrl-C (exit 0) or a child's death (exit 1)."""
    # httpx logs every request at INFO: the health checks' polling is not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return asyncio.run(EmbeddedStack(settings).run())
