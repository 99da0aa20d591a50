"""Signed tracking tokens: opens, clicks, unsubscribes and the site-visitor cookie (docs/integrations.md#tracking).

Pure code (hmac, base64, json), so both the sending activities (which build the links) and the
API (which verifies them) import it. A token is `<payload>.<signature>`, each base64url without
padding; the payload is a small JSON array of ids (and, for a click, the target URL, which is
what makes an open redirect impossible: the target is signed, never read from the query string).
No name or email is ever in a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Literal

Kind = Literal["open", "click", "unsubscribe", "visitor"]
_CODES: dict[str, Kind] = {"o": "open", "c": "click", "u": "unsubscribe", "v": "visitor"}
_KIND_CODES = {kind: code for code, kind in _CODES.items()}
SIGNATURE_BYTES = 16  # a 128-bit truncated HMAC-SHA256: forging one is out of reach
MAX_TOKEN_LENGTH = 4096  # longer is refused before any decoding


@dataclass(frozen=True)
class Token:
    """What a link stands for. `automation`/`step` are empty for the visitor cookie."""

    kind: Kind
    contact: int
    automation: str = ""
    step: str = ""
    link: str | None = None  # a click's target


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> bytes:
    # A purpose prefix: the same secret also signs webhooks, and those bytes must never verify here.
    message = b"cairn-tracking:" + payload.encode("ascii")
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def sign(token: Token, secret: str) -> str:
    """The URL-safe text of `token`, signed with `secret` (CAIRN_SECRET_KEY)."""
    fields: list[object] = [_KIND_CODES[token.kind], token.contact, token.automation, token.step]
    if token.link is not None:
        fields.append(token.link)
    payload = _b64(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_b64(_mac(secret, payload))}"


def verify(text: str, secret: str, *, kind: Kind) -> Token | None:
    """The token `text` stands for when its signature holds and it is of `kind`; else None."""
    if len(text) > MAX_TOKEN_LENGTH or text.count(".") != 1:
        return None
    payload, signature = text.split(".")
    try:
        # Compared as text: one signature has exactly one spelling (base64 would also decode
        # variants of the last character to the same bytes).
        if not hmac.compare_digest(signature.encode(), _b64(_mac(secret, payload)).encode()):
            return None
        fields = json.loads(_unb64(payload))
    except (binascii.Error, UnicodeError, ValueError):
        return None
    if not isinstance(fields, list) or len(fields) not in (4, 5):
        return None
    code, contact, automation, step, *rest = fields
    link = rest[0] if rest else None
    if (
        not isinstance(code, str)
        or _CODES.get(code) != kind
        or not isinstance(contact, int)
        or not isinstance(automation, str)
        or not isinstance(step, str)
        or not (link is None or isinstance(link, str))
    ):
        return None
    return Token(kind, contact, automation, step, link)


def email_signature(email: str, secret: str) -> str:
    """What a website's backend passes to site.js beside a logged-in visitor's email: the hex
    HMAC-SHA256 of the email (trimmed, lower-cased) keyed with CAIRN_SECRET_KEY."""
    return hmac.new(secret.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


def email_signature_holds(email: str, signature: str, secret: str) -> bool:
    expected = email_signature(email, secret)
    return hmac.compare_digest(signature.strip().lower().encode(), expected.encode())
