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
