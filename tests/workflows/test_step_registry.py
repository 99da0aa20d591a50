"""Every step type is wired: the workflow runs it, or the activity its model names exists."""

from __future__ import annotations

from typing import Any, cast

import pytest
from temporalio import activity

from activities.contacts import CONTACT_WRITES
from activities.crm import CRM_WRITES
from activities.step_activity import ContactDeleted, step_activity
from activities.writes import StepWrites
from worker.main import activities_for
from workflows.automation_run import HANDLERS, SELF_CHECKING_STEPS, AutomationRun
from workflows.contracts import StepContext, StepOutcome
from workflows.steps import (
    CONTACT_WRITE,
    CRM_WRITE,
    STEP_ACTIVITIES,
    STEP_MODELS,
    STEP_TYPES,
    AddTagStep,
    steps_run_by,
)


def _registered_activities() -> dict[str, Any]:
    defined = (
        activity._Definition.must_from_callable(fn) for fn in activities_for(cast(Any, None))
    )
    return {definition.name: definition for definition in defined}


def test_every_step_type_has_a_handler() -> None:
    assert set(HANDLERS) == set(STEP_TYPES)
    for step_type, handler in HANDLERS.items():
        by_activity = handler is AutomationRun._by_activity
        assert by_activity == (step_type in STEP_ACTIVITIES), step_type


@pytest.mark.parametrize("model", STEP_MODELS, ids=lambda model: model.__name__)
def test_the_activity_a_step_names_is_registered_by_the_worker(model: Any) -> None:
    if model.ACTIVITY is not None:
        assert model.ACTIVITY.name in _registered_activities()


@pytest.mark.parametrize(
    ("writes", "carrier"), [(CONTACT_WRITES, CONTACT_WRITE), (CRM_WRITES, CRM_WRITE)]
)
def test_a_write_activity_applies_every_step_it_carries_out(
    writes: StepWrites, carrier: Any
) -> None:
    assert writes.activity == carrier
    assert set(writes.apply) == steps_run_by(carrier)


def test_local_steps_check_the_goals_after_their_write() -> None:
    local = {t for t, (_, is_local) in STEP_ACTIVITIES.items() if is_local}
    assert local <= SELF_CHECKING_STEPS
    assert SELF_CHECKING_STEPS - local == {"wait", "if_else", "goal"}


def test_a_write_table_refuses_a_step_another_activity_carries_out() -> None:
    with pytest.raises(TypeError, match="AddTagStep is not carried out by apply_crm_step"):
        CRM_WRITES.applies(AddTagStep)


class _Gone:
    @step_activity("gone")
    async def gone(self, context: StepContext) -> StepOutcome:
        raise ContactDeleted(context.contact_id)


async def test_a_step_activity_skips_the_step_of_a_deleted_contact() -> None:
    context = StepContext(
        workflow_id="w", automation_id="a", version=1, contact_id=1, step_id="s", visit=1
    )
    assert await _Gone().gone(context) == StepOutcome(outcome="skipped", reason="contact_deleted")
    # Temporal still reads the method's own signature, to decode its input.
    definition = activity._Definition.must_from_callable(_Gone().gone)
    assert (definition.name, definition.arg_types, definition.ret_type) == (
        "gone",
        [StepContext],
        StepOutcome,
    )
