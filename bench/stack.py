"""The benchmark's own embedded stack: dev server, worker and API as child processes, an SMTP sink.

Free ports and a fresh data directory, so it never touches a `make run` that is up.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from temporalio.client import Client

from cli.launcher import Child, child_env, start_child, start_temporal_dev_server
from core.settings import Settings
from core.temporal import connect
from store.db import Database, open_database

API_TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """Counts what it receives; the benchmark measures Cairn, not an SMTP server."""

    def __init__(self) -> None:
        self.received = 0
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        return "250 OK"


class _Quiet:
    """Children's output is kept (for errors) but not echoed: the table is the output."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@dataclass
class BenchStack:
    settings: Settings
    temporal: Child
    worker: Child
    api: Child
    client: Client
    db: Database
    http: httpx.AsyncClient
    sink: SmtpSink

    @classmethod
    async def start(cls, data_dir: Path, *, sqlite_pragmas: bool = True) -> BenchStack:
        sink = SmtpSink()
        sink.controller.start()
        settings = Settings(
            data_dir=data_dir,
            temporal_address=f"127.0.0.1:{free_port()}",
            temporal_ui_url=f"http://127.0.0.1:{free_port()}",
            api_port=free_port(),
            api_token=API_TOKEN,
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            task_queue="bench",
            _env_file=None,  # type: ignore[call-arg]
        )
        quiet: Any = _Quiet()
        temporal, _ = await start_temporal_dev_server(
            settings, sqlite_pragmas=sqlite_pragmas, out=quiet
        )
        env = child_env(settings)
        db = await open_database(settings.resolved_database_url)  # migrates before children start
        worker = Child("worker", [sys.executable, "-m", "bench.worker"], env=env, out=quiet)
        api = Child("api", [sys.executable, "-m", "cli.main", "api"], env=env, out=quiet)
        await start_child(worker, _line_seen(worker, "bench worker ready"))
        base = f"http://127.0.0.1:{settings.api_port}"
        await start_child(api, _healthy(f"{base}/healthz"))
        client = await connect(settings)
        http = httpx.AsyncClient(base_url=base, headers={"Api-Token": API_TOKEN}, timeout=120)
        return cls(settings, temporal, worker, api, client, db, http, sink)

    async def stop(self) -> None:
        await self.http.aclose()
        for child in (self.api, self.worker, self.temporal):
            await child.stop()
        await self.db.dispose()
        self.sink.controller.stop()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each process of the stack has used so far."""
        processes = {"worker": self.worker.pid, "api": self.api.pid, "temporal": self.temporal.pid}
        return {name: _cpu_seconds(pid) for name, pid in processes.items()}

    def worker_rss_mb(self) -> float:
        status = Path(f"/proc/{self.worker.pid}/status").read_text()
        kib = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        return kib / 1024


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    # /proc/<pid>/stat fields 14 and 15 (utime, stime) in clock ticks; the name may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _line_seen(child: Child, text: str) -> Any:
    async def seen() -> bool:
        return any(text in line for line in child.tail)

    return seen


def _healthy(url: str) -> Any:
    async def healthy() -> bool:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(url)).status_code == 200

    return healthy


async def gather_limited(limit: int, coroutines: list[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(coroutine: Any) -> Any:
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(run(c) for c in coroutines))
