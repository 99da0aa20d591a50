"""One page of a list: the records and where the page sits in the whole list."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel

Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    """`?limit=&offset=` lists answer this: `items`, and `total` records in all."""

    items: list[Item]
    total: int
    limit: int
    offset: int

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        # "UserPublicPage" in /openapi.json rather than pydantic's "Page_UserPublic_".
        return f"{getattr(params[0], '__name__', params[0])}Page"
