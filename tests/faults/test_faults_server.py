"""The Temporal server goes away while contacts wait, and comes back with its state file.

A dev server of the test's own (plain clock, state in a SQLite file) runs a `cairn worker`
process and Cairn's API. Contacts wait on a timer that expires during an outage, on a longer one,
and on a condition. The server is stopped (SIGTERM) for longer than the short timer and restarted;
later it is killed (SIGKILL) and restarted again. The worker is never restarted: it must find the
server again by itself. Every run resumes, expired timers fire, the condition is released by an
event posted after the restart, and an enrollment asked for during the outage is not lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cli.launcher import Child, start_temporal_dev_server
from core.settings import Settings
from core.temporal import connect
from store.models import ContactTag, Run
from tests.helpers.faults import own_stack, worker_process
from tests.helpers.stack import Mailbox, Stack, eventually, free_port
from workflows.contracts import RunState

SHORT = 20.0  # seconds: expires while the server is down
LONG = 50.0  # seconds: expires after both outages
OUTAGE = 25.0  # seconds the first (SIGTERM) outage lasts at least
PER_KIND = 3  # contacts per kind of wait


def _waiting(wait: dict[str, Any], kind: str) -> dict[str, Any]:
    """Tag on entry (so the test sees the contact reach its wait), wait, tag when through."""
    return {
        "start": "entered",
        "steps": {
            "entered": {"type": "add_tag", "tag": f"{kind}-waiting", "next": "wait"},
            "wait": {"type": "wait", **wait, "next": "through"},
            "through": {"type": "add_tag", "tag": f"{kind}-through", "next": None},
        },
    }


async def _tagged_at(stack: Stack, tag: str) -> dict[int, datetime]:
    async with stack.db.read() as session:
        rows = await session.execute(
            select(ContactTag.contact_id, ContactTag.created_at).where(ContactTag.tag == tag)
        )
    return dict(rows.all())


async def _tagged(stack: Stack, tag: str) -> set[int]:
    return set(await _tagged_at(stack, tag))


async def _status(stack: Stack, workflow_ids: list[str]) -> dict[str, str]:
    async with stack.db.read() as session:
        rows = (
            await session.execute(
                select(Run.workflow_id, Run.status).where(Run.workflow_id.in_(workflow_ids))
            )
        ).all()
    return dict(rows)


async def _start_server(settings: Settings, log: Any) -> Child:
    """The dev server, healthy; every start on the same port with the same state file."""
    server, _ = await start_temporal_dev_server(settings, out=log)
    return server


async def test_runs_resume_after_the_temporal_server_restarts(
    mailbox: Mailbox, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    temporal = Settings(
        data_dir=tmp_path / "temporal",
        temporal_address=f"127.0.0.1:{free_port()}",
        temporal_ui_url=f"http://127.0.0.1:{free_port()}",
        _env_file=None,  # type: ignore[call-arg]
    )
    server_log = (tmp_path / "temporal.log").open("a")
    servers: list[Child] = []
    try:
        servers.append(await _start_server(temporal, server_log))
        client = await connect(temporal)
        async with (
            own_stack(client, mailbox, tmp_path) as stack,
            worker_process(
                stack.settings, temporal.temporal_address, tmp_path / "worker.log"
            ) as worker,
        ):
            await _scenario(stack, temporal, server_log, servers, worker, record_property)
    finally:
        for s in servers:
            await s.stop()
        server_log.close()


async def _scenario(
    stack: Stack,
    temporal: Settings,
    server_log: Any,
    servers: list[Child],
    worker: asyncio.subprocess.Process,
    record_property: Callable[[str, object], None],
) -> None:
    short = await stack.automation(_waiting({"for": {"seconds": SHORT}}, "short"))
    long = await stack.automation(_waiting({"for": {"seconds": LONG}}, "long"))
    goal = await stack.automation(_waiting({"condition": {"event": "paid"}}, "goal"))
    contacts = {
        kind: [(await stack.contact())["id"] for _ in range(PER_KIND)]
        for kind in ("short", "long", "goal")
    }
    late = (await stack.contact())["id"]

    started = time.monotonic()
    runs: dict[str, list[str]] = {}
    for kind, automation in (("short", short), ("long", long), ("goal", goal)):
        runs[kind] = [(await stack.enroll(c, automation)).id for c in contacts[kind]]
    everyone = [w for ws in runs.values() for w in ws]

    async def all_waiting() -> None:
        for kind in contacts:
            assert await _tagged(stack, f"{kind}-waiting") == set(contacts[kind])

    await eventually(all_waiting, within=60)

    def through(kind: str) -> Callable[[], Any]:
        async def check() -> None:
            assert await _tagged(stack, f"{kind}-through") == set(contacts[kind])

        return check

    # Outage 1: SIGTERM, for longer than the short timer has left.
    stopped = time.monotonic()
    await servers[-1].stop()
    print(f"\nserver stopped (SIGTERM) {stopped - started:.1f} s after the enrollments")
    # The API meanwhile. An enrollment is accepted: the run is reserved and its start queued in
    # the outbox (a 503 would invite a retry that the entry rule refuses while the first starts).
    during = await stack.http.post(
        f"/api/v1/contacts/{late}/automations", json={"automation": short}
    )
    print(f"enrollment during the outage: {during.status_code} {during.text}")
    record_property("enrollment_during_outage", during.status_code)
    assert during.status_code == 201, during.text
    late_run = during.json()["workflow_id"]
    # The run reads from Cairn's index; health says what is down, with a clear 503.
    run = await stack.http.get(f"/api/v1/runs/{late_run}")
    assert run.status_code == 200 and run.json()["status"] == "running", run.text
    health = await stack.http.get("/healthz")
    assert health.status_code == 503, health.text
    await asyncio.sleep(
        max(0.0, stopped + OUTAGE - time.monotonic(), started + SHORT + 2 - time.monotonic())
    )
    assert worker.returncode is None, "the worker died with the server"
    # Nothing ran without a server (if this fails, the contacts reached their waits so late
    # that the short timer fired before the outage: the scenario did not happen).
    assert await _tagged(stack, "short-through") == set()
    # Taken before the start: the worker reconnects, and may fire the timers, before the start
    # has seen the server answer (a tag stamped before a time taken after failed once in CI).
    restarted_at = datetime.now(UTC)
    servers.append(await _start_server(temporal, server_log))
    restarted = time.monotonic()
    print(f"server restarted after {restarted - stopped:.1f} s")

    # The short timers expired during the outage: they fire now, with the worker never restarted.
    await eventually(through("short"), within=60, interval=0.5)
    print(f"short timers fired {time.monotonic() - restarted:.1f} s after the restart")
    assert all(at >= restarted_at for at in (await _tagged_at(stack, "short-through")).values())

    async with stack.db.read() as session:
        late_runs = (
            await session.scalars(select(Run.workflow_id).where(Run.contact_id == late))
        ).all()
    assert late_runs == [late_run]  # neither lost nor doubled

    # Outage 2: SIGKILL, while the long timers and the condition wait.
    assert await _status(stack, runs["long"] + runs["goal"]) == {
        w: "running" for w in runs["long"] + runs["goal"]
    }
    servers[-1].kill()
    await servers[-1].wait()
    await asyncio.sleep(3)
    servers.append(await _start_server(temporal, server_log))
    print(
        f"server killed (SIGKILL) and restarted {time.monotonic() - started:.1f} s after the enrollments"
    )

    # The condition was not released by the restart; an event posted now releases it.
    assert await _tagged(stack, "goal-through") == set()
    for contact_id in contacts["goal"]:
        posted = await stack.http.post(
            "/api/v1/events", json={"contact": contact_id, "event": "paid"}
        )
        assert posted.status_code == 202, posted.text

    await eventually(through("goal"), within=60, interval=0.5)
    await eventually(through("long"), within=LONG + 60, interval=0.5)
    async with stack.db.read() as session:
        entered = dict((await session.execute(select(Run.workflow_id, Run.started_at))).all())
    long_through = await _tagged_at(stack, "long-through")
    for workflow_id, contact_id in zip(runs["long"], contacts["long"], strict=True):
        # The timer survived both outages and did not fire early.
        assert (long_through[contact_id] - entered[workflow_id]).total_seconds() >= LONG
    await eventually(lambda: _late_through(stack, late), within=60, interval=0.5)

    async def all_completed() -> None:
        statuses = await _status(stack, [*everyone, late_run])
        assert statuses == {w: "completed" for w in [*everyone, late_run]}, statuses

    await eventually(all_completed, within=30, interval=0.5)
    for workflow_id in [*everyone, late_run]:
        handle = stack.client.get_workflow_handle(workflow_id, result_type=RunState)
        state = await asyncio.wait_for(handle.result(), timeout=30)
        # Resumed where it was, not restarted: each step taken once.
        assert [(r.step, r.outcome) for r in state.steps] == [
            ("entered", "done"),
            ("wait", "done"),
            ("through", "done"),
        ], (workflow_id, state.steps)
    assert worker.returncode is None


async def _late_through(stack: Stack, late: int) -> None:
    assert late in await _tagged(stack, "short-through")
