"""Request rate limits of the public tracking routes (docs/integrations.md#abuse-of-the-public-routes).

A sliding window per key, in process: each key keeps the times of its requests of the last
minute, and a request over the limit is refused (and not counted). The tracking routes check
the client address and the token they are given; each process of a deployment counts on its
own. Memory is bounded: past MAX_KEYS keys, the idle ones are dropped, and if all are busy the
window starts afresh (it fails open: a limit is a guard against floods, not an account).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from fastapi import Request

from core.settings import Settings

WINDOW_SECONDS = 60.0
MAX_KEYS = 100_000


class SlidingWindow:
    """At most `limit` requests per key in any `seconds` (a limit of 0: no limit)."""

    def __init__(
        self,
        limit: int,
        seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self.clock = clock
        self.hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        now = self.clock()
        horizon = now - self.seconds
        times = self.hits.get(key)
        if times is None:
            if len(self.hits) >= MAX_KEYS:
                self._sweep(horizon)
            times = self.hits[key] = deque()
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def _sweep(self, horizon: float) -> None:
        self.hits = {k: t for k, t in self.hits.items() if t and t[-1] > horizon}
        if len(self.hits) >= MAX_KEYS:
            self.hits.clear()


class TrackingLimits:
    """CAIRN_TRACKING_RATE_PER_ADDRESS and CAIRN_TRACKING_RATE_PER_TOKEN, per minute."""

    def __init__(self, settings: Settings) -> None:
        self.by_address = SlidingWindow(settings.tracking_rate_per_address)
        self.by_token = SlidingWindow(settings.tracking_rate_per_token)

    def allow(self, request: Request, token: str | None) -> bool:
        """Whether this request is within both limits (each counts it only when it passes).

        The address is the client's as the server sees it: behind a reverse proxy, let the
        server take it from X-Forwarded-For (uvicorn's --forwarded-allow-ips)."""
        address = request.client.host if request.client else "unknown"
        if not self.by_address.allow(address):
            return False
        return token is None or self.by_token.allow(token)
