"""CRM data (docs/crm.md): users, pipelines, deals, tasks, notes, accounts.

Steps, conditions and the API name pipelines, stages, owners and accounts by name, matched
without regard to case. Every deal change that can matter to a condition is written with one
outbox row per contact of the deal, in the same transaction (docs/architecture.md#the-outbox):
`deal_changed`, `deal_stage_changed` (a trigger; a new deal enters its stage too) and
`score_changed` (a trigger, with `"target": "deal"`). Each row names the deal and its primary
contact, the one a deal's trigger enrolls (docs/crm.md#deal-triggers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from store.contacts import InvalidChange, emit, normalize_email, score_after
from store.models import (
    Account,
    AccountContact,
    Contact,
    Deal,
    DealContact,
    DealNote,
    DealScore,
    Pipeline,
    Stage,
    Task,
    User,
    utcnow,
)
from store.names import name_key, named

DEAL_STATUSES = ("open", "won", "lost")
# Deal fields a condition (or a copy) can name besides custom fields and scores.
STANDARD_DEAL_FIELDS = ("title", "value", "currency", "status", "stage", "pipeline", "owner")


class UnknownReference(LookupError):
    """A pipeline, stage, user or account named by a step or a request does not exist."""


class Conflict(ValueError):
    """A change that clashes with what exists (a duplicate name, a stage still in use)."""


# Minor units: far beyond any deal, and inside a BIGINT on every database.
MAX_DEAL_VALUE = 2**62


def _fits(value: str, column: Any, what: str) -> str:
    """`value`, or a clear error when the column cannot hold it (a step's text is unbounded)."""
    limit = column.type.length
    if len(value) > limit:
        raise InvalidChange(f"{what} may be at most {limit} characters; this one has {len(value)}")
    return value


async def _write_named(
    session: AsyncSession, what: str, name: str, change: Callable[[], None]
) -> None:
    """Make `change` (adding or renaming a pipeline or account) and flush it in a savepoint:
    another transaction may have taken the name, in any case, since we looked, and the unique
    index on lower(name) has the last word. That clash is a `Conflict`; the transaction goes on."""
    try:
        async with session.begin_nested():  # flushes what was pending first
            change()
            await session.flush()
    except IntegrityError:
        raise Conflict(f'{what} named "{name}" already exists') from None


def _check_value(value: int) -> int:
    if not 0 <= value <= MAX_DEAL_VALUE:
        raise InvalidChange(f"a deal's value is 0 to {MAX_DEAL_VALUE} minor units, not {value}")
    return value


# --- lookups by name -------------------------------------------------------------------------


async def find_pipeline(session: AsyncSession, name: str) -> Pipeline | None:
    return await session.scalar(select(Pipeline).where(named(Pipeline.name, name)))


async def pipeline_named(session: AsyncSession, name: str) -> Pipeline:
    pipeline = await find_pipeline(session, name)
    if pipeline is None:
        raise UnknownReference(f'pipeline "{name}" does not exist')
    return pipeline


async def stages_of(session: AsyncSession, pipeline_id: int) -> list[Stage]:
    query = select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position)
    return list((await session.scalars(query)).all())


async def stage_named(session: AsyncSession, pipeline: Pipeline, name: str) -> Stage:
    stage = await session.scalar(
        select(Stage).where(Stage.pipeline_id == pipeline.id, named(Stage.name, name))
    )
    if stage is None:
        raise UnknownReference(f'stage "{name}" does not exist in pipeline "{pipeline.name}"')
    return stage


async def find_users(session: AsyncSession, ref: str) -> list[User]:
    """Users an owner/assignee reference names: by email first, else by name."""
    by_email = await session.scalar(select(User).where(named(User.email, ref)))
    if by_email is not None:
        return [by_email]
    return list(await session.scalars(select(User).where(named(User.name, ref))))


async def user_named(session: AsyncSession, ref: str) -> User:
    users = await find_users(session, ref)
    if not users:
        raise UnknownReference(f'user "{ref}" does not exist (name a user by email or name)')
    if len(users) > 1:
        raise UnknownReference(f'several users are named "{ref}"; name the user by email')
    return users[0]


async def find_account(session: AsyncSession, name: str) -> Account | None:
    return await session.scalar(select(Account).where(named(Account.name, name)))


# --- users -----------------------------------------------------------------------------------


async def create_user(session: AsyncSession, email: str, name: str) -> User:
    email = normalize_email(email)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} already exists")
    user = User(email=email, name=name.strip())
    session.add(user)
    await session.flush()
    return user


async def update_user(session: AsyncSession, user: User, changes: dict[str, Any]) -> None:
    if "email" in changes:
        email = normalize_email(changes["email"])
        other = await session.scalar(select(User.id).where(User.email == email))
        if other is not None and other != user.id:
            raise Conflict(f"a user with email {email} already exists")
        user.email = email
    if "name" in changes:
        user.name = changes["name"].strip()


# --- pipelines -------------------------------------------------------------------------------


def _check_stage_names(names: Sequence[str]) -> list[str]:
    cleaned = [name.strip() for name in names]
    seen: set[str] = set()
    for name in cleaned:
        if not name:
            raise InvalidChange("a stage name cannot be empty")
        if name_key(name) in seen:
            raise InvalidChange(f'stage "{name}" is listed twice')
        seen.add(name_key(name))
    if not cleaned:
        raise InvalidChange("a pipeline needs at least one stage")
    return cleaned


async def create_pipeline(session: AsyncSession, name: str, stages: Sequence[str]) -> Pipeline:
    names = _check_stage_names(stages)
    if await find_pipeline(session, name) is not None:
        raise Conflict(f'a pipeline named "{name.strip()}" already exists')
    pipeline = Pipeline(name=name.strip())
    await _write_named(session, "a pipeline", pipeline.name, lambda: session.add(pipeline))
    session.add_all(
        Stage(pipeline_id=pipeline.id, name=stage, position=index)
        for index, stage in enumerate(names)
    )
    await session.flush()
    return pipeline


async def update_pipeline(
    session: AsyncSession, pipeline: Pipeline, name: str | None, stages: Sequence[str] | None
) -> None:
    """Rename, and/or set the ordered stages: stages are kept by name (case-insensitive), new
    ones added, and a stage left out is removed unless a deal still sits in it."""
    if name is not None:
        other = await find_pipeline(session, name)
        if other is not None and other.id != pipeline.id:
            raise Conflict(f'a pipeline named "{name.strip()}" already exists')
        new_name = name.strip()
        await _write_named(
            session, "a pipeline", new_name, lambda: setattr(pipeline, "name", new_name)
        )
    if stages is None:
        return
    names = _check_stage_names(stages)
    existing = {name_key(stage.name): stage for stage in await stages_of(session, pipeline.id)}
    wanted = {name_key(name) for name in names}
    for key, stage in existing.items():
        if key in wanted:
            continue
        if await session.scalar(select(Deal.id).where(Deal.stage_id == stage.id).limit(1)):
            raise Conflict(f'stage "{stage.name}" still holds deals; move them first')
        await session.delete(stage)
    await session.flush()
    for position, stage_name in enumerate(names):
        kept = existing.get(name_key(stage_name))
        if kept is None:
            session.add(Stage(pipeline_id=pipeline.id, name=stage_name, position=position))
        else:
            kept.name, kept.position = stage_name, position
    await session.flush()


# --- deals -----------------------------------------------------------------------------------


async def deal_contact_ids(session: AsyncSession, deal_id: int) -> list[int]:
    query = select(DealContact.contact_id).where(DealContact.deal_id == deal_id)
    return list((await session.scalars(query.order_by(DealContact.contact_id))).all())


async def primary_contact_id(session: AsyncSession, deal_id: int) -> int | None:
    """The deal's primary contact: the one linked to it first (of those a request linked at
    once, the first listed)."""
    query = select(DealContact.contact_id).where(DealContact.deal_id == deal_id)
    order = (DealContact.created_at, DealContact.contact_id)
    return await session.scalar(query.order_by(*order).limit(1))


async def _emit_for_deal(
    session: AsyncSession,
    deal: Deal,
    kind: str,
    data: dict[str, Any],
    *,
    origin: str | None,
    contact_ids: Sequence[int] | None = None,
) -> None:
    """One outbox row per contact of the deal: each contact's runs and triggers hear of it.
    Each row names the deal's primary contact: only that contact's row fires deal triggers."""
    ids = contact_ids if contact_ids is not None else await deal_contact_ids(session, deal.id)
    if not ids:
        return
    about = {"deal": deal.id, "primary_contact": await primary_contact_id(session, deal.id)}
    for contact_id in ids:
        emit(session, contact_id, kind, {**about, **data}, origin=origin)


def _check_status(status: str) -> str:
    if status not in DEAL_STATUSES:
        raise InvalidChange(f"a deal's status is open, won or lost, not {status!r}")
    return status


def _merge_fields(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


async def _check_contacts(session: AsyncSession, contact_ids: Sequence[int]) -> list[int]:
    ids = list(dict.fromkeys(contact_ids))
    if ids:
        found = set((await session.scalars(select(Contact.id).where(Contact.id.in_(ids)))).all())
        missing = [cid for cid in ids if cid not in found]
        if missing:
            raise UnknownReference(f"contact {missing[0]} does not exist")
    return ids


def _link(session: AsyncSession, deal: Deal, contact_ids: Sequence[int]) -> None:
    """Link contacts to the deal a microsecond apart, in the order given: of contacts linked at
    once, the first listed is the earliest, so the primary contact if the deal had none."""
    linked = utcnow()
    session.add_all(
        DealContact(deal_id=deal.id, contact_id=cid, created_at=linked + timedelta(microseconds=n))
        for n, cid in enumerate(contact_ids)
    )


async def create_deal(
    session: AsyncSession,
    *,
    title: str,
    value: int,
    currency: str,
    stage: Stage,
    owner: User | None = None,
    status: str = "open",
    description: str | None = None,
    fields: dict[str, Any] | None = None,
    contact_ids: Sequence[int] = (),
    origin: str | None = None,
) -> Deal:
    deal = Deal(
        title=_fits(title, Deal.title, "a deal's title"),
        description=description,
        value=_check_value(value),
        currency=currency.upper(),
        pipeline_id=stage.pipeline_id,
        stage_id=stage.id,
        owner_id=owner.id if owner else None,
        status=_check_status(status),
        fields=_merge_fields({}, fields or {}),
    )
    session.add(deal)
    await session.flush()
    ids = await _check_contacts(session, contact_ids)
    _link(session, deal, ids)
    # A new deal enters its stage: `deal_stage_changed` fires for it as for a move
    # (`from_stage` null), as ActiveCampaign's "deal stage changes" trigger does.
    data = await _stage_data(session, deal, None, ["created"])
    await _emit_for_deal(session, deal, "deal_stage_changed", data, origin=origin, contact_ids=ids)
    return deal


async def update_deal(
    session: AsyncSession, deal: Deal, changes: dict[str, Any], *, origin: str | None = None
) -> list[str]:
    """Apply `changes` (title, description, value, currency, status, owner: User | None,
    stage: Stage — its pipeline follows —, fields: merged, null removes); the names changed.

    A stage move emits `deal_stage_changed` (a trigger), anything else `deal_changed`.
    """
    changed: list[str] = []
    old_stage = deal.stage_id
    for name in ("title", "description", "value", "currency", "status"):
        if name in changes:
            value = changes[name]
            if name == "status":
                _check_status(value)
            if name == "title":
                _fits(value, Deal.title, "a deal's title")
            if name == "value":
                _check_value(value)
            if name == "currency":
                value = value.upper()
            if getattr(deal, name) != value:
                setattr(deal, name, value)
                changed.append(name)
    if "owner" in changes:
        owner_id = changes["owner"].id if changes["owner"] is not None else None
        if deal.owner_id != owner_id:
            deal.owner_id = owner_id
            changed.append("owner")
    if "stage" in changes and changes["stage"].id != deal.stage_id:
        stage: Stage = changes["stage"]
        if stage.pipeline_id != deal.pipeline_id:
            deal.pipeline_id = stage.pipeline_id
            changed.append("pipeline")
        deal.stage_id = stage.id
        changed.append("stage")
    if "fields" in changes:
        merged = _merge_fields(deal.fields or {}, changes["fields"])
        if merged != (deal.fields or {}):
            deal.fields = merged  # a new dict so SQLAlchemy sees the JSON change
            changed.append("fields")
    if not changed:
        return changed
    deal.updated_at = utcnow()
    if "stage" in changed:
        data = await _stage_data(session, deal, old_stage, changed)
        await _emit_for_deal(session, deal, "deal_stage_changed", data, origin=origin)
    else:
        await _emit_for_deal(session, deal, "deal_changed", {"changed": changed}, origin=origin)
    return changed


async def _stage_data(
    session: AsyncSession, deal: Deal, old_stage: int | None, changed: list[str]
) -> dict[str, Any]:
    """A `deal_stage_changed` row's data: the pipeline and stages by name (what triggers match)."""
    names = await _stage_names(session, [deal.stage_id] + ([old_stage] if old_stage else []))
    pipeline = await session.get(Pipeline, deal.pipeline_id)
    return {
        "pipeline": pipeline.name if pipeline else None,
        "stage": names.get(deal.stage_id),
        "from_stage": names.get(old_stage) if old_stage else None,
        "changed": changed,
    }


async def _stage_names(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    rows = await session.execute(select(Stage.id, Stage.name).where(Stage.id.in_(set(ids))))
    return {row.id: row.name for row in rows}


async def set_deal_contacts(
    session: AsyncSession, deal: Deal, contact_ids: Sequence[int], *, origin: str | None = None
) -> None:
    """Replace the deal's contacts; those added or removed hear of it (their current deal may
    have changed)."""
    ids = await _check_contacts(session, contact_ids)
    current = await deal_contact_ids(session, deal.id)
    added = [cid for cid in ids if cid not in current]
    removed = [cid for cid in current if cid not in ids]
    for cid in removed:
        await session.delete(await session.get(DealContact, (deal.id, cid)))
    _link(session, deal, added)
    data = {"changed": ["contacts"]}
    await _emit_for_deal(session, deal, "deal_changed", data, origin=origin, contact_ids=added)
    await _emit_for_deal(session, deal, "deal_changed", data, origin=origin, contact_ids=removed)


async def adjust_deal_score(
    session: AsyncSession,
    deal: Deal,
    name: str,
    op: str,
    value: float | None,
    *,
    origin: str | None = None,
) -> tuple[float, float]:
    """add / subtract / set / reset a named score of the deal; returns (old, new)."""
    score = await session.get(DealScore, (deal.id, name))
    old = score.value if score else 0.0
    new = score_after(old, op, value)
    if score is None:
        session.add(DealScore(deal_id=deal.id, name=name, value=new))
    else:
        score.value = new
    if new != old:
        data = {"score": name, "from": old, "to": new, "target": "deal"}
        await _emit_for_deal(session, deal, "score_changed", data, origin=origin)
    return old, new


async def current_deal(
    session: AsyncSession,
    contact_id: int,
    pipeline_id: int | None = None,
    *,
    deal_id: int | None = None,
) -> Deal | None:
    """The deal deal steps, the `deal` condition and `%DEAL_...%` tags use (docs/crm.md): the
    run's deal (`deal_id`: the deal that fired it) when it is in `pipeline_id` (if given), else
    the contact's most recently created deal within it, whatever its status (a won or lost deal
    can be reopened)."""
    if deal_id is not None:
        deal = await session.get(Deal, deal_id)
        if deal is not None and pipeline_id in (None, deal.pipeline_id):
            return deal
    query = (
        select(Deal)
        .join(DealContact, DealContact.deal_id == Deal.id)
        .where(DealContact.contact_id == contact_id)
    )
    if pipeline_id is not None:
        query = query.where(Deal.pipeline_id == pipeline_id)
    return await session.scalar(query.order_by(Deal.created_at.desc(), Deal.id.desc()).limit(1))


def deals_query(
    *, contact_id: int | None = None, pipeline_id: int | None = None, status: str | None = None
) -> Select[Deal]:
    """Deals, filtered by one of their contacts, their pipeline and their status."""
    query = select(Deal)
    if contact_id is not None:
        query = query.join(DealContact, DealContact.deal_id == Deal.id).where(
            DealContact.contact_id == contact_id
        )
    if pipeline_id is not None:
        query = query.where(Deal.pipeline_id == pipeline_id)
    if status is not None:
        query = query.where(Deal.status == status)
    return query


async def page(
    session: AsyncSession, query: Any, order: Any, *, limit: int, offset: int
) -> tuple[list[Any], int]:
    """One page of `query`'s rows, ordered by `order`, and how many there are in all."""
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = (await session.scalars(query.order_by(order).limit(limit).offset(offset))).all()
    return list(rows), int(total or 0)


@dataclass(frozen=True)
class DealDetails:
    """A deal with what its record names besides its own columns (batched reads)."""

    deal: Deal
    pipeline: str | None
    stage: str | None
    owner: User | None
    scores: dict[str, float]
    contacts: list[int]


async def deal_details(session: AsyncSession, deals: Sequence[Deal]) -> list[DealDetails]:
    """Each deal with its pipeline and stage by name, its owner, scores and contacts."""
    if not deals:
        return []
    ids = [d.id for d in deals]
    pipelines = {
        p.id: p.name
        for p in await session.scalars(
            select(Pipeline).where(Pipeline.id.in_({d.pipeline_id for d in deals}))
        )
    }
    stages = await _stage_names(session, [d.stage_id for d in deals])
    owner_ids = {d.owner_id for d in deals if d.owner_id is not None}
    owners = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(owner_ids)))}
    scores: dict[int, dict[str, float]] = {}
    for score in await session.scalars(
        select(DealScore).where(DealScore.deal_id.in_(ids)).order_by(DealScore.name)
    ):
        scores.setdefault(score.deal_id, {})[score.name] = score.value
    contacts: dict[int, list[int]] = {}
    for link in await session.scalars(
        select(DealContact).where(DealContact.deal_id.in_(ids)).order_by(DealContact.contact_id)
    ):
        contacts.setdefault(link.deal_id, []).append(link.contact_id)
    return [
        DealDetails(
            deal=d,
            pipeline=pipelines.get(d.pipeline_id),
            stage=stages.get(d.stage_id),
            owner=owners.get(d.owner_id) if d.owner_id is not None else None,
            scores=scores.get(d.id, {}),
            contacts=contacts.get(d.id, []),
        )
        for d in deals
    ]


async def deal_values(
    session: AsyncSession,
    contact_id: int,
    pipeline: str | None = None,
    *,
    deal_id: int | None = None,
) -> dict[str, Any] | None:
    """What a `deal` condition compares: the standard fields (value in minor units), custom
    fields and scores of the `current_deal`; None without any deal (or an unknown pipeline)."""
    pipeline_id = None
    if pipeline is not None:
        found = await find_pipeline(session, pipeline)
        if found is None:
            return None
        pipeline_id = found.id
    deal = await current_deal(session, contact_id, pipeline_id, deal_id=deal_id)
    if deal is None:
        return None
    (details,) = await deal_details(session, [deal])
    # Custom fields, then scores, never mask a standard field of the same name.
    values: dict[str, Any] = {**details.scores, **(deal.fields or {})}
    owner = details.owner
    standard = {
        "title": deal.title,
        "value": deal.value,
        "currency": deal.currency,
        "status": deal.status,
        "stage": details.stage,
        "pipeline": details.pipeline,
        "owner": owner.email if owner else None,
    }
    values.update({name: standard[name] for name in STANDARD_DEAL_FIELDS})
    values["owner_name"] = owner.name if owner else None
    return values


# --- tasks and notes -------------------------------------------------------------------------


async def add_task(
    session: AsyncSession,
    *,
    title: str,
    task_type: str,
    due_at: datetime | None,
    assignee: User | None,
    deal_id: int | None = None,
    contact_id: int | None = None,
) -> Task:
    if (deal_id is None) == (contact_id is None):
        raise InvalidChange("a task is on a deal or on a contact (exactly one of them)")
    task = Task(
        title=_fits(title, Task.title, "a task's title"),
        type=_fits(task_type, Task.type, "a task's type"),
        due_at=due_at,
        assignee_id=assignee.id if assignee else None,
        deal_id=deal_id,
        contact_id=contact_id,
    )
    session.add(task)
    await session.flush()
    return task


async def complete_tasks(
    session: AsyncSession,
    *,
    deal_id: int | None,
    contact_id: int,
    title: str | None,
    task_type: str | None,
) -> int:
    """Complete the open tasks of the deal (if any) and of the contact matching title and/or
    type (case-insensitive); how many."""
    on = Task.contact_id == contact_id
    if deal_id is not None:
        on = on | (Task.deal_id == deal_id)
    query = update(Task).where(on, Task.done.is_(False))
    if title is not None:
        query = query.where(named(Task.title, title))
    if task_type is not None:
        query = query.where(named(Task.type, task_type))
    result = await session.execute(query.values(done=True, done_at=utcnow()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def set_task_done(task: Task, done: bool) -> None:
    if task.done != done:
        task.done = done
        task.done_at = utcnow() if done else None


async def task_assignees(session: AsyncSession, tasks: Sequence[Task]) -> dict[int, User]:
    """The users the tasks are assigned to, by id (one read)."""
    ids = {t.assignee_id for t in tasks if t.assignee_id is not None}
    if not ids:
        return {}
    return {u.id: u for u in await session.scalars(select(User).where(User.id.in_(ids)))}


def tasks_query(
    *,
    deal_id: int | None = None,
    contact_id: int | None = None,
    assignee_id: int | None = None,
    done: bool | None = None,
) -> Select[Task]:
    """Tasks, filtered by deal, contact (tasks on the contact), assignee and done."""
    query = select(Task)
    for column, wanted in (
        (Task.deal_id, deal_id),
        (Task.contact_id, contact_id),
        (Task.assignee_id, assignee_id),
        (Task.done, done),
    ):
        if wanted is not None:
            query = query.where(column == wanted)
    return query


async def add_deal_note(session: AsyncSession, deal_id: int, body: str) -> DealNote:
    note = DealNote(deal_id=deal_id, body=body)
    session.add(note)
    await session.flush()
    return note


# --- accounts --------------------------------------------------------------------------------


async def create_account(
    session: AsyncSession,
    name: str,
    *,
    url: str | None = None,
    fields: dict[str, Any] | None = None,
) -> Account:
    if await find_account(session, name) is not None:
        raise Conflict(f'an account named "{name.strip()}" already exists')
    name = _fits(name.strip(), Account.name, "an account's name")
    account = Account(name=name, url=url, fields=_merge_fields({}, fields or {}))
    await _write_named(session, "an account", name, lambda: session.add(account))
    return account


async def update_account(session: AsyncSession, account: Account, changes: dict[str, Any]) -> bool:
    """Set name, url and/or custom `fields` (merged; null removes); whether anything changed."""
    changed = False
    if "name" in changes and changes["name"].strip() != account.name:
        other = await find_account(session, changes["name"])
        if other is not None and other.id != account.id:
            raise Conflict(f'an account named "{changes["name"].strip()}" already exists')
        name = _fits(changes["name"].strip(), Account.name, "an account's name")
        await _write_named(session, "an account", name, lambda: setattr(account, "name", name))
        changed = True
    if "url" in changes and changes["url"] != account.url:
        url = changes["url"]
        account.url = None if url is None else _fits(url, Account.url, "an account's URL")
        changed = True
    if "fields" in changes:
        merged = _merge_fields(account.fields or {}, changes["fields"])
        if merged != (account.fields or {}):
            account.fields, changed = merged, True
    if changed:
        account.updated_at = utcnow()
    return changed


async def link_contact(
    session: AsyncSession, account: Account, contact_id: int, job_title: str | None
) -> bool:
    """Put the contact in the account (moving it from any other); whether anything changed.

    A `job_title` of None keeps the title the contact already has in this account.
    """
    if job_title is not None:
        _fits(job_title, AccountContact.job_title, "a job title")
    link = await session.get(AccountContact, contact_id)
    if link is None:
        session.add(
            AccountContact(contact_id=contact_id, account_id=account.id, job_title=job_title)
        )
        return True
    # A title belongs to one account: moving without a new title leaves none.
    moving = link.account_id != account.id
    title = job_title if job_title is not None or moving else link.job_title
    if not moving and title == link.job_title:
        return False
    link.account_id, link.job_title = account.id, title
    return True


async def contact_account(
    session: AsyncSession, contact_id: int
) -> tuple[Account, AccountContact] | None:
    link = await session.get(AccountContact, contact_id)
    if link is None:
        return None
    account = await session.get(Account, link.account_id)
    return None if account is None else (account, link)


# --- a contact's CRM side: its record and personalization ------------------------------------


@dataclass(frozen=True)
class ContactCrm:
    """A contact's deals (newest first), tasks (on it or its deals) and account membership."""

    deals: list[DealDetails]
    tasks: list[Task]
    assignees: dict[int, User]
    account: tuple[Account, AccountContact] | None


async def contact_crm(session: AsyncSession, contact_id: int) -> ContactCrm:
    """The CRM side of a contact's record."""
    deals = (
        await session.scalars(
            select(Deal)
            .join(DealContact, DealContact.deal_id == Deal.id)
            .where(DealContact.contact_id == contact_id)
            .order_by(Deal.created_at.desc(), Deal.id.desc())
        )
    ).all()
    deal_ids = [d.id for d in deals]
    on_contact = Task.contact_id == contact_id
    tasks = (
        await session.scalars(
            select(Task)
            .where(on_contact | Task.deal_id.in_(deal_ids) if deal_ids else on_contact)
            .order_by(Task.id)
        )
    ).all()
    return ContactCrm(
        deals=await deal_details(session, deals),
        tasks=list(tasks),
        assignees=await task_assignees(session, tasks),
        account=await contact_account(session, contact_id),
    )


# Minor units per major unit, where it is not 100 (ISO 4217 exponents).
_ZERO_DECIMALS = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()
)
_THREE_DECIMALS = frozenset("BHD IQD JOD KWD LYD OMR TND".split())
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}


def format_money(minor: int, currency: str) -> str:
    """One rule for every currency: minor units → major with the currency's ISO decimals,
    comma thousands and a dot, behind its symbol when it has a common one ("$1,250.00",
    "€1,250.00", "¥1,250") or its code otherwise ("CHF 1,250.00")."""
    code = currency.upper()
    decimals = 0 if code in _ZERO_DECIMALS else 3 if code in _THREE_DECIMALS else 2
    sign = "-" if minor < 0 else ""
    major, rest = divmod(abs(minor), 10**decimals)
    amount = f"{major:,}" + (f".{rest:0{decimals}d}" if decimals else "")
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{code} {amount}"


async def personalization_values(
    session: AsyncSession, contact_id: int, *, deal_id: int | None = None
) -> dict[str, str]:
    """`%DEAL_TITLE%`, `%DEAL_VALUE%` (the current deal; `deal_id`: the run's) and
    `%ACCOUNT_NAME%` for a contact."""
    deal = await current_deal(session, contact_id, deal_id=deal_id)
    membership = await contact_account(session, contact_id)
    return {
        "DEAL_TITLE": deal.title if deal else "",
        "DEAL_VALUE": format_money(deal.value, deal.currency) if deal else "",
        "ACCOUNT_NAME": membership[0].name if membership else "",
    }


# --- references an automation makes, checked when it is saved -------------------------------


@dataclass(frozen=True)
class _Reference:
    kind: str  # pipeline | stage | user
    name: str
    path: str
    step: str | None
    pipeline: str | None = None  # for a stage: the pipeline it must be in (None: any)


def _references(document: dict[str, Any]) -> Iterator[_Reference]:
    for step_id, step in (document.get("steps") or {}).items():
        base = f"steps.{step_id}"
        pipeline = step.get("pipeline")
        if isinstance(pipeline, str):
            yield _Reference("pipeline", pipeline, f"{base}.pipeline", step_id)
        kind = step.get("type")
        if kind == "add_deal":
            yield _Reference("stage", step["stage"], f"{base}.stage", step_id, pipeline)
        if kind == "update_deal_stage":
            yield _Reference("stage", step["value"], f"{base}.value", step_id, pipeline)
        for field, user_kind in (("owner", "add_deal"), ("value", "update_deal_owner")):
            if kind == user_kind and isinstance(step.get(field), str):
                yield _Reference("user", step[field], f"{base}.{field}", step_id)
        if kind == "add_task" and isinstance(step.get("assignee"), str):
            yield _Reference("user", step["assignee"], f"{base}.assignee", step_id)
        yield from _condition_references(step, base, step_id)
    for index, trigger in enumerate(document.get("triggers") or []):
        base = f"triggers.{index}"
        if trigger.get("type") == "deal_stage_changed":
            pipeline = trigger.get("pipeline")
            if pipeline is not None:
                yield _Reference("pipeline", pipeline, f"{base}.pipeline", None)
            if trigger.get("stage") is not None:
                yield _Reference("stage", trigger["stage"], f"{base}.stage", None, pipeline)
        yield from _condition_references(trigger, base, None)


def _condition_references(node: Any, path: str, step: str | None) -> Iterator[_Reference]:
    """`pipeline` of every `deal` condition leaf, however deep."""
    stack: list[tuple[Any, str]] = [(node, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            if isinstance(value.get("deal"), dict) and isinstance(value.get("pipeline"), str):
                yield _Reference("pipeline", value["pipeline"], f"{where}.pipeline", step)
            stack.extend((v, f"{where}.{k}") for k, v in value.items() if k != "pipeline")
        elif isinstance(value, list):
            stack.extend((v, f"{where}.{i}") for i, v in enumerate(value))


async def reference_warnings(
    session: AsyncSession, document: dict[str, Any]
) -> list[dict[str, Any]]:
    """Warnings (never errors: they may be created later) for pipelines, stages and users the
    automation names that do not exist now, and user names several users share; a step naming
    one fails when it runs."""
    pipelines = {name_key(p.name): p.id for p in (await session.scalars(select(Pipeline))).all()}
    stages: dict[int, set[str]] = {}
    for stage in (await session.scalars(select(Stage))).all():
        stages.setdefault(stage.pipeline_id, set()).add(name_key(stage.name))
    warnings: list[dict[str, Any]] = []

    def warn(ref: _Reference, message: str) -> None:
        warnings.append(
            {"step": ref.step, "path": ref.path, "message": message, "severity": "warning"}
        )

    for ref in _references(document):
        if ref.kind == "pipeline" and name_key(ref.name) not in pipelines:
            warn(
                ref, f'pipeline "{ref.name}" does not exist yet: create it before contacts get here'
            )
        elif ref.kind == "stage":
            if ref.pipeline is not None:
                pipeline_id = pipelines.get(name_key(ref.pipeline))
                if pipeline_id is not None and name_key(ref.name) not in stages.get(
                    pipeline_id, set()
                ):
                    warn(ref, f'pipeline "{ref.pipeline}" has no stage "{ref.name}"')
            elif not any(name_key(ref.name) in names for names in stages.values()):
                warn(ref, f'no pipeline has a stage "{ref.name}"')
        elif ref.kind == "user":
            users = await find_users(session, ref.name)
            if not users:
                warn(
                    ref, f'user "{ref.name}" does not exist yet (users are named by email or name)'
                )
            elif len(users) > 1:
                warn(ref, f'several users are named "{ref.name}": name the user by email')
    return warnings
