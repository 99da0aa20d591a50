"""The API serves the Studio at `/` (docs/studio.md): its bundle's files, the app's pages on
reload, and a page explaining how to build it when the bundle is missing. The API's own paths
keep answering as before."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cli.launcher import EmbeddedStack
from tests.helpers.stack import Stack, api_client, local_settings

INDEX = '<!doctype html><html><body><div id="root"></div><script src="/assets/app-1.js"></script>'


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "app-1.js").write_text("console.log('studio')")
    (tmp_path / "secret.txt").write_text("not for the web")
    return dist


async def _http(stack: Stack, ui_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = stack.settings.model_copy(update={"ui_dir": ui_dir})
    async with api_client(settings, stack.client, stack.db) as http:
        yield http


@pytest.fixture
async def site(stack: Stack, bundle: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _http(stack, bundle):
        yield http


@pytest.fixture
async def unbuilt(stack: Stack, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _http(stack, tmp_path / "no-such-dist"):
        yield http


async def test_the_app_pages_answer_index_html(site: httpx.AsyncClient) -> None:
    for path in ("/", "/automations", "/automations/welcome/edit", "/contacts/42", "/signin"):
        answer = await site.get(path, headers={"Api-Token": ""})
        assert answer.status_code == 200, path
        assert answer.text == INDEX, path
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cache-control"] == "no-cache"


async def test_assets_are_served_with_a_long_cache(site: httpx.AsyncClient) -> None:
    answer = await site.get("/assets/app-1.js")
    assert answer.status_code == 200
    assert answer.text == "console.log('studio')"
    assert "javascript" in answer.headers["content-type"]
    assert "immutable" in answer.headers["cache-control"]
    for missing in ("/assets/app-2.js", "/assets/%2e%2e/secret.txt", "/assets/..%2fsecret.txt"):
        refused = await site.get(missing)
        assert refused.status_code == 404, missing
        assert "not for the web" not in refused.text
    # A client that resolves the dots asks for /secret.txt: an app page, not the file.
    assert (await site.get("/assets/../secret.txt")).text == INDEX


async def test_the_api_paths_are_never_the_app(site: httpx.AsyncClient) -> None:
    unknown = await site.get("/api/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
    assert (await site.get("/api/v1/automations")).status_code == 200
    assert (await site.get("/openapi.json")).json()["info"]["title"] == "Cairn"
    assert (await site.get("/t/o/forged")).json() == {"detail": "unknown link"}
    for path in ("/api", "/api/v2/x", "/t/x", "/unsubscribe/x", "/healthz/x", "/metrics/x"):
        answer = await site.get(path)
        assert answer.status_code == 404, path
        assert INDEX not in answer.text, path
    # Writes to an app page are not app pages.
    assert (await site.post("/automations", json={})).status_code == 405
    # The app's routes are not in the API's reference.
    paths = (await site.get("/openapi.json")).json()["paths"]
    assert not any(p.startswith("/assets") or p == "/{path}" for p in paths)


async def test_without_a_bundle_the_root_explains_how_to_build_it(
    unbuilt: httpx.AsyncClient,
) -> None:
    for path in ("/", "/automations"):
        answer = await unbuilt.get(path)
        assert answer.status_code == 200
        assert "make ui" in answer.text and "Node.js" in answer.text and "20" in answer.text
    assert (await unbuilt.get("/assets/app-1.js")).status_code == 404
    assert (await unbuilt.get("/api/v1/automations")).status_code == 200


def test_the_launchers_box_shows_the_studio_first(tmp_path: Path, bundle: Path) -> None:
    for ui_dir, expected in ((bundle, "/"), (tmp_path / "none", "/ (not built: Node.js >= 20")):
        out = io.StringIO()
        settings = local_settings(tmp_path, ui_dir=ui_dir)
        EmbeddedStack(settings, out=out)._print_box()
        rows = [line.strip("│ ") for line in out.getvalue().splitlines() if "http" in line]
        first = rows[0]
        assert first.startswith("Studio"), out.getvalue()
        assert f"http://127.0.0.1:{settings.api_port}{expected}" in first, first
