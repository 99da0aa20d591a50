"""AutomationRun: one contact walking one automation's flow graph (docs/architecture.md#runs-in-temporal).

The interpreter is a loop over steps with a dispatch table from step type to a small handler.
Every decision that depends on the contact is made by an activity reading the database, so the
history records it and replay is deterministic (docs/architecture.md#conditions-and-goals).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.conditions import Condition
    from workflows.contracts import (
        QUERY_STATE,
        SIGNAL_AUTOMATION_STATUS,
        SIGNAL_CONTACT_CHANGED,
        SIGNAL_END_RUN,
        SIGNAL_NEW_VERSION,
        STEP_KEY,
        VERSION_KEY,
        WORKFLOW_TYPE,
        AutomationStatus,
        ContactChanged,
        EndRun,
        EvaluateInput,
        EvaluateOutput,
        FinishRunInput,
        GoalInput,
        LoadAutomationInput,
        LoadAutomationOutput,
        NewVersion,
        ParkInput,
        RunInput,
        RunState,
        SavedSteps,
        SplitInput,
        SplitOutput,
        StepContext,
        StepOutcome,
        StepRecord,
    )
    from workflows.document import (
        Automation,
        eligible_goals,
        goal_condition,
        goal_sources,
        goal_step,
    )
    from workflows.metrics import count_step
    from workflows.steps import (
        STEP_ACTIVITIES,
        EndStep,
        GoalStep,
        GotoStep,
        IfElseStep,
        LinearStep,
        SplitEvenStep,
        SplitUntilStep,
        StepBase,
        WaitStep,
        describe_step,
        type_of,
    )


# Activities run by name: the workflow never imports activity code (CONTRIBUTING.md#layout).
# Local activities for short database work: one history marker instead of ~6 events.
LOCAL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)
    ),
}
# External sends: a provider down for up to an hour must not fail the step (1 s doubling to 30 s,
# 125 attempts ≈ an hour), and one back up is retried within 30 s: with a 5-minute cap, an outage
# of a minute or two left contacts waiting minutes after the provider recovered.
REMOTE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=125,
    ),
}
STEPS_KEPT_IN_STATE = 100  # the `state` query shows the latest ones; older ones are in the history
# A contact that will sit in a wait for longer than this is "parked": the runs index and the
# CairnStep search attribute are updated (two history events). Shorter waits are passed through
# like any other step: nobody looks for a contact that is gone again in seconds.
PARK_THRESHOLD = timedelta(minutes=1)
GOTO_MAX_PER_DAY = 10
# Loops without a wait: three are allowed, the goto that would start a fourth ends the run.
GOTO_MAX_WITHOUT_WAIT = 3
# Runs whose history predates it ended at the third goto without a wait (replay must end them
# there again): the guard counted the goto that started the third loop as its limit.
THIRD_LOOP_ALLOWED = "goto-third-loop-allowed"
# Runs held by an inactive automation record it (runs index, CairnStep) and finish a wait they
# are in before holding. Runs whose history predates this hold as before: without a record,
# in the wait (replay must issue the commands their history holds).
HOLDS_RECORDED = "holds-recorded"

Next = str | None


def parks_long(deadline: datetime | None, now: datetime) -> bool:
    """Whether a contact waiting until `deadline` (None: a condition) counts as parked."""
    return deadline is None or deadline - now > PARK_THRESHOLD


def wait_kind(step: StepBase | None) -> str | None:
    """What a step's `wait_started_at` measures: a timed wait, a conditional wait's timeout, a
    goal's timeout; None for a step that does not wait. A wait resumes in a new version only
    into a step of the same kind."""
    if isinstance(step, GoalStep):
        return "goal" if step.unmet == "wait" else None
    if not isinstance(step, WaitStep):
        return None
    return "for" if step.for_ is not None else "until" if step.until is not None else "condition"


def opening_park(graph: Automation, now: datetime) -> str | None:
    """The start step, if the flow opens with a timed wait long enough to park in."""
    step = graph.steps[graph.start]
    if step.type != "wait" or step.condition is not None:
        return None
    deadline = now + step.for_.to_timedelta() if step.for_ is not None else step.until
    return graph.start if parks_long(deadline, now) else None


Handler = Callable[["AutomationRun", str, StepBase], Awaitable[Next]]
# Step type → the AutomationRun method that runs it: `@handles` registers the steps the workflow
# runs itself; every type whose model names an `ACTIVITY` is added below the class. A type in
# neither is recorded as `skipped: not_implemented`.
HANDLERS: dict[str, Handler] = {}
# Steps that look at the goals themselves (in their own round-trip), so the boundary need not.
SELF_CHECKING_STEPS: set[str] = set()
H = TypeVar("H", bound=Callable[..., Awaitable[Next]])


def handles(*models: type[StepBase], checks_goals: bool = False) -> Callable[[H], H]:
    """Register a method as the handler of the step models the workflow runs itself;
    `checks_goals` when it evaluates the goals in its own round-trip."""

    def register(handler: H) -> H:
        for model in models:
            HANDLERS[type_of(model)] = cast(Handler, handler)
            if checks_goals:
                SELF_CHECKING_STEPS.add(type_of(model))
        return handler

    return register


class _EndRun(Exception):
    """Raised by a handler to end the run with a reason."""

    def __init__(self, reason: str, status: str = "ended") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@workflow.defn(name=WORKFLOW_TYPE)
class AutomationRun:
    def __init__(self) -> None:
        self.state: RunState | None = None
        self.input: RunInput | None = None
        self.graph: Automation | None = None
        self.goal_sources: dict[str, set[str]] = {}
        self.woken = False
        self.recorded_goals: set[str] = set()
        self.parked_at: str | None = None
        self.pending_version: int | None = None
        self.loaded_version: int | None = None
        self.end_reason: str | None = None
        # The step whose wait or goal was left for the main loop, to be re-entered.
        self.reentering: str | None = None
        # Answers of this workflow task's reads, for its next local write to record
        # (StepContext.decisions): key → (history length when read, answer).
        self.decisions: dict[str, tuple[int, dict[str, Any]]] = {}

    # --- signals and query -------------------------------------------------------------

    @workflow.signal(name=SIGNAL_CONTACT_CHANGED)
    def contact_changed(self, change: ContactChanged) -> None:
        self.woken = True

    @workflow.signal(name=SIGNAL_NEW_VERSION)
    def new_version(self, message: NewVersion) -> None:
        # Versions only go forward: a late or repeated delivery of an older one is no news.
        known = max(self.pending_version or 0, self.state.version if self.state else 0)
        if message.version > known:
            self.pending_version = message.version

    @workflow.signal(name=SIGNAL_END_RUN)
    def end_run(self, message: EndRun) -> None:
        self.end_reason = message.reason

    @workflow.signal(name=SIGNAL_AUTOMATION_STATUS)
    def automation_status(self, message: AutomationStatus) -> None:
        if self.state is not None:
            self.state.automation_active = message.active

    @workflow.query(name=QUERY_STATE)
    def query_state(self) -> RunState | None:
        return self.state

    # --- the loop ----------------------------------------------------------------------

    @workflow.run
    async def run(self, input: RunInput) -> RunState:
        self.input = input
        version = input.state.version if input.state else input.version
        goals_met = await self._load(version, check_goals=input.state is None)
        assert self.graph is not None
        if input.state is None and self.loaded_version is not None:
            # A fresh start takes the newest version: a start queued while Temporal was down
            # may run after that version's signal found no workflow to reach.
            if self.loaded_version != version:
                version = self.loaded_version
                workflow.upsert_search_attributes([VERSION_KEY.value_set(version)])
            if self.pending_version is not None and self.pending_version <= version:
                self.pending_version = None
        self.state = input.state or RunState(
            version=version,
            position=self.graph.start,
            automation_active=self.graph.status == "active",
        )
        state = self.state
        # Signals of the first activation may have set `woken` before this line.
        self.woken, state.unread_change = self.woken or state.unread_change, False
        try:
            if goals_met:  # the contact entered already meeting a goal
                state.position = await self._achieve(goals_met[0])
            while state.position is not None:
                if self.end_reason:
                    raise _EndRun(self.end_reason)
                if self.pending_version is not None and self.pending_version != state.version:
                    await self._switch_version()
                    continue
                if workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    state.unread_change = self.woken
                    state.resuming = state.position if self.reentering == state.position else None
                    workflow.continue_as_new(
                        RunInput(
                            automation_id=input.automation_id,
                            contact_id=input.contact_id,
                            version=state.version,
                            state=state,
                            deal_id=input.deal_id,
                        )
                    )
                if not state.automation_active and not self._finishing_wait():
                    await self._hold()
                    continue
                state.position = await self._visit(state.position)
            state.status = "completed"
        except _EndRun as end:
            state.status, state.reason = end.status, end.reason  # type: ignore[assignment]
        await workflow.execute_local_activity(
            "finish_run",
            FinishRunInput(
                workflow_id=workflow.info().workflow_id,
                status=state.status,
                reason=state.reason,
                step_id=state.position,
                steps=self._take_unsaved(),
            ),
            summary=f"finish run: {state.status}",
            **LOCAL,
        )
        workflow.set_current_details(
            f"**{state.status}**" + (f" ({state.reason})" if state.reason else "")
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return state

    async def _load(self, version: int, *, check_goals: bool = False) -> list[str]:
        """Fetch the graph (docs/architecture.md#versions-and-live-edits); on a fresh start, also the goals already met."""
        assert self.input is not None
        entry = f"decision:{workflow.info().workflow_id}:entry" if check_goals else None
        loaded = await workflow.execute_local_activity(
            "load_automation",
            LoadAutomationInput(
                automation_id=self.input.automation_id,
                version=version,
                contact_id=self.input.contact_id if check_goals else None,
                now=workflow.now() if check_goals else None,
                workflow_id=workflow.info().workflow_id if check_goals else None,
                newest=check_goals,
                deal_id=self.input.deal_id if check_goals else None,
                decision_key=entry,
            ),
            result_type=LoadAutomationOutput,
            summary=f"load automation {self.input.automation_id} v{version}",
            **LOCAL,
        )
        if entry is not None:
            self._decided(entry, loaded.model_dump(mode="json", exclude={"document"}))
        self.graph = Automation.model_validate(loaded.document)
        self.goal_sources = goal_sources(self.graph)
        self.parked_at = loaded.parked_at
        self.loaded_version = loaded.version  # None in histories from before `newest`
        return loaded.goals_met

    async def _switch_version(self) -> None:
        """Move to the new version at a step boundary; a vanished step goes to its old `next`."""
        state, old_graph = self.state, self.graph
        assert state is not None and old_graph is not None and self.pending_version is not None
        state.version, self.pending_version = self.pending_version, None
        await self._load(state.version)
        assert self.graph is not None
        workflow.upsert_search_attributes([VERSION_KEY.value_set(state.version)])
        state.automation_active = self.graph.status == "active"
        if state.position is not None and state.position not in self.graph.steps:
            old_next = getattr(old_graph.steps.get(state.position), "next", None)
            if old_next in self.graph.steps:
                state.position, state.wait_started_at = old_next, None
            else:
                raise _EndRun("step_removed")
        elif state.position is not None:
            # The time waited carries over only into the same kind of wait: a wait that became
            # a send must not hand its start time to a later wait (which would end early).
            old_kind = wait_kind(old_graph.steps.get(state.position))
            if old_kind is None or wait_kind(self.graph.steps[state.position]) != old_kind:
                state.wait_started_at = None

    def _finishing_wait(self) -> bool:
        """Whether an inactive automation lets the contact finish the wait it is in (a new
        version interrupted it) before holding it at its next step."""
        assert self.state is not None
        return self.state.wait_started_at is not None and workflow.patched(HOLDS_RECORDED)

    async def _hold(self) -> None:
        """ActiveCampaign's semantics: an inactive automation keeps its contacts where they are.

        The hold is recorded like a park (runs index, CairnStep), so reports show the contact
        held here rather than waiting where it last parked; and recorded again when released.
        """
        state = self.state
        assert state is not None and state.position is not None
        workflow.set_current_details(
            f"Held before **{state.position}**: the automation is inactive"
        )
        recorded = workflow.patched(HOLDS_RECORDED)
        if recorded:
            workflow.upsert_search_attributes([STEP_KEY.value_set(state.position)])
            await self._record_park(state.position, held=True)
        await workflow.wait_condition(lambda: state.automation_active or self._interrupted())
        if recorded and state.automation_active:
            await self._record_park(state.position, held=False)

    async def _record_park(self, step_id: str, *, held: bool = False) -> None:
        """The runs index: the contact sits at `step_id` (held there, or about to go on)."""
        await workflow.execute_local_activity(
            "park_run",
            ParkInput(
                workflow_id=workflow.info().workflow_id,
                step_id=step_id,
                steps=self._take_unsaved(),
                held=held,
            ),
            summary=f"{'hold' if held else 'park'} at {step_id}",
            **LOCAL,
        )

    async def _visit(self, step_id: str) -> Next:
        """Run one step; returns where the contact goes next."""
        state, graph = self.state, self.graph
        assert state is not None and graph is not None
        if step_id not in graph.steps:
            raise _EndRun(f"unknown_step:{step_id}", status="failed")
        step = graph.steps[step_id]
        resuming, state.resuming, self.reentering = state.resuming == step_id, None, None
        # Goals only need a look when something may have changed them: a signal woke the run
        # (checked here, at the boundary), or the run's own write (checked by that write's
        # activity in the same transaction). Steps that evaluate conditions anyway fold the
        # goals into their own round-trip.
        if self.woken and step.type not in SELF_CHECKING_STEPS:
            goal = await self._met_goal(step_id)
            if goal is not None:
                return await self._achieve(goal)
        if not resuming:
            state.visit += 1
        workflow.set_current_details(f"At **{describe_step(step_id, step)}**{self._on_deal()}")
        handler = HANDLERS.get(step.type, AutomationRun._not_implemented)
        return await handler(self, step_id, step)

    # --- helpers -----------------------------------------------------------------------

    def _on_deal(self) -> str:
        """For the current details: the deal a deal-triggered run is about."""
        assert self.input is not None
        return "" if self.input.deal_id is None else f" (deal {self.input.deal_id})"

    def _context(self, step_id: str) -> StepContext:
        assert self.input is not None and self.state is not None
        return StepContext(
            workflow_id=workflow.info().workflow_id,
            automation_id=self.input.automation_id,
            version=self.state.version,
            contact_id=self.input.contact_id,
            step_id=step_id,
            visit=self.state.visit,
            deal_id=self.input.deal_id,
        )

    def _decided(self, key: str, answer: dict[str, Any]) -> None:
        now = workflow.info().get_current_history_length()
        self.decisions = {k: d for k, d in self.decisions.items() if d[0] == now}
        self.decisions[key] = (now, answer)

    def _writing(self, context: StepContext) -> StepContext:
        """`context` for a local write, carrying this workflow task's decisions so far.

        A lost workflow task re-runs its local activities, the reads after the writes: each
        read answered in this task is recorded with the write and recalled by its re-run, so
        the run takes the same path as its writes did. Reads of earlier tasks are in the
        history already (a new task has a longer history) and need no record. Every local
        write of the task carries them all (those recorded already are skipped): not every
        local activity records them, and a later write may be the one that changes a read.
        """
        now = workflow.info().get_current_history_length()
        self.decisions = {k: d for k, d in self.decisions.items() if d[0] == now}
        context.decisions = {k: answer for k, (_, answer) in self.decisions.items()}
        return context

    def _record(
        self, step_id: str, step: StepBase, outcome: str, reason: str | None = None
    ) -> None:
        state = self.state
        assert state is not None
        record = StepRecord(
            seq=state.steps_taken,
            step=step_id,
            type=step.type,
            outcome=outcome,  # type: ignore[arg-type]
            reason=reason,
            at=workflow.now(),
        )
        state.steps.append(record)
        del state.steps[:-STEPS_KEPT_IN_STATE]
        state.unsaved.append(record)
        state.steps_taken += 1
        count_step(step_id, step.type, outcome, reason)

    def _take_unsaved(self) -> SavedSteps | None:
        """The step records to save with this database round-trip (see RunState.unsaved)."""
        state = self.state
        assert state is not None and self.input is not None
        if not state.unsaved:
            return None
        records, state.unsaved = state.unsaved, []
        return SavedSteps(
            workflow_id=workflow.info().workflow_id,
            automation_id=self.input.automation_id,
            version=state.version,
            contact_id=self.input.contact_id,
            records=records,
        )

    def _eligible_goals(self, position: str) -> list[str]:
        state, graph = self.state, self.graph
        assert state is not None and graph is not None
        return eligible_goals(graph, self.goal_sources, position, state.goals)

    def _goal_conditions(self, goals: list[str]) -> list[dict[str, Any]]:
        assert self.graph is not None
        return [goal_condition(self.graph, g) for g in goals]

    async def _evaluate(
        self, position: str, goals: list[str], own: list[Condition], *, park_at: str | None = None
    ) -> EvaluateOutput:
        """One round-trip: the goals' conditions, then `own`; the first goal met is recorded."""
        assert self.input is not None and self.graph is not None and self.state is not None
        looked_at = ([f"step {position}"] if own else []) + [f"goal {g}" for g in goals]
        self.state.evaluations += 1
        key = f"decision:{workflow.info().workflow_id}:{self.state.evaluations}"
        result = await workflow.execute_local_activity(
            "evaluate_conditions",
            EvaluateInput(
                contact_id=self.input.contact_id,
                conditions=self._goal_conditions(goals)
                + [c.model_dump(by_alias=True, exclude_none=True, mode="json") for c in own],
                now=workflow.now(),
                workflow_id=workflow.info().workflow_id,
                park_at=park_at,
                steps=self._take_unsaved() if park_at else None,
                goal_ids=goals,
                automation_id=self.input.automation_id,
                deal_id=self.input.deal_id,
                decision_key=key,
            ),
            result_type=EvaluateOutput,
            summary=f"evaluate conditions at {position}: {', '.join(looked_at) or 'park'}",
            **LOCAL,
        )
        self._decided(key, result.model_dump(mode="json"))
        return result

    async def _decide(
        self, position: str, own: list[Condition], *, park: bool = False
    ) -> tuple[str | None, list[bool]]:
        """Evaluate the reachable goals and this step's own conditions in one round-trip.

        Returns (a goal that is met, or None; the results of `own`).
        """
        goals = self._eligible_goals(position) if self.woken else []
        self.woken = False
        if not goals and not own and not park:
            return None, []
        result = await self._evaluate(position, goals, own, park_at=position if park else None)
        if result.recorded_goal is not None:
            self.recorded_goals.add(result.recorded_goal)
        return result.recorded_goal, result.results[len(goals) :]

    async def _met_goal(self, position: str) -> str | None:
        if not self._eligible_goals(position):
            self.woken = False
            return None
        goal, _ = await self._decide(position, [])
        return goal

    async def _achieve(self, goal_id: str) -> Next:
        """Jump to a met goal: record it once, then continue after it."""
        state, graph = self.state, self.graph
        assert state is not None and graph is not None
        state.visit += 1
        if goal_id in self.recorded_goals:  # the evaluation that found it met recorded it
            self.recorded_goals.discard(goal_id)
        else:
            context = self._writing(self._context(goal_id))
            await workflow.execute_local_activity(
                "record_goal",
                GoalInput(context=context),
                summary=f"goal achieved (step {goal_id})",
                **LOCAL,
            )
        state.goals.append(goal_id)
        state.wait_started_at = None
        goal = goal_step(graph, goal_id)
        self._record(goal_id, goal, "done", "goal_achieved")
        return goal.next

    async def _park(
        self,
        step_id: str,
        step: WaitStep | GoalStep,
        why: str,
        deadline: datetime | None,
        conditions: list[Condition],
    ) -> tuple[str, str | None]:
        """Wait until a condition, a goal or the deadline; returns ("goal"|"met"|"timeout", goal).

        Only waits with something to re-evaluate listen to contact changes; a plain timer
        ignores them (no wake-up, no history events) but still yields to version switches
        and end requests.
        """
        long = parks_long(deadline, workflow.now())
        if long:
            workflow.upsert_search_attributes([STEP_KEY.value_set(step_id)])
        workflow.set_current_details(
            f"Waiting at **{describe_step(step_id, step)}**: {why}{self._on_deal()}"
        )
        listens = bool(conditions) or bool(self._eligible_goals(step_id))
        # On entry, look only if there is something new to see: a conditional wait's own
        # condition, or goals after a wake-up. Goals were checked after the run's last write.
        if conditions or self.woken:
            decided = await self._decide_wait(step_id, conditions, park=long)
            if decided is not None:
                return decided
        elif self.parked_at == step_id:
            self.parked_at = None  # the graph's load recorded this park already
        elif long:
            await self._record_park(step_id)
        while True:
            remaining = None if deadline is None else (deadline - workflow.now()).total_seconds()
            if remaining is not None and remaining <= 0:
                return "timeout", None
            try:
                await workflow.wait_condition(
                    lambda: (listens and self.woken) or self._interrupted(),
                    timeout=remaining,
                    timeout_summary=f"{describe_step(step_id, step)}: {why}",
                )
            except TimeoutError:
                return "timeout", None
            if self._interrupted():
                return "interrupted", None
            decided = await self._decide_wait(step_id, conditions)
            if decided is not None:
                return decided

    async def _decide_wait(
        self, step_id: str, conditions: list[Condition], *, park: bool = False
    ) -> tuple[str, str | None] | None:
        goal, results = await self._decide(step_id, conditions, park=park)
        if goal is not None:
            return "goal", goal
        if conditions and results[0]:
            return "met", None
        return None

    def _interrupted(self) -> bool:
        """Leave a wait for the main loop: an end request, a new version, or a history long
        enough that the run should continue as new (a wait woken by many changes grows it)."""
        state = self.state
        return (
            self.end_reason is not None
            or (
                self.pending_version is not None
                and state is not None
                and self.pending_version != state.version
            )
            or workflow.info().is_continue_as_new_suggested()
        )

    # --- handlers ----------------------------------------------------------------------

    async def _not_implemented(self, step_id: str, step: StepBase) -> Next:
        self._record(step_id, step, "skipped", "not_implemented")
        return getattr(step, "next", None)

    async def _by_activity(self, step_id: str, step: LinearStep) -> Next:
        activity, local = STEP_ACTIVITIES[step.type]
        return await self._activity_step(step_id, step, activity, local=local)

    async def _activity_step(
        self, step_id: str, step: LinearStep, activity: str, *, local: bool
    ) -> Next:
        context = self._writing(self._context(step_id)) if local else self._context(step_id)
        goals = self._eligible_goals(step_id) if local else []
        woken = self.woken
        if goals:  # a local step writes Cairn's database: it checks the goals after its write
            context.goal_conditions, context.now = self._goal_conditions(goals), workflow.now()
            context.goal_ids = goals
            # Cleared before, not after: a change signalled while the write runs may postdate
            # the write's look at the goals, and must wake the run again.
            self.woken = False
        summary = describe_step(step_id, step)
        try:
            if local:
                outcome = await workflow.execute_local_activity(
                    activity, context, result_type=StepOutcome, summary=summary, **LOCAL
                )
            else:
                outcome = await workflow.execute_activity(
                    activity, context, result_type=StepOutcome, summary=summary, **REMOTE
                )
        except (ActivityError, ApplicationError) as err:
            # A regular activity's failure arrives wrapped in an ActivityError; a local
            # activity's arrives as the activity's own ApplicationError.
            cause = err.cause if isinstance(err, ActivityError) else err
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            self.woken = self.woken or woken  # the goals were not looked at
            self._record(step_id, step, "failed", message)
            if step.on_error == "end":
                raise _EndRun(f"step_failed:{step_id}", status="failed") from None
            return step.next
        self._record(step_id, step, outcome.outcome, outcome.reason)
        if goals and len(outcome.goals_met) != len(goals):
            self.woken = self.woken or woken  # no write, so the goals were not looked at
        elif goals:
            met = next((g for g, ok in zip(goals, outcome.goals_met, strict=True) if ok), None)
            if met is not None:
                self.recorded_goals.add(met)  # recorded in the step's own transaction
                return await self._achieve(met)
        return step.next

    @handles(WaitStep, checks_goals=True)
    async def _wait(self, step_id: str, step: WaitStep) -> Next:
        state = self.state
        assert state is not None
        state.gotos_since_wait = 0
        if state.wait_started_at is None:
            state.wait_started_at = workflow.now()
        conditions: list[Condition] = []
        if step.for_ is not None:
            deadline: datetime | None = state.wait_started_at + step.for_.to_timedelta()
            why = f"until {deadline:%Y-%m-%d %H:%M} UTC ({step.for_.describe()})"
        elif step.until is not None:
            deadline, why = step.until, f"until {step.until:%Y-%m-%d %H:%M} UTC"
        else:
            assert step.condition is not None  # a wait has exactly one kind (its validator)
            conditions = [step.condition]
            deadline = state.wait_started_at + step.timeout.to_timedelta() if step.timeout else None
            why = "until the condition is met" + (
                f" (at most {step.timeout.describe()})" if step.timeout else ""
            )
        result, goal = await self._park(step_id, step, why, deadline, conditions)
        if result == "interrupted":
            self.reentering = step_id
            return step_id  # re-enter after the switch or end; wait_started_at is kept
        state.wait_started_at = None
        if result == "goal":
            assert goal is not None
            self._record(step_id, step, "skipped", f"goal:{goal}")
            return await self._achieve(goal)
        self._record(step_id, step, "done", "condition_met" if result == "met" else None)
        return step.next

    @handles(IfElseStep, checks_goals=True)
    async def _if_else(self, step_id: str, step: IfElseStep) -> Next:
        goal, (yes,) = await self._decide(step_id, [step.condition])
        if goal is not None:
            return await self._achieve(goal)
        self._record(step_id, step, "done", "yes" if yes else "no")
        return step.yes if yes else step.no

    @handles(GoalStep, checks_goals=True)
    async def _goal(self, step_id: str, step: GoalStep) -> Next:
        state = self.state
        assert state is not None
        if step_id in state.goals:
            self._record(step_id, step, "skipped", "already_achieved")
            return step.next
        other, (met,) = await self._decide(step_id, [step.condition])
        if other is not None:
            return await self._achieve(other)
        if met:
            return await self._achieve(step_id)
        if step.unmet == "continue":
            self._record(step_id, step, "skipped", "goal_not_met")
            return step.next
        if step.unmet == "end":
            self._record(step_id, step, "skipped", "goal_not_met")
            raise _EndRun("goal_not_met")
        if state.wait_started_at is None:
            state.wait_started_at = workflow.now()
        deadline = state.wait_started_at + step.timeout.to_timedelta() if step.timeout else None
        result, goal = await self._park(
            step_id, step, "until the goal is met", deadline, [step.condition]
        )
        if result == "interrupted":
            self.reentering = step_id
            return step_id
        state.wait_started_at = None
        if result == "goal" and goal is not None:
            return await self._achieve(goal)
        if result == "met":
            return await self._achieve(step_id)
        self._record(step_id, step, "skipped", "goal_timeout")
        return step.next

    @handles(SplitEvenStep, SplitUntilStep)
    async def _split(self, step_id: str, step: SplitEvenStep | SplitUntilStep) -> Next:
        state = self.state
        assert state is not None
        path = state.split_paths.get(step_id)
        if path is None:  # a contact never changes path, even when a loop brings it back
            context = self._writing(self._context(step_id))
            result = await workflow.execute_local_activity(
                "assign_split_path",
                SplitInput(context=context, now=workflow.now()),
                result_type=SplitOutput,
                summary=describe_step(step_id, step),
                **LOCAL,
            )
            path = state.split_paths[step_id] = result.path
        if step.mode == "even":
            self._record(step_id, step, "done", f"path:{path}")
            return step.paths[path].next
        self._record(step_id, step, "done", "after" if path else "before")
        return step.after if path else step.before

    @handles(GotoStep)
    async def _goto(self, step_id: str, step: GotoStep) -> Next:
        state = self.state
        assert state is not None
        now = workflow.now()
        passes = [t for t in state.goto_passes.get(step_id, []) if now - t < timedelta(hours=24)]
        passes.append(now)
        state.goto_passes[step_id] = passes
        state.gotos_since_wait += 1
        if len(passes) > GOTO_MAX_PER_DAY or self._too_many_loops(state.gotos_since_wait):
            self._record(step_id, step, "skipped", "goto_limit")
            raise _EndRun("goto_limit")
        self._record(step_id, step, "done")
        return step.target

    @staticmethod
    def _too_many_loops(gotos_since_wait: int) -> bool:
        """Whether this goto would start a loop past the limit (docs/automations.md#goto)."""
        if gotos_since_wait < GOTO_MAX_WITHOUT_WAIT:
            return False
        if gotos_since_wait == GOTO_MAX_WITHOUT_WAIT:
            # Asked only here, where old and new code differ: the third loop is allowed now.
            return not workflow.patched(THIRD_LOOP_ALLOWED)
        return True

    @handles(EndStep)
    async def _end(self, step_id: str, step: EndStep) -> Next:
        self._record(step_id, step, "done")
        raise _EndRun("end_step", status="completed")


# Every other step type is carried out by its activity; a local one checks the goals after
# its write, in the same transaction (see `_activity_step`).
for _step_type, (_, _local) in STEP_ACTIVITIES.items():
    HANDLERS[_step_type] = cast(Handler, AutomationRun._by_activity)
    if _local:
        SELF_CHECKING_STEPS.add(_step_type)
