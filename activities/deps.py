"""What every activity family needs: the database, settings, Temporal and the automations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
from temporalio.client import Client

from activities.http import TIMEOUT
from activities.smtp import send_smtp
from core.settings import Settings
from store import automations as automation_store
from store.db import Database
from workflows.contracts import StepContext
from workflows.document import Automation

MAX_CACHED_VERSIONS = 1000


@dataclass
class Deps:
    db: Database
    settings: Settings
    client: Client
    # Wakes this process's outbox dispatcher after a commit, so changes are delivered at once.
    kick: Callable[[], None] = lambda: None
    # How emails leave and how providers are called: SMTP and the network, except in a
    # simulation's sandbox, where both are recorded instead (activities/sandbox.py).
    mailer: Callable[[EmailMessage], Awaitable[dict[str, str]]] | None = None
    http_transport: httpx.AsyncBaseTransport | None = None
    _versions: dict[tuple[str, int], tuple[dict[str, Any], Automation]] = field(
        default_factory=dict
    )

    async def send_mail(self, message: EmailMessage) -> dict[str, str]:
        """Send through the SMTP relay; the recipients it refused, by address."""
        if self.mailer is not None:
            return await self.mailer(message)
        return await send_smtp(self.settings, message)

    def http_client(self) -> httpx.AsyncClient:
        """A client for one provider call (the caller closes it)."""
        return httpx.AsyncClient(timeout=TIMEOUT, transport=self.http_transport)

    async def version(self, automation_id: str, version: int) -> tuple[dict[str, Any], Automation]:
        """A version's stored document and its model. Versions are immutable, so each is read
        from the database once per process (every run's first step loads its graph)."""
        key = (automation_id, version)
        cached = self._versions.get(key)
        if cached is None:
            async with self.db.read() as session:
                document = await automation_store.get_document(session, automation_id, version)
            if document is None:
                raise LookupError(f"automation {automation_id} v{version} does not exist")
            if len(self._versions) >= MAX_CACHED_VERSIONS:
                self._versions.clear()
            cached = self._versions[key] = (document, Automation.model_validate(document))
        return cached

    async def automation(self, automation_id: str, version: int) -> Automation:
        return (await self.version(automation_id, version))[1]

    async def step(self, context: StepContext) -> Any:
        return (await self.automation(context.automation_id, context.version)).steps[
            context.step_id
        ]
