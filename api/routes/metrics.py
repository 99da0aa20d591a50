"""`GET /metrics`: the API's requests in Prometheus' text format, behind the API token (as
`Api-Token` or `Authorization: Bearer`, which Prometheus sends) unless CAIRN_METRICS_PUBLIC.

Two series, kept by a middleware per app (tests build several apps in one process): requests
by method, route template and status, and the seconds they took. Written by hand: the format
is four lines of text, not worth a dependency.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api.deps import UNAUTHORIZED, ServicesDep, token_matches
from domain.outbox import dead_letter_count

router = APIRouter(tags=["health"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = tuple[str, str, str]  # method, route, status


class RequestMetrics:
    """Counts and total duration of requests by (method, route template, status)."""

    def __init__(self) -> None:
        self.count: defaultdict[Labels, int] = defaultdict(int)
        self.seconds: defaultdict[Labels, float] = defaultdict(float)

    def observe(self, labels: Labels, seconds: float) -> None:
        self.count[labels] += 1
        self.seconds[labels] += seconds

    def exposition(self) -> str:
        lines = [
            "# HELP cairn_api_requests_total API requests by method, route and status.",
            "# TYPE cairn_api_requests_total counter",
        ]
        lines += [
            f"cairn_api_requests_total{_labels(k)} {v}" for k, v in sorted(self.count.items())
        ]
        lines += [
            "# HELP cairn_api_request_seconds Time spent answering API requests.",
            "# TYPE cairn_api_request_seconds summary",
        ]
        for key in sorted(self.count):
            lines.append(f"cairn_api_request_seconds_sum{_labels(key)} {self.seconds[key]:.6f}")
            lines.append(f"cairn_api_request_seconds_count{_labels(key)} {self.count[key]}")
        return "\n".join(lines) + "\n"


def _labels(key: Labels) -> str:
    method, route, status = (v.replace("\\", "\\\\").replace('"', '\\"') for v in key)
    return f'{{method="{method}",route="{route}",status="{status}"}}'


def route_template(request: Request) -> str:
    """The path with its parameters named (`/api/v1/contacts/{contact_id}`): one series per
    route, not one per contact. Rebuilt from the path because the matched route object of an
    included router carries its path without the router's prefix."""
    segments = request.url.path.split("/")
    for name, value in request.path_params.items():
        if str(value) in segments:
            segments[segments.index(str(value))] = f"{{{name}}}"
    return "/".join(segments)


def install_metrics(app: FastAPI) -> None:
    """Count every request of `app` and serve the counts at /metrics."""
    metrics = app.state.request_metrics = RequestMetrics()

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = route_template(request) if "route" in request.scope else "unmatched"
        metrics.observe(
            (request.method, route, str(response.status_code)), time.perf_counter() - started
        )
        return response

    app.include_router(router)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    settings = services.settings
    if not settings.metrics_public:
        bearer = request.headers.get("authorization", "")
        given = request.headers.get("api-token") or (
            bearer[7:] if bearer[:7].lower() == "bearer " else None
        )
        if not token_matches(given, settings.api_token):
            # Route names and traffic are the API's map and activity: not for strangers.
            return JSONResponse({"detail": UNAUTHORIZED}, status_code=401)
    text = request.app.state.request_metrics.exposition()
    try:
        async with services.db.read() as session:
            dead = await dead_letter_count(session)
    except Exception:
        dead = None  # the database does not answer: no sample rather than a wrong one
    if dead is not None:
        text += (
            "# HELP cairn_outbox_dead_letters Outbox rows set aside after failing every "
            "delivery.\n# TYPE cairn_outbox_dead_letters gauge\n"
            f"cairn_outbox_dead_letters {dead}\n"
        )
    return Response(text, media_type=CONTENT_TYPE)
