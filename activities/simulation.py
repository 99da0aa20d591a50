"""The `simulate` activity: one AutomationRun on virtual time in a sandbox, its script played
at its offsets, and the answer built from what the run did (docs/simulation.md).

Time: the run is started with time skipping off and a start delay up to `start_at`; each
fast-forward then moves its virtual clock to the next scripted offset (timers in between fire,
skipped over; the fast-forward stops there), the script's changes are written to the sandbox
and signalled like real ones, and the last fast-forward runs to the horizon or to the run's end.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import select
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import TimeSkipper, TimeSkippingConfig

from activities.deps import Deps
from activities.sandbox import Moment, Sandbox, Sandboxes, virtual_time
from store import contacts as contact_store
from store import crm as crm_store
from store.models import Contact, Deal, Pipeline, StepEvent
from workflows.contracts import (
    AUTOMATION_KEY,
    QUERY_STATE,
    SIGNAL_CONTACT_CHANGED,
    VERSION_KEY,
    WORKFLOW_TYPE,
    ContactChanged,
    RunInput,
    RunState,
)
from workflows.document import Automation
from workflows.simulation import (
    MAX_STEPS,
    SIMULATION_KEY,
    PathEntry,
    ScriptedEvent,
    ScriptEntry,
    SimulatedMessage,
    SimulatedRequest,
    SimulatedWrite,
    SimulationInput,
    SimulationResult,
)

TIME_SKIPPING_OFF = "TimeSkippingUnavailable"
STEP_LIMIT_CHECK_SECONDS = 0.5
ORPHAN_GRACE = timedelta(days=1)


class SimulationActivities:
    def __init__(self, deps: Deps, sandboxes: Sandboxes) -> None:
        self.deps = deps
        self.sandboxes = sandboxes

    @activity.defn(name="simulate")
    async def simulate(self, input: SimulationInput) -> SimulationResult:
        began = time.monotonic()
        try:
            sandbox = await self.sandboxes.open(input, self.deps.db)
        except LookupError as err:
            raise ApplicationError(str(err), type="NotFound", non_retryable=True) from err
        try:
            result = await _Simulation(self.deps.client, self.sandboxes, sandbox).run()
        finally:
            await self.sandboxes.close(sandbox)
        result.elapsed_seconds = round(time.monotonic() - began, 3)
        return result


class _Simulation:
    def __init__(self, client: Client, sandboxes: Sandboxes, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.sandboxes = sandboxes
        # Its own interceptor, innermost: it decides the run's time-skipping configuration
        # whatever the worker's client stamps (the test environment stamps its own).
        self.skipper = TimeSkipper(client, config=TimeSkippingConfig(enabled=False))
        self.input = sandbox.input
        self.graph = Automation.model_validate(self.input.document)
        self.script: list[ScriptEntry] = []

    async def run(self) -> SimulationResult:
        options = self.input.options
        now = datetime.now(UTC)
        start = max(options.start_at or now, now)
        handle = await self._start(start - now)
        watcher = asyncio.create_task(self._watch_steps(handle))
        try:
            running = True
            script = sorted(options.events, key=lambda e: e.offset)  # stable: same offset, as given
            for offset, group in groupby(script, key=lambda e: e.offset):
                running = await self._advance_to(handle, start + offset)
                if not running:
                    break
                await self._play(handle, list(group), start + offset)
            if running:
                running = await self._advance_to(handle, start + options.horizon.to_timedelta())
        finally:
            watcher.cancel()
        return await self._answer(handle, start, running)

    async def _start(self, delay: timedelta) -> WorkflowHandle[Any, Any]:
        summary = f"Simulation of {self.input.automation_id} (v{self.input.version})"
        try:
            await self.skipper.client.start_workflow(
                WORKFLOW_TYPE,
                RunInput(
                    automation_id=self.input.automation_id,
                    contact_id=self.sandbox.contact_id,
                    version=self.input.version,
                ),
                id=self.input.run_id,
                task_queue=self.sandboxes.task_queue,
                start_delay=delay if delay > timedelta(0) else None,
                # Virtual time: a run orphaned by a worker that died mid-simulation (its queue
                # is that process's own) ends by itself after the horizon.
                execution_timeout=delay + self.input.options.horizon.to_timedelta() + ORPHAN_GRACE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SIMULATION_KEY, True),
                        SearchAttributePair(AUTOMATION_KEY, self.input.automation_id),
                        SearchAttributePair(VERSION_KEY, self.input.version),
                    ]
                ),
                static_summary=summary,
            )
        except RPCError as err:
            if "time-skipping" in err.message.lower():
                raise ApplicationError(
                    "this Temporal server does not skip time: start it with "
                    "--dynamic-config-value frontend.WorkflowTimeSkippingEnabled=true "
                    f"({err.message})",
                    type=TIME_SKIPPING_OFF,
                    non_retryable=True,
                ) from err
            raise
        # No run id: the handle follows the run across continue-as-new.
        return self.skipper.client.get_workflow_handle(self.input.run_id)

    async def _advance_to(self, handle: WorkflowHandle[Any, Any], target: datetime) -> bool:
        """Move the run's clock to `target`; False when the run ended before."""
        activity.heartbeat()
        now = await self.skipper.get_current_time(handle)
        if target <= now:
            return await self._running(handle)
        try:
            return await self.skipper.fast_forward(handle, target - now)
        except RPCError:
            if not await self._running(handle):  # it ended just before: nothing to move
                return False
            raise

    async def _running(self, handle: WorkflowHandle[Any, Any]) -> bool:
        description = await handle.describe()
        return description.close_time is None

    async def _play(
        self, handle: WorkflowHandle[Any, Any], events: list[ScriptedEvent], at: datetime
    ) -> None:
        """Write the events to the sandbox as the API would, then tell the run, as the outbox
        would; the query after the signal returns once the run has taken it in."""
        kinds: list[str] = []
        with virtual_time(Moment(step="", activity="script", scheduled=at)):
            async with self.sandbox.db.write() as session:
                for event in events:
                    kind, note = await self._apply(session, event)
                    if kind:
                        kinds.append(kind)
                    self.script.append(
                        ScriptEntry(
                            at=at, what=_describe(event), applied=kind is not None, note=note
                        )
                    )
        if kinds:
            await handle.signal(SIGNAL_CONTACT_CHANGED, ContactChanged(kind=kinds[-1]))
            await handle.query(QUERY_STATE, result_type=RunState)

    async def _apply(self, session: Any, event: ScriptedEvent) -> tuple[str | None, str | None]:
        """One scripted change: the kind of change it makes, or None and why it made none."""
        cid = self.sandbox.contact_id
        if event.event is not None:
            await contact_store.record_event(session, cid, event.event, event.data)
            return "event", None
        if event.email is not None:
            data: dict[str, Any] = {"automation": self.input.automation_id, "step": event.step}
            if event.email == "clicked":
                data["link"] = event.link or "https://example.com/"
            await contact_store.record_event(session, cid, f"email_{event.email}", data)
            return "event", None
        if event.tag_added is not None:
            done = await contact_store.add_tag(session, cid, event.tag_added)
            return ("tag_added", None) if done else (None, "already tagged")
        if event.tag_removed is not None:
            done = await contact_store.remove_tag(session, cid, event.tag_removed)
            return ("tag_removed", None) if done else (None, "not tagged")
        if event.fields is not None:
            contact = await session.get(Contact, cid)
            changed = await contact_store.update_fields(session, contact, event.fields)
            return ("field_changed", None) if changed else (None, "no field changed")
        if event.subscribed is not None or event.unsubscribed is not None:
            joining = event.subscribed is not None
            name = event.subscribed if joining else event.unsubscribed
            assert name is not None
            done = await contact_store.set_subscription(
                session, cid, name, "active" if joining else "unsubscribed"
            )
            kind = "list_subscribed" if joining else "list_unsubscribed"
            return (kind, None) if done else (None, "no change to the list")
        assert event.deal is not None
        return await self._change_deal(session, event)

    async def _change_deal(
        self, session: Any, event: ScriptedEvent
    ) -> tuple[str | None, str | None]:
        assert event.deal is not None
        deal: Deal | None = await crm_store.current_deal(session, self.sandbox.contact_id)
        if deal is None:
            return None, "the contact has no deal"
        change = event.deal
        changes: dict[str, Any] = {
            k: v for k, v in (("status", change.status), ("value", change.value)) if v is not None
        }
        if change.fields:
            changes["fields"] = change.fields
        if change.stage is not None:
            pipeline = await session.get(Pipeline, deal.pipeline_id)
            try:
                changes["stage"] = await crm_store.stage_named(session, pipeline, change.stage)
            except Exception as err:  # an unknown stage name: said in the script, not fatal
                return None, str(err)
        changed = await crm_store.update_deal(session, deal, changes)
        return ("deal_changed", None) if changed else (None, "no deal field changed")

    async def _watch_steps(self, handle: WorkflowHandle[Any, Any]) -> None:
        """End a run that has taken more steps than a simulation allows (a loop, say)."""
        while True:
            await asyncio.sleep(STEP_LIMIT_CHECK_SECONDS)
            activity.heartbeat()
            try:
                state = await handle.query(QUERY_STATE, result_type=RunState)
            except RPCError:
                continue
            if state is not None and state.steps_taken > MAX_STEPS:
                await handle.terminate(reason="step_limit")
                return

    async def _answer(
        self, handle: WorkflowHandle[Any, Any], start: datetime, running: bool
    ) -> SimulationResult:
        description = await handle.describe()
        state: RunState | None = None
        status, reason = "running", None
        if description.close_time is None:
            state = await handle.query(QUERY_STATE, result_type=RunState)
            end = await self.skipper.get_current_time(handle)
            await handle.terminate(reason="simulation horizon reached")
        else:
            end = description.close_time
            try:
                state = RunState.model_validate(await handle.result())
                status, reason = state.status, state.reason
            except Exception as err:  # terminated at the step limit, or failed
                status, reason = "ended", _failure(err)
        path = await self._path(state, running=description.close_time is None)
        sandbox = self.sandbox.recording
        kept: list[SimulatedMessage | SimulatedWrite | SimulatedRequest] = [
            *sandbox.messages,
            *sandbox.writes.values(),
            *sandbox.requests,
        ]
        for item in kept:
            item.at = _step_time(path, item.step, item.at)
        return SimulationResult(
            status=status,  # type: ignore[arg-type]
            reason=reason,
            waiting_at=state.position if state and description.close_time is None else None,
            started_at=start,
            simulated=max(end - start, timedelta(0)),
            path=path,
            messages=sandbox.messages,
            writes=list(sandbox.writes.values()),
            requests=sandbox.requests,
            script=self.script,
            goals=list(state.goals) if state else [],
            split_paths=dict(state.split_paths) if state else {},
            workflow_id=self.input.run_id,
        )

    async def _path(self, state: RunState | None, *, running: bool) -> list[PathEntry]:
        async with self.sandbox.db.read() as session:
            saved = (
                await session.scalars(
                    select(StepEvent)
                    .where(StepEvent.workflow_id == self.input.run_id)
                    .order_by(StepEvent.seq)
                )
            ).all()
        records = [(e.seq, e.step_id, e.step_type, e.outcome, e.reason, e.at) for e in saved]
        seen = {r[0] for r in records}
        if state is not None:
            records += [
                (r.seq, r.step, r.type, r.outcome, r.reason, r.at)
                for r in state.unsaved
                if r.seq not in seen
            ]
        records.sort(key=lambda r: r[0])
        path = [
            PathEntry(
                at=at,
                step=step,
                type=type_,
                outcome=outcome,
                reason=reason,
                detail=self._detail(step),
            )
            for _, step, type_, outcome, reason, at in records
        ]
        if running and state is not None and state.position is not None:
            step = self.graph.steps.get(state.position)
            path.append(
                PathEntry(
                    at=state.wait_started_at or (path[-1].at if path else datetime.now(UTC)),
                    step=state.position,
                    type=step.type if step else "",
                    outcome="waiting",
                    detail=self._detail(state.position),
                )
            )
        return path

    def _detail(self, step_id: str) -> str | None:
        step = self.graph.steps.get(step_id)
        if step is None:
            return None
        return step.name or step.detail() or None


def _step_time(path: list[PathEntry], step: str, at: datetime) -> datetime:
    """When the step visit that sent or wrote at `at` is recorded in the path (it is recorded
    as it ends, a moment later): the timeline then shows them together."""
    return next((p.at for p in path if p.step == step and p.at >= at), at)


def _describe(event: ScriptedEvent) -> str:
    if event.event is not None:
        return f"event {event.event}"
    if event.email is not None:
        return f"email of {event.step} {event.email}"
    if event.tag_added is not None:
        return f"tag {event.tag_added} added"
    if event.tag_removed is not None:
        return f"tag {event.tag_removed} removed"
    if event.fields is not None:
        return "fields " + ", ".join(f"{k}={v}" for k, v in event.fields.items())
    if event.subscribed is not None:
        return f"subscribed to {event.subscribed}"
    if event.unsubscribed is not None:
        return f"unsubscribed from {event.unsubscribed}"
    return "deal " + ", ".join(
        f"{k}={v}"
        for k, v in (event.deal.model_dump(exclude_none=True) if event.deal else {}).items()
    )


def _failure(err: BaseException) -> str:
    cause = err.__cause__ or err
    return str(getattr(cause, "message", None) or cause)
