"""Reading records for the API: one by id (404 when missing) or a page at a time, each shown as
its response model. The CRM routes' read and list answers all go through `Records`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Path, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.page import Page
from store.crm import page

Row = TypeVar("Row")
Public = TypeVar("Public", bound=BaseModel)
# Shows rows as their response models; given them all at once, so it can batch its reads.
Present = Callable[[AsyncSession, Sequence[Row]], Awaitable[list[Public]]]

PathId = Annotated[int, Path(ge=1, le=2**62)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=2**62)]


def each(show: Callable[[Row], Public]) -> Present[Row, Public]:
    """A `Present` for records shown from their own row alone."""

    async def present(session: AsyncSession, rows: Sequence[Row]) -> list[Public]:
        return [show(row) for row in rows]

    return present


class Records(Generic[Row, Public]):
    """How one kind of record is found and shown: `what` names it in a 404, `order` pages it."""

    def __init__(
        self, model: type[Row], what: str, present: Present[Row, Public], order: Any = None
    ) -> None:
        self.model, self.what, self.present = model, what, present
        self.order = order if order is not None else model.id  # type: ignore[attr-defined]

    async def get(self, session: AsyncSession, row_id: int) -> Row:
        """The row, or a 404 naming it."""
        row = await session.get(self.model, row_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"{self.what} {row_id} not found")
        return row

    async def show(self, session: AsyncSession, row: Row) -> Public:
        """One row as its answer, with any pending change flushed first."""
        await session.flush()
        (shown,) = await self.present(session, [row])
        return shown

    async def read(self, session: AsyncSession, row_id: int) -> Public:
        return await self.show(session, await self.get(session, row_id))

    async def page(
        self, session: AsyncSession, query: Any, limit: int, offset: int
    ) -> Page[Public]:
        """One page of `query`'s rows (a select of the model), oldest first."""
        rows, total = await page(session, query, self.order, limit=limit, offset=offset)
        items = await self.present(session, rows)
        return Page(items=items, total=total, limit=limit, offset=offset)
