"""The yardstick: the benchmark's reference flow (docs/performance.md#the-benchmark) written by hand as a plain Temporal workflow.

It calls the very activities AutomationRun calls for this flow, in the same order, with the
same inputs and options (summaries included), so the difference between the two is what the
interpreter itself costs. The sequence is AutomationRun's, read from its history: load the
automation (which checks the goals met at entry), the tag (checking the goal after its
write, as every local step does), the email, the 1-second wait, the if/else evaluation, the
score and the update (whose write meets the goal, recorded in the same transaction), and the
run's finish with its step records for the reports.
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
        FinishRunInput,
        LoadAutomationInput,
        LoadAutomationOutput,
        SavedSteps,
        StepContext,
        StepOutcome,
        StepRecord,
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


GOAL = REFERENCE_FLOW["steps"]["goal"]["condition"]


@workflow.defn(name="BaselineReferenceFlow")
class BaselineReferenceFlow:
    @workflow.run
    async def run(self, input: BaselineInput) -> None:
        workflow_id = workflow.info().workflow_id
        records: list[StepRecord] = []

        def record(step: str, step_type: str, reason: str | None = None) -> None:
            records.append(
                StepRecord(
                    seq=len(records),
                    step=step,
                    type=step_type,
                    outcome="done",
                    reason=reason,
                    at=workflow.now(),
                )
            )

        def context(step_id: str, *, goal: bool = True) -> StepContext:
            return StepContext(
                workflow_id=workflow_id,
                automation_id=input.automation_id,
                version=input.version,
                contact_id=input.contact_id,
                step_id=step_id,
                visit=len(records) + 1,
                goal_conditions=[GOAL] if goal else [],
                goal_ids=["goal"] if goal else [],
                now=workflow.now() if goal else None,
            )

        async def contact_step(step_id: str, step_type: str, summary: str) -> StepOutcome:
            outcome = await workflow.execute_local_activity(
                "apply_contact_step",
                context(step_id),
                result_type=StepOutcome,
                summary=summary,
                **LOCAL,
            )
            record(step_id, step_type)
            return outcome

        await workflow.execute_local_activity(
            "load_automation",
            LoadAutomationInput(
                automation_id=input.automation_id,
                version=input.version,
                contact_id=input.contact_id,
                now=workflow.now(),
                workflow_id=workflow_id,
            ),
            result_type=LoadAutomationOutput,
            summary=f"load automation {input.automation_id} v{input.version}",
            **LOCAL,
        )
        await contact_step("tag", "add_tag", 'add_tag "bench" (step tag)')
        await workflow.execute_activity(
            "send_email",
            context("mail", goal=False),
            result_type=StepOutcome,
            summary='send_email "Hi %FIRSTNAME%" (step mail)',
            **REMOTE,
        )
        record("mail", "send_email")
        until = workflow.now() + timedelta(seconds=1)
        await workflow.sleep(
            timedelta(seconds=1),
            summary=f"wait 1 second (step pause): until {until:%Y-%m-%d %H:%M} UTC (1 second)",
        )
        record("pause", "wait")
        checked = await workflow.execute_local_activity(
            "evaluate_conditions",
            EvaluateInput(
                contact_id=input.contact_id,
                conditions=[REFERENCE_FLOW["steps"]["check"]["condition"]],
                now=workflow.now(),
                workflow_id=workflow_id,
                automation_id=input.automation_id,
            ),
            result_type=EvaluateOutput,
            summary="evaluate 1 condition(s)",
            **LOCAL,
        )
        record("check", "if_else", "yes" if checked.results[0] else "no")
        await contact_step(
            "score", "adjust_contact_score", 'adjust_contact_score "bench" add 1 (step score)'
        )
        updated = await contact_step(
            "update", "update_contact", "update_contact bench_seen (step update)"
        )
        if updated.goals_met == [True]:  # recorded by the update's own transaction
            record("goal", "goal", "goal_achieved")
        record("end", "end")
        await workflow.execute_local_activity(
            "finish_run",
            FinishRunInput(
                workflow_id=workflow_id,
                status="completed",
                reason="end_step",
                step_id="end",
                steps=SavedSteps(
                    workflow_id=workflow_id,
                    automation_id=input.automation_id,
                    version=input.version,
                    contact_id=input.contact_id,
                    records=records,
                ),
            ),
            summary="finish run: completed",
            **LOCAL,
        )
