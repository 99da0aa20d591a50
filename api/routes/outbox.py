"""The outbox's dead letters (docs/operations.md#dead-letters): rows that failed every delivery."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import delete, select

from api.deps import ServicesDep
from api.errors import answers
from api.schemas.outbox import DeadLetter
from store.models import OutboxDeadLetter, OutboxEntry

router = APIRouter(prefix="/outbox", tags=["outbox"])


@router.get("/dead")
async def dead_letters(
    services: ServicesDep, limit: int = Query(100, ge=1, le=1000)
) -> list[DeadLetter]:
    """Newest first, each with the error of its last delivery."""
    async with services.db.read() as session:
        rows = (
            await session.scalars(
                select(OutboxDeadLetter).order_by(OutboxDeadLetter.id.desc()).limit(limit)
            )
        ).all()
    return [DeadLetter.model_validate(row, from_attributes=True) for row in rows]


@router.post("/dead/{dead_id}/retry", status_code=202, responses=answers(404))
async def retry_dead_letter(dead_id: int, services: ServicesDep) -> DeadLetter:
    """Put a dead letter back in the outbox (once its cause is fixed), attempts from zero; the
    automations it had enrolled its contact in are kept, so nobody is enrolled twice."""
    async with services.db.write() as session:
        dead = await session.get(OutboxDeadLetter, dead_id)
        if dead is None:
            raise HTTPException(status_code=404, detail="no such dead letter")
        answer = DeadLetter.model_validate(dead, from_attributes=True)
        session.add(
            OutboxEntry(
                contact_id=dead.contact_id,
                kind=dead.kind,
                data=dead.data,
                origin_workflow_id=dead.origin_workflow_id,
                enrolled=dead.enrolled,
                created_at=dead.created_at,
            )
        )
        await session.execute(delete(OutboxDeadLetter).where(OutboxDeadLetter.id == dead_id))
    services.dispatcher.kick()
    return answer
