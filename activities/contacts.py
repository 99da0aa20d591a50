"""Contact steps: tags, lists, fields, notes, scores, conversions, math — once per step visit."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from activities.deps import Deps
from activities.step_activity import step_activity
from activities.writes import Outcome, StepWrites, Visit, done, skipped
from store import contacts as contact_store
from store import crm as crm_store
from workflows.contracts import StepContext, StepOutcome
from workflows.steps import (
    CONTACT_WRITE,
    AddContactNoteStep,
    AddTagStep,
    AdjustContactScoreStep,
    ConvertStep,
    PerformMathStep,
    RemoveTagStep,
    SubscribeStep,
    UnsubscribeStep,
    UpdateContactStep,
)

CONTACT_WRITES = StepWrites(CONTACT_WRITE, "contact")


@CONTACT_WRITES.applies(SubscribeStep, UnsubscribeStep)
async def _subscribe(visit: Visit[SubscribeStep | UnsubscribeStep]) -> Outcome:
    step = visit.step
    status = "active" if step.type == "subscribe" else "unsubscribed"
    changed = await contact_store.set_subscription(
        visit.session, visit.contact.id, step.list, status, origin=visit.origin
    )
    if changed:
        return done()
    member = await contact_store.subscription_to(visit.session, visit.contact.id, step.list)
    return skipped(f"already_{status}" if member is not None else "not_subscribed")


@CONTACT_WRITES.applies(AddTagStep)
async def _add_tag(visit: Visit[AddTagStep]) -> Outcome:
    added = await contact_store.add_tag(
        visit.session, visit.contact.id, visit.step.tag, origin=visit.origin
    )
    return done() if added else skipped("already_tagged")


@CONTACT_WRITES.applies(RemoveTagStep)
async def _remove_tag(visit: Visit[RemoveTagStep]) -> Outcome:
    removed = await contact_store.remove_tag(
        visit.session, visit.contact.id, visit.step.tag, origin=visit.origin
    )
    return done() if removed else skipped("not_tagged")


@CONTACT_WRITES.applies(UpdateContactStep)
async def _update_contact(visit: Visit[UpdateContactStep]) -> Outcome:
    changes = {name: await visit.value(value) for name, value in visit.step.fields.items()}
    changed = await contact_store.update_fields(
        visit.session, visit.contact, changes, origin=visit.origin
    )
    return done(changed=changed)


@CONTACT_WRITES.applies(AddContactNoteStep)
async def _add_note(visit: Visit[AddContactNoteStep]) -> Outcome:
    await contact_store.add_note(visit.session, visit.contact.id, await visit.text(visit.step.note))
    return done()


@CONTACT_WRITES.applies(AdjustContactScoreStep)
async def _adjust_score(visit: Visit[AdjustContactScoreStep]) -> Outcome:
    step = visit.step
    old, new = await contact_store.adjust_score(
        visit.session, visit.contact.id, step.score, step.op, step.value, origin=visit.origin
    )
    return done(**{"from": old, "to": new})


@CONTACT_WRITES.applies(ConvertStep)
async def _convert(visit: Visit[ConvertStep]) -> Outcome:
    await contact_store.record_conversion(
        visit.session,
        visit.contact.id,
        visit.step.conversion,
        visit.step.value,
        automation_id=visit.context.automation_id,
        origin=visit.origin,
    )
    return done()


@CONTACT_WRITES.applies(PerformMathStep)
async def _perform_math(visit: Visit[PerformMathStep]) -> Outcome:
    step, session, contact = visit.step, visit.session, visit.contact
    deal = None
    if step.target == "deal":
        deal = await visit.current_deal()  # an unknown `pipeline` fails the step for good
        if deal is None:
            return skipped("no_deal")
    current = ((deal or contact).fields or {}).get(step.field)
    result = apply_math(current, step.op, step.value)
    if isinstance(result, str) and result.startswith("skip:"):
        return skipped(result.removeprefix("skip:"))
    if deal is not None:
        changes = {"fields": {step.field: result}}
        await crm_store.update_deal(session, deal, changes, origin=visit.origin)
    else:
        await contact_store.update_fields(
            session, contact, {step.field: result}, origin=visit.origin
        )
    return done(**{"from": current, "to": result})


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


class ContactActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @step_activity(CONTACT_WRITE.name)
    async def apply_contact_step(self, context: StepContext) -> StepOutcome:
        """One contact write, exactly once per step visit (docs/architecture.md#exactly-once-writes)."""
        return await CONTACT_WRITES.run(self.deps, context)
