"""Schemathesis against every operation of the OpenAPI schema, over real HTTP: no answer is a 5xx,
and every answer (status, content type, headers, body) is one the schema declares.

The app fuzzed has its own database (the fuzzer creates automations, triggers and contacts that
must not reach other tests' contacts) and the session's real Temporal; no worker polls its task
queue, so the runs it enrolls never start. Hypothesis is seeded (derandomize) and keeps no example
database, so a clean clone sees exactly the same requests.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.testing import WorkflowEnvironment

from core.settings import Settings
from store.db import open_database
from tests.helpers.served import served_api
from tests.helpers.stack import (
    API_TOKEN,
    POSTGRES_URL,
    Mailbox,
    Stack,
    drop_postgres_database,
    fresh_postgres_database,
)

# Examples per operation, by generation mode: valid inputs, and inputs the schema rules out.
EXAMPLES = {
    schemathesis.GenerationMode.POSITIVE: 20,
    schemathesis.GenerationMode.NEGATIVE: 5,
}
# PostgreSQL answers slower; fewer examples there keep the module within its time budget.
POSTGRES_SHARE = 0.15
FUZZ_SECONDS = 240  # the fuzzer process is killed after this
ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@asynccontextmanager
async def fuzzed_stack(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp: Path, flavour: str
) -> AsyncIterator[Stack]:
    url = (
        await fresh_postgres_database(POSTGRES_URL)
        if flavour == "postgres" and POSTGRES_URL
        else f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}"
    )
    settings_ = Settings(
        data_dir=tmp,
        database_url=url,
        task_queue=f"cairn-fuzz-{uuid.uuid4().hex[:6]}",  # no worker: enrolled runs stay put
        api_token=API_TOKEN,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        _env_file=None,  # type: ignore[call-arg]
    )
    db = await open_database(url)
    try:
        yield Stack(settings_, db, env.client, env, None, mailbox, flavour)  # type: ignore[arg-type]
    finally:
        await db.dispose()
        if flavour == "postgres" and POSTGRES_URL:
            await drop_postgres_database(POSTGRES_URL, url)


def fuzz(base_url: str, share: float = 1.0) -> tuple[int, list[str]]:
    """(requests sent, failures) over every operation; each failure once per operation and check."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    session = requests.Session()
    sent = 0
    failures: dict[tuple[str, str], str] = {}

    def exercise(case: schemathesis.Case) -> None:
        nonlocal sent
        response = case.call(
            base_url=base_url, session=session, headers={"Api-Token": API_TOKEN}, timeout=30
        )
        sent += 1
        # 401 is declared, so no check objects to it; but with the right token it is a failure
        # (negative cases may leave the token out: those 401s are right).
        if response.status_code == 401 and response.request.headers.get("Api-Token") == API_TOKEN:
            failures.setdefault((case.operation.label, "refused the token"), response.text)
        try:
            case.validate_response(response, checks=CHECKS)
        except (FailureGroup, AssertionError) as err:
            # Recorded, not raised: no shrinking, and every operation still gets its turn.
            for failure in getattr(err, "exceptions", [err]):
                key = (case.operation.label, getattr(failure, "title", type(failure).__name__))
                failures.setdefault(
                    key,
                    f"[{response.status_code}] {response.text[:300]} <- {case.as_curl_command()}",
                )

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, examples in EXAMPLES.items():
            run = settings(
                max_examples=max(1, round(examples * share)),
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(case=operation.as_strategy(generation_mode=mode))(exercise))
            try:
                run()
            except Unsatisfiable:
                # Nothing in the operation can be made invalid (no parameters, no body).
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    return sent, [f"{label}: {title} {text}" for (label, title), text in failures.items()]


@pytest.mark.parametrize(
    "flavour",
    [
        "sqlite",
        pytest.param(
            "postgres",
            marks=pytest.mark.skipif(not POSTGRES_URL, reason="CAIRN_TEST_POSTGRES_URL not set"),
        ),
    ],
)
async def test_every_operation_answers_as_its_schema_says(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp_path: Path, flavour: str
) -> None:
    share = POSTGRES_SHARE if flavour == "postgres" else 1.0
    async with (
        fuzzed_stack(env, mailbox, tmp_path, flavour) as fuzzed,
        served_api(fuzzed) as base_url,
    ):
        sent, failures = await fuzz_in_a_process(base_url, share)
    print(f"schemathesis ({flavour}): {sent} requests")
    assert sent > 0
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


async def fuzz_in_a_process(base_url: str, share: float) -> tuple[int, list[str]]:
    """`fuzz` in a process of its own: generating cases and serving them use both cores, not
    one interpreter lock. Killed if it outlives FUZZ_SECONDS."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import json, sys; from tests.api.test_fuzz_api import fuzz; "
        "print(json.dumps(fuzz(sys.argv[1], float(sys.argv[2]))))",
        base_url,
        str(share),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), FUZZ_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, "the fuzzer crashed (its traceback is above)"
    sent, failures = json.loads(out.splitlines()[-1])
    return sent, failures
