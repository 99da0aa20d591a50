"""Keys as settings carry them: encryption keys parsed from base64 and named by a short public
id; the per-purpose signing keys derived from `CAIRN_SECRET_KEY`."""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import lru_cache
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class EncryptionKeyError(ValueError):
    """`CAIRN_ENCRYPTION_KEY` is not a usable key."""


def parse_encryption_key(value: str, setting: str = "CAIRN_ENCRYPTION_KEY") -> bytes:
    """The 32 bytes of a base64 key (standard or URL-safe alphabet), or a clear error."""
    text = value.strip()
    try:
        key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionKeyError(
            f"{setting} is not valid base64; make one with `openssl rand -base64 32`"
        ) from None
    if len(key) != 32:
        raise EncryptionKeyError(
            f"{setting} must be 32 bytes in base64 (AES-256), got {len(key)} bytes; "
            "make one with `openssl rand -base64 32`"
        )
    return key


def key_id(key: bytes) -> str:
    """A short public name for a key, stored with each payload so keys can be rotated later."""
    return hashlib.sha256(b"cairn-key-id:" + key).hexdigest()[:12]


# --- keys derived from CAIRN_SECRET_KEY ------------------------------------------------------

# One key per job, so holding one lets you do that job only: a webhook receiver (which must hold
# the webhook key to verify) or a website backend (the site key) cannot mint tracking tokens,
# visitor cookies or the codec path, and no key's signatures verify as another's.
Purpose = Literal["tracking", "visitor", "codec", "webhook", "site"]
# The keys others must hold, shown by `cairn keys show`; the rest never leave Cairn.
SHARED_PURPOSES: tuple[Purpose, ...] = ("webhook", "site")


@lru_cache(maxsize=64)
def derive_key(secret: str, purpose: Purpose) -> bytes:
    """The 32-byte key for `purpose` derived from `secret` (HKDF-SHA256, the purpose as info)."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"cairn secret key",
        info=f"cairn {purpose} key v1".encode(),
    )
    return hkdf.derive(secret.encode())


def shared_key_text(secret: str, purpose: Purpose) -> str:
    """A derived key as the text given to others (hex); they use its ASCII bytes as HMAC key."""
    return derive_key(secret, purpose).hex()
