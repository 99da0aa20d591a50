"""The yardstick: the SPEC §8 reference flow written by hand as a plain Temporal workflow.

It calls the very activities AutomationRun calls, in the same order, with the same options,
so the difference between the two is what the interpreter itself costs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.automation_run import LOCAL, REMOTE
    from workflows.contracts import (
        EvaluateInput,
        EvaluateOutput,
        GoalInput,
        StepContext,
        StepOutcome,
    )

REFERENCE_FLOW: dict[str, Any] = {
    "name": "Benchmark reference flow",
    "entry": "multiple",
    "start": "tag",
    "steps": {
        "tag": {"type": "add_tag", "tag": "bench", "next": "mail"},
        "mail": {
            "type": "send_email",
            "subject": "Hi %FIRSTNAME%",
            "html": "<p>Hello %FIRSTNAME%</p>",
            "next": "pause",
        },
        "pause": {"type": "wait", "for": {"seconds": 1}, "next": "check"},
        "check": {"type": "if_else", "condition": {"tag": "bench"}, "yes": "score", "no": "score"},
        "score": {
            "type": "adjust_contact_score",
            "score": "bench",
            "op": "add",
            "value": 1,
            "next": "update",
        },
        "update": {"type": "update_contact", "fields": {"bench_seen": "yes"}, "next": "goal"},
        "goal": {
            "type": "goal",
            "condition": {"field": "bench_seen", "op": "is", "value": "yes"},
            "next": "end",
        },
        "end": {"type": "end"},
    },
}


class BaselineInput(BaseModel):
    automation_id: str
    version: int
    contact_id: int


@workflow.defn(name="BaselineReferenceFlow")
class BaselineReferenceFlow:
    @workflow.run
    async def run(self, input: BaselineInput) -> None:
        visit = 0

        def context(step_id: str) -> StepContext:
            nonlocal visit
            visit += 1
            return StepContext(
                workflow_id=workflow.info().workflow_id,
                automation_id=input.automation_id,
                version=input.version,
                contact_id=input.contact_id,
                step_id=step_id,
                visit=visit,
            )

        async def contact_step(step_id: str) -> None:
            await workflow.execute_local_activity(
                "apply_contact_step", context(step_id), result_type=StepOutcome, **LOCAL
            )

        async def evaluate(condition: dict[str, Any]) -> bool:
            result = await workflow.execute_local_activity(
                "evaluate_conditions",
                EvaluateInput(
                    contact_id=input.contact_id, conditions=[condition], now=workflow.now()
                ),
                result_type=EvaluateOutput,
                **LOCAL,
            )
            return result.results[0]

        await contact_step("tag")
        await workflow.execute_activity(
            "send_email", context("mail"), result_type=StepOutcome, **REMOTE
        )
        await workflow.sleep(timedelta(seconds=1))
        await evaluate({"tag": "bench"})
        await contact_step("score")
        await contact_step("update")
        if await evaluate({"field": "bench_seen", "op": "is", "value": "yes"}):
            await workflow.execute_local_activity(
                "record_goal", GoalInput(context=context("goal")), **LOCAL
            )
