"""Even splits whose winner is due after a duration: the outbox row that starts the deadline's
workflow (written with the split's first assignment), and its start."""

from __future__ import annotations

from datetime import datetime

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from store.models import OutboxEntry
from workflows.split_winner import (
    SPLIT_WINNER_WORKFLOW_TYPE,
    SplitDeadlineInput,
    split_deadline_workflow_id,
)

SPLIT_DEADLINE = "split_deadline"


def split_deadline(automation_id: str, step_id: str, at: datetime) -> OutboxEntry:
    """The row that starts the split's deadline workflow (it names no contact: 0)."""
    return OutboxEntry(
        contact_id=0,
        kind=SPLIT_DEADLINE,
        data={"automation": automation_id, "step": step_id, "at": at.isoformat()},
    )


async def start_split_deadline(client: Client, task_queue: str, row: OutboxEntry) -> None:
    """Start the deadline's workflow; a second delivery of the row finds it started."""
    automation_id, step_id = row.data["automation"], row.data["step"]
    try:
        await client.start_workflow(
            SPLIT_WINNER_WORKFLOW_TYPE,
            SplitDeadlineInput(
                automation_id=automation_id,
                step_id=step_id,
                at=datetime.fromisoformat(row.data["at"]),
            ),
            id=split_deadline_workflow_id(automation_id, step_id),
            task_queue=task_queue,
            # Once decided, a late duplicate start would only find the winner set.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Winner of split {step_id} in automation {automation_id}",
        )
    except WorkflowAlreadyStartedError:
        pass
