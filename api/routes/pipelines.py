"""Deal pipelines and their ordered stages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.crm_references import CrmInput, Name, store_refusals
from api.deps import ServicesDep
from api.errors import answers
from api.records import Limit, Offset, PathId, Records
from api.schemas.page import Page
from api.schemas.pipelines import PipelinePublic
from store import crm as crm_store
from store.models import Pipeline


async def _present(session: AsyncSession, pipelines: Sequence[Pipeline]) -> list[PipelinePublic]:
    return [PipelinePublic.of(p, await crm_store.stages_of(session, p.id)) for p in pipelines]


router = APIRouter(prefix="/pipelines", tags=["crm"])
PIPELINES = Records(Pipeline, "pipeline", _present)


class PipelineIn(CrmInput):
    name: Name
    stages: Annotated[list[Name], Field(min_length=1, max_length=100)]


class PipelinePatch(CrmInput):
    name: Name | None = None
    stages: Annotated[list[Name] | None, Field(min_length=1, max_length=100)] = None


@router.post("", status_code=201, responses=answers(409))
async def create_pipeline(body: PipelineIn, services: ServicesDep) -> PipelinePublic:
    async with services.db.write() as session:
        with store_refusals("stages"):
            pipeline = await crm_store.create_pipeline(session, body.name, body.stages)
        return await PIPELINES.show(session, pipeline)


@router.get("")
async def list_pipelines(
    services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> Page[PipelinePublic]:
    async with services.db.read() as session:
        return await PIPELINES.page(session, select(Pipeline), limit, offset)


@router.get("/{pipeline_id}", responses=answers(404))
async def read_pipeline(pipeline_id: PathId, services: ServicesDep) -> PipelinePublic:
    async with services.db.read() as session:
        return await PIPELINES.read(session, pipeline_id)


@router.patch("/{pipeline_id}", responses=answers(404, 409))
async def patch_pipeline(
    pipeline_id: PathId, body: PipelinePatch, services: ServicesDep
) -> PipelinePublic:
    """Rename and/or reorder, add and remove stages (a stage holding deals stays: 409)."""
    async with services.db.write() as session:
        pipeline = await PIPELINES.get(session, pipeline_id)
        with store_refusals("stages"):
            await crm_store.update_pipeline(session, pipeline, body.name, body.stages)
        return await PIPELINES.show(session, pipeline)
