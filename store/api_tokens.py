"""Named API tokens with scopes (docs/api.md#tokens): kept as SHA-256 digests, never as text."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import ApiToken

# What each scope lets a token call; `admin` is every route (CAIRN_API_TOKEN is an admin token).
SCOPES = ("admin", "events:write", "site")
PREFIX = "cairn_"  # recognisable in a leaked file or a secret scanner
MAX_LENGTH = 100  # longer is not one Cairn made (they are 49 characters)
# last_used_at is written at most this often per token: not one extra write per event posted.
LAST_USED_PRECISION = timedelta(minutes=1)


def new_token() -> str:
    """256 random bits: a SHA-256 digest of it needs no salt or slow hash to resist guessing."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


async def create(session: AsyncSession, name: str, scopes: Sequence[str]) -> tuple[ApiToken, str]:
    """The stored record and the token itself, which only the caller ever sees."""
    token = new_token()
    record = ApiToken(name=name, token_sha256=digest(token), scopes=list(scopes))
    session.add(record)
    await session.flush()
    return record, token


async def by_name(session: AsyncSession, name: str) -> ApiToken | None:
    return await session.scalar(select(ApiToken).where(ApiToken.name == name))


async def listed(session: AsyncSession) -> list[ApiToken]:
    return list(await session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


async def revoke(session: AsyncSession, record: ApiToken, now: datetime) -> None:
    """Kept, marked revoked (when, and what it could do, stay readable); its name stays taken."""
    if record.revoked_at is None:
        record.revoked_at = now


async def find_active(session: AsyncSession, token: str) -> ApiToken | None:
    """The unrevoked token whose digest this is. Looked up by digest: the lookup's timing says
    nothing about the token, only about a digest the caller cannot steer."""
    return await session.scalar(
        select(ApiToken).where(
            ApiToken.token_sha256 == digest(token), ApiToken.revoked_at.is_(None)
        )
    )


def last_use_is_stale(record: ApiToken, now: datetime) -> bool:
    return record.last_used_at is None or record.last_used_at < now - LAST_USED_PRECISION


async def mark_used(session: AsyncSession, token_id: int, now: datetime) -> None:
    await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id)
        .where(
            (ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < now - LAST_USED_PRECISION)
        )
        .values(last_used_at=now)
    )
