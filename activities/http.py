"""What every activity that calls an HTTP provider shares: timeouts and how failures are reported.

A failure is either worth retrying (Temporal retries the activity with the REMOTE policy, or after
the delay the provider asked for) or not (the step is recorded `failed` and the run follows the
step's `on_error`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

# Connect within 5 s; no single read, write or pool wait longer than 30 s; and, by `deadline()`,
# no whole exchange (a slow trickle of bytes, redirects included) longer than TOTAL_SECONDS.
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
TOTAL_SECONDS = 30.0
# A provider asking for a longer pause is still retried, but not later than this.
MAX_RETRY_AFTER = timedelta(minutes=10)
BODY_EXCERPT = 300


def retry_after(response: httpx.Response, now: datetime | None = None) -> timedelta | None:
    """The delay a `Retry-After` header asks for (seconds or an HTTP date), capped; None if absent."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = max(when - (now or datetime.now(UTC)), timedelta(0))
    return min(delay, MAX_RETRY_AFTER)


def deadline() -> asyncio.Timeout:
    """The bound on one whole exchange with a provider: `async with deadline(): ...` raises
    TimeoutError after TOTAL_SECONDS (read when the exchange starts, so a test may shorten it)."""
    return asyncio.timeout(TOTAL_SECONDS)


def timed_out(what: str, *, kind: str) -> ApplicationError:
    """The retryable failure of an exchange `deadline()` cut short."""
    return retry_later(f"{what}: no answer within {TOTAL_SECONDS:g} s", kind=kind)


def retry_later(message: str, *, delay: timedelta | None = None, kind: str) -> ApplicationError:
    """A retryable failure; `delay` (e.g. from Retry-After) replaces the policy's backoff once."""
    count_provider_error(kind, retryable=True)
    return ApplicationError(message, type=kind, next_retry_delay=delay)


def give_up(message: str, *, kind: str) -> ApplicationError:
    """A failure no retry fixes: the step is recorded `failed` with this message."""
    count_provider_error(kind, retryable=False)
    return ApplicationError(message, type=kind, non_retryable=True)


def excerpt(response: httpx.Response) -> str:
    """The start of a response body, on one line, for error messages."""
    text = " ".join(response.text.split())
    return text[:BODY_EXCERPT] + ("…" if len(text) > BODY_EXCERPT else "")


def network_failure(err: httpx.HTTPError, what: str, *, kind: str) -> ApplicationError:
    """Timeouts and connection errors: always worth another attempt."""
    reason = type(err).__name__ + (f": {err}" if str(err) else "")
    return retry_later(f"{what}: {reason}", kind=kind)


def count_provider_error(kind: str, *, retryable: bool) -> None:
    """Provider errors by kind (the error type) and whether they are retried (Prometheus)."""
    if activity.in_activity():
        activity.metric_meter().create_counter(
            "cairn_provider_errors", "Errors from providers, by kind and retryability"
        ).add(1, {"kind": kind, "retryable": str(retryable).lower()})
