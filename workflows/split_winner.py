"""SplitWinnerDeadline: decides an even split's winner when its `after` duration is up.

The dispatcher starts one per split, from the outbox row its first assignment writes
(docs/architecture.md#splits): a durable timer, then one local activity that decides the
winner in the database, unless a newcomer or a person decided it first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

SPLIT_WINNER_WORKFLOW_TYPE = "SplitWinnerDeadline"
DECIDE_SPLIT_WINNER = "decide_split_winner"


def split_deadline_workflow_id(automation_id: str, step_id: str) -> str:
    return f"cairn-split:{automation_id}:{step_id}"


class SplitDeadlineInput(BaseModel):
    automation_id: str
    step_id: str
    at: datetime  # when the winner is due: the first assignment plus the rule's `after`


class DecideWinnerInput(BaseModel):
    automation_id: str
    step_id: str
    now: datetime


class DecideWinnerOutput(BaseModel):
    winner: int | None = None  # the split's winner, whoever set it (None: none is due)
    due_at: datetime | None = None  # a new version moved the deadline later: wait until then


@workflow.defn(name=SPLIT_WINNER_WORKFLOW_TYPE)
class SplitWinnerDeadline:
    @workflow.run
    async def run(self, data: SplitDeadlineInput) -> DecideWinnerOutput:
        at = data.at
        while True:
            left = at - workflow.now()
            workflow.set_current_details(
                f"Split **{data.step_id}** of {data.automation_id}: winner due {at:%Y-%m-%d %H:%M} UTC"
            )
            if left > timedelta(0):
                await workflow.sleep(left, summary=f"winner of split {data.step_id} due")
            decided = await workflow.execute_local_activity(
                DECIDE_SPLIT_WINNER,
                DecideWinnerInput(
                    automation_id=data.automation_id, step_id=data.step_id, now=workflow.now()
                ),
                result_type=DecideWinnerOutput,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
                summary=f"decide the winner of split {data.step_id}",
            )
            if decided.due_at is None:
                return decided
            at = decided.due_at
