"""The benchmark harness itself works (tiny sizes; the numbers are `make bench`'s business)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

REQUIRED = [
    "throughput_ratio",
    "history_ratio",
    "goal_latency_p50_ms",
    "goal_latency_p99_ms",
    "enroll_ratio",
    "worker_rss_mb_parked",
    "wal_gain",
    "simulation_p50_ms",
    "simulation_p99_ms",
]


async def test_bench_smoke_run_writes_every_result(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench",
        "--contacts", "3", "--goal-contacts", "3", "--goal-rate", "50", "--parked", "6",
        "--simulations", "2",
        "--output", str(output),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    printed, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, printed.decode()[-3000:]
    report = json.loads(output.read_text())
    for key in REQUIRED:
        assert isinstance(report[key], int | float), key
    throughput = report["raw"]["throughput"]
    assert throughput["emails_received"] >= 3
    # The yardstick calls what the engine calls, in the same order (bench/baseline.py).
    assert throughput["baseline_activities"] == throughput["engine_activities"]
    assert throughput["engine_activities"][0] == "load_automation", throughput
    assert report["machine"]["cores"] and report["machine"]["temporal_server"]
    assert report["machine"]["cpu_probe_ms"]["before"] > 0
    cpu = report["raw"]["goal_latency"]["cpu_ms_per_event"]
    assert set(cpu) == {"worker", "api", "temporal"} and cpu["worker"] > 0, cpu
    table = printed.decode()
    assert "throughput ratio" in table and "goal latency p99" in table
    assert "simulation p99 (90-day flow)" in table and "2 simulations at once" in table
