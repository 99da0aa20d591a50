"""Notes on a deal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import StringConstraints
from sqlalchemy import select

from api.crm_references import CrmInput
from api.deps import ServicesDep
from api.errors import answers
from api.records import Limit, Offset, PathId, Records, each
from api.routes.deals import DEALS
from api.schemas.deal_notes import DealNotePublic
from api.schemas.page import Page
from store import crm as crm_store
from store.models import DealNote

router = APIRouter(prefix="/deals/{deal_id}/notes", tags=["crm"])
NOTES = Records(DealNote, "note", each(DealNotePublic.of))


class NoteIn(CrmInput):
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]


@router.post("", status_code=201, responses=answers(404))
async def add_deal_note(deal_id: PathId, body: NoteIn, services: ServicesDep) -> DealNotePublic:
    async with services.db.write() as session:
        await DEALS.get(session, deal_id)
        return await NOTES.show(session, await crm_store.add_deal_note(session, deal_id, body.note))


@router.get("", responses=answers(404))
async def list_deal_notes(
    deal_id: PathId, services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> Page[DealNotePublic]:
    async with services.db.read() as session:
        await DEALS.get(session, deal_id)
        query = select(DealNote).where(DealNote.deal_id == deal_id)
        return await NOTES.page(session, query, limit, offset)


@router.patch("/{note_id}", responses=answers(404))
async def patch_deal_note(
    deal_id: PathId, note_id: PathId, body: NoteIn, services: ServicesDep
) -> DealNotePublic:
    async with services.db.write() as session:
        note = await session.get(DealNote, note_id)
        if note is None or note.deal_id != deal_id:
            raise HTTPException(status_code=404, detail=f"deal {deal_id} has no note {note_id}")
        note.body = body.note
        return await NOTES.show(session, note)
