"""Request dependencies: the API token check and the process-wide services."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from temporalio.client import Client

from store.db import Database
from worker.outbox import OutboxDispatcher
from worker.settings import Settings


@dataclass
class Services:
    """Made once in the app's lifespan and shared by every request."""

    settings: Settings
    db: Database
    client: Client
    dispatcher: OutboxDispatcher


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def require_token(
    services: ServicesDep, api_token: Annotated[str | None, Header(alias="Api-Token")] = None
) -> None:
    # Constant-time comparison: the answer's timing says nothing about the token.
    expected = services.settings.api_token.encode()
    if api_token is None or not hmac.compare_digest(api_token.encode(), expected):
        raise HTTPException(status_code=401, detail="missing or wrong Api-Token header")
