"""The worker's observability: the step each activity runs, for log lines, and Prometheus metrics.

The API's own metrics are in `api/routes/metrics.py`; the workflow's and activities' counters
are recorded where they happen (`workflows/metrics.py`, `activities/http.py`).
"""

from __future__ import annotations

from typing import Any

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from core.logs import ACTIVITY_STEP
from core.settings import Settings


class StepLoggingInterceptor(Interceptor):
    """Remembers which step each activity executes (from its input's `step_id`), for
    `ActivityContextFilter` to put on every line logged while it runs."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _RememberStep(next)


class _RememberStep(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        step = next((s for a in input.args if (s := getattr(a, "step_id", None))), None)
        # Not reset afterwards: the SDK logs a failed attempt ("Completing activity as
        # failed") after this returns, in the same task, and that line needs the step too.
        ACTIVITY_STEP.set(step)
        return await super().execute_activity(input)


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on `CAIRN_METRICS_ADDRESS`, or None.

    Everything the worker's client and workers record goes there: Temporal's own (task
    latencies, slots, polls) and Cairn's counters from workflows and activities."""
    if not settings.metrics_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=settings.metrics_address))
    )
