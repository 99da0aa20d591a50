"""Cairn's workflow counters, recorded through the workflow's metric meter.

The meter drops what replaying code records, so each step is counted once however often its
run is replayed; without a metrics runtime the meter is a no-op.
"""

from __future__ import annotations

import logging

from temporalio import workflow


def count_step(step_id: str, step_type: str, outcome: str, reason: str | None) -> None:
    """Steps executed by type and outcome, and skipped steps by reason; a log line naming the
    step, a warning when it failed, else debug (the workflow logger adds the workflow id, and
    is silent on replay)."""
    workflow.logger.log(
        logging.WARNING if outcome == "failed" else logging.DEBUG,
        "step %s (%s): %s%s",
        step_id,
        step_type,
        outcome,
        f" ({reason})" if reason else "",
        extra={"step": step_id},
    )
    meter = workflow.metric_meter()
    meter.create_counter("cairn_steps", "Steps executed, by step type and outcome").add(
        1, {"type": step_type, "outcome": outcome}
    )
    if outcome == "skipped" and reason:
        # `goal:<id>`, `ended_by:<who>`: the family, not the id, keeps the label set small.
        meter.create_counter("cairn_step_skips", "Skipped steps, by step type and reason").add(
            1, {"type": step_type, "reason": reason.split(":", 1)[0]}
        )
