"""Encryption keys as settings carry them: parsed from base64, named by a short public id."""

from __future__ import annotations

import base64
import binascii
import hashlib


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
