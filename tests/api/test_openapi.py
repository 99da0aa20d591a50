"""/openapi.json describes what the API answers: nearly every JSON success has a real schema."""

from __future__ import annotations

from typing import Any

from api.app import create_app

# The one free-form answer today: the automation document's own JSON Schema.
TYPED_SHARE = 0.9


def _described(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether `schema` names the answer's fields: properties, directly, by $ref, in the items
    of a list or in each branch of a union (null aside); `{}` or a bare object does not."""
    if "$ref" in schema:
        return _described(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if schema.get("type") == "array":
        return _described(schema.get("items", {}), components)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return all(b.get("type") == "null" or _described(b, components) for b in branches)
    return bool(schema.get("properties"))


def test_json_answers_have_schemas() -> None:
    spec = create_app().openapi()
    components = spec.get("components", {}).get("schemas", {})
    answers = [
        (f"{method.upper()} {path} {status}", content["application/json"].get("schema", {}))
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status.startswith("2") and "application/json" in (content := response.get("content", {}))
    ]
    untyped = [name for name, schema in answers if not _described(schema, components)]
    typed_share = 1 - len(untyped) / len(answers)
    assert typed_share >= TYPED_SHARE, (
        f"{typed_share:.0%} of {len(answers)} JSON answers have a schema; untyped: {untyped}"
    )


def test_list_answers_are_pages() -> None:
    """Every `?limit=&offset=` list answers its items with the counts that place the page."""
    spec = create_app().openapi()
    components = spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        get = operations.get("get", {})
        if {"limit", "offset"} <= {p["name"] for p in get.get("parameters", [])}:
            ref = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            fields = set(components[ref.rsplit("/", 1)[-1]]["properties"])
            assert {"total", "limit", "offset"} <= fields, path
