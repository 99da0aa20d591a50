"""Public tracking routes, without the API token (docs/integrations.md#tracking): they are opened from emails and websites.

Every route is driven by a signed token (workflows/tracking.py): a forged or altered one is a 404,
and the click redirect's target comes only from its token, so it cannot be made an open redirect.
Opens, clicks and unsubscribes are committed with their outbox rows, then the dispatcher is kicked:
waiting runs wake and the email_opened / email_clicked triggers fire (docs/architecture.md#the-outbox).
"""

from __future__ import annotations

import html as html_lib
import json
import re
import time
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Services, ServicesDep
from api.errors import ERROR_ANSWERS, answers, invalid
from api.routes.site import Url, record_visit
from api.schemas.site import SiteMessagePublic
from core.settings import Settings
from store import contacts as contact_store
from store.conditions import is_subset
from store.contacts import InvalidChange
from store.models import utcnow
from workflows.tracking import Kind, Token, email_signature_holds, sign, verify

router = APIRouter(tags=["tracking"])
# Opened by anyone: an unknown or forged token is a 404; a database down, a 503.
BY_TOKEN = answers(404, 503)
BY_LIMITED_TOKEN = answers(404, 429, 503)

VISITOR_COOKIE = "cairn_contact"
VISITOR_COOKIE_SECONDS = 365 * 24 * 3600
MAX_VISIT_BODY = 8 * 1024
NO_STORE = {"Cache-Control": "no-store, max-age=0"}
# The smallest transparent GIF: what every open pixel answers.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


# Opens and clicks of one message (and link) repeated within this window are recorded once.
REPEAT_WINDOW = timedelta(hours=1)


# User-Agents of link scanners (mail security gateways, previewers) and of scripts: a click
# with one of them, or with none, is a suspected bot. Browsers name none of these words.
SCANNER_AGENTS = re.compile(
    r"barracuda|mimecast|proofpoint|urldefense|safelinks|forcepoint|messagelabs|symantec|"
    r"ironport|trend ?micro|sophos|fireeye|trellix|zscaler|palo ?alto|checkpoint|fortinet|"
    r"fortiguard|avanan|cloudmark|spamtitan|libraesva|hornetsecurity|bingpreview|"
    r"headlesschrome|phantomjs|(?:bot|crawler|spider|scanner)\b|^curl/|^wget/|"
    r"go-http-client|python-requests|^java/|^okhttp",
    re.IGNORECASE,
)


def _token(services: Services, text: str, kind: Kind) -> Token:
    token = verify(text, services.settings.verifying_keys("tracking"), kind=kind)
    if token is None:
        raise HTTPException(status_code=404, detail="unknown link")
    return token


def scanner_agent(user_agent: str | None) -> bool:
    """Whether a User-Agent is a known link scanner's or a script's (or missing)."""
    return not (user_agent or "").strip() or SCANNER_AGENTS.search(user_agent or "") is not None


async def _suspected_bot_click(
    session: AsyncSession,
    settings: Settings,
    token: Token,
    data: dict[str, Any],
    user_agent: str | None,
) -> bool:
    """A scanner's User-Agent; or the email sent (its email_sent event) no more than
    CAIRN_TRACKING_BOT_CLICK_SECONDS ago; or another link of the same email clicked no more
    than CAIRN_TRACKING_BOT_BURST_SECONDS ago (no person clicks two links of one email that
    fast: a gateway fetching every link does). The earlier clicks of such a burst are marked
    too, so the `clicked` condition skips them from now on."""
    now = utcnow()
    message = {"automation": token.automation, "step": token.step}
    suspected = scanner_agent(user_agent)
    if not suspected and settings.tracking_bot_click_seconds > 0:
        sent = await contact_store.events_since(
            session,
            token.contact,
            "email_sent",
            since=now - timedelta(seconds=settings.tracking_bot_click_seconds),
        )
        suspected = any(is_subset(message, e.data) for e in sent)
    if settings.tracking_bot_burst_seconds > 0:
        others = [
            e
            for e in await contact_store.events_since(
                session,
                token.contact,
                "email_clicked",
                since=now - timedelta(seconds=settings.tracking_bot_burst_seconds),
            )
            if is_subset(message, e.data) and e.data.get("link") != data.get("link")
        ]
        for earlier in others:
            if not earlier.data.get("suspected_bot"):
                earlier.data = {**earlier.data, "suspected_bot": True}
        suspected = suspected or bool(others)
    return suspected


async def _record(
    services: Services,
    token: Token,
    event: str,
    data: dict[str, Any],
    *,
    user_agent: str | None = None,
) -> None:
    """An email event for the token's contact (nothing when the contact was deleted since),
    once per REPEAT_WINDOW: a pixel loaded again (a mail client, a replay) or a link clicked
    twice neither grows the events table nor fires the triggers again. A click suspected to
    be a bot's is recorded with `"suspected_bot": true`."""
    data = {"automation": token.automation, "step": token.step, **data}
    async with services.db.write() as session:
        if await contact_store.get_contact(session, token.contact) is None:
            return
        if await contact_store.recent_event(
            session, token.contact, event, data, since=utcnow() - REPEAT_WINDOW
        ):
            return
        if event == "email_clicked" and await _suspected_bot_click(
            session, services.settings, token, data, user_agent
        ):
            data = {**data, "suspected_bot": True}
        await contact_store.record_event(session, token.contact, event, data)
    services.dispatcher.kick()


@router.get(
    "/t/o/{token}",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "a 1×1 GIF"}, **BY_TOKEN},
)
async def email_opened(token: str, request: Request, services: ServicesDep) -> Response:
    """The open pixel: records `email_opened`, answers a 1×1 transparent GIF (over the rate
    limits too, then recording nothing)."""
    opened = _token(services, token, "open")
    if services.tracking_limits.allow(request, token):
        await _record(services, opened, "email_opened", {})
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get(
    "/t/c/{token}",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "to the link the token signs"}, **BY_TOKEN},
)
async def email_clicked(token: str, request: Request, services: ServicesDep) -> Response:
    """The click redirect: records `email_clicked` with the link, then 302 to the signed target
    (over the rate limits too, then recording nothing). A click that looks like a link
    scanner's is recorded with `"suspected_bot": true`, and redirected the same.

    Also sets the `cairn_contact` cookie, so the website's site.js knows who is visiting."""
    clicked = _token(services, token, "click")
    if not clicked.link:
        raise HTTPException(status_code=404, detail="unknown link")
    if services.tracking_limits.allow(request, token):
        await _record(
            services,
            clicked,
            "email_clicked",
            {"link": clicked.link},
            user_agent=request.headers.get("user-agent"),
        )
    response = RedirectResponse(clicked.link, status_code=302, headers=NO_STORE)
    response.set_cookie(
        VISITOR_COOKIE,
        sign(Token("visitor", clicked.contact), services.settings.signing_key("visitor")),
        max_age=VISITOR_COOKIE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=services.settings.public_url.startswith("https://"),
    )
    return response


def _within_token_limit(services: Services, token: str) -> None:
    """Unsubscribing is limited per token only: mail providers send their users' one-click
    unsubscribes from a few addresses, and none of them may be lost to an address limit."""
    if not services.tracking_limits.by_token.allow(token):
        raise HTTPException(status_code=429, detail="too many requests: try again in a minute")


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html_lib.escape(title)}</title></head>"
        '<body style="font:16px/1.5 sans-serif;max-width:32em;margin:4em auto;padding:0 1em">'
        f"<h1>{html_lib.escape(title)}</h1>{body}</body></html>",
        headers=NO_STORE,
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, responses=BY_LIMITED_TOKEN)
async def unsubscribe_page(token: str, services: ServicesDep) -> HTMLResponse:
    """A confirmation page. Unsubscribing itself is the POST: link scanners in mail systems
    fetch every GET link, and must not unsubscribe anyone by doing so (RFC 8058 §4)."""
    _token(services, token, "unsubscribe")
    _within_token_limit(services, token)
    return _page(
        "Unsubscribe",
        "<p>Stop receiving these emails?</p>"
        f'<form method="post" action="{html_lib.escape(token)}">'
        '<button type="submit" style="font-size:16px;padding:.5em 1.5em">Unsubscribe</button>'
        "</form>",
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, responses=BY_LIMITED_TOKEN)
async def unsubscribe(token: str, services: ServicesDep) -> HTMLResponse:
    """One-click (RFC 8058: the mail client POSTs `List-Unsubscribe=One-Click`) and the page's
    button: every active list of the contact becomes unsubscribed."""
    leaving = _token(services, token, "unsubscribe")
    _within_token_limit(services, token)
    message = {"automation": leaving.automation, "step": leaving.step}
    async with services.db.write() as session:
        if await contact_store.get_contact(session, leaving.contact) is not None:
            lists = await contact_store.unsubscribe_everywhere(session, leaving.contact)
            # A replay (the page's button and the mail client's one-click, a retry) changes no
            # list: it writes nothing when this email's unsubscribe is recorded already.
            replayed = not lists and any(
                is_subset(message, e.data)
                for e in await contact_store.events_since(
                    session,
                    leaving.contact,
                    "email_unsubscribed",
                    since=utcnow() - REPEAT_WINDOW,
                )
            )
            if not replayed:
                await contact_store.record_event(
                    session, leaving.contact, "email_unsubscribed", {**message, "lists": lists}
                )
    services.dispatcher.kick()
    return _page("Unsubscribed", "<p>You will not receive these emails any more.</p>")


# --- site tracking from a browser ----------------------------------------------------------


class PublicVisitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    email: Annotated[str | None, Field(max_length=320)] = None
    # `<expires>.<hex HMAC>` of the email with the site key, computed by the website's backend:
    # proves the website, not whoever calls this route, says who the visitor is (until expires).
    email_signature: Annotated[str | None, Field(max_length=128)] = None


class ShownMessage(BaseModel):
    id: int
    html: str


class ShownMessages(BaseModel):
    messages: list[ShownMessage]


def _configured_origin(request: Request, services: Services) -> bool:
    """Whether the calling page is one of CAIRN_SITE_ORIGINS' websites (no Origin: not a
    cross-origin browser call, e.g. a same-origin page or a server)."""
    origin = request.headers.get("origin")
    allowed = {o.strip() for o in services.settings.site_origins.split(",") if o.strip()}
    return origin is None or origin in allowed


def _cors(request: Request, response: Response, services: Services) -> Response:
    """Let the website read the answer. A configured origin gets credentials (the visitor
    cookie); with none configured any origin may read answers to signed emails, never with
    credentials, so no other website can read what the cookie's contact is shown."""
    origin = request.headers.get("origin")
    configured = bool(services.settings.site_origins.strip())
    if origin and (not configured or _configured_origin(request, services)):
        response.headers["Access-Control-Allow-Origin"] = origin
        if configured:
            response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Vary"] = "Origin"
    return response


@router.options("/t/visit", status_code=204, response_class=Response)
async def visit_preflight(request: Request, services: ServicesDep) -> Response:
    return _cors(request, Response(status_code=204), services)


@router.post(
    "/t/visit",
    response_model=ShownMessages,
    responses={
        **answers(413, 422, 429, 503),
        403: {**ERROR_ANSWERS[404], "description": "an email without a valid email_signature"},
        200: {"description": "the site messages to show the visitor"},
    },
)
async def public_visit(
    request: Request,
    services: ServicesDep,
    cairn_contact: Annotated[str | None, Cookie()] = None,
) -> Response:
    """What site.js calls: `{"url", "email"?, "email_signature"?}` as JSON (sent as text/plain,
    so browsers need no preflight). The visitor is the contact of the email given, else the
    `cairn_contact` cookie's; unknown visitors are not recorded and see no message.

    An email with a wrong or expired signature is refused (403); one without a signature too
    unless CAIRN_SITE_REQUIRE_SIGNED_EMAIL is off (then anyone knowing an email can act as it).
    The cookie counts only from a configured origin (CAIRN_SITE_ORIGINS) or without an Origin:
    any other website could otherwise act as the visitor whose browser sends it."""
    if not services.tracking_limits.allow(request, cairn_contact):
        raise HTTPException(status_code=429, detail="too many requests: try again in a minute")
    raw = await request.body()
    if len(raw) > MAX_VISIT_BODY:
        raise HTTPException(status_code=413, detail="visit body too large")
    try:
        body = PublicVisitIn.model_validate_json(raw or b"{}")
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_url=False, include_context=False)) from None
    settings = services.settings
    if body.email is not None:
        if body.email_signature is not None:
            keys = [settings.shared_key("site"), *settings.old_shared_keys("site")]
            if not email_signature_holds(body.email, body.email_signature, keys, time.time()):
                raise HTTPException(
                    status_code=403, detail="email_signature does not match or has expired"
                )
        elif settings.site_require_signed_email:
            raise HTTPException(
                status_code=403,
                detail="an email needs its email_signature (CAIRN_SITE_REQUIRE_SIGNED_EMAIL)",
            )
    visitor = None
    # An email the site passes names who is logged in.
    if cairn_contact and not body.email and _configured_origin(request, services):
        visitor = verify(cairn_contact, settings.verifying_keys("visitor"), kind="visitor")
    messages: list[SiteMessagePublic] = []
    try:
        if visitor is not None or body.email:
            recorded = await record_visit(
                services,
                body.url,
                contact_id=visitor.contact if visitor else None,
                email=body.email,
            )
            messages = (recorded[1] or []) if recorded else []
    except InvalidChange as err:
        raise invalid(str(err), "email") from None
    shown = [{"id": m.id, "html": m.html} for m in messages]
    return _cors(
        request, Response(json.dumps({"messages": shown}), media_type="application/json"), services
    )


SITE_JS = r"""/* Cairn site tracking: records the visit, shows the contact's site messages. */
(function () {
  var script = document.currentScript;
  var base = script.src.replace(/\/site\.js(\?.*)?$/, "");
  var config = window.cairn || {};
  var visit = { url: location.href.split("#")[0] };
  if (config.email) visit.email = config.email;
  if (config.emailSignature) visit.email_signature = config.emailSignature;
  fetch(base + "/t/visit", {
    method: "POST",
    credentials: "include",
    headers: { "Content-Type": "text/plain" },
    body: JSON.stringify(visit)
  })
    .then(function (r) { return r.ok ? r.json() : { messages: [] }; })
    .then(function (answer) { (answer.messages || []).forEach(show); })
    .catch(function () {});

  function show(message, i) {
    var box = document.createElement("div");
    box.className = "cairn-site-message";
    box.setAttribute("role", "dialog");
    box.style.cssText = "position:fixed;right:16px;bottom:" + (16 + i * 12) + "px;" +
      "max-width:360px;z-index:2147483647;background:#fff;color:#222;border:1px solid #ddd;" +
      "border-radius:8px;padding:16px 36px 16px 16px;box-shadow:0 4px 16px rgba(0,0,0,.15);" +
      "font:14px/1.4 sans-serif";
    box.innerHTML = message.html;
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", "Close");
    close.textContent = "\u00d7";
    close.style.cssText = "position:absolute;top:4px;right:8px;border:0;background:none;" +
      "font-size:20px;cursor:pointer";
    close.onclick = function () { box.remove(); };
    box.appendChild(close);
    document.body.appendChild(box);
  }
})();
"""


@router.get(
    "/site.js",
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}, "description": "site.js"}},
)
async def site_js() -> Response:
    """The script a website embeds (see docs/integrations.md#site-messages)."""
    return Response(
        SITE_JS,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )
