"""Splits: a person picks an even split's winning path, as ActiveCampaign allows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.errors import answers, invalid
from store import automations as automation_store
from store import runs as run_store
from store.models import utcnow

router = APIRouter(prefix="/automations", tags=["splits"])


class WinnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: int = Field(ge=0, le=1000, description="the index of the winning path in `paths`")


class WinnerOut(BaseModel):
    step: str
    winner: int
    winner_by: Literal["rule", "person"]
    decided_at: datetime | None


@router.post("/{automation_id}/splits/{step_id}/winner", responses=answers(404, 409))
async def pick_winner(
    automation_id: str,
    step_id: Annotated[str, Path(max_length=64)],
    body: WinnerIn,
    services: ServicesDep,
) -> WinnerOut:
    """Pick the winning path of an even split of the current version: every contact that
    reaches the split from now on takes it; contacts already assigned keep their path."""
    async with services.db.write() as session:
        document = await automation_store.get_document(session, automation_id)
        if document is None:
            raise HTTPException(status_code=404, detail=f"automation {automation_id!r} not found")
        step = (document.get("steps") or {}).get(step_id)
        if not isinstance(step, dict) or step.get("type") != "split":
            raise HTTPException(
                status_code=404,
                detail=f"automation {automation_id!r} has no split step {step_id!r}",
            )
        if step.get("mode") != "even":
            raise invalid(f"split {step_id!r} is in {step.get('mode')!r} mode: it has no winner")
        if body.path >= len(step.get("paths") or []):
            raise invalid(
                f"split {step_id!r} has {len(step.get('paths') or [])} paths (0 to "
                f"{len(step.get('paths') or []) - 1})",
                "path",
            )
        picked = await run_store.pick_split_winner(
            session, automation_id, step_id, body.path, utcnow()
        )
        if isinstance(picked, run_store.WinnerTaken):
            raise HTTPException(
                status_code=409,
                detail=f"split {step_id!r} already has a winner: path {picked.winner}"
                + (" (picked by a person)" if picked.by == "person" else " (decided by its rule)"),
            )
        return WinnerOut(
            step=step_id,
            winner=body.path,
            winner_by=picked.winner_by or "rule",  # type: ignore[arg-type]
            decided_at=picked.decided_at,
        )
