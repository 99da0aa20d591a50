"""`make bench`'s simulation phase: a 90-day flow with waits, a goal and a split, simulated one
at a time (latency) and many at once (how many the stack answers together)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.stack import BenchStack

NINETY_DAYS: dict[str, Any] = {
    "name": "Ninety days",
    "start": "welcome",
    "steps": {
        "welcome": {
            "type": "send_email",
            "subject": "Hi %FIRSTNAME%",
            "html": "<p>Hi</p>",
            "next": "pause",
        },
        "pause": {"type": "wait", "for": {"days": 3}, "next": "split"},
        "split": {"type": "split", "mode": "even", "paths": [{"next": "offer"}, {"next": "guide"}]},
        "offer": {
            "type": "send_email",
            "subject": "10% off",
            "html": "<p>Offer</p>",
            "next": "month",
        },
        "guide": {
            "type": "send_email",
            "subject": "Our guide",
            "html": "<p>Guide</p>",
            "next": "month",
        },
        "month": {"type": "wait", "for": {"days": 30}, "next": "clicked"},
        "clicked": {
            "type": "if_else",
            "condition": {"email": "clicked", "step": "welcome"},
            "yes": "engaged",
            "no": "quiet",
        },
        "engaged": {"type": "add_tag", "tag": "engaged", "next": "long"},
        "quiet": {"type": "add_tag", "tag": "quiet", "next": "long"},
        "long": {"type": "wait", "for": {"days": 57}, "next": "last"},
        "last": {"type": "send_email", "subject": "Still here?", "html": "<p>Bye</p>"},
        "bought": {"type": "goal", "condition": {"event": "purchase"}, "next": "thanks"},
        "thanks": {"type": "add_tag", "tag": "customer"},
    },
}
SCRIPT = [
    {"at": {"days": 2}, "email": "clicked", "step": "welcome"},
    {"at": {"days": 80}, "event": "purchase"},
]
AT_ONCE = (5, 20)


async def simulations(stack: BenchStack, count: int) -> dict[str, Any]:
    response = await stack.http.post("/api/v1/automations", json=NINETY_DAYS)
    response.raise_for_status()
    url = f"/api/v1/automations/{response.json()['id']}/simulate"

    async def one() -> float:
        began = time.perf_counter()
        answer = await stack.http.post(
            url, json={"contact": {"first_name": "Ada"}, "events": SCRIPT}
        )
        answer.raise_for_status()
        result = answer.json()
        assert result["goals"] == ["bought"] and result["status"] == "completed", result
        return (time.perf_counter() - began) * 1000

    await one()  # the sandbox template is made once per worker process
    latencies = sorted([await one() for _ in range(count)])
    together: dict[str, Any] = {}
    for n in sorted({min(n, count) for n in AT_ONCE}):
        began = time.perf_counter()
        each = sorted(await asyncio.gather(*(one() for _ in range(n))))
        wall = time.perf_counter() - began
        together[str(n)] = {"wall_s": round(wall, 2), "per_s": n / wall, "p99_ms": each[-1]}
    return {
        "count": count,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[min(len(latencies) - 1, round(0.99 * len(latencies)))],
        "at_once": together,
    }
