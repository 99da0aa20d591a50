"""The benchmark's worker process: Cairn's worker plus the hand-written baseline workflow."""

from __future__ import annotations

import asyncio
import logging

from bench.baseline import BaselineReferenceFlow
from core.settings import get_settings
from core.temporal import connect
from store.db import open_database
from worker.main import running_worker


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    db = await open_database(settings.resolved_database_url)
    client = await connect(settings)
    async with running_worker(
        settings, client, db, extra_workflows=[BaselineReferenceFlow], extra_passthrough=["bench"]
    ):
        print("bench worker ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
