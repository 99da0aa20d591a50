"""Payload encryption: what Cairn puts in Temporal (inputs, results, signals, memos, failure
messages) is AES-256-GCM encrypted when `CAIRN_ENCRYPTION_KEY` is set, so contact data never sits
in Temporal's history in clear. Search attributes are indexed by the server and cannot be
encrypted: they hold ids only.

The key is 32 random bytes in base64 (`openssl rand -base64 32`): a real key, not a passphrase,
so nothing needs stretching and a typo'd or truncated key fails at startup instead of silently
encrypting with something else.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from core.keys import key_id, parse_encryption_key

if TYPE_CHECKING:
    from core.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12  # GCM's standard 96-bit nonce, random per payload
TAG_BYTES = 16


class PayloadDecryptionError(ValueError):
    """An encrypted payload this codec cannot open (another key, or altered)."""


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each whole serialized payload (its metadata too: the type names)."""

    def __init__(self, key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        self._key_id = key_id(key)
        # Payloads name the key that sealed them: after a rotation, runs sealed with an old
        # key still read, and what they write from then on is sealed with the new one.
        self._ciphers = {key_id(k): AESGCM(k) for k in (*old_keys, key)}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self._key_id]
        sealed = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            data = nonce + cipher.encrypt(nonce, payload.SerializeToString(), None)
            sealed.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self._key_id.encode()},
                    data=data,
                )
            )
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(payload) for payload in payloads]

    def _open(self, payload: Payload) -> Payload:
        # Written before the key was set: read as is, so old histories still replay.
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        sealed_with = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(sealed_with)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key {sealed_with!r}, this process has "
                f"{sorted(self._ciphers)!r}: add the key that wrote it to "
                "CAIRN_ENCRYPTION_OLD_KEYS (or make it CAIRN_ENCRYPTION_KEY again)"
            )
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError("encrypted payload too short: it was truncated")
        nonce, ciphertext = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            return Payload.FromString(cipher.decrypt(nonce, ciphertext, None))
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload sealed with key {sealed_with!r} does not decrypt: it was altered"
            ) from None


def encryption_codec(settings: Settings) -> EncryptionCodec | None:
    """The codec for `settings`' keys; None when encryption is off."""
    if not settings.encryption_key:
        return None
    old_keys = [parse_encryption_key(k) for k in settings.encryption_old_keys.split(",") if k]
    return EncryptionCodec(parse_encryption_key(settings.encryption_key), old_keys)


def data_converter(settings: Settings) -> DataConverter:
    """Cairn's data converter: pydantic JSON, encrypted when a key is configured.

    Every Temporal client Cairn connects uses it (worker, API, CLI, launcher, bench, tests)."""
    codec = encryption_codec(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        # Failure messages and stack traces can quote contact data: into the payload with them.
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def ui_codec_key(settings: Settings) -> str:
    """The secret path segment of the Temporal UI's codec endpoint (see api/routes/codec.py).

    Derived from `secret_key` (a key of its own, core/keys.py) so it needs no setting of its own
    and changes with it; no key handed to others (webhook, site) leads to it."""
    return settings.signing_key("codec").hex()[:32]


def ui_codec_endpoint(settings: Settings) -> str:
    """What the Temporal UI is given as `--ui-codec-endpoint`; it POSTs to `<this>/decode`."""
    return f"{settings.public_url.rstrip('/')}/codec/ui/{ui_codec_key(settings)}"
