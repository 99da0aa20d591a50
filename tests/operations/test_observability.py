"""Prometheus metrics (worker and API) and JSON log lines, scraped and parsed for real."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core.logs import JsonFormatter
from core.settings import Settings
from domain.enrollment import enroll_many
from tests.helpers.faults import cairn_process, own_stack
from tests.helpers.providers import configured
from tests.helpers.stack import API_TOKEN, Mailbox, Stack, eventually, free_port
from worker.main import running_worker
from worker.observability import metrics_runtime
from workflows.contracts import RunState
from workflows.date_enrollment import DATE_WORKFLOW_TYPE, DateEnrollmentInput, DateMatchesOutput


def _value(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in exposition.splitlines():
        found = re.match(rf"^{name}(?:_total)?\{{(.*)\}} ([0-9.e+-]+)$", line)
        if found and all(f'{k}="{v}"' in found.group(1) for k, v in labels.items()):
            total += float(found.group(2))
    return total


@contextmanager
def json_lines(logger_names: list[str]) -> Iterator[list[str]]:
    """Collect what the named loggers emit, formatted by Cairn's JSON formatter."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(n) for n in logger_names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


FAILING_FLOW = {
    "start": "tag",
    "steps": {
        "tag": {"type": "add_tag", "tag": "seen", "next": "untag"},
        "untag": {"type": "remove_tag", "tag": "never-had-it", "next": "hook"},
        # 127.0.0.1 is refused (private destination): a non-retryable provider error.
        "hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "on_error": "continue"},
    },
}


async def test_worker_serves_step_skip_provider_and_temporal_metrics(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp_path: Path
) -> None:
    port = free_port()
    settings = Settings(metrics_address=f"127.0.0.1:{port}", _env_file=None)  # type: ignore[call-arg]
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=metrics_runtime(settings),
    )
    # A database of its own: a worker on the session stack's database, on another task queue,
    # would move that stack's date trigger schedules to its queue when it repairs them.
    async with own_stack(client, mailbox, tmp_path) as stack:
        await _metrics_of_a_run(stack, client, port)


async def _metrics_of_a_run(stack: Stack, client: Client, port: int) -> None:
    settings = stack.settings.model_copy(update={"metrics_address": f"127.0.0.1:{port}"})
    automation_id = await stack.automation(FAILING_FLOW)
    contact = await stack.contact()
    with json_lines(["temporalio.workflow", "temporalio.activity"]) as lines:
        async with running_worker(settings, client, stack.db):
            (workflow_id,) = (
                await enroll_many(
                    stack.db, client, settings.task_queue, automation_id, [contact["id"]]
                )
            ).enrolled
            await client.get_workflow_handle(workflow_id, result_type=RunState).result()
            # The date workflow's activity logs through activity.logger.
            dated = await client.execute_workflow(
                DATE_WORKFLOW_TYPE,
                DateEnrollmentInput(automation_id=automation_id),
                id=stack.unique("dates"),
                task_queue=settings.task_queue,
                result_type=DateMatchesOutput,
            )
            assert dated.matched == 0

            async def scraped() -> str:
                async with httpx.AsyncClient() as http:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                assert _value(text, "cairn_steps", type="add_tag", outcome="done") >= 1, text
                return text

            text = await eventually(scraped)
    assert _value(text, "cairn_step_skips", type="remove_tag", reason="not_tagged") >= 1
    assert _value(text, "cairn_steps", type="webhook", outcome="failed") >= 1
    assert _value(text, "cairn_provider_errors", kind="WebhookRefused", retryable="false") >= 1
    # Temporal's own runtime metrics come with them.
    assert "temporal_workflow_completed" in text
    assert f'task_queue="{settings.task_queue}"' in text

    parsed = [json.loads(line) for line in lines]
    step = next(p for p in parsed if p.get("step") == "untag")
    assert step["workflow_id"] == workflow_id
    assert step["level"] == "debug" and step["logger"] == "temporalio.workflow"
    assert {"time", "message"} <= step.keys()
    date_line = next(p for p in parsed if "date triggers of" in p["message"])
    assert date_line["activity_type"] == "enroll_date_matches"
    assert date_line["workflow_id"].startswith("dates-")


async def test_api_metrics_count_requests_by_route(stack: Stack) -> None:
    contact = await stack.contact()
    await stack.record(contact["id"])
    await stack.http.get("/api/v1/contacts/999999999")
    # Behind the API token, as Api-Token or as the Bearer credentials Prometheus sends.
    for refused in ({"Api-Token": ""}, {"Api-Token": "", "Authorization": "Bearer wrong"}):
        assert (await stack.http.get("/metrics", headers=refused)).status_code == 401
    assert (await stack.http.get("/metrics")).status_code == 200  # the stack's client has it
    response = await stack.http.get(
        "/metrics", headers={"Api-Token": "", "Authorization": f"Bearer {API_TOKEN}"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    route = "/api/v1/contacts/{contact_id}"
    assert _value(text, "cairn_api_requests_total", route=route, status="200") >= 1
    assert _value(text, "cairn_api_requests_total", route=route, status="404") >= 1
    assert _value(text, "cairn_api_request_seconds_count", route=route, method="GET") >= 2
    with configured(stack.settings, metrics_public=True):  # a scraper that cannot send one
        assert (await stack.http.get("/metrics", headers={"Api-Token": ""})).status_code == 200


async def test_worker_json_logs_carry_the_workflow_and_step_of_a_failed_step(
    env: WorkflowEnvironment, mailbox: Mailbox, tmp_path: Path
) -> None:
    """`cairn worker` with CAIRN_LOG_FORMAT=json, as deployed: its own process, its stderr read
    line by line."""
    async with own_stack(env.client, mailbox, tmp_path) as stack:
        automation_id = await stack.automation(FAILING_FLOW)
        contact = await stack.contact()
        log = tmp_path / "worker.log"
        settings = stack.settings
        worker_env = {
            "CAIRN_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "CAIRN_DATABASE_URL": settings.database_url,
            "CAIRN_TASK_QUEUE": settings.task_queue,
            "CAIRN_SMTP_HOST": settings.smtp_host,
            "CAIRN_SMTP_PORT": str(settings.smtp_port),
            "CAIRN_LOG_FORMAT": "json",
        }
        async with cairn_process("worker", worker_env, log):
            handle = await stack.enroll(contact["id"], automation_id)
            state = await asyncio.wait_for(handle.result(), timeout=120)
    assert state.status == "completed"
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines, text

    # The run's own warning: the step failed (and, on_error continue, the run went on).
    failed = [p for p in lines if p["logger"] == "temporalio.workflow" and p["level"] == "warning"]
    assert [(p["workflow_id"], p["step"]) for p in failed] == [(handle.id, "hook")], text
    assert "failed" in failed[0]["message"] and "refused" in failed[0]["message"]
    # The activity's: the SDK's line about the failed attempt, with the step added.
    (attempt,) = [p for p in lines if p.get("activity_type") == "webhook"]
    assert attempt["level"] == "warning" and attempt["logger"] == "temporalio.activity"
    assert (attempt["workflow_id"], attempt["step"]) == (handle.id, "hook")
    assert "WebhookRefused" in attempt["error"] or "refused" in attempt["error"]
    # Every line is JSON with the basic fields, whatever logged it.
    assert all({"time", "level", "logger", "message"} <= p.keys() for p in lines)
