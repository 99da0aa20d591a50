"""What CRM request bodies hold, and the records they name: pipelines, stages and users by
name (users: email or name) or by id. One that does not exist is a 422 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import invalid
from store import crm as crm_store
from store.contacts import InvalidChange
from store.crm import Conflict, UnknownReference
from store.models import Pipeline, Stage, User

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Email = Annotated[str, Field(min_length=3, max_length=320)]
Id = Annotated[int, Field(ge=1, le=2**62)]
# A pipeline or user: its id, or its name (a user: email or name).
Ref = Id | Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
Money = Annotated[int, Field(ge=0, le=crm_store.MAX_DEAL_VALUE)]
Currency = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")]
Status = Literal["open", "won", "lost"]
Number = Annotated[float, Field(allow_inf_nan=False)]  # JSON has no inf or NaN to answer with
FieldValue = str | int | Number | bool | None
Fields = Annotated[dict[Name, FieldValue], Field(max_length=200)]
Url = Annotated[str, Field(max_length=2000, pattern=r"^https?://")]


class CrmInput(BaseModel):
    """A CRM request body: an unknown key is a 422, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


def invalid_field(field: str | None, message: str) -> HTTPException:
    return invalid(message, *([field] if field else []))


@contextmanager
def store_refusals(field: str | None = None) -> Iterator[None]:
    """The store's refusals as HTTP answers: a clash is 409, bad input 422 (at `field`)."""
    try:
        yield
    except Conflict as err:
        raise HTTPException(status_code=409, detail=str(err)) from None
    except (InvalidChange, UnknownReference) as err:
        raise invalid_field(field, str(err)) from None


async def named_pipeline(
    session: AsyncSession, ref: int | str, field: str = "pipeline"
) -> Pipeline:
    if isinstance(ref, int):
        pipeline = await session.get(Pipeline, ref)
    else:
        pipeline = await crm_store.find_pipeline(session, ref)
    if pipeline is None:
        raise invalid_field(field, f"pipeline {ref!r} does not exist")
    return pipeline


async def named_stage(
    session: AsyncSession, pipeline: Pipeline, name: str | None, field: str = "stage"
) -> Stage:
    """A stage of `pipeline` by name; None means the pipeline's first stage."""
    if name is None:
        return (await crm_store.stages_of(session, pipeline.id))[0]
    with store_refusals(field):
        return await crm_store.stage_named(session, pipeline, name)


async def named_user(session: AsyncSession, ref: int | str, field: str) -> User:
    if isinstance(ref, int):
        user = await session.get(User, ref)
        if user is None:
            raise invalid_field(field, f"user {ref} does not exist")
        return user
    with store_refusals(field):
        return await crm_store.user_named(session, ref)
