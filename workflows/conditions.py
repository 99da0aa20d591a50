"""Conditions of the segment builder (docs/automations.md#conditions), as pydantic models.

A condition is a JSON object whose *key* says what it is (``{"tag": ...}``,
``{"all": [...]}``), so the union is discriminated by which key is present.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from workflows.durations import Duration

MAX_CONDITION_DEPTH = 20

FieldOp = Literal[
    "is",
    "is_not",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "is_blank",
    "is_not_blank",
    "before",
    "after",
    "within_last",
]
NumericOp = Literal["is", "is_not", "gt", "gte", "lt", "lte"]

NonEmptyStr = Annotated[str, Field(min_length=1)]

_VALUELESS_OPS = frozenset({"is_blank", "is_not_blank"})


class _ConditionModel(BaseModel):
    # Aliases both ways: "not" is a Python keyword, so the attribute is `not_`.
    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


class AllOf(_ConditionModel):
    """True when every sub-condition is true."""

    all: list[Condition] = Field(min_length=1)


class AnyOf(_ConditionModel):
    """True when at least one sub-condition is true."""

    any: list[Condition] = Field(min_length=1)


class Not(_ConditionModel):
    """True when the sub-condition is false."""

    not_: Condition = Field(alias="not")


class FieldCondition(_ConditionModel):
    """Compares a contact field (standard or custom) with a value."""

    field: NonEmptyStr
    op: FieldOp
    value: Any = None

    @model_validator(mode="after")
    def _value_matches_op(self) -> FieldCondition:
        if self.op == "within_last":
            # Parsed here so evaluation gets a Duration, and a bad one is caught at save time.
            if isinstance(self.value, Duration):
                return self
            if not isinstance(self.value, dict):
                raise ValueError('"within_last" needs a duration value, e.g. {"days": 7}')
            try:
                self.value = Duration.model_validate(self.value)
            except ValidationError as error:
                # Re-raised as one message: pydantic would otherwise report the duration's
                # errors at locations relative to the duration, not to this condition.
                details = "; ".join(
                    ".".join(str(part) for part in e["loc"]) + ": " + e["msg"]
                    if e["loc"]
                    else e["msg"].removeprefix("Value error, ")
                    for e in error.errors()
                )
                raise ValueError(f'invalid duration in "value": {details}') from None
        elif self.op not in _VALUELESS_OPS and self.value is None:
            raise ValueError(f'"{self.op}" needs a "value"')
        return self


class TagCondition(_ConditionModel):
    """The contact has (or, with ``has: false``, lacks) a tag."""

    tag: NonEmptyStr
    has: bool = True


class ListCondition(_ConditionModel):
    """The contact's status on a list."""

    list: NonEmptyStr
    status: Literal["active", "unsubscribed"] = "active"


class ScoreCondition(_ConditionModel):
    """Compares one of the contact's scores with a number."""

    score: NonEmptyStr
    op: NumericOp
    value: float = Field(allow_inf_nan=False)


class CountSpec(_ConditionModel):
    """How many matching events are needed (default: at least one)."""

    op: NumericOp
    value: int = Field(ge=0)


class EventCondition(_ConditionModel):
    """The contact has recorded an event, optionally with matching data, recently, N times."""

    event: NonEmptyStr
    data: dict[str, Any] | None = None
    within: Duration | None = None
    count: CountSpec | None = None


class EmailCondition(_ConditionModel):
    """An email was sent to the contact, or opened or clicked (or not), optionally of one step
    or link."""

    email: Literal["sent", "opened", "clicked", "not_sent", "not_opened", "not_clicked"]
    step: NonEmptyStr | None = None
    automation: NonEmptyStr | None = None
    link: NonEmptyStr | None = None
    within: Duration | None = None
    # Count clicks recorded as a suspected bot's (a mail gateway's link scanner) too.
    include_bots: bool | None = None


class PageVisitedCondition(_ConditionModel):
    """The contact visited a page matching a URL pattern (``*`` wildcards)."""

    page_visited: NonEmptyStr
    within: Duration | None = None


class DealCondition(_ConditionModel):
    """Compares a field of the contact's current deal."""

    deal: FieldCondition
    pipeline: NonEmptyStr | None = None


class ConversionCondition(_ConditionModel):
    """The contact has recorded a conversion."""

    conversion: NonEmptyStr


class InAutomationCondition(_ConditionModel):
    """The contact has a running run of an automation."""

    in_automation: NonEmptyStr


class GoalRef(_ConditionModel):
    """A goal step of an automation."""

    automation: NonEmptyStr
    goal: NonEmptyStr


class GoalAchievedCondition(_ConditionModel):
    """The contact has achieved a goal of an automation."""

    goal_achieved: GoalRef


# Key that identifies each shape → model, in the order keys are looked for. The tag is the
# class name so it can never be mistaken for a document key in error locations.
_SHAPES: dict[str, type[_ConditionModel]] = {
    "all": AllOf,
    "any": AnyOf,
    "not": Not,
    "field": FieldCondition,
    "tag": TagCondition,
    "list": ListCondition,
    "score": ScoreCondition,
    "event": EventCondition,
    "email": EmailCondition,
    "page_visited": PageVisitedCondition,
    "deal": DealCondition,
    "conversion": ConversionCondition,
    "in_automation": InAutomationCondition,
    "goal_achieved": GoalAchievedCondition,
}
CONDITION_KEYS: tuple[str, ...] = tuple(_SHAPES)
CONDITION_TAGS: frozenset[str] = frozenset(model.__name__ for model in _SHAPES.values())


def _condition_shape(value: Any) -> str | None:
    """Discriminator: the tag of the shape `value` has, or None when it has none."""
    if isinstance(value, dict):
        for key, model in _SHAPES.items():
            if key in value:
                return model.__name__
        return None
    if isinstance(value, _ConditionModel) and type(value) in _SHAPES.values():
        return type(value).__name__
    return None


Condition = Annotated[
    Annotated[AllOf, Tag("AllOf")]
    | Annotated[AnyOf, Tag("AnyOf")]
    | Annotated[Not, Tag("Not")]
    | Annotated[FieldCondition, Tag("FieldCondition")]
    | Annotated[TagCondition, Tag("TagCondition")]
    | Annotated[ListCondition, Tag("ListCondition")]
    | Annotated[ScoreCondition, Tag("ScoreCondition")]
    | Annotated[EventCondition, Tag("EventCondition")]
    | Annotated[EmailCondition, Tag("EmailCondition")]
    | Annotated[PageVisitedCondition, Tag("PageVisitedCondition")]
    | Annotated[DealCondition, Tag("DealCondition")]
    | Annotated[ConversionCondition, Tag("ConversionCondition")]
    | Annotated[InAutomationCondition, Tag("InAutomationCondition")]
    | Annotated[GoalAchievedCondition, Tag("GoalAchievedCondition")],
    Discriminator(
        _condition_shape,
        custom_error_type="condition_shape",
        custom_error_message=(
            "a condition must be an object with one of the keys "
            + ", ".join(f'"{key}"' for key in CONDITION_KEYS)
        ),
    ),
]

LeafCondition = (
    FieldCondition
    | TagCondition
    | ListCondition
    | ScoreCondition
    | EventCondition
    | EmailCondition
    | PageVisitedCondition
    | DealCondition
    | ConversionCondition
    | InAutomationCondition
    | GoalAchievedCondition
)

for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()


def _children(condition: Condition) -> list[Condition]:
    if isinstance(condition, AllOf):
        return condition.all
    if isinstance(condition, AnyOf):
        return condition.any
    if isinstance(condition, Not):
        return [condition.not_]
    return []


def iter_leaves(condition: Condition) -> Iterator[LeafCondition]:
    """Every leaf condition (not ``all``/``any``/``not``), depth first, left to right."""
    # An explicit stack rather than recursion: the walk is bounded by the input, not by
    # Python's recursion limit.
    stack: list[Condition] = [condition]
    while stack:
        node = stack.pop()
        children = _children(node)
        if children:
            stack.extend(reversed(children))
        elif not isinstance(node, AllOf | AnyOf | Not):
            yield node


def condition_depth(condition: Condition) -> int:
    """Nesting depth: 1 for a leaf, 1 + the deepest child for ``all``/``any``/``not``."""
    deepest = 0
    stack: list[tuple[Condition, int]] = [(condition, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    return deepest


def _check_depth(condition: Condition) -> Condition:
    depth = condition_depth(condition)
    if depth > MAX_CONDITION_DEPTH:
        raise ValueError(
            f"conditions are nested {depth} levels deep; at most {MAX_CONDITION_DEPTH} are allowed"
        )
    return condition


# The type steps and triggers use for a condition: the union plus the depth limit, checked
# once at the top rather than at every level.
BoundedCondition = Annotated[Condition, AfterValidator(_check_depth)]
