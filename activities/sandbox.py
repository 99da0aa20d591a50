"""The sandbox a simulation runs in (docs/simulation.md): its own database, a copy of one
contact, and recorders in place of SMTP and the network.

Each simulation gets a SQLite database of its own (a copy of a migrated template, so it has
the real schema), holding the automation under test, the contact (made up, or copied from the
real database, which is only read), and the CRM's users, pipelines and stages. Cairn's real
activities run against it on the simulation task queue: `SandboxDeps` hands each activity the
`Deps` of the simulation its workflow belongs to. Emails are rendered and kept, not sent;
provider calls are answered here and kept, not made; the store's clock is the run's virtual
time. Nothing of a simulation reaches the real database, a provider, a report or a counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import TimeSkipper
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.deps import Deps
from core.settings import Settings
from store import contacts as contact_store
from store import runs as run_store
from store.db import Database, open_database
from store.models import (
    CLOCK,
    Account,
    AccountContact,
    Automation,
    AutomationVersion,
    Base,
    Contact,
    ContactTag,
    Conversion,
    Deal,
    DealContact,
    DealNote,
    DealScore,
    Event,
    Note,
    Pipeline,
    Run,
    Score,
    SiteMessage,
    SplitState,
    Stage,
    StepState,
    Subscription,
    Task,
    User,
)
from workflows.contracts import StepContext, StepOutcome
from workflows.simulation import (
    SimulatedContact,
    SimulatedMessage,
    SimulatedRequest,
    SimulatedWrite,
    SimulationInput,
)

# A copied contact's history: conditions look back at events; the newest this many are enough.
EVENTS_COPIED = 10_000
# Query parameters, form fields and JSON keys whose values never leave the sandbox.
_SECRET = re.compile(r"(?i)token|secret|password|passwd|key|signature|sig$|auth|credential")
MASK = "***"
_NOT_SETTINGS = {"type", "next", "name", "on_error"}
# What a provider answers in a simulation: one body every provider's client reads as success
# (a webhook's 2xx, Twilio's message, Facebook's upload, Salesforce's token and record).
_PROVIDER_ANSWER = {
    "id": "simulated",
    "success": True,
    "sid": "SMsimulated",
    "status": "queued",
    "num_received": 1,
    "num_invalid_entries": 0,
    "access_token": "simulated",
    "token_type": "Bearer",
    "records": [],
    "totalSize": 0,
    "done": True,
}


@dataclass
class Moment:
    """Where an activity of a simulation is: its step and its virtual time."""

    step: str
    activity: str
    scheduled: datetime  # virtual: the server's time for the run when it scheduled this
    started: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        return self.scheduled + timedelta(seconds=time.monotonic() - self.started)


_MOMENT: ContextVar[Moment | None] = ContextVar("cairn_sim_moment", default=None)


@dataclass
class Recording:
    messages: list[SimulatedMessage] = field(default_factory=list)
    writes: dict[str, SimulatedWrite] = field(default_factory=dict)  # by step visit
    sent: set[str] = field(default_factory=set)  # Message-IDs
    requests: list[SimulatedRequest] = field(default_factory=list)


@dataclass
class Sandbox:
    input: SimulationInput
    db: Database
    deps: Deps
    directory: Path
    contact_id: int
    recording: Recording = field(default_factory=Recording)


class Sandboxes:
    """The simulations running in this worker process, by their AutomationRun's workflow id."""

    def __init__(self, settings: Settings, client: Client, task_queue: str) -> None:
        self.settings = settings
        self.client = client
        self.task_queue = task_queue
        self._open: dict[str, Sandbox] = {}
        self._clock = TimeSkipper(client)  # reads a run's virtual time; starts nothing
        self._template: Path | None = None
        self._template_lock = asyncio.Lock()
        self._root = Path(tempfile.mkdtemp(prefix="cairn-sim-", dir=_fast_tmp()))

    def current(self) -> Sandbox:
        workflow_id = activity.info().workflow_id
        sandbox = self._open.get(workflow_id or "")
        if sandbox is None:
            # A run whose simulation ended (or whose worker restarted): nothing to act on.
            raise LookupError(f"no simulation is running as {workflow_id}")
        return sandbox

    async def virtual_now(self, workflow_id: str) -> datetime:
        """The run's virtual time (the wall clock's until it first skipped)."""
        return await self._clock.get_current_time(self.client.get_workflow_handle(workflow_id))

    async def open(self, input: SimulationInput, real: Database) -> Sandbox:
        template = await self._migrated_template()
        directory = Path(tempfile.mkdtemp(dir=self._root))
        shutil.copyfile(template, directory / "sandbox.db")
        db = Database(f"sqlite+aiosqlite:///{directory / 'sandbox.db'}")
        recording = Recording()
        deps = Deps(
            db=db,
            # A key of its own: the links in simulated emails (open, click, unsubscribe) name
            # sandbox contacts, and must not verify on the real tracking routes.
            settings=self.settings.model_copy(
                update={"secret_key": secrets.token_urlsafe(32), "secret_key_old": ""}
            ),
            client=self.client,
            mailer=_mailer(recording),
            http_transport=httpx.MockTransport(_provider(recording)),
        )
        try:
            async with db.write() as session:
                await _seed_automation(session, input)
                contact_id = await _seed_contact(session, input, real)
                session.add(
                    Run(
                        workflow_id=input.run_id,
                        automation_id=input.automation_id,
                        contact_id=contact_id,
                        entry=1,
                        version=input.version,
                        status="running",
                    )
                )
        except BaseException:
            await db.dispose()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        sandbox = Sandbox(input, db, deps, directory, contact_id, recording)
        self._open[input.run_id] = sandbox
        return sandbox

    async def close(self, sandbox: Sandbox) -> None:
        self._open.pop(sandbox.input.run_id, None)
        await sandbox.db.dispose()
        shutil.rmtree(sandbox.directory, ignore_errors=True)

    async def shutdown(self) -> None:
        for sandbox in list(self._open.values()):
            await self.close(sandbox)
        shutil.rmtree(self._root, ignore_errors=True)

    async def _migrated_template(self) -> Path:
        """A database with every migration applied, made once per process (copies are cheap,
        migrations are not)."""
        async with self._template_lock:
            if self._template is None:
                path = self._root / "template.db"
                db = await open_database(f"sqlite+aiosqlite:///{path}")
                await db.dispose()
                self._template = path
            return self._template


class SandboxDeps:
    """What the simulation task queue's activities get as their `Deps`: every attribute is the
    one of the sandbox of the simulation whose run called the activity."""

    def __init__(self, sandboxes: Sandboxes) -> None:
        self._sandboxes = sandboxes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sandboxes.current().deps, name)


class SandboxInterceptor(Interceptor):
    """Runs each activity of a simulation on its run's virtual time, and keeps what it did."""

    def __init__(self, sandboxes: Sandboxes) -> None:
        self.sandboxes = sandboxes

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _SandboxActivity(next, self.sandboxes)


class _SandboxActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, sandboxes: Sandboxes) -> None:
        super().__init__(next)
        self.sandboxes = sandboxes

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        context = next((a for a in input.args if isinstance(a, StepContext)), None)
        if context is None:
            context = next(
                (
                    a.context
                    for a in input.args
                    if isinstance(getattr(a, "context", None), StepContext)
                ),
                None,
            )
        moment = Moment(
            step=context.step_id if context else "",
            activity=info.activity_type,
            # A local activity's times are the worker's clock: the run's is asked of the server.
            scheduled=await self.sandboxes.virtual_now(info.workflow_id or "")
            if info.is_local
            else info.current_attempt_scheduled_time,
        )
        with virtual_time(moment):
            try:
                result = await self.next.execute_activity(input)
            except ApplicationError as err:
                if err.non_retryable:
                    raise
                # Retries wait in real time, which a simulation does not have: the failure
                # is the answer (the step's `on_error` decides, as after the last retry).
                raise ApplicationError(
                    f"would be retried: {err.message}", type=err.type, non_retryable=True
                ) from err
            except Exception as err:
                raise ApplicationError(
                    f"{type(err).__name__}: {err}", type=type(err).__name__, non_retryable=True
                ) from err
        if context is not None and isinstance(result, StepOutcome):
            await self._record(info.activity_type, context, moment, result)
        return result

    async def _record(
        self, activity_type: str, context: StepContext, moment: Moment, outcome: StepOutcome
    ) -> None:
        sandbox = self.sandboxes.current()
        if activity_type in (
            "apply_contact_step",
            "apply_crm_step",
            "start_automation",
            "end_automation",
        ):
            step = await sandbox.deps.step(context)
            # What the step asks for (its settings), then what it did (its outcome's detail).
            settings = step.model_dump(
                mode="json", by_alias=True, exclude_none=True, exclude=_NOT_SETTINGS
            )
            reason = {"reason": outcome.reason} if outcome.reason else {}
            # Once per step visit, as the write itself: a re-run visit answers as recorded.
            sandbox.recording.writes[context.visit_key] = SimulatedWrite(
                at=moment.scheduled,
                step=context.step_id,
                kind=step.type,
                outcome=outcome.outcome,
                detail={**settings, **outcome.detail, **reason},
            )
        elif activity_type == "send_site_message" and outcome.outcome == "done":
            async with sandbox.db.read() as session:
                shown = await session.scalar(
                    select(SiteMessage)
                    .where(SiteMessage.workflow_id == context.workflow_id)
                    .where(SiteMessage.step_id == context.step_id)
                    .order_by(SiteMessage.id.desc())
                    .limit(1)
                )
                contact = await session.get(Contact, sandbox.contact_id)
            if shown is not None:
                sandbox.recording.messages.append(
                    SimulatedMessage(
                        at=moment.scheduled,
                        step=context.step_id,
                        channel="site",
                        to=(contact.email if contact else None) or "",
                        html=shown.html,
                    )
                )


@contextlib.contextmanager
def virtual_time(moment: Moment) -> Iterator[None]:
    """Within the block, the store's clock and the recorders read `moment`."""
    clock, current = CLOCK.set(moment.now), _MOMENT.set(moment)
    try:
        yield
    finally:
        CLOCK.reset(clock)
        _MOMENT.reset(current)


def _here() -> Moment:
    moment = _MOMENT.get()
    if moment is None:  # only the sandbox's activities record
        raise RuntimeError("a simulation recorder was called outside a simulated activity")
    return moment


def _mailer(recording: Recording) -> Callable[[EmailMessage], Any]:
    async def keep(message: EmailMessage) -> dict[str, str]:
        moment = _here()
        if message["Message-ID"] in recording.sent:  # one per step visit, as for real
            return {}
        recording.sent.add(str(message["Message-ID"]))
        html = message.get_body(("html",))
        text = message.get_body(("plain",))
        recording.messages.append(
            SimulatedMessage(
                at=moment.scheduled,
                step=moment.step,
                channel="notification" if moment.activity == "send_notification_email" else "email",
                to=str(message["To"]),
                subject=str(message["Subject"]),
                html=html.get_content() if html is not None else None,
                text=text.get_content() if text is not None else None,
            )
        )
        return {}

    return keep


def _provider(recording: Recording) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        moment = _here()
        body = request.content.decode("utf-8", "replace") if request.content else None
        if moment.activity == "send_sms":
            form = dict(parse_qsl(body or ""))
            recording.messages.append(
                SimulatedMessage(
                    at=moment.scheduled,
                    step=moment.step,
                    channel="sms",
                    to=form.get("To", ""),
                    text=form.get("Body"),
                )
            )
        else:
            # A webhook connects to the address it checked, naming the host in `Host`.
            host = request.headers.get("host")
            url = request.url.copy_with(netloc=host.encode()) if host else request.url
            recording.requests.append(
                SimulatedRequest(
                    at=moment.scheduled,
                    step=moment.step,
                    method=request.method,
                    url=masked_url(str(url)),
                    body=masked_body(body, request.headers.get("content-type", "")),
                )
            )
        return httpx.Response(200, json=_PROVIDER_ANSWER)

    return answer


def masked_url(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, MASK if _SECRET.search(k) else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def masked_body(body: str | None, content_type: str) -> str | None:
    if not body:
        return body
    if "json" in content_type:
        with contextlib.suppress(ValueError):
            return json.dumps(_masked(json.loads(body)), separators=(",", ":"))
    if "form" in content_type:
        pairs = [(k, MASK if _SECRET.search(k) else v) for k, v in parse_qsl(body)]
        return urlencode(pairs, safe="*")
    return body


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if _SECRET.search(str(k)) else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _fast_tmp() -> str | None:
    """Sandboxes live in memory where the system offers a RAM disk."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


# --- seeding ---------------------------------------------------------------------------------


async def _seed_automation(session: AsyncSession, input: SimulationInput) -> None:
    # Active whatever the real one is: the question is what it would do.
    document = {**input.document, "status": "active", "id": input.automation_id}
    session.add(
        Automation(
            id=input.automation_id,
            name=str(document.get("name") or input.automation_id),
            status="active",
            version=input.version,
        )
    )
    await session.flush()
    session.add(
        AutomationVersion(
            automation_id=input.automation_id, version=input.version, document=document
        )
    )


async def _seed_contact(session: AsyncSession, input: SimulationInput, real: Database) -> int:
    options = input.options
    async with real.read() as source:
        await _copy(source, session, User)
        await _copy(source, session, Pipeline)
        await _copy(source, session, Stage)
        # A saved automation's splits: the simulated contact takes the path the next real
        # contact would, and moves no real counter (these are the sandbox's copies).
        await _copy(source, session, SplitState, SplitState.automation_id == input.automation_id)
        await _copy(source, session, StepState, StepState.automation_id == input.automation_id)
        if options.contact_id is not None:
            await _copy_contact(source, session, options.contact_id, input.automation_id)
            return options.contact_id
    made_up = options.contact or SimulatedContact(first_name="Ada")
    contact, _ = await contact_store.upsert_contact(
        session,
        email=made_up.email,
        values={
            k: v
            for k, v in {
                "first_name": made_up.first_name,
                "last_name": made_up.last_name,
                "phone": made_up.phone,
            }.items()
            if v is not None
        },
        fields={**made_up.fields, **({"timezone": made_up.timezone} if made_up.timezone else {})},
    )
    for tag in made_up.tags:
        await contact_store.add_tag(session, contact.id, tag)
    for name in made_up.lists:
        await contact_store.set_subscription(session, contact.id, name, "active")
    for name, value in made_up.scores.items():
        session.add(Score(contact_id=contact.id, name=name, value=value))
    return contact.id


async def _copy_contact(
    source: AsyncSession, target: AsyncSession, contact_id: int, automation_id: str
) -> None:
    if await source.get(Contact, contact_id) is None:
        raise LookupError(f"contact {contact_id} does not exist")
    mine = Contact.id == contact_id
    await _copy(source, target, Contact, mine)
    for model in (ContactTag, Subscription, Score, Conversion, Note):
        await _copy(source, target, model, model.contact_id == contact_id)  # type: ignore[attr-defined]
    newest = select(Event.id).where(Event.contact_id == contact_id)
    newest = newest.order_by(Event.id.desc()).limit(EVENTS_COPIED)
    await _copy(source, target, Event, Event.id.in_(newest.scalar_subquery()))
    accounts = select(AccountContact.account_id).where(AccountContact.contact_id == contact_id)
    await _copy(source, target, Account, Account.id.in_(accounts.scalar_subquery()))
    await _copy(source, target, AccountContact, AccountContact.contact_id == contact_id)
    deals = (
        select(DealContact.deal_id).where(DealContact.contact_id == contact_id).scalar_subquery()
    )
    await _copy(source, target, Deal, Deal.id.in_(deals))
    # The deal's other contacts are not copied: the deal links to this contact only.
    await _copy(source, target, DealContact, DealContact.contact_id == contact_id)
    await _copy(source, target, DealScore, DealScore.deal_id.in_(deals))
    await _copy(source, target, DealNote, DealNote.deal_id.in_(deals))
    await _copy(
        source,
        target,
        Task,
        or_(Task.contact_id == contact_id, Task.deal_id.in_(deals)),
        keep=lambda row: {
            **row,
            "contact_id": row["contact_id"] if row["contact_id"] == contact_id else None,
        },
    )
    # Its runs elsewhere, for `in_automation` conditions; never its run of this automation
    # (the simulated run takes that place).
    await _copy(
        source, target, Run, (Run.contact_id == contact_id) & (Run.automation_id != automation_id)
    )


async def _copy(
    source: AsyncSession,
    target: AsyncSession,
    model: type[Base],
    where: Any = None,
    *,
    keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    table: Any = model.__table__
    query = select(table) if where is None else select(table).where(where)
    rows = [dict(r._mapping) for r in (await source.execute(query)).all()]
    if model is Run:
        # Runs of automations the sandbox does not hold: their foreign key is to be kept.
        for automation_id in {r["automation_id"] for r in rows}:
            if await target.get(Automation, automation_id) is None:
                target.add(Automation(id=automation_id, name=automation_id, status="inactive"))
        await target.flush()
    if keep is not None:
        rows = [keep(r) for r in rows]
    if rows:
        await target.execute(insert(table), rows)


# --- the steps that act on other runs ---------------------------------------------------------


class SandboxRunActivities:
    """`start_automation` and `end_automation` in a simulation: what they would do, done to no
    run (a copied contact's other runs are real ones)."""

    def __init__(self, sandboxes: Sandboxes) -> None:
        self.sandboxes = sandboxes

    @activity.defn(name="start_automation")
    async def start_automation(self, context: StepContext) -> StepOutcome:
        step = await self.sandboxes.current().deps.step(context)
        return StepOutcome(outcome="done", detail={"would_start": step.automation})

    @activity.defn(name="end_automation")
    async def end_automation(self, context: StepContext) -> StepOutcome:
        sandbox = self.sandboxes.current()
        step = await sandbox.deps.step(context)
        target = None if step.automation == "all" else step.automation
        async with sandbox.db.read() as session:
            runs = await run_store.running_runs(session, context.contact_id, automation_id=target)
        # The runs the real step would signal (it spares its own automation's).
        ended = [r.workflow_id for r in runs if r.automation_id != context.automation_id]
        return StepOutcome(
            outcome="done" if ended else "skipped",
            reason=None if ended else "no_running_run",
            detail={"would_end": ended},
        )
