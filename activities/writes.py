"""Steps that write Cairn's database: once per step visit, in one transaction with the goals.

A write activity (the models' `CONTACT_WRITE`, `CRM_WRITE`) is a `StepWrites` table from step
type to the function applying it; `write_once` is the frame around every such write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.exceptions import ApplicationError

from activities.deps import Deps
from activities.messaging import tag_values
from activities.step_activity import step_contact
from store import contacts as contact_store
from store import crm as crm_store
from store import runs as run_store
from store.conditions import evaluate_all
from store.crm import Conflict, UnknownReference
from store.models import Contact, Deal
from workflows.contracts import StepContext, StepOutcome
from workflows.personalization import render
from workflows.steps import StepActivity, StepBase, type_of

Outcome = dict[str, Any]
S = TypeVar("S", bound=StepBase)

# What no retry can fix: the step fails (non-retryably) with the error's message.
PERMANENT_ERRORS = (UnknownReference, Conflict, contact_store.InvalidChange)


def skipped(reason: str) -> Outcome:
    return {"outcome": "skipped", "reason": reason}


def done(**detail: Any) -> Outcome:
    return {"outcome": "done", "detail": detail} if detail else {"outcome": "done"}


@dataclass
class Visit(Generic[S]):
    """One step visit's write: its transaction, contact, context and step."""

    session: AsyncSession
    contact: Contact
    context: StepContext
    step: S
    _values: dict[str, str] | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return self.context.workflow_id

    async def text(self, template: str) -> str:
        """`template` with its personalization tags filled in (plain text)."""
        if self._values is None:
            self._values = await tag_values(self.session, self.contact, self.context.deal_id)
        return render(template, self._values, html=False)

    async def value(self, value: Any) -> Any:
        """A field value: strings are personalized, other values kept as they are."""
        return await self.text(value) if isinstance(value, str) else value

    async def current_deal(self) -> Deal | None:
        """The run's deal, else the contact's most recent one, within the step's `pipeline`
        when it names one; an unknown pipeline fails the step (UnknownReference)."""
        pipeline_id, pipeline = None, getattr(self.step, "pipeline", None)
        if pipeline is not None:
            pipeline_id = (await crm_store.pipeline_named(self.session, pipeline)).id
        return await crm_store.current_deal(
            self.session, self.contact.id, pipeline_id, deal_id=self.context.deal_id
        )


Apply = Callable[[Visit[Any]], Awaitable[Outcome]]
A = TypeVar("A", bound=Callable[..., Awaitable[Outcome]])


class StepWrites:
    """The step types one write activity applies, each by one function (`@applies`)."""

    def __init__(self, activity: StepActivity, family: str) -> None:
        self.activity, self.family = activity, family
        self.apply: dict[str, Apply] = {}

    def applies(self, *models: type[StepBase]) -> Callable[[A], A]:
        """Register the function that applies these step models."""
        for model in models:
            if model.ACTIVITY != self.activity:
                raise TypeError(f"{model.__name__} is not carried out by {self.activity.name}")

        def register(apply: A) -> A:
            for model in models:
                self.apply[type_of(model)] = cast(Apply, apply)
            return apply

        return register

    async def run(self, deps: Deps, context: StepContext) -> StepOutcome:
        """Apply the visited step, exactly once per step visit."""
        step = await deps.step(context)
        apply = self.apply.get(step.type)
        if apply is None:
            raise ApplicationError(f"{step.type} is not a {self.family} step", non_retryable=True)

        async def write(session: AsyncSession, contact: Contact) -> Outcome:
            return await apply(Visit(session, contact, context, step))

        try:
            return await write_once(deps, context, write)
        except PERMANENT_ERRORS as err:
            # The transaction rolled back: nothing was written, and no retry would help.
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err


async def write_once(
    deps: Deps,
    context: StepContext,
    write: Callable[[AsyncSession, Contact], Awaitable[Outcome]],
) -> StepOutcome:
    """The frame of every step that writes Cairn's database: one transaction holding the write
    (at most once per step visit, docs/architecture.md#exactly-once-writes), the runs index's step and the goals it may have
    met; then the outbox is delivered at once."""
    try:
        async with deps.db.write() as session:
            contact = await step_contact(session, context)
            await run_store.record_decisions(session, context.decisions)
            outcome = await run_store.once_per_visit(
                session, context.visit_key, lambda: write(session, contact)
            )
            await run_store.set_current_step(session, context.workflow_id, context.step_id)
            goals_met = await goals_after_write(session, context)
    except contact_store.InvalidChange as err:
        # Rolled back whole; no retry can make it valid (e.g. another contact's email).
        raise ApplicationError(str(err), non_retryable=True) from None
    deps.kick()
    return StepOutcome.model_validate({**outcome, "goals_met": goals_met})


async def goals_after_write(session: AsyncSession, context: StepContext) -> list[bool]:
    """The run's goals, evaluated in the write's own transaction (see StepContext); the first
    one met is recorded there too."""
    if not context.goal_conditions or context.now is None:
        return []
    met = await evaluate_all(
        session, context.contact_id, context.goal_conditions, context.now, deal_id=context.deal_id
    )
    first = next((g for g, ok in zip(context.goal_ids, met, strict=False) if ok), None)
    if first is not None:
        await run_store.record_goal(
            session, context.workflow_id, context.automation_id, context.contact_id, first
        )
    return met
