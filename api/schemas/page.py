"""One page of a list: the records and where the page sits in the whole list."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    """`?limit=&offset=` lists answer this: `items`, and `total` records in all.
    /openapi.json names each page after its items: `Page_UserPublic_`."""

    items: list[Item]
    total: int
    limit: int
    offset: int


class CursorPage(BaseModel, Generic[Item]):
    """`?cursor=&limit=` lists answer this: `items`, and `next`, the cursor of the following
    page (null on the last one). Read by key, not by offset: a deep page costs what the first
    does, and rows added meanwhile never shift a row into a second page or out of both."""

    items: list[Item]
    limit: int
    next: str | None
