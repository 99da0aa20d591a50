"""Contact steps: tags, lists, fields, notes, scores, conversions, math — once per step visit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import Deps
from store import contacts as contact_store
from store import crm as crm_store
from store import runs as run_store
from store.conditions import evaluate_all
from store.models import Contact, Deal
from workflows.contracts import StepContext, StepOutcome
from workflows.personalization import contact_values, render

Outcome = dict[str, Any]
Apply = Callable[[AsyncSession, Contact, StepContext, Any], Awaitable[Outcome]]

DONE: Outcome = {"outcome": "done"}


def skipped(reason: str) -> Outcome:
    return {"outcome": "skipped", "reason": reason}


async def _subscribe(s: AsyncSession, contact: Contact, c: StepContext, step: Any) -> Outcome:
    status = "active" if step.type == "subscribe" else "unsubscribed"
    changed = await contact_store.set_subscription(
        s, contact.id, step.list, status, origin=c.workflow_id
    )
    if changed:
        return DONE
    member = await contact_store.subscription_to(s, contact.id, step.list)
    return skipped(f"already_{status}" if member is not None else "not_subscribed")


async def _add_tag(s: AsyncSession, contact: Contact, c: StepContext, step: Any) -> Outcome:
    added = await contact_store.add_tag(s, contact.id, step.tag, origin=c.workflow_id)
    return DONE if added else skipped("already_tagged")


async def _remove_tag(s: AsyncSession, contact: Contact, c: StepContext, step: Any) -> Outcome:
    removed = await contact_store.remove_tag(s, contact.id, step.tag, origin=c.workflow_id)
    return DONE if removed else skipped("not_tagged")


async def _personalization(s: AsyncSession, contact: Contact) -> dict[str, str]:
    extra = await crm_store.personalization_values(s, contact.id)
    return contact_values(_as_dict(contact), today=date.today(), extra=extra)


async def _update_contact(s: AsyncSession, contact: Contact, c: StepContext, step: Any) -> Outcome:
    values = await _personalization(s, contact)
    changes = {
        name: render(value, values, html=False) if isinstance(value, str) else value
        for name, value in step.fields.items()
    }
    changed = await contact_store.update_fields(s, contact, changes, origin=c.workflow_id)
    return {"outcome": "done", "detail": {"changed": changed}}


async def _add_note(s: AsyncSession, contact: Contact, c: StepContext, step: Any) -> Outcome:
    body = render(step.note, await _personalization(s, contact), html=False)
    await contact_store.add_note(s, contact.id, body)
    return DONE


async def _adjust_score(s: AsyncSession, contact: Contact, c: StepContext, step: Any) -> Outcome:
    old, new = await contact_store.adjust_score(
        s, contact.id, step.score, step.op, step.value, origin=c.workflow_id
    )
    return {"outcome": "done", "detail": {"from": old, "to": new}}


async def _convert(s: AsyncSession, contact: Contact, c: StepContext, step: Any) -> Outcome:
    await contact_store.record_conversion(
        s,
        contact.id,
        step.conversion,
        step.value,
        automation_id=c.automation_id,
        origin=c.workflow_id,
    )
    return DONE


async def _perform_math(s: AsyncSession, contact: Contact, c: StepContext, step: Any) -> Outcome:
    deal = None
    if step.target == "deal":
        deal = await _current_deal(s, contact, step.pipeline)
        if deal is None:
            return skipped("no_deal")
    current = ((deal or contact).fields or {}).get(step.field)
    result = apply_math(current, step.op, step.value)
    if isinstance(result, str) and result.startswith("skip:"):
        return skipped(result.removeprefix("skip:"))
    if deal is not None:
        changes = {"fields": {step.field: result}}
        await crm_store.update_deal(s, deal, changes, origin=c.workflow_id)
    else:
        await contact_store.update_fields(s, contact, {step.field: result}, origin=c.workflow_id)
    return {"outcome": "done", "detail": {"from": current, "to": result}}


async def _current_deal(s: AsyncSession, contact: Contact, pipeline: str | None) -> Deal | None:
    """The deal `perform_math` targets (SPEC §2.1 current deal); an unknown pipeline fails."""
    pipeline_id = None
    if pipeline is not None:
        try:
            pipeline_id = (await crm_store.pipeline_named(s, pipeline)).id
        except crm_store.UnknownReference as err:
            raise ApplicationError(str(err), non_retryable=True) from err
    return await crm_store.current_deal(s, contact.id, pipeline_id)


def apply_math(current: Any, op: str, value: float) -> Any:
    """Numbers: the four operations. Dates: add/subtract days. Otherwise a `skip:` reason."""
    when = _as_date(current)
    if when is not None and not _is_number(current):
        if op not in ("add", "subtract"):
            return "skip:date_supports_add_subtract_only"
        shifted = when + timedelta(days=value if op == "add" else -value)
        return shifted.isoformat()
    if current is None or current == "":
        current = 0
    if not _is_number(current):
        return "skip:not_numeric"
    number = float(current)
    if op == "divide" and value == 0:
        return "skip:divide_by_zero"
    result = {"add": number + value, "subtract": number - value, "multiply": number * value}.get(op)
    if result is None:
        result = number / value
    return int(result) if float(result).is_integer() else result


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _as_date(value: Any) -> date | datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.date() if len(value) <= 10 else parsed


def _as_dict(contact: Contact) -> dict[str, Any]:
    return {
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "phone": contact.phone,
        "fields": contact.fields or {},
    }


APPLY: dict[str, Apply] = {
    "subscribe": _subscribe,
    "unsubscribe": _subscribe,
    "add_tag": _add_tag,
    "remove_tag": _remove_tag,
    "update_contact": _update_contact,
    "add_contact_note": _add_note,
    "adjust_contact_score": _adjust_score,
    "convert": _convert,
    "perform_math": _perform_math,
}


class ContactActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="apply_contact_step")
    async def apply_contact_step(self, context: StepContext) -> StepOutcome:
        """One contact write, exactly once per step visit (DESIGN §5)."""
        step = await self.deps.step(context)
        apply = APPLY.get(step.type)
        if apply is None:
            raise ApplicationError(f"{step.type} is not a contact step", non_retryable=True)

        async def write(session: AsyncSession, contact: Contact) -> Outcome:
            return await apply(session, contact, context, step)

        return await write_once(self.deps, context, write)


async def write_once(
    deps: Deps,
    context: StepContext,
    write: Callable[[AsyncSession, Contact], Awaitable[Outcome]],
) -> StepOutcome:
    """The frame of every step that writes Cairn's database: one transaction holding the write
    (at most once per step visit, DESIGN §5), the runs index's step and the goals it may have
    met; then the outbox is delivered at once."""
    try:
        async with deps.db.write() as session:
            contact = await contact_store.get_contact(session, context.contact_id)
            if contact is None:
                return StepOutcome(outcome="skipped", reason="contact_deleted")
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
    met = await evaluate_all(session, context.contact_id, context.goal_conditions, context.now)
    first = next((g for g, ok in zip(context.goal_ids, met, strict=False) if ok), None)
    if first is not None:
        await run_store.record_goal(
            session, context.workflow_id, context.automation_id, context.contact_id, first
        )
    return met
