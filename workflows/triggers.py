"""Triggers that enroll contacts in an automation (docs/automations.md#triggers), one model per ``type``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from workflows.conditions import BoundedCondition, NonEmptyStr, NumericOp


class TriggerBase(BaseModel):
    """What every trigger may carry: a filter the contact must meet and an entry override."""

    model_config = ConfigDict(extra="forbid")

    type: str
    filter: BoundedCondition | None = None
    entry: Literal["once", "multiple"] | None = None


class _ListTrigger(TriggerBase):
    list: NonEmptyStr | None = Field(default=None, description="absent: any list")


class ListSubscribedTrigger(_ListTrigger):
    """The contact subscribed to a list."""

    type: Literal["list_subscribed"]


class ListUnsubscribedTrigger(_ListTrigger):
    """The contact unsubscribed from a list."""

    type: Literal["list_unsubscribed"]


class _TagTrigger(TriggerBase):
    tag: NonEmptyStr


class TagAddedTrigger(_TagTrigger):
    """A tag was added to the contact."""

    type: Literal["tag_added"]


class TagRemovedTrigger(_TagTrigger):
    """A tag was removed from the contact."""

    type: Literal["tag_removed"]


class FieldChangedTrigger(TriggerBase):
    """A contact field changed (to a given value when `to` is set, even to null)."""

    type: Literal["field_changed"]
    field: NonEmptyStr
    to: Any = None

    @property
    def has_to(self) -> bool:
        """Whether `to` was given; ``"to": null`` means "was cleared", absent means any change."""
        return "to" in self.model_fields_set

    # `"to": null` means something, so it survives `exclude_none` when it was given.
    @model_serializer(mode="wrap")
    def _keep_explicit_null(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.has_to and "to" not in data and info.exclude_none:
            data["to"] = None
        return data


class EventTrigger(TriggerBase):
    """The contact recorded an event whose data contains `data` (subset match)."""

    type: Literal["event"]
    event: NonEmptyStr
    data: dict[str, Any] | None = None


class PageVisitedTrigger(TriggerBase):
    """The contact visited a page matching `url` (``*`` wildcards)."""

    type: Literal["page_visited"]
    url: NonEmptyStr


class _EmailTrigger(TriggerBase):
    automation: NonEmptyStr | None = None
    step: NonEmptyStr | None = None
    link: NonEmptyStr | None = None
    # Fire on clicks recorded as a suspected bot's (a mail gateway's link scanner) too.
    include_bots: bool | None = None


class EmailOpenedTrigger(_EmailTrigger):
    """The contact opened an email (optionally of one automation/step)."""

    type: Literal["email_opened"]


class EmailClickedTrigger(_EmailTrigger):
    """The contact clicked a link in an email (optionally a given link)."""

    type: Literal["email_clicked"]


class DealStageChangedTrigger(TriggerBase):
    """One of the contact's deals moved stage."""

    type: Literal["deal_stage_changed"]
    pipeline: NonEmptyStr | None = None
    stage: NonEmptyStr | None = None


class ScoreChangedTrigger(TriggerBase):
    """A score crossed a threshold (fires on the change that makes the comparison true)."""

    type: Literal["score_changed"]
    score: NonEmptyStr
    op: NumericOp
    value: float = Field(allow_inf_nan=False)
    target: Literal["contact", "deal"] | None = Field(
        default=None, description="whose score: a contact's or a deal's (absent: either)"
    )


class GoalAchievedTrigger(TriggerBase):
    """The contact achieved a goal of another automation."""

    type: Literal["goal_achieved"]
    automation: NonEmptyStr
    goal: NonEmptyStr


class DateFieldTrigger(TriggerBase):
    """A date field is `offset` days away (negative: before), every year when `annual`."""

    type: Literal["date_field"]
    field: NonEmptyStr
    offset: int = Field(default=0, ge=-3660, le=3660)
    annual: bool = False


class ApiTrigger(TriggerBase):
    """Contacts are enrolled through the API only."""

    type: Literal["api"]


TRIGGER_MODELS: tuple[type[TriggerBase], ...] = (
    ListSubscribedTrigger,
    ListUnsubscribedTrigger,
    TagAddedTrigger,
    TagRemovedTrigger,
    FieldChangedTrigger,
    EventTrigger,
    PageVisitedTrigger,
    EmailOpenedTrigger,
    EmailClickedTrigger,
    DealStageChangedTrigger,
    ScoreChangedTrigger,
    GoalAchievedTrigger,
    DateFieldTrigger,
    ApiTrigger,
)

Trigger = Annotated[
    ListSubscribedTrigger
    | ListUnsubscribedTrigger
    | TagAddedTrigger
    | TagRemovedTrigger
    | FieldChangedTrigger
    | EventTrigger
    | PageVisitedTrigger
    | EmailOpenedTrigger
    | EmailClickedTrigger
    | DealStageChangedTrigger
    | ScoreChangedTrigger
    | GoalAchievedTrigger
    | DateFieldTrigger
    | ApiTrigger,
    Field(discriminator="type"),
]

# Each `type` annotation is a one-value Literal; read it rather than repeat it.
TRIGGER_TYPES: tuple[str, ...] = tuple(
    str(model.model_fields["type"].annotation.__args__[0])  # type: ignore[union-attr]
    for model in TRIGGER_MODELS
)
