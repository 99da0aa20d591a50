"""What every activity that carries out a step shares: a contact deleted meanwhile skips it."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from store import contacts as contact_store
from store.models import Contact
from workflows.contracts import StepContext, StepOutcome

StepRun = Callable[[Any, StepContext], Awaitable[StepOutcome]]
R = TypeVar("R", bound=StepRun)


class ContactDeleted(Exception):
    """The run's contact was deleted while the run went on (its end request may be on its way)."""


async def step_contact(session: AsyncSession, context: StepContext) -> Contact:
    """The run's contact; raises ContactDeleted, which skips the step, if it is gone."""
    contact = await contact_store.get_contact(session, context.contact_id)
    if contact is None:
        raise ContactDeleted(context.contact_id)
    return contact


def step_activity(name: str) -> Callable[[R], R]:
    """`activity.defn(name=...)` for a method carrying out a step: wherever it meets a deleted
    contact (ContactDeleted), the step is skipped with `contact_deleted`."""

    def define(run: R) -> R:
        @functools.wraps(run)
        async def skipping_deleted_contact(self: Any, context: StepContext) -> StepOutcome:
            try:
                return await run(self, context)
            except ContactDeleted:
                return StepOutcome(outcome="skipped", reason="contact_deleted")

        return activity.defn(name=name)(skipping_deleted_contact)  # type: ignore[return-value]

    return define
