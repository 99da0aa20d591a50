"""CRM steps (docs/crm.md): deals, tasks, notes, accounts, deal scores — once per step visit.

Deal steps act on the *current deal*: the run's deal (the one whose change fired it), else the
contact's most recently created deal whatever its status, within the step's `pipeline` when it
names one (docs/crm.md); without one the step is skipped with `no_deal`.
A pipeline, stage or user that does not exist fails the step for good, naming it: no retry
creates it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from activities.deps import Deps
from activities.step_activity import step_activity
from activities.writes import Outcome, StepWrites, Visit, done, skipped
from store import crm as crm_store
from store.contacts import STANDARD_FIELDS, InvalidChange
from store.crm import Conflict
from store.models import Contact, Deal, Pipeline, User, utcnow
from workflows.contracts import StepContext, StepOutcome
from workflows.steps import (
    CRM_WRITE,
    AddDealNoteStep,
    AddDealStep,
    AddTaskStep,
    AddToAccountStep,
    AdjustDealScoreStep,
    CompleteTaskStep,
    StepBase,
    UpdateAccountFieldStep,
    UpdateDealFieldStep,
    UpdateDealOwnerStep,
    UpdateDealStageStep,
    UpdateDealStatusStep,
    UpdateDealTitleStep,
    UpdateDealValueStep,
)

CRM_WRITES = StepWrites(CRM_WRITE, "CRM")
S = TypeVar("S", bound=StepBase)


def on_current_deal(
    apply: Callable[[Visit[S], Deal], Awaitable[Outcome]],
) -> Callable[[Visit[S]], Awaitable[Outcome]]:
    """A deal step: find the current deal first; none is a skip, not a failure."""

    async def run(visit: Visit[S]) -> Outcome:
        deal = await visit.current_deal()
        if deal is None:
            return skipped("no_deal")
        return await apply(visit, deal)

    return run


async def _update(visit: Visit[Any], deal: Deal, changes: dict[str, Any]) -> Outcome:
    changed = await crm_store.update_deal(visit.session, deal, changes, origin=visit.origin)
    return done(deal=deal.id, changed=changed)


# --- deals -----------------------------------------------------------------------------------


@CRM_WRITES.applies(AddDealStep)
async def _add_deal(visit: Visit[AddDealStep]) -> Outcome:
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


@CRM_WRITES.applies(UpdateDealTitleStep)
@on_current_deal
async def _set_title(visit: Visit[UpdateDealTitleStep], deal: Deal) -> Outcome:
    return await _update(visit, deal, {"title": await visit.text(visit.step.value)})


@CRM_WRITES.applies(UpdateDealStatusStep)
@on_current_deal
async def _set_status(visit: Visit[UpdateDealStatusStep], deal: Deal) -> Outcome:
    return await _update(visit, deal, {"status": visit.step.value})


@CRM_WRITES.applies(UpdateDealValueStep)
@on_current_deal
async def _set_value(visit: Visit[UpdateDealValueStep], deal: Deal) -> Outcome:
    return await _update(visit, deal, {"value": visit.step.value})


@CRM_WRITES.applies(UpdateDealOwnerStep)
@on_current_deal
async def _set_owner(visit: Visit[UpdateDealOwnerStep], deal: Deal) -> Outcome:
    owner = await crm_store.user_named(visit.session, visit.step.value)
    return await _update(visit, deal, {"owner": owner})


@CRM_WRITES.applies(UpdateDealStageStep)
@on_current_deal
async def _set_stage(visit: Visit[UpdateDealStageStep], deal: Deal) -> Outcome:
    pipeline = await visit.session.get(Pipeline, deal.pipeline_id)
    assert pipeline is not None  # a deal's pipeline cannot be deleted
    stage = await crm_store.stage_named(visit.session, pipeline, visit.step.value)
    return await _update(visit, deal, {"stage": stage})


@CRM_WRITES.applies(UpdateDealFieldStep)
@on_current_deal
async def _set_field(visit: Visit[UpdateDealFieldStep], deal: Deal) -> Outcome:
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


@CRM_WRITES.applies(AdjustDealScoreStep)
@on_current_deal
async def _adjust_score(visit: Visit[AdjustDealScoreStep], deal: Deal) -> Outcome:
    step = visit.step
    old, new = await crm_store.adjust_deal_score(
        visit.session, deal, step.score, step.op, step.value, origin=visit.origin
    )
    return done(deal=deal.id, **{"from": old, "to": new})


@CRM_WRITES.applies(AddDealNoteStep)
@on_current_deal
async def _add_note(visit: Visit[AddDealNoteStep], deal: Deal) -> Outcome:
    note = await crm_store.add_deal_note(visit.session, deal.id, await visit.text(visit.step.note))
    return done(deal=deal.id, note=note.id)


# --- tasks -----------------------------------------------------------------------------------


@CRM_WRITES.applies(AddTaskStep)
async def _add_task(visit: Visit[AddTaskStep]) -> Outcome:
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


@CRM_WRITES.applies(CompleteTaskStep)
async def _complete_tasks(visit: Visit[CompleteTaskStep]) -> Outcome:
    # The contact's tasks as well as the deal's: `add_task` puts a task on the contact unless
    # told otherwise, and "add a task, later complete it" must find it.
    step, deal = visit.step, await visit.current_deal()
    count = await crm_store.complete_tasks(
        visit.session,
        deal_id=deal.id if deal else None,
        contact_id=visit.contact.id,
        title=step.title,
        task_type=step.task_type,
    )
    if not count:
        return skipped("no_open_task")
    return done(deal=deal.id if deal else None, completed=count)


# --- accounts --------------------------------------------------------------------------------


@CRM_WRITES.applies(AddToAccountStep)
async def _add_to_account(visit: Visit[AddToAccountStep]) -> Outcome:
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


@CRM_WRITES.applies(UpdateAccountFieldStep)
async def _set_account_field(visit: Visit[UpdateAccountFieldStep]) -> Outcome:
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


class CrmActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @step_activity(CRM_WRITE.name)
    async def apply_crm_step(self, context: StepContext) -> StepOutcome:
        """One CRM write, exactly once per step visit (docs/architecture.md#exactly-once-writes)."""
        return await CRM_WRITES.run(self.deps, context)
