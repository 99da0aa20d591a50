"""Durations as written in automation documents: ``{"days": 2}``, ``{"hours": 4, "days": 1}``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

# Units largest first: the order `describe()` reads them in.
_UNITS: tuple[tuple[str, float], ...] = (
    ("weeks", 7 * 86400.0),
    ("days", 86400.0),
    ("hours", 3600.0),
    ("minutes", 60.0),
    ("seconds", 1.0),
)

# Far beyond any marketing wait, yet far below timedelta's limit, so a typo such as
# {"days": 1e12} is a validation error rather than an OverflowError in the workflow.
MAX_DURATION_SECONDS = 100 * 366 * 86400.0


class Duration(BaseModel):
    """A positive span of time made of weeks, days, hours, minutes and seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    seconds: float = Field(default=0, ge=0)
    minutes: float = Field(default=0, ge=0)
    hours: float = Field(default=0, ge=0)
    days: float = Field(default=0, ge=0)
    weeks: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _positive_and_bounded(self) -> Duration:
        total = self.total_seconds()
        if total <= 0:
            raise ValueError(
                'a duration must be longer than zero, e.g. {"days": 2} or {"minutes": 30}'
            )
        if total > MAX_DURATION_SECONDS:
            raise ValueError("a duration may be at most 100 years")
        return self

    # Only the units the author used are written back, so a stored document reads like
    # the one that was saved ({"days": 2}, not five keys of which four are zero).
    @model_serializer(mode="wrap")
    def _dump_used_units(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        return {
            unit: int(value) if float(value).is_integer() else value
            for unit, value in dumped.items()
            if value
        }

    def total_seconds(self) -> float:
        """The whole duration in seconds."""
        return float(sum(getattr(self, unit) * factor for unit, factor in _UNITS))

    def to_timedelta(self) -> timedelta:
        """The duration as a `timedelta` (for `workflow.sleep` and timeouts)."""
        return timedelta(
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )

    def describe(self) -> str:
        """Human text for summaries: "2 days", "1 day 4 hours", "30 minutes"."""
        parts = []
        for unit, _ in _UNITS:
            amount = getattr(self, unit)
            if amount:
                label = unit[:-1] if amount == 1 else unit
                parts.append(f"{amount:g} {label}")
        return " ".join(parts)
