"""Signed tracking tokens: opens, clicks, unsubscribes and the site-visitor cookie (docs/integrations.md#tracking).

Pure code (hmac, base64, json), so both the sending activities (which build the links) and the
API (which verifies them) import it. A token is `<payload>.<signature>`, each base64url without
padding; the payload is a small JSON array of ids (and, for a click, the target URL, which is
what makes an open redirect impossible: the target is signed, never read from the query string).
No name or email is ever in a token.

Keys are bytes derived from CAIRN_SECRET_KEY per purpose (core/keys.py): the tracking key signs
opens, clicks and unsubscribes, the visitor key the cookie, and the site key (which the website's
backend holds) only email signatures, which are never tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
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


def _mac(key: bytes, payload: str) -> bytes:
    message = b"cairn-tracking:" + payload.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def sign(token: Token, key: bytes) -> str:
    """The URL-safe text of `token`, signed with `key` (the tracking or the visitor key)."""
    fields: list[object] = [_KIND_CODES[token.kind], token.contact, token.automation, token.step]
    if token.link is not None:
        fields.append(token.link)
    payload = _b64(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_b64(_mac(key, payload))}"


def verify(text: str, keys: Sequence[bytes], *, kind: Kind) -> Token | None:
    """The token `text` stands for when its signature holds with one of `keys` (the current key,
    then those of before a rotation) and it is of `kind`; else None."""
    if len(text) > MAX_TOKEN_LENGTH or text.count(".") != 1:
        return None
    payload, signature = text.split(".")
    try:
        # Compared as text: one signature has exactly one spelling (base64 would also decode
        # variants of the last character to the same bytes).
        signed = signature.encode()
        if not any(hmac.compare_digest(signed, _b64(_mac(k, payload)).encode()) for k in keys):
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


def _email_mac(email: str, expires: int, key: str) -> str:
    message = f"{expires}.{email.strip().lower()}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def email_signature(email: str, key: str, expires: int) -> str:
    """What a website's backend passes to site.js beside a logged-in visitor's email:
    `<expires>.<hex HMAC-SHA256 of "<expires>.<email trimmed, lower-cased>">`, keyed with the
    site key's text (`cairn keys show site`); `expires` in Unix seconds."""
    return f"{expires}.{_email_mac(email, expires, key)}"


def email_signature_holds(email: str, signature: str, keys: Sequence[str], now: float) -> bool:
    """Whether `signature` signs `email` with one of `keys` and has not expired at `now`."""
    expires_text, _, mac = signature.strip().lower().partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    valid = any(
        hmac.compare_digest(mac.encode(), _email_mac(email, expires, k).encode()) for k in keys
    )
    return valid and now < expires
