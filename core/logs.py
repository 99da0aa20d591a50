"""Log lines: text for people, JSON for log shippers, with the workflow, activity and step of
every line logged inside an activity."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from temporalio import activity

from core.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What `workflow.logger` / `activity.logger` put in a record's extra, and the keys kept from it.
_TEMPORAL_EXTRAS = ("temporal_workflow", "temporal_activity")
_CONTEXT_KEYS = ("workflow_id", "run_id", "workflow_type", "activity_type", "attempt")
# The step the running activity executes (set by the worker's StepLoggingInterceptor); each activity runs in an asyncio task of its own,
# so a value set there is that activity's alone.
ACTIVITY_STEP: ContextVar[str | None] = ContextVar("cairn_activity_step", default=None)


# Libraries that log secrets or contact data: httpx logs every request's URL at INFO (query
# strings carry the Facebook token, a webhook GET's contact fields, Salesforce's SOQL with the
# contact's email); httpcore's debug lines hold response headers, aiosqlite's the SQL parameters,
# the Temporal worker's every activity input and result. What a call did is in its run
# (docs/operations.md#metrics-and-logs).
QUIETED_LOGGERS = {
    "httpx": logging.WARNING,
    "httpcore": logging.INFO,
    "aiosqlite": logging.INFO,
    "temporalio.worker": logging.INFO,
}


def quiet_leaky_loggers() -> None:
    """Raise the level of QUIETED_LOGGERS, whatever CAIRN_LOG_LEVEL says."""
    for name, level in QUIETED_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


class ActivityContextFilter(logging.Filter):
    """Adds the workflow id, activity and step to every line logged inside an activity, by
    any logger (`activity.logger` adds the first two on its own lines only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not activity.in_activity():
            return True
        if not hasattr(record, "temporal_activity"):
            info = activity.info()
            record.temporal_activity = {
                "workflow_id": info.workflow_id,
                "run_id": info.workflow_run_id,
                "workflow_type": info.workflow_type,
                "activity_type": info.activity_type,
                "attempt": info.attempt,
            }
        step = ACTIVITY_STEP.get()
        if step is not None and getattr(record, "step", None) is None:
            record.step = step
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the workflow context
    (workflow id, activity, step) when the line comes from a workflow or an activity."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for extra in _TEMPORAL_EXTRAS:
            context = getattr(record, extra, None)
            if isinstance(context, dict):
                line.update({k: context[k] for k in _CONTEXT_KEYS if k in context})
        step = getattr(record, "step", None)
        if step is not None:
            line["step"] = step
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (it may be replaced after setup)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def configure_logging(settings: Settings) -> None:
    """Root logging as `CAIRN_LOG_FORMAT` and `CAIRN_LOG_LEVEL` say, replacing earlier setups
    (`debug` adds a line per step executed)."""
    handler = StderrHandler()
    handler.addFilter(ActivityContextFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
        # The context is in the JSON fields: don't also append it to every message.
        from temporalio import workflow

        workflow.logger.workflow_info_on_message = False
        activity.logger.activity_info_on_message = False
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    quiet_leaky_loggers()
