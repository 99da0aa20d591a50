"""What a new version would do to the contacts running now, by the live-edit rules
(docs/api.md#live-edits): pure comparison of two documents' steps, given how many running
contacts sit at each step (docs/api.md#the-impact-of-a-new-version)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter

from workflows.steps import Step, StepBase

Change = Literal["removed", "changed", "unchanged"]
_STEP: TypeAdapter[StepBase] = TypeAdapter(Step)
# A step's label: shown in summaries, never acted on.
NOT_COMPARED = frozenset({"name"})


@dataclass(frozen=True)
class StepImpact:
    step: str
    waiting: int
    change: Change
    goes_to: str | None  # where a contact at a removed step goes on
    ends: bool  # its run ends (`step_removed`)


def comparable(raw: Any) -> Any:
    """A step as its settings compare: through the step model, so that a default written out
    and one left out are equal, without its label. A step the model refuses compares as is."""
    try:
        dumped: Any = _STEP.validate_python(raw).model_dump(
            by_alias=True, exclude_none=True, mode="json"
        )
    except Exception:  # an invalid draft's step: any error of it is in the problems
        dumped = raw
    if isinstance(dumped, Mapping):
        return {key: value for key, value in dumped.items() if key not in NOT_COMPARED}
    return dumped


def _steps(document: Any) -> Mapping[str, Any]:
    steps = document.get("steps") if isinstance(document, Mapping) else None
    return steps if isinstance(steps, Mapping) else {}


def step_impacts(current: Any, draft: Any, waiting: Mapping[str, int]) -> list[StepImpact]:
    """For each step with running contacts (in the current version's order, then any other):
    whether the draft removes or changes it, and where its contacts go. A contact at a removed
    step goes to that step's `next` in the current version if the draft still has it, else
    its run ends; at a changed or unchanged step, it re-enters the step (a wait keeps the time
    already waited)."""
    old, new = _steps(current), _steps(draft)
    order = [s for s in old if waiting.get(s)] + sorted(s for s in waiting if s not in old)
    impacts = []
    for step_id in order:
        if step_id in new:
            same = step_id in old and comparable(old[step_id]) == comparable(new[step_id])
            impact = StepImpact(
                step_id, waiting[step_id], "unchanged" if same else "changed", None, False
            )
        else:
            old_step = old.get(step_id)
            old_next = old_step.get("next") if isinstance(old_step, Mapping) else None
            goes_to = old_next if isinstance(old_next, str) and old_next in new else None
            impact = StepImpact(step_id, waiting[step_id], "removed", goes_to, goes_to is None)
        impacts.append(impact)
    return impacts
