"""CRM steps (SPEC §2.1 "CRM"): deals, tasks, notes, accounts, deal scores — once per step visit.

Deal steps act on the contact's *current deal* (its most recently created open deal, within
the step's `pipeline` when it names one); without one the step is skipped with `no_deal`.
A pipeline, stage or user that does not exist fails the step for good, naming it: no retry
creates it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contacts import write_once
from activities.deps import Deps
from store import crm as crm_store
from store.contacts import STANDARD_FIELDS, InvalidChange
from store.crm import Conflict, UnknownReference
from store.models import Contact, Deal, Pipeline, User, utcnow
from workflows.contracts import StepContext, StepOutcome
from workflows.personalization import contact_values, render

Outcome = dict[str, Any]

# What no retry can fix: the step fails (non-retryably) with the error's message.
PERMANENT_ERRORS = (UnknownReference, Conflict, InvalidChange)


def skipped(reason: str) -> Outcome:
    return {"outcome": "skipped", "reason": reason}


def done(**detail: Any) -> Outcome:
    return {"outcome": "done", "detail": detail}


@dataclass
class Visit:
    """One CRM step visit: its transaction, contact, context and step."""

    session: AsyncSession
    contact: Contact
    context: StepContext
    step: Any
    _values: dict[str, str] | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return self.context.workflow_id

    async def text(self, template: str) -> str:
        """`template` with its personalization tags filled in (plain text)."""
        if self._values is None:
            extra = await crm_store.personalization_values(self.session, self.contact.id)
            self._values = contact_values(
                contact_dict(self.contact), today=date.today(), extra=extra
            )
        return render(template, self._values, html=False)

    async def value(self, value: Any) -> Any:
        """A field value: strings are personalized, other values kept as they are."""
        return await self.text(value) if isinstance(value, str) else value

    async def current_deal(self) -> Deal | None:
        pipeline_id = None
        if getattr(self.step, "pipeline", None) is not None:
            pipeline_id = (await crm_store.pipeline_named(self.session, self.step.pipeline)).id
        return await crm_store.current_deal(self.session, self.contact.id, pipeline_id)


def contact_dict(contact: Contact) -> dict[str, Any]:
    """The shape `contact_values` reads."""
    return {
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "phone": contact.phone,
        "fields": contact.fields or {},
    }


Apply = Callable[[Visit], Awaitable[Outcome]]
DealApply = Callable[[Visit, Deal], Awaitable[Outcome]]


def on_current_deal(apply: DealApply) -> Apply:
    """A deal step: find the current deal first; none is a skip, not a failure."""

    async def run(visit: Visit) -> Outcome:
        deal = await visit.current_deal()
        if deal is None:
            return skipped("no_deal")
        return await apply(visit, deal)

    return run


async def _update(visit: Visit, deal: Deal, changes: dict[str, Any]) -> Outcome:
    changed = await crm_store.update_deal(visit.session, deal, changes, origin=visit.origin)
    return done(deal=deal.id, changed=changed)


# --- deals -----------------------------------------------------------------------------------


async def _add_deal(visit: Visit) -> Outcome:
    step, session = visit.step, visit.session
    pipeline = await crm_store.pipeline_named(session, step.pipeline)
    stage = await crm_store.stage_named(session, pipeline, step.stage)
    owner = await crm_store.user_named(session, step.owner) if step.owner else None
    fields = {name: await visit.value(value) for name, value in (step.fields or {}).items()}
    deal = await crm_store.create_deal(
        session,
        title=await visit.text(step.title),
        value=step.value,
        currency=step.currency,
        stage=stage,
        owner=owner,
        fields=fields,
        contact_ids=[visit.contact.id],
        origin=visit.origin,
    )
    return done(deal=deal.id)


async def _set_title(visit: Visit, deal: Deal) -> Outcome:
    return await _update(visit, deal, {"title": await visit.text(visit.step.value)})


async def _set_status(visit: Visit, deal: Deal) -> Outcome:
    return await _update(visit, deal, {"status": visit.step.value})


async def _set_value(visit: Visit, deal: Deal) -> Outcome:
    return await _update(visit, deal, {"value": visit.step.value})


async def _set_owner(visit: Visit, deal: Deal) -> Outcome:
    owner = await crm_store.user_named(visit.session, visit.step.value)
    return await _update(visit, deal, {"owner": owner})


async def _set_stage(visit: Visit, deal: Deal) -> Outcome:
    pipeline = await visit.session.get(Pipeline, deal.pipeline_id)
    assert pipeline is not None  # a deal's pipeline cannot be deleted
    stage = await crm_store.stage_named(visit.session, pipeline, visit.step.value)
    return await _update(visit, deal, {"stage": stage})


async def _set_field(visit: Visit, deal: Deal) -> Outcome:
    step = visit.step
    if step.clear:
        value = None
    elif step.copy_from is not None:
        value = _contact_field(visit.contact, step.copy_from)
    else:
        value = await visit.value(step.value)
    return await _update(visit, deal, {"fields": {step.field: value}})


def _contact_field(contact: Contact, name: str) -> Any:
    if name == "email" or name in STANDARD_FIELDS:
        return getattr(contact, name)
    return (contact.fields or {}).get(name)


async def _adjust_score(visit: Visit, deal: Deal) -> Outcome:
    step = visit.step
    old, new = await crm_store.adjust_deal_score(
        visit.session, deal, step.score, step.op, step.value, origin=visit.origin
    )
    return done(deal=deal.id, **{"from": old, "to": new})


async def _add_note(visit: Visit, deal: Deal) -> Outcome:
    note = await crm_store.add_deal_note(visit.session, deal.id, await visit.text(visit.step.note))
    return done(deal=deal.id, note=note.id)


# --- tasks -----------------------------------------------------------------------------------


async def _add_task(visit: Visit) -> Outcome:
    step, session = visit.step, visit.session
    deal = None
    if step.on == "deal":
        deal = await visit.current_deal()
        if deal is None:
            return skipped("no_deal")
    assignee: User | None
    if step.assignee:
        assignee = await crm_store.user_named(session, step.assignee)
    elif deal is not None and deal.owner_id is not None:
        # A deal's task without an assignee is for the deal's owner, as in a sales team.
        assignee = await session.get(User, deal.owner_id)
    else:
        assignee = None
    task = await crm_store.add_task(
        session,
        title=await visit.text(step.title),
        task_type=step.task_type,
        due_at=utcnow() + step.due_in.to_timedelta(),
        assignee=assignee,
        deal_id=deal.id if deal else None,
        contact_id=None if deal else visit.contact.id,
    )
    return done(task=task.id, deal=deal.id if deal else None)


async def _complete_tasks(visit: Visit, deal: Deal) -> Outcome:
    step = visit.step
    count = await crm_store.complete_tasks(
        visit.session, deal.id, title=step.title, task_type=step.task_type
    )
    return done(deal=deal.id, completed=count) if count else skipped("no_open_task")


# --- accounts --------------------------------------------------------------------------------


async def _add_to_account(visit: Visit) -> Outcome:
    step, session = visit.step, visit.session
    name = (await visit.text(step.account)).strip()
    if not name:
        return skipped("no_account_name")  # e.g. "%COMPANY%" for a contact without one
    job_title = (await visit.text(step.job_title)).strip() if step.job_title else ""
    account = await crm_store.find_account(session, name)
    created = account is None
    if account is None:
        try:
            account = await crm_store.create_account(session, name)
        except Conflict:
            # Another transaction created it (maybe spelt in another case) since we looked.
            account, created = await crm_store.find_account(session, name), False
            if account is None:
                raise
    changed = await crm_store.link_contact(session, account, visit.contact.id, job_title or None)
    if not changed:
        return skipped("already_in_account")
    return done(account=account.id, created=created)


async def _set_account_field(visit: Visit) -> Outcome:
    membership = await crm_store.contact_account(visit.session, visit.contact.id)
    if membership is None:
        return skipped("no_account")
    account, step = membership[0], visit.step
    value = await visit.value(step.value)
    # `name` and `url` are the account's own columns; any other field is a custom one.
    if step.field == "name":
        if value is None or not str(value).strip():
            raise InvalidChange("an account's name cannot be empty")
        changes: dict[str, Any] = {"name": str(value)}
    elif step.field == "url":
        changes = {"url": None if value is None else str(value)}
    else:
        changes = {"fields": {step.field: value}}
    changed = await crm_store.update_account(visit.session, account, changes)
    return done(account=account.id, changed=changed)


APPLY: dict[str, Apply] = {
    "add_deal": _add_deal,
    "update_deal_title": on_current_deal(_set_title),
    "update_deal_status": on_current_deal(_set_status),
    "update_deal_owner": on_current_deal(_set_owner),
    "update_deal_value": on_current_deal(_set_value),
    "update_deal_stage": on_current_deal(_set_stage),
    "update_deal_field": on_current_deal(_set_field),
    "update_account_field": _set_account_field,
    "add_task": _add_task,
    "add_deal_note": on_current_deal(_add_note),
    "complete_task": on_current_deal(_complete_tasks),
    "adjust_deal_score": on_current_deal(_adjust_score),
    "add_to_account": _add_to_account,
}
CRM_STEPS: tuple[str, ...] = tuple(APPLY)


class CrmActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="apply_crm_step")
    async def apply_crm_step(self, context: StepContext) -> StepOutcome:
        """One CRM write, exactly once per step visit (DESIGN §5)."""
        step = await self.deps.step(context)
        apply = APPLY.get(step.type)
        if apply is None:
            raise ApplicationError(f"{step.type} is not a CRM step", non_retryable=True)

        async def write(session: AsyncSession, contact: Contact) -> dict[str, Any]:
            return await apply(Visit(session, contact, context, step))

        try:
            return await write_once(self.deps, context, write)
        except PERMANENT_ERRORS as err:
            # The transaction rolled back: nothing was written, and no retry would help.
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
