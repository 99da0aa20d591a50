"""CRM records made through the API, for the CRM tests."""

from __future__ import annotations

from typing import Any

from tests.helpers.stack import Stack

API = "/api/v1"


async def api_post(stack: Stack, path: str, body: dict[str, Any], status: int = 201) -> Any:
    response = await stack.http.post(f"{API}{path}", json=body)
    assert response.status_code == status, response.text
    return response.json()


async def api_patch(stack: Stack, path: str, body: dict[str, Any], status: int = 200) -> Any:
    response = await stack.http.patch(f"{API}{path}", json=body)
    assert response.status_code == status, response.text
    return response.json()


async def api_get(stack: Stack, path: str, status: int = 200) -> Any:
    response = await stack.http.get(f"{API}{path}")
    assert response.status_code == status, response.text
    return response.json()


async def sales_pipeline(stack: Stack, *stages: str) -> str:
    """A fresh pipeline (default stages Lead, Qualified, Won); returns its name."""
    name = stack.unique("Sales")
    await api_post(
        stack, "/pipelines", {"name": name, "stages": list(stages or ("Lead", "Qualified", "Won"))}
    )
    return name


async def sales_user(stack: Stack, name: str = "Sam Seller") -> dict[str, Any]:
    return await api_post(
        stack, "/users", {"email": f"{stack.unique('u')}@example.com", "name": name}
    )  # type: ignore[no-any-return]
