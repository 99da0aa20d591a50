"""Temporal's codec-server protocol, so the Temporal UI and CLI can read encrypted runs.

`POST /codec/encode` and `/codec/decode` take and answer `{"payloads": [...]}` in proto3 JSON
(bytes as base64); they are token-protected like the rest of the API (`Api-Token` header, or
`Authorization: Bearer <token>` as `temporal --codec-auth` sends it).

The Temporal UI cannot send that token: the embedded dev server's UI takes only an endpoint
(`--ui-codec-endpoint`), and the UI's own options (`passAccessToken`, `includeCredentials`)
forward its OIDC login or cookies, which the dev server has neither of. So the UI is given
`/codec/ui/<key>`, where `<key>` is derived from `CAIRN_SECRET_KEY` for this use only (no key
handed to webhook receivers or websites leads to it): the path is the credential,
accepted in place of the header. Whoever can open the Temporal UI can read its runs anyway; the
key keeps everyone else (any page in a browser, anything on the network) out. It changes with
the secret key.

Served as a small app of its own mounted at `/codec`: its CORS (the Temporal UI's origin, with
the preflight the UI's JSON POSTs need) applies to these routes only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel, BeforeValidator, ConfigDict
from starlette.middleware.cors import CORSMiddleware
from temporalio.api.common.v1 import Payload

from core.codec import EncryptionCodec, PayloadDecryptionError, encryption_codec, ui_codec_key
from core.settings import Settings

Transform = Callable[[list[Payload]], Awaitable[list[Payload]]]


def _base64(value: str) -> bytes:
    """Strict base64 (standard or URL-safe, padding optional): garbage is an error, not bytes."""
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise ValueError("not valid base64") from None


Base64 = Annotated[bytes, BeforeValidator(lambda v: _base64(v) if isinstance(v, str) else v)]


class PayloadJson(BaseModel):
    """One payload in proto3 JSON: metadata values and data base64-encoded."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Base64] = {}
    data: Base64 = b""

    @classmethod
    def of(cls, payload: Payload) -> dict[str, Any]:
        return {
            "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
            "data": base64.b64encode(payload.data).decode(),
        }


class PayloadsJson(BaseModel):
    """The codec-server protocol's body, request and answer alike."""

    payloads: list[PayloadJson]


def ui_origins(settings: Settings) -> list[str]:
    """The Temporal UI's origin; on loopback both spellings, since the browser sends the one typed."""
    url = urlsplit(settings.temporal_ui_url)
    origin = f"{url.scheme}://{url.netloc}"
    if url.hostname in {"localhost", "127.0.0.1"}:
        port = f":{url.port}" if url.port else ""
        return [f"{url.scheme}://localhost{port}", f"{url.scheme}://127.0.0.1{port}"]
    return [origin]


def codec_app(settings: Settings) -> FastAPI:
    """The `/codec` sub-application; mount it on the API."""
    codec = encryption_codec(settings)
    app = FastAPI(title="Cairn codec server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=ui_origins(settings),
        allow_methods=["POST"],
        allow_headers=["Content-Type", "X-Namespace", "Authorization", "Api-Token"],
        # Harmless (no cookie is ever a credential here) and needed if the UI is set to send them.
        allow_credentials=True,
    )

    # Dependencies, not calls in the handlers: a stranger gets 401 before any look at the body.
    def require_token(
        api_token: Annotated[str | None, Header(alias="Api-Token")] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> None:
        scheme, _, bearer = (authorization or "").partition(" ")
        given = api_token or (bearer.strip() if scheme.lower() == "bearer" else "")
        # Constant-time comparison: the answer's timing says nothing about the token.
        if not given or not hmac.compare_digest(given.encode(), settings.api_token.encode()):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong Api-Token header (or Authorization: Bearer <token>)",
            )

    def require_ui_key(key: str) -> None:
        if not hmac.compare_digest(key.encode(), ui_codec_key(settings).encode()):
            raise HTTPException(status_code=401, detail="wrong codec key in the path")

    async def transform(
        body: PayloadsJson, pick: Callable[[EncryptionCodec], Transform]
    ) -> dict[str, Any]:
        if codec is None:
            raise HTTPException(
                status_code=409,
                detail="payload encryption is off (CAIRN_ENCRYPTION_KEY is not set): "
                "Temporal holds payloads in clear, there is nothing to encode or decode",
            )
        given = [Payload(metadata=p.metadata, data=p.data) for p in body.payloads]
        try:
            payloads = await pick(codec)(given)
        except PayloadDecryptionError as err:
            raise HTTPException(status_code=400, detail=str(err)) from None
        return {"payloads": [PayloadJson.of(p) for p in payloads]}

    by_token, by_ui_key = [Depends(require_token)], [Depends(require_ui_key)]

    @app.post("/encode", dependencies=by_token)
    @app.post("/ui/{key}/encode", dependencies=by_ui_key)
    async def encode(body: PayloadsJson) -> dict[str, Any]:
        return await transform(body, lambda c: c.encode)

    @app.post("/decode", dependencies=by_token)
    @app.post("/ui/{key}/decode", dependencies=by_ui_key)
    async def decode(body: PayloadsJson) -> dict[str, Any]:
        return await transform(body, lambda c: c.decode)

    return app
