"""The test stack's API served over real HTTP (uvicorn on a free port), for the CLI and demo."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from api.app import create_app
from tests.helpers.stack import Stack, free_port


@asynccontextmanager
async def served_api(stack: Stack, *, log_level: str = "warning") -> AsyncIterator[str]:
    """The stack's database and Temporal behind a real HTTP server; yields its base URL
    (`log_level="info"` for its access log)."""
    app = create_app(stack.settings, client=stack.client, db=stack.db)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, lifespan="on")
    )
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
