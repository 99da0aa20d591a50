"""DateFieldEnrollment: what a `date_field` trigger's daily Temporal Schedule starts (docs/automations.md#date-triggers).

One schedule per automation starts this workflow once a day; it hands the day to one activity
that finds the contacts whose date matches and enrolls them in batches.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

DATE_WORKFLOW_TYPE = "DateFieldEnrollment"
ENROLL_DATE_MATCHES = "enroll_date_matches"


class DateEnrollmentInput(BaseModel):
    """The automation whose `date_field` triggers to run."""

    automation_id: str


class DateMatchesInput(BaseModel):
    """One day's enrollment for one automation (`day` as ISO `YYYY-MM-DD`)."""

    automation_id: str
    day: str


class DateMatchesOutput(BaseModel):
    """What one day's enrollment did (`matched` contacts passed the trigger and its filter)."""

    day: str = ""
    matched: int = 0
    enrolled: int = 0
    refused: dict[str, int] = {}


@workflow.defn(name=DATE_WORKFLOW_TYPE)
class DateFieldEnrollment:
    @workflow.run
    async def run(self, data: DateEnrollmentInput) -> DateMatchesOutput:
        # The workflow's clock (the schedule's firing time), not the activity's: a retry that
        # runs after midnight must still enroll the day the schedule fired for.
        day = workflow.now().date().isoformat()
        workflow.set_current_details(f"Enrolling {data.automation_id}'s date matches for {day}")
        return await workflow.execute_activity(
            ENROLL_DATE_MATCHES,
            DateMatchesInput(automation_id=data.automation_id, day=day),
            result_type=DateMatchesOutput,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=20),
            summary=f"enroll date matches of {day}",
        )
