"""The FastAPI app factory: one Temporal client and database per process, made in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from temporalio.client import Client

from api.access_log import filter_access_log
from api.deps import API_PREFIX, Services, install_token_check, require_token
from api.errors import answers, install_error_handlers
from api.rate_limits import TrackingLimits
from api.request_limits import install_limits
from api.routes import (
    accounts,
    automations,
    contacts,
    deal_notes,
    deals,
    dev,
    events,
    health,
    outbox,
    pipelines,
    runs,
    simulations,
    site,
    splits,
    tasks,
    tokens,
    tracking,
    users,
)
from api.routes import reports as report_routes
from api.routes.codec import codec_app
from api.routes.metrics import install_metrics
from api.studio import install_studio
from core.settings import Settings, get_settings
from core.temporal import connect
from domain.outbox import OutboxDispatcher
from store.db import Database, open_database

# A request waits this long for a locked database, then answers 503 with Retry-After: clients
# (and their load balancers) get a clear answer well before their own timeouts.
REQUEST_LOCK_WAIT_SECONDS = 5.0


def create_app(
    settings: Settings | None = None, *, client: Client | None = None, db: Database | None = None
) -> FastAPI:
    """`client` and `db` may be given (tests share theirs); otherwise made from settings."""
    settings = settings or get_settings()
    filter_access_log()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or await open_database(
            settings.resolved_database_url, lock_wait=REQUEST_LOCK_WAIT_SECONDS
        )
        temporal = client or await connect(settings)
        dispatcher = OutboxDispatcher(
            database,
            temporal,
            settings.task_queue,
            poll_seconds=settings.outbox_poll_seconds,
            max_attempts=settings.outbox_max_attempts,
        )
        app.state.services = Services(
            settings=settings,
            db=database,
            client=temporal,
            dispatcher=dispatcher,
            tracking_limits=TrackingLimits(settings),
        )
        dispatching = asyncio.create_task(dispatcher.run(), name="outbox-dispatcher")
        try:
            yield
        finally:
            dispatching.cancel()
            await asyncio.gather(dispatching, return_exceptions=True)
            if db is None:
                await database.dispose()

    app = FastAPI(
        title="Cairn",
        version="0.1.0",
        description="Open-source marketing automation on Temporal.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_limits(app)  # before metrics: inside it, so its refusals are counted too
    install_token_check(app)  # outside the limits: no answer but 401/403 without the token
    install_metrics(app)
    protected = [Depends(require_token)]
    crm = (users, pipelines, deals, deal_notes, tasks, accounts)
    routers = (
        automations,
        contacts,
        *crm,
        events,
        runs,
        dev,
        site,
        report_routes,
        splits,
        simulations,
        tokens,
        outbox,
    )
    for module in routers:
        app.include_router(
            module.router,
            prefix=API_PREFIX,
            dependencies=protected,
            responses=answers(401, 403, 503),
        )
    app.include_router(health.router)
    # Opened from emails and websites: each request carries its own signed token instead.
    app.include_router(tracking.router)
    # Temporal's codec-server protocol for the UI and CLI; its own CORS and auth (see module).
    app.mount("/codec", codec_app(settings))
    install_studio(app, settings.ui_dir)  # last: its fallback answers any other GET
    return app
