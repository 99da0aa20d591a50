"""Deals. Their changes reach the deal's contacts' runs and triggers through the outbox,
exactly as a step's change does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.crm_references import (
    CrmInput,
    Currency,
    Fields,
    Id,
    Money,
    Name,
    Number,
    Ref,
    Status,
    Title,
    named_pipeline,
    named_stage,
    named_user,
    store_refusals,
)
from api.deps import ServicesDep
from api.errors import answers
from api.records import Limit, Offset, PathId, Records
from api.schemas.deals import DealPublic
from api.schemas.page import Page
from store import crm as crm_store
from store.models import Deal, Pipeline


async def _present(session: AsyncSession, deals: Sequence[Deal]) -> list[DealPublic]:
    return [DealPublic.of(details) for details in await crm_store.deal_details(session, deals)]


router = APIRouter(prefix="/deals", tags=["crm"])
DEALS = Records(Deal, "deal", _present)


class DealIn(CrmInput):
    title: Title
    description: Annotated[str | None, Field(max_length=10_000)] = None
    value: Money = 0
    currency: Currency
    pipeline: Ref
    stage: Name | None = Field(default=None, description="absent: the pipeline's first stage")
    owner: Ref | None = None
    status: Status = "open"
    fields: Fields = Field(default_factory=dict)
    scores: Annotated[dict[Name, Number], Field(max_length=100)] = Field(default_factory=dict)
    contacts: Annotated[list[Id], Field(max_length=1000)] = Field(default_factory=list)


class DealPatch(CrmInput):
    """Only what is given changes; `owner: null` removes the owner, a field set to null is
    removed, `scores` are set, `contacts` replaces the deal's contacts."""

    title: Title | None = None
    description: Annotated[str | None, Field(max_length=10_000)] = None
    value: Money | None = None
    currency: Currency | None = None
    pipeline: Ref | None = None
    stage: Name | None = None
    owner: Ref | None = None
    status: Status | None = None
    fields: Fields | None = None
    scores: Annotated[dict[Name, Number] | None, Field(max_length=100)] = None
    contacts: Annotated[list[Id] | None, Field(max_length=1000)] = None


@router.post("", status_code=201)
async def create_deal(body: DealIn, services: ServicesDep) -> DealPublic:
    async with services.db.write() as session:
        pipeline = await named_pipeline(session, body.pipeline)
        stage = await named_stage(session, pipeline, body.stage)
        owner = await named_user(session, body.owner, "owner") if body.owner is not None else None
        with store_refusals("contacts"):
            deal = await crm_store.create_deal(
                session,
                title=body.title,
                description=body.description,
                value=body.value,
                currency=body.currency,
                stage=stage,
                owner=owner,
                status=body.status,
                fields=body.fields,
                contact_ids=body.contacts,
            )
        for name, value in body.scores.items():
            await crm_store.adjust_deal_score(session, deal, name, "set", value)
        shown = await DEALS.show(session, deal)
    services.dispatcher.kick()
    return shown


@router.get("")
async def list_deals(
    services: ServicesDep,
    contact: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    pipeline: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    status: Status | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DealPublic]:
    """Deals, oldest first; filter by contact id, pipeline name and status."""
    async with services.db.read() as session:
        pipeline_id = None
        if pipeline is not None:
            found = await crm_store.find_pipeline(session, pipeline)
            if found is None:
                return Page(items=[], total=0, limit=limit, offset=offset)
            pipeline_id = found.id
        query = crm_store.deals_query(contact_id=contact, pipeline_id=pipeline_id, status=status)
        return await DEALS.page(session, query, limit, offset)


@router.get("/{deal_id}", responses=answers(404))
async def read_deal(deal_id: PathId, services: ServicesDep) -> DealPublic:
    async with services.db.read() as session:
        return await DEALS.read(session, deal_id)


@router.patch("/{deal_id}", responses=answers(404))
async def patch_deal(deal_id: PathId, body: DealPatch, services: ServicesDep) -> DealPublic:
    given = body.model_fields_set
    async with services.db.write() as session:
        deal = await DEALS.get(session, deal_id)
        changes: dict[str, Any] = {
            name: getattr(body, name)
            for name in ("title", "description", "value", "currency", "status", "fields")
            if name in given and (getattr(body, name) is not None or name == "description")
        }
        if "owner" in given:
            changes["owner"] = (
                await named_user(session, body.owner, "owner") if body.owner is not None else None
            )
        if body.pipeline is not None or body.stage is not None:
            pipeline = (
                await named_pipeline(session, body.pipeline)
                if body.pipeline is not None
                else await session.get(Pipeline, deal.pipeline_id)
            )
            if pipeline is None:
                raise HTTPException(
                    status_code=404, detail=f"pipeline {deal.pipeline_id} not found"
                )
            # A new pipeline without a stage: its first stage.
            changes["stage"] = await named_stage(session, pipeline, body.stage)
        with store_refusals():
            await crm_store.update_deal(session, deal, changes)
        if body.contacts is not None:
            with store_refusals("contacts"):
                await crm_store.set_deal_contacts(session, deal, body.contacts)
        for name, value in (body.scores or {}).items():
            await crm_store.adjust_deal_score(session, deal, name, "set", value)
        shown = await DEALS.show(session, deal)
    services.dispatcher.kick()
    return shown
