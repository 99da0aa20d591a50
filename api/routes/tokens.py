"""API tokens (docs/api.md#tokens): named, scoped, revocable; admin tokens only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from api.deps import ServicesDep
from api.errors import answers
from api.schemas.tokens import Scope, TokenCreated, TokenPublic
from store import api_tokens
from store.models import utcnow

router = APIRouter(prefix="/tokens", tags=["tokens"])

TokenName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TokenName
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(api_tokens.SCOPES))]


@router.post("", status_code=201, responses=answers(409))
async def create_token(body: TokenIn, services: ServicesDep) -> TokenCreated:
    """A new token with these scopes: the answer holds it, and nothing will again."""
    scopes = sorted(set(body.scopes))
    try:
        async with services.db.write() as session:
            if await api_tokens.by_name(session, body.name) is not None:
                raise HTTPException(409, f"a token named {body.name!r} exists (or existed)")
            record, token = await api_tokens.create(session, body.name, scopes)
            created = TokenPublic.of(record)
    except IntegrityError:  # the same name created at the same moment elsewhere
        raise HTTPException(409, f"a token named {body.name!r} exists (or existed)") from None
    return TokenCreated(**created.model_dump(), token=token)


@router.get("")
async def list_tokens(services: ServicesDep) -> list[TokenPublic]:
    """Every token, revoked ones included; never the tokens themselves."""
    async with services.db.read() as session:
        return [TokenPublic.of(record) for record in await api_tokens.listed(session)]


@router.delete("/{name}", responses=answers(404))
async def revoke_token(name: TokenName, services: ServicesDep) -> TokenPublic:
    """Revoke: from now on the token is refused (401). Its record stays, marked revoked."""
    async with services.db.write() as session:
        record = await api_tokens.by_name(session, name)
        if record is None:
            raise HTTPException(404, f"no token named {name!r}")
        await api_tokens.revoke(session, record, utcnow())
        return TokenPublic.of(record)
