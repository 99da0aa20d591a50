"""The worker process: AutomationRun, every activity family, an outbox dispatcher, and the
repair of date trigger schedules from the database."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import cast

from temporalio.activity import _Definition
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.contacts import ContactActivities
from activities.crm import CrmActivities
from activities.date_enrollment import DateEnrollmentActivities
from activities.deps import Deps
from activities.facebook import FacebookActivities
from activities.messaging import MessagingActivities
from activities.runs import RunActivities
from activities.salesforce import SalesforceActivities
from activities.sandbox import SandboxDeps, Sandboxes, SandboxInterceptor, SandboxRunActivities
from activities.simulation import SimulationActivities
from activities.site import SiteActivities
from activities.sms import SmsActivities
from activities.webhook import WebhookActivities
from core.settings import Settings
from core.temporal import connect
from domain.date_schedules import keep_schedules_in_sync
from domain.outbox import OutboxDispatcher
from store.db import Database, open_database
from worker.observability import StepLoggingInterceptor, metrics_runtime
from workflows.automation_run import AutomationRun
from workflows.date_enrollment import DateFieldEnrollment
from workflows.simulation import Simulate
from workflows.split_winner import SplitWinnerDeadline

log = logging.getLogger("cairn.worker")


# The sandbox re-imports (and here even recompiled) every non-passed-through module for each
# new workflow instance: profiled at ~9% of the worker's CPU. Cairn's workflow packages keep no
# mutable module state and do no I/O, so they are imported once and shared by every run.
def workflow_runner(*passthrough: str) -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows", *passthrough)
    )


# A cached workflow costs ~100 KB of worker memory (measured by `make bench`); the bound keeps
# RSS flat however many contacts are parked (an evicted run replays its history when woken).
MAX_CACHED_WORKFLOWS = 1200


def activities_for(deps: Deps) -> list[object]:
    runs, contacts, messaging = (
        RunActivities(deps),
        ContactActivities(deps),
        MessagingActivities(deps),
    )
    return [
        runs.load_automation,
        runs.evaluate_conditions,
        runs.park_run,
        runs.finish_run,
        runs.record_goal,
        runs.assign_split_path,
        runs.decide_split_winner,
        runs.start_automation,
        runs.end_automation,
        contacts.apply_contact_step,
        messaging.send_email,
        messaging.send_notification_email,
        SmsActivities(deps).send_sms,
        SiteActivities(deps).send_site_message,
        *integration_activities(deps),
        CrmActivities(deps).apply_crm_step,
        DateEnrollmentActivities(deps).enroll_date_matches,
    ]


# In a simulation's sandbox: every step's activity as it is, but for those acting on other runs
# (recorded instead) and the date triggers' enrollment (no trigger fires in a sandbox).
SANDBOX_REPLACED = {"start_automation", "end_automation", "enroll_date_matches"}


def sandbox_activities(sandboxes: Sandboxes) -> list[object]:
    routed = cast(Deps, SandboxDeps(sandboxes))
    runs = SandboxRunActivities(sandboxes)
    return [
        *(a for a in activities_for(routed) if activity_name(a) not in SANDBOX_REPLACED),
        runs.start_automation,
        runs.end_automation,
    ]


def activity_name(fn: object) -> str:
    defn = _Definition.from_callable(fn)  # type: ignore[arg-type]
    return defn.name if defn is not None and defn.name else ""


def integration_activities(deps: Deps) -> list[object]:
    """Steps that call another system: webhooks, Facebook audiences, Salesforce."""
    webhook, facebook, salesforce = (
        WebhookActivities(deps),
        FacebookActivities(deps),
        SalesforceActivities(deps),
    )
    return [
        webhook.webhook,
        facebook.facebook_audience_add,
        facebook.facebook_audience_remove,
        salesforce.salesforce_create_contact,
        salesforce.salesforce_create_lead,
    ]


@asynccontextmanager
async def running_worker(
    settings: Settings,
    client: Client,
    db: Database,
    *,
    task_queue: str | None = None,
    extra_workflows: Sequence[type] = (),
    extra_passthrough: Sequence[str] = (),
) -> AsyncIterator[Worker]:
    """A started worker plus its outbox dispatcher and the schedules' repair (a pass at start,
    then every few minutes); all stop when the block exits.

    `extra_workflows` run beside AutomationRun with the same settings (the benchmark's
    hand-written baseline), their packages named in `extra_passthrough` (shared like
    `workflows`, so both are measured alike)."""
    queue = task_queue or settings.task_queue
    dispatcher = OutboxDispatcher(
        db,
        client,
        queue,
        poll_seconds=settings.outbox_poll_seconds,
        max_attempts=settings.outbox_max_attempts,
    )
    deps = Deps(db=db, settings=settings, client=client, kick=dispatcher.kick)
    # Simulations run on a task queue of this process's own: their sandboxes live here.
    sandboxes = Sandboxes(settings, client, f"{queue}-simulations-{uuid.uuid4().hex[:12]}")
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[
            AutomationRun,
            DateFieldEnrollment,
            SplitWinnerDeadline,
            Simulate,
            *extra_workflows,
        ],
        activities=[
            *activities_for(deps),  # type: ignore[list-item]
            SimulationActivities(deps, sandboxes).simulate,
        ],
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        workflow_runner=workflow_runner(*extra_passthrough),
        interceptors=[StepLoggingInterceptor()],
    )
    simulator = Worker(
        client,
        task_queue=sandboxes.task_queue,
        workflows=[AutomationRun],
        activities=sandbox_activities(sandboxes),  # type: ignore[arg-type]
        workflow_runner=workflow_runner(),
        interceptors=[SandboxInterceptor(sandboxes)],
    )
    async with worker, simulator:
        background = [
            asyncio.create_task(dispatcher.run(), name="outbox-dispatcher"),
            asyncio.create_task(
                keep_schedules_in_sync(client, settings, db), name="schedule-reconciler"
            ),
        ]
        try:
            yield worker
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await sandboxes.shutdown()


async def run_worker(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    db = await open_database(settings.resolved_database_url)
    client = await connect(settings, metrics_runtime(settings))
    if settings.metrics_address:
        log.info("worker metrics at http://%s/metrics", settings.metrics_address)
    log.info("worker polling task queue %r on %s", settings.task_queue, settings.temporal_address)
    async with running_worker(settings, client, db):
        await asyncio.Event().wait()
