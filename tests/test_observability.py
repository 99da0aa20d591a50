"""Prometheus metrics (worker and API) and JSON log lines, scraped and parsed for real."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.conftest import Stack, eventually, free_port
from worker.enrollment import enroll_many
from worker.main import running_worker
from worker.observability import JsonFormatter, metrics_runtime
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


async def test_worker_serves_step_skip_provider_and_temporal_metrics(stack: Stack) -> None:
    port = free_port()
    settings = stack.settings.model_copy(
        update={"metrics_address": f"127.0.0.1:{port}", "task_queue": stack.unique("metrics")}
    )
    runtime = metrics_runtime(settings)
    assert runtime is not None
    client = await Client.connect(
        stack.client.service_client.config.target_host,
        namespace=stack.client.namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    automation_id = await stack.automation(
        {
            "start": "tag",
            "steps": {
                "tag": {"type": "add_tag", "tag": "seen", "next": "untag"},
                "untag": {"type": "remove_tag", "tag": "never-had-it", "next": "hook"},
                # 127.0.0.1 is refused (private destination): a non-retryable provider error.
                "hook": {
                    "type": "webhook",
                    "url": "http://127.0.0.1:9/hook",
                    "on_error": "continue",
                },
            },
        }
    )
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
    response = await stack.http.get("/metrics", headers={"Api-Token": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    route = "/api/v1/contacts/{contact_id}"
    assert _value(text, "cairn_api_requests_total", route=route, status="200") >= 1
    assert _value(text, "cairn_api_requests_total", route=route, status="404") >= 1
    assert _value(text, "cairn_api_request_seconds_count", route=route, method="GET") >= 2
