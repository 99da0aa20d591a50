"""Cairn Studio, the web app (docs/studio.md), served by the API at `/` from its built bundle.

`/assets/*` are the bundle's hashed files; any other GET that is not one of the API's own
paths answers `index.html`, so the app's addresses (`/automations/welcome`, `/contacts/42`)
can be opened and reloaded. Without a bundle (`make ui` needs Node.js >= 20), `/` explains how
to build it and the API works as before.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

# Paths the Studio never answers: the API, tracking, the codec, health, docs, metrics.
RESERVED_PREFIXES = (
    "/api",
    "/t/",
    "/unsubscribe",
    "/codec",
    "/healthz",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/site.js",
    "/metrics",
    "/assets/",
)
# Hashed file names: a new build gets new names, so a browser may keep these for a year.
ASSET_CACHE = "public, max-age=31536000, immutable"
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}

NO_BUNDLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cairn Studio is not built</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;
line-height:1.5;color:#0f172a}code{background:#f1f5f9;padding:0 .25rem}</style></head>
<body><h1>Cairn Studio is not built</h1>
<p>The API is running; the Studio, its web app, needs a one-time build:</p>
<ol><li>install <a href="https://nodejs.org/">Node.js</a> 20 or newer;</li>
<li>run <code>make ui</code> (or <code>make run</code>, which builds it first) and reload.</li></ol>
<p>The API itself answers under <code>/api/v1</code>; its reference is at <a href="/docs">/docs</a>.
See docs/studio.md.</p></body></html>
"""


def _bundle(request: Request) -> Path:
    return Path(request.app.state.ui_dir)


def _index(request: Request) -> Response:
    index = _bundle(request) / "index.html"
    if not index.is_file():
        return HTMLResponse(NO_BUNDLE, headers={**HEADERS, "Cache-Control": "no-cache"})
    return FileResponse(index, headers={**HEADERS, "Cache-Control": "no-cache"})


class _StudioRoute(Route):
    """A GET route that never matches the API's own paths: they keep their own 404 and 405."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if scope.get("type") == "http" and (
            path.startswith(RESERVED_PREFIXES) or path in ("/t", "/api")
        ):
            return Match.NONE, {}
        return super().matches(scope)


async def asset(request: Request) -> Response:
    folder = (_bundle(request) / "assets").resolve()
    path = (folder / request.path_params["name"]).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise HTTPException(status_code=404, detail="no such file in the Studio's bundle")
    return FileResponse(path, headers={**HEADERS, "Cache-Control": ASSET_CACHE})


async def app_page(request: Request) -> Response:
    return _index(request)


def install_studio(app: FastAPI, ui_dir: Path) -> None:
    """Serve the Studio; call last, after every other route: its fallback matches any GET."""
    app.state.ui_dir = ui_dir
    app.router.routes.append(Route("/assets/{name:path}", asset, methods=["GET"]))
    app.router.routes.append(_StudioRoute("/{path:path}", app_page, methods=["GET"]))
