"""Run bookkeeping and decisions: load the graph, evaluate conditions, splits, goals, other runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import Deps
from activities.step_activity import step_activity
from domain.enrollment import enroll
from domain.split_deadlines import split_deadline
from store import runs as run_store
from store.conditions import duration_of, evaluate_all, matching_contacts
from store.models import SplitState
from store.runs import EntryRefused
from workflows.automation_run import opening_park
from workflows.contracts import (
    SIGNAL_END_RUN,
    EndRun,
    EvaluateInput,
    EvaluateOutput,
    FinishRunInput,
    GoalInput,
    LoadAutomationInput,
    LoadAutomationOutput,
    ParkInput,
    SplitInput,
    SplitOutput,
    StepContext,
    StepOutcome,
)
from workflows.document import eligible_goals, goal_condition, goal_sources, secret_free
from workflows.split_winner import DECIDE_SPLIT_WINNER, DecideWinnerInput, DecideWinnerOutput


class RunActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="load_automation")
    async def load_automation(self, input: LoadAutomationInput) -> LoadAutomationOutput:
        if input.decision_key is not None:
            async with self.deps.db.read() as session:
                recalled = await run_store.recall_decision(session, input.decision_key)
            if recalled is not None:  # a lost task re-runs the start after the run's writes
                version = int(recalled["version"] or input.version)
                document = (await self.deps.version(input.automation_id, version))[0]
                return LoadAutomationOutput.model_validate(
                    {**recalled, "document": secret_free(document)}
                )
        version = input.version
        if input.newest:
            async with self.deps.db.read() as session:
                version = max(
                    version, await run_store.current_version(session, input.automation_id)
                )
        try:
            document, graph = await self.deps.version(input.automation_id, version)
        except LookupError as err:
            raise ApplicationError(str(err), non_retryable=True) from None
        goals_met: list[str] = []
        if input.contact_id is not None and input.now is not None:
            goals = eligible_goals(graph, goal_sources(graph), graph.start, [])
            if goals:
                conditions = [goal_condition(graph, g) for g in goals]
                async with self.deps.db.read() as session:
                    results = await evaluate_all(
                        session, input.contact_id, conditions, input.now, deal_id=input.deal_id
                    )
                goals_met = [g for g, ok in zip(goals, results, strict=True) if ok]
        # The run's reservation recorded it as parked at an opening wait (domain.enrollment).
        parked_at = None
        active = graph.status == "active"
        if input.workflow_id and input.now is not None and not goals_met and active:
            parked_at = opening_park(graph, input.now)
        if version != input.version and input.workflow_id:
            # Reserved under an older version: the index follows the version the run starts on.
            async with self.deps.db.write() as session:
                await run_store.started_on_version(session, input.workflow_id, version, parked_at)
        return LoadAutomationOutput(
            document=secret_free(document),
            version=version if input.newest else None,
            goals_met=goals_met,
            parked_at=parked_at,
        )

    @activity.defn(name="evaluate_conditions")
    async def evaluate_conditions(self, input: EvaluateInput) -> EvaluateOutput:
        if input.decision_key is not None:
            async with self.deps.db.read() as session:
                recalled = await run_store.recall_decision(session, input.decision_key)
            if recalled is not None:  # a lost task re-runs this after the run's writes
                return EvaluateOutput.model_validate(recalled)
        if input.park_at and input.workflow_id:
            async with self.deps.db.write() as session:
                await run_store.set_current_step(session, input.workflow_id, input.park_at)
                await run_store.save_steps(session, input.steps)
                results = await evaluate_all(
                    session, input.contact_id, input.conditions, input.now, deal_id=input.deal_id
                )
        else:
            async with self.deps.db.read() as session:
                results = await evaluate_all(
                    session, input.contact_id, input.conditions, input.now, deal_id=input.deal_id
                )
        goal = next((g for g, ok in zip(input.goal_ids, results, strict=False) if ok), None)
        if goal is not None and input.workflow_id and input.automation_id:
            async with self.deps.db.write() as session:
                await run_store.record_goal(
                    session, input.workflow_id, input.automation_id, input.contact_id, goal
                )
                await run_store.set_current_step(session, input.workflow_id, goal)
                if input.decision_key is not None:  # this write records its own decision
                    answer = EvaluateOutput(results=results, recorded_goal=goal)
                    await run_store.record_decisions(
                        session, {input.decision_key: answer.model_dump(mode="json")}
                    )
            self.deps.kick()
        return EvaluateOutput(results=results, recorded_goal=goal)

    @activity.defn(name="park_run")
    async def park_run(self, input: ParkInput) -> None:
        async with self.deps.db.write() as session:
            await run_store.set_current_step(
                session, input.workflow_id, input.step_id, held=input.held
            )
            await run_store.save_steps(session, input.steps)

    @activity.defn(name="finish_run")
    async def finish_run(self, input: FinishRunInput) -> None:
        async with self.deps.db.write() as session:
            await run_store.finish_run(
                session, input.workflow_id, input.status, input.reason, input.step_id
            )
            await run_store.save_steps(session, input.steps)
        self.deps.kick()  # the contact's other runs may wait on `in_automation`

    @activity.defn(name="record_goal")
    async def record_goal(self, input: GoalInput) -> None:
        c = input.context
        async with self.deps.db.write() as session:
            await run_store.record_decisions(session, c.decisions)
            await run_store.record_goal(
                session, c.workflow_id, c.automation_id, c.contact_id, c.step_id
            )
            await run_store.set_current_step(session, c.workflow_id, c.step_id)
        self.deps.kick()

    @activity.defn(name="assign_split_path")
    async def assign_split_path(self, input: SplitInput) -> SplitOutput:
        """Fair assignment from a counter row (docs/architecture.md#splits); the answer is stored per run."""
        c = input.context
        step = await self.deps.step(c)
        async with self.deps.db.write() as session:
            known = await run_store.existing_assignment(session, c.workflow_id, c.step_id)
            if known is not None:
                return SplitOutput(path=known)
            await run_store.record_decisions(session, c.decisions)
            state = await run_store.lock_split_state(session, c.automation_id, c.step_id)
            if step.mode == "even":
                path = await self._even_path(session, state, step, input.now)
            else:
                path = await self._until_side(session, state, step, input.now)
            first = state.first_assigned_at is None
            await run_store.assign_path(
                session,
                state,
                workflow_id=c.workflow_id,
                contact_id=c.contact_id,
                path=path,
                now=input.now,
            )
            deadline = first and step.mode == "even" and step.winner is not None
            if deadline and step.winner.after is not None and state.winner is None:
                # The winner is due after a duration, newcomer or not: a durable timer decides
                # it then (workflows/split_winner.py), started from this row.
                due = input.now + step.winner.after.to_timedelta()
                session.add(split_deadline(c.automation_id, c.step_id, due))
        if deadline:
            self.deps.kick()
        return SplitOutput(path=path)

    @activity.defn(name=DECIDE_SPLIT_WINNER)
    async def decide_split_winner(self, input: DecideWinnerInput) -> DecideWinnerOutput:
        """At an even split's deadline: its winner, decided now unless it already is (by a
        newcomer or a person); a rule a new version moved later answers its new deadline."""
        async with self.deps.db.read() as session:
            version = await run_store.current_version(session, input.automation_id)
        graph = (await self.deps.version(input.automation_id, version))[1] if version else None
        step = graph.steps.get(input.step_id) if graph is not None else None
        async with self.deps.db.write() as session:
            state = await run_store.lock_split_state(session, input.automation_id, input.step_id)
            if state.winner is not None:
                return DecideWinnerOutput(winner=state.winner)
            rule = getattr(step, "winner", None) if getattr(step, "mode", None) == "even" else None
            if rule is None or rule.after is None or state.first_assigned_at is None:
                return DecideWinnerOutput()  # no longer decided by a duration
            due = state.first_assigned_at + rule.after.to_timedelta()
            if input.now < due:
                return DecideWinnerOutput(due_at=due)
            await self._decide_winner(session, state, step, input.now)
            return DecideWinnerOutput(winner=state.winner)

    async def _even_path(self, session: Any, state: SplitState, step: Any, now: datetime) -> int:
        if state.winner is None and step.winner is not None and self._winner_due(state, step, now):
            await self._decide_winner(session, state, step, now)
        if state.winner is not None:
            return state.winner
        weights = [p.weight for p in step.paths]
        current = list(state.current.get("weights") or [0] * len(weights))
        if len(current) != len(weights):  # the paths changed in a new version: start afresh
            current = [0] * len(weights)
        path, current = run_store.smooth_weighted_pick(weights, current)
        state.current = {"weights": current}
        return path

    @staticmethod
    def _winner_due(state: SplitState, step: Any, now: datetime) -> bool:
        rule = step.winner
        if rule.after_contacts is not None:
            return state.assigned >= rule.after_contacts
        started = state.first_assigned_at
        return started is not None and now - started >= rule.after.to_timedelta()

    @classmethod
    async def _decide_winner(
        cls, session: Any, state: SplitState, step: Any, now: datetime
    ) -> None:
        state.winner = await cls._pick_winner(session, state, step, now)
        state.winner_by, state.decided_at = "rule", now

    @staticmethod
    async def _pick_winner(session: Any, state: SplitState, step: Any, now: datetime) -> int:
        """The path whose contacts meet the winner condition at the highest rate (ties: first)."""
        condition = step.winner.condition.model_dump(by_alias=True, exclude_none=True, mode="json")
        best, best_rate = 0, -1.0
        for index in range(len(step.paths)):
            contacts = await run_store.contacts_on_path(
                session, state.automation_id, state.step_id, index
            )
            met = len(await matching_contacts(session, condition, now, among=contacts))
            rate = met / len(contacts) if contacts else 0.0
            if rate > best_rate:
                best, best_rate = index, rate
        return best

    @staticmethod
    async def _until_side(session: Any, state: SplitState, step: Any, now: datetime) -> int:
        """0 = before, 1 = after: everyone takes `before` until the automation-wide rule holds.

        Once it holds, the split stays on `after` (`decided_at`): a contact who stops meeting
        the condition later does not send newcomers back to `before`.
        """
        if state.decided_at is not None:
            return 1
        until = step.until
        if getattr(until, "date", None) is not None:
            after = now >= until.date
        elif getattr(until, "contacts", None) is not None:
            after = state.assigned >= until.contacts
        else:
            condition = until.condition.model_dump(by_alias=True, exclude_none=True, mode="json")
            assigned = [
                contact_id
                for index in (0, 1)
                for contact_id in await run_store.contacts_on_path(
                    session, state.automation_id, state.step_id, index
                )
            ]
            met = await matching_contacts(session, condition, now, among=assigned)
            after = len(met) >= until.contacts_meeting
        if after:
            state.decided_at = now
        return int(after)

    @step_activity("start_automation")
    async def start_automation(self, context: StepContext) -> StepOutcome:
        step = await self.deps.step(context)

        async def start() -> dict[str, Any]:
            result = await enroll(
                self.deps.db,
                self.deps.client,
                self.deps.settings.task_queue,
                step.automation,
                context.contact_id,
            )
            if isinstance(result, EntryRefused):
                return {"outcome": "skipped", "reason": f"entry_refused:{result.reason}"}
            return {"outcome": "done", "detail": {"workflow_id": result.workflow_id}}

        # The enrollment itself is fenced by the runs index; the action log makes a retried
        # step report the same outcome instead of "already running".
        async with self.deps.db.write() as session:
            recorded = await session.get(run_store.ActionLog, context.visit_key)
            if recorded is None:  # before the start: it changes what `in_automation` reads
                await run_store.record_decisions(session, context.decisions)
        if recorded is not None:
            return StepOutcome(**recorded.outcome)
        outcome = await start()
        async with self.deps.db.write() as session:
            await run_store.once_per_visit(session, context.visit_key, _returning(outcome))
        return StepOutcome(**outcome)

    @step_activity("end_automation")
    async def end_automation(self, context: StepContext) -> StepOutcome:
        step = await self.deps.step(context)
        target = None if step.automation == "all" else step.automation
        async with self.deps.db.read() as session:
            runs = await run_store.running_runs(session, context.contact_id, automation_id=target)
        ended = []
        for run in runs:
            if run.workflow_id == context.workflow_id or run.automation_id == context.automation_id:
                continue
            handle = self.deps.client.get_workflow_handle(run.workflow_id)
            await handle.signal(SIGNAL_END_RUN, EndRun(reason=f"ended_by:{context.automation_id}"))
            ended.append(run.workflow_id)
        return StepOutcome(
            outcome="done" if ended else "skipped",
            reason=None if ended else "no_running_run",
            detail={"ended": ended},
        )


def _returning(outcome: dict[str, Any]) -> Any:
    async def write() -> dict[str, Any]:
        return outcome

    return write


__all__ = ["RunActivities", "duration_of"]
