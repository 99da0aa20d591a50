"""Pure tests of the automation document: models, validation problems, graph helpers."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from workflows.conditions import (
    MAX_CONDITION_DEPTH,
    AllOf,
    BoundedCondition,
    EmailCondition,
    FieldCondition,
    Not,
    TagCondition,
    condition_depth,
    iter_leaves,
)
from workflows.document import (
    MAX_STEPS,
    Automation,
    Problem,
    automation_json_schema,
    can_reach,
    reachable_from,
    validate_automation,
)
from workflows.durations import Duration
from workflows.steps import (
    STEP_TYPES,
    Step,
    StepBase,
    WaitStep,
    describe_step,
    successors,
    text_fields,
)
from workflows.triggers import TRIGGER_TYPES, FieldChangedTrigger, Trigger

STEP = TypeAdapter(Step)
TRIGGER = TypeAdapter(Trigger)
CONDITION = TypeAdapter(BoundedCondition)

SPEC_EXAMPLE: dict[str, Any] = {
    "name": "Welcome series",
    "status": "active",
    "entry": "once",
    "triggers": [{"type": "tag_added", "tag": "lead"}],
    "start": "welcome",
    "steps": {
        "welcome": {
            "type": "send_email",
            "subject": "Hi %FIRSTNAME%",
            "html": "<p>Welcome!</p>",
            "next": "pause",
        },
        "pause": {"type": "wait", "for": {"days": 2}, "next": "check"},
        "check": {
            "type": "if_else",
            "condition": {"email": "clicked", "step": "welcome"},
            "yes": "hot",
            "no": None,
        },
        "hot": {"type": "add_tag", "tag": "engaged", "next": None},
    },
}

# One valid example of every step type (both split modes), as an author would write it.
STEP_EXAMPLES: list[dict[str, Any]] = [
    {
        "type": "send_email",
        "subject": "Hi %FIRSTNAME%",
        "html": "<p>Hello %FULLNAME%</p>",
        "text": "Hello",
        "from_email": "team@example.com",
        "from_name": "Team",
        "reply_to": "help@example.com",
    },
    {"type": "send_site_message", "html": "<b>Hi</b>", "page": "https://x.test/*"},
    {"type": "send_sms", "body": "Hi %FIRSTNAME%, your code is ready"},
    {
        "type": "send_notification_email",
        "to": ["sales@example.com"],
        "subject": "New lead %EMAIL%",
        "body": "%FULLNAME% is hot",
    },
    {"type": "wait", "for": {"hours": 4, "days": 1}},
    {"type": "wait", "until": "2030-01-01T09:00:00+02:00"},
    {"type": "wait", "condition": {"tag": "paid"}, "timeout": {"weeks": 2}},
    {
        "type": "if_else",
        "condition": {
            "all": [
                {"field": "country", "op": "is", "value": "FR"},
                {"not": {"tag": "customer"}},
                {"any": [{"score": "lead", "op": "gte", "value": 10}, {"list": "news"}]},
            ]
        },
        "yes": "a",
        "no": "b",
    },
    {
        "type": "split",
        "mode": "even",
        "paths": [{"next": "a", "weight": 2}, {"next": "b"}],
        "winner": {"condition": {"email": "clicked"}, "after_contacts": 100},
    },
    {
        "type": "split",
        "mode": "until",
        "until": {"contacts_meeting": 5, "condition": {"conversion": "purchase"}},
        "before": "a",
        "after": "b",
    },
    {"type": "split", "mode": "until", "until": {"date": "2030-01-01T00:00:00Z"}, "before": "a"},
    {"type": "goto", "target": "a"},
    {
        "type": "goal",
        "condition": {"event": "purchase", "data": {"sku": "x"}, "within": {"days": 30}},
        "unmet": "wait",
        "scope": "above",
        "timeout": {"days": 7},
        "next": "a",
    },
    {"type": "start_automation", "automation": "onboarding"},
    {"type": "end"},
    {"type": "end_automation", "automation": "all"},
    {
        "type": "webhook",
        "url": "https://hooks.example.com/in",
        "method": "PUT",
        "format": "json",
        "headers": {"X-Key": "abc"},
    },
    {"type": "perform_math", "target": "deal", "field": "visits", "op": "add", "value": 1},
    {"type": "subscribe", "list": "newsletter"},
    {"type": "unsubscribe", "list": "newsletter"},
    {"type": "convert", "conversion": "purchase", "value": 49.5},
    {
        "type": "update_contact",
        "fields": {"first_name": "%FIRSTNAME%", "vip": True, "visits": 3, "note": None},
    },
    {"type": "add_tag", "tag": "engaged"},
    {"type": "remove_tag", "tag": "cold"},
    {"type": "add_contact_note", "note": "Clicked the %FIRSTNAME% email"},
    {"type": "facebook_audience_add", "audience": "12345"},
    {"type": "facebook_audience_remove", "audience": "12345"},
    {"type": "facebook_audience_add", "create_if_missing": True, "audience_name": "Buyers"},
    {
        "type": "facebook_audience_remove",
        "audience": "12345",
        "create_if_missing": True,
        "audience_name": "Buyers",
    },
    {"type": "adjust_contact_score", "score": "lead", "op": "add", "value": 5},
    {"type": "adjust_contact_score", "score": "lead", "op": "reset"},
    {
        "type": "add_deal",
        "title": "Deal for %FULLNAME%",
        "value": 120000,
        "currency": "eur",
        "pipeline": "Sales",
        "stage": "Lead",
        "owner": "alice",
        "fields": {"source": "automation"},
    },
    {"type": "update_deal_title", "value": "Renewal %FULLNAME%", "pipeline": "Sales"},
    {"type": "update_deal_status", "value": "won"},
    {"type": "update_deal_owner", "value": "bob"},
    {"type": "update_deal_value", "value": 5000},
    {"type": "update_deal_stage", "value": "Qualified", "pipeline": "Sales"},
    {"type": "update_deal_field", "field": "source", "value": "web"},
    {"type": "update_deal_field", "field": "source", "copy_from": "utm_source"},
    {"type": "update_deal_field", "field": "source", "clear": True},
    {"type": "update_account_field", "field": "industry", "value": "Retail"},
    {
        "type": "add_task",
        "title": "Call %FIRSTNAME%",
        "task_type": "call",
        "due_in": {"days": 1},
        "on": "deal",
    },
    {"type": "add_deal_note", "note": "Followed up"},
    {"type": "complete_task", "task_type": "call"},
    {"type": "adjust_deal_score", "score": "health", "op": "subtract", "value": 2},
    {"type": "add_to_account", "account": "Acme", "job_title": "CTO"},
    {"type": "salesforce_create_contact"},
    {"type": "salesforce_create_lead", "on_error": "end", "name": "Push to SF"},
]


def _errors(problems: list[Problem]) -> list[Problem]:
    return [problem for problem in problems if problem.severity == "error"]


def _doc(steps: dict[str, Any], start: str = "a", **extra: Any) -> dict[str, Any]:
    return {"name": "Test", "start": start, "steps": steps, **extra}


# --- documents ---------------------------------------------------------------------------


def test_spec_example_validates() -> None:
    automation, problems = validate_automation(copy.deepcopy(SPEC_EXAMPLE))

    assert problems == []
    assert automation is not None
    assert automation.start == "welcome"
    assert isinstance(automation.steps["pause"], WaitStep)
    assert automation.steps["pause"].for_ == Duration(days=2)


def test_every_step_type_has_an_example() -> None:
    covered = {example["type"] for example in STEP_EXAMPLES}
    modes = {example.get("mode") for example in STEP_EXAMPLES if example["type"] == "split"}

    assert covered == set(STEP_TYPES)
    assert modes == {"even", "until"}


@pytest.mark.parametrize("example", STEP_EXAMPLES, ids=lambda e: e["type"])
def test_step_example_round_trips(example: dict[str, Any]) -> None:
    step = STEP.validate_python(example)
    dumped = step.model_dump(by_alias=True, exclude_none=True)

    assert STEP.validate_python(dumped) == step
    # Stored as JSON too: the API and the database keep documents as JSON.
    assert STEP.validate_json(json.dumps(step.model_dump(by_alias=True, mode="json"))) == step


def test_every_example_in_one_document() -> None:
    steps = {f"s{index}": dict(example) for index, example in enumerate(STEP_EXAMPLES)}
    steps["a"] = {"type": "wait", "for": {"minutes": 1}}
    steps["b"] = {"type": "end"}
    automation, problems = validate_automation(_doc(steps, start="s0", id="main"))

    assert _errors(problems) == []
    assert automation is not None
    again, _ = validate_automation(automation.model_dump(by_alias=True, exclude_none=True))
    assert again == automation


def test_every_trigger_type_parses_and_round_trips() -> None:
    examples: list[dict[str, Any]] = [
        {"type": "list_subscribed", "list": "news", "entry": "multiple"},
        {"type": "list_unsubscribed"},
        {"type": "tag_added", "tag": "lead", "filter": {"not": {"tag": "customer"}}},
        {"type": "tag_removed", "tag": "lead"},
        {"type": "field_changed", "field": "plan", "to": None},
        {"type": "event", "event": "signup", "data": {"plan": "pro"}},
        {"type": "page_visited", "url": "https://x.test/pricing*"},
        {"type": "email_opened", "automation": "welcome"},
        {"type": "email_clicked", "link": "https://x.test/"},
        {"type": "deal_stage_changed", "pipeline": "Sales", "stage": "Won"},
        {"type": "score_changed", "score": "lead", "op": "gte", "value": 50},
        {"type": "goal_achieved", "automation": "welcome", "goal": "bought"},
        {"type": "date_field", "field": "birthday", "offset": -3, "annual": True},
        {"type": "api"},
    ]
    assert {example["type"] for example in examples} == set(TRIGGER_TYPES)
    for example in examples:
        trigger = TRIGGER.validate_python(example)
        assert TRIGGER.validate_python(trigger.model_dump(exclude_none=True)) == trigger


def test_field_changed_remembers_whether_to_was_given() -> None:
    cleared = TRIGGER.validate_python({"type": "field_changed", "field": "plan", "to": None})
    anything = TRIGGER.validate_python({"type": "field_changed", "field": "plan"})

    assert isinstance(cleared, FieldChangedTrigger) and cleared.has_to
    assert isinstance(anything, FieldChangedTrigger) and not anything.has_to
    assert cleared.model_dump(exclude_none=True)["to"] is None


def test_many_problems_are_all_listed_with_their_step() -> None:
    document = _doc(
        {
            "a": {"type": "send_emial", "subject": "Hi", "next": "b"},
            "b": {"type": "send_email", "html": "<p>Hi</p>", "next": "c"},
            "c": {"type": "wait", "for": {"days": 1}, "next": "chek"},
            "check": {"type": "add_contact_note", "note": "Hi %firstname%", "next": None},
            "lonely": {"type": "end"},
            "loop": {"type": "goto", "target": "tag"},
            "tag": {"type": "add_tag", "tag": "x", "next": "loop"},
        }
    )
    automation, problems = validate_automation(document)
    found = {(p.severity, p.step, p.path): p.message for p in problems}

    assert automation is None
    assert found[("error", "a", "steps.a")] == (
        'unknown step type "send_emial" (did you mean "send_email"?)'
    )
    assert found[("error", "b", "steps.b.subject")] == '"subject" is required'
    assert found[("error", "c", "steps.c.next")] == (
        'dangling reference: "next" names unknown step "chek" (did you mean "check"?)'
    )
    assert found[("error", "check", "steps.check.note")] == (
        'unknown personalization tag "%firstname%" (did you mean "%FIRSTNAME%"?)'
    )
    assert "can never be reached" in found[("warning", "lonely", "steps.lonely")]
    loop = found[("warning", "loop", "steps.loop.target")]
    assert "loop → tag → loop" in loop and "goto_limit" in loop
    # No pydantic internals in paths or messages.
    for problem in problems:
        assert "send_email" not in problem.path and "Tag" not in problem.path
        assert "discriminator" not in problem.message
    assert len(problems) == len(found)


def test_graph_checks() -> None:
    document = _doc(
        {
            "a": {"type": "if_else", "condition": {"tag": "x"}, "yes": "b", "no": "missing"},
            "b": {"type": "wait", "for": {"hours": 1}, "next": "c"},
            "c": {"type": "goto", "target": "b"},
            "g": {"type": "goal", "condition": {"tag": "won"}},
            "island": {"type": "end"},
            "s": {
                "type": "split",
                "mode": "even",
                "paths": [{"next": "a"}, {"next": "nowhere"}],
            },
        },
        start="a",
    )
    _, problems = validate_automation(document)
    paths = {(p.severity, p.path) for p in problems}

    assert paths == {
        ("error", "steps.a.no"),
        ("error", "steps.s.paths.1.next"),
        ("warning", "steps.island"),
        ("warning", "steps.s"),
    }  # the goal is reachable from anywhere; the goto loop has a wait on it


def test_start_must_name_a_step() -> None:
    _, problems = validate_automation(_doc({"welcome": {"type": "end"}}, start="welcom"))

    assert [(p.path, p.message) for p in problems] == [
        ("start", '"start" names unknown step "welcom" (did you mean "welcome"?)')
    ]


def test_loop_without_goto_or_wait_is_a_warning() -> None:
    steps = {
        "a": {"type": "add_tag", "tag": "x", "next": "b"},
        "b": {"type": "remove_tag", "tag": "x", "next": "a"},
    }
    automation, problems = validate_automation(_doc(steps))

    assert automation is not None  # a warning does not reject the document
    assert [(p.severity, p.step, p.path) for p in problems] == [("warning", "a", "steps.a")]
    assert "a → b → a" in problems[0].message


def test_a_waiting_goal_does_not_break_a_loop() -> None:
    # The goal holds a contact only until it is achieved (once per run): every later pass
    # goes straight through, so the loop spins until goto_limit, as the engine does.
    steps = {
        "a": {"type": "goal", "condition": {"tag": "x"}, "unmet": "wait", "next": "b"},
        "b": {"type": "goto", "target": "a"},
    }
    _, problems = validate_automation(_doc(steps))
    assert [(p.path, p.severity) for p in problems] == [("steps.b.target", "warning")]
    assert "goto loop with no wait" in problems[0].message


def test_other_automations_are_checked_when_known() -> None:
    steps = {
        "a": {"type": "start_automation", "automation": "onboardin", "next": "b"},
        "b": {"type": "end_automation", "automation": "all", "next": "c"},
        "c": {"type": "if_else", "condition": {"in_automation": "ghost"}, "yes": "d"},
        "d": {"type": "end_automation", "automation": "self"},
    }
    document = _doc(steps, id="self")

    _, unchecked = validate_automation(document)
    _, checked = validate_automation(document, known_automations=["onboarding"])

    assert unchecked == []
    assert [(p.path, p.message) for p in checked] == [
        ("steps.a.automation", 'unknown automation "onboardin" (did you mean "onboarding"?)'),
        ("steps.c.condition.in_automation", 'unknown automation "ghost"'),
    ]


def test_email_condition_step_must_exist() -> None:
    steps = {
        "a": {
            "type": "if_else",
            "condition": {"any": [{"tag": "x"}, {"email": "opened", "step": "mail"}]},
        },
        "b": {"type": "wait", "condition": {"email": "opened", "step": "b", "automation": "o"}},
    }
    _, problems = validate_automation(_doc(steps))
    errors = _errors(problems)

    assert [(p.step, p.path) for p in errors] == [("a", "steps.a.condition.any.1.step")]


def test_readable_messages_for_common_mistakes() -> None:
    steps = {
        "a": {"type": "send_email", "subjct": "Hi", "subject": "Hi", "html": "x"},
        "b": {"type": "split", "mode": "evn"},
        "c": {"type": "wait", "for": {"days": 1}, "until": "2030-01-01"},
        "d": {"type": "if_else", "condition": {"tagg": "x"}},
        "e": {"type": "end", "next": "a"},
        "f": {"name": "no type"},
        "bad id": {"type": "end"},
        "g": {"type": "add_task", "title": "x", "type_": "call", "due_in": {"days": 0}},
    }
    _, problems = validate_automation(
        _doc(steps, id="Not A Slug", triggers=[{"type": "tag_addd", "tag": "x"}])
    )
    messages = {p.path: p.message for p in problems if p.severity == "error"}

    assert messages["steps.a.subjct"] == 'unknown field "subjct" (did you mean "subject"?)'
    assert messages["steps.b"] == 'unknown split mode "evn": use "even" or "until"'
    assert messages["steps.c"] == 'a wait needs exactly one of "for", "until" or "condition"'
    assert messages["steps.d.condition"].startswith("a condition must be an object with one of")
    assert messages["steps.e.next"] == '"next" does not apply here'
    assert messages["steps.f"].startswith('a step needs a "type"; one of: send_email, ')
    assert messages["steps.bad id"].startswith('invalid step id "bad id"')
    assert messages["steps.g.due_in"].startswith("a duration must be longer than zero")
    assert messages["id"].startswith("an automation id is lower-case letters")
    assert messages["triggers.0"] == 'unknown trigger type "tag_addd" (did you mean "tag_added"?)'


# --- never raises, always fast --------------------------------------------------------------


def _deep_condition(depth: int, key: str = "all") -> dict[str, Any]:
    condition: dict[str, Any] = {"tag": "x"}
    for _ in range(depth - 1):
        condition = {key: [condition]} if key != "not" else {"not": condition}
    return condition


def _cyclic() -> dict[str, Any]:
    document: dict[str, Any] = {"name": "x", "start": "a"}
    document["steps"] = {"a": document}
    return document


BAD_INPUTS: list[Any] = [
    None,
    [],
    [SPEC_EXAMPLE],
    "automation",
    42,
    True,
    {},
    {"steps": []},
    {"name": "x", "start": 5, "steps": {"a": None}},
    {"name": "x", "start": "a", "steps": {1: {"type": "end"}, "a": "end"}},
    _doc({f"s{i}": {"type": "end", "next": f"s{i + 1}"} for i in range(10_000)}, start="s0"),
    _doc({"a": {"type": "if_else", "condition": _deep_condition(1000)}}),
    _doc({"a": {"type": "wait", "condition": _deep_condition(1000, "not")}}),
    _doc({"a": {"type": "end"}}, triggers=[{"type": "api", "filter": _deep_condition(1000)}]),
    _doc({"a": {"type": "end"}}, triggers=[{"type": "api"}] * 10_000),
    _doc({"a": {"type": "event", "event": "x", "data": _deep_condition(1000)}}),
    _cyclic(),
]


@pytest.mark.parametrize("data", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_input_returns_problems_fast(data: Any) -> None:
    started = time.perf_counter()
    automation, problems = validate_automation(data)
    elapsed = time.perf_counter() - started

    assert automation is None
    assert _errors(problems)
    assert all(isinstance(problem, Problem) and problem.message for problem in problems)
    assert elapsed < 1.0


def test_step_limit() -> None:
    steps = {f"s{i}": {"type": "end"} for i in range(MAX_STEPS + 1)}
    _, problems = validate_automation(_doc(steps, start="s0"))
    assert [(p.path, p.message) for p in problems] == [
        ("steps", f"an automation may have at most {MAX_STEPS} steps; this one has 501")
    ]


def test_largest_document_validates() -> None:
    steps: dict[str, Any] = {
        f"s{i}": {"type": "add_tag", "tag": f"t{i}", "next": f"s{i + 1}"} for i in range(499)
    }
    steps["s499"] = {"type": "goto", "target": "s0"}
    automation, problems = validate_automation(_doc(steps, start="s0"))

    # No timed assertion (the machine is shared): its cost is measured, not tested.
    assert automation is not None
    assert [p.severity for p in problems] == ["warning"]  # one loop with no wait


def test_condition_depth_limit() -> None:
    ok = _doc({"a": {"type": "if_else", "condition": _deep_condition(MAX_CONDITION_DEPTH)}})
    too_deep = _doc({"a": {"type": "if_else", "condition": _deep_condition(21, "any")}})

    assert validate_automation(ok)[0] is not None
    _, problems = validate_automation(too_deep)
    assert [(p.step, p.path, p.message) for p in problems] == [
        ("a", "steps.a.condition", "conditions are nested 21 levels deep; at most 20 are allowed")
    ]


# --- models -----------------------------------------------------------------------------


def test_duration_describe() -> None:
    assert Duration(days=2).describe() == "2 days"
    assert Duration(days=1, hours=4).describe() == "1 day 4 hours"
    assert Duration(minutes=30).describe() == "30 minutes"
    assert Duration(weeks=1, seconds=1).describe() == "1 week 1 second"
    assert Duration(hours=1.5).describe() == "1.5 hours"
    assert Duration(days=1, hours=4).to_timedelta().total_seconds() == 28 * 3600
    assert Duration.model_validate({"days": 2}).model_dump() == {"days": 2}


@pytest.mark.parametrize(
    "raw", [{}, {"days": 0}, {"days": -1}, {"day": 1}, {"days": 1e12}, {"hours": "nan"}]
)
def test_bad_durations(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Duration.model_validate(raw)


def test_successors() -> None:
    def succ(raw: dict[str, Any]) -> list[str]:
        return successors(STEP.validate_python(raw))

    assert succ({"type": "add_tag", "tag": "x", "next": "b"}) == ["b"]
    assert succ({"type": "add_tag", "tag": "x"}) == []
    assert succ({"type": "if_else", "condition": {"tag": "x"}, "yes": "y", "no": None}) == ["y"]
    assert succ({"type": "if_else", "condition": {"tag": "x"}, "yes": "n", "no": "y"}) == [
        "n",
        "y",
    ]
    split = {"type": "split", "mode": "even", "paths": [{"next": "p"}, {}, {"next": "q"}]}
    assert succ(split) == ["p", "q"]
    until = {"type": "split", "mode": "until", "until": {"contacts": 3}, "after": "z"}
    assert succ(until) == ["z"]
    assert succ({"type": "goto", "target": "t"}) == ["t"]
    assert succ({"type": "goal", "condition": {"tag": "x"}, "next": "g"}) == ["g"]
    assert succ({"type": "end"}) == []


def test_reachability_helpers() -> None:
    automation, _ = validate_automation(
        _doc(
            {
                "a": {"type": "if_else", "condition": {"tag": "x"}, "yes": "b", "no": "c"},
                "b": {"type": "add_tag", "tag": "y", "next": "goal"},
                "c": {"type": "end"},
                "goal": {"type": "goal", "condition": {"tag": "z"}, "scope": "above"},
                "other": {"type": "goto", "target": "b"},
            }
        )
    )
    assert automation is not None

    assert can_reach(automation, "goal") == {"a", "b", "goal", "other"}
    assert can_reach(automation, "c") == {"a", "c"}
    assert reachable_from(automation, "a") == {"a", "b", "c", "goal"}
    assert reachable_from(automation, "missing") == set()


def test_describe_step() -> None:
    def describe(step_id: str, raw: dict[str, Any]) -> str:
        return describe_step(step_id, STEP.validate_python(raw))

    assert describe("welcome", SPEC_EXAMPLE["steps"]["welcome"]) == (
        'send_email "Hi %FIRSTNAME%" (step welcome)'
    )
    named = {"type": "send_email", "name": "Welcome", "subject": "Hi", "html": "x"}
    assert describe("welcome", named) == 'send_email "Welcome" (step welcome)'
    assert describe("pause", {"type": "wait", "for": {"days": 2}}) == "wait 2 days (step pause)"
    assert describe("hot", {"type": "add_tag", "tag": "engaged"}) == 'add_tag "engaged" (step hot)'
    assert describe("check", SPEC_EXAMPLE["steps"]["check"]) == "if_else (step check)"
    assert describe("x", {"type": "end"}) == "end (step x)"
    for index, example in enumerate(STEP_EXAMPLES):
        assert describe(f"s{index}", example).startswith(example["type"])


def test_text_fields() -> None:
    def texts(raw: dict[str, Any]) -> list[tuple[str, str]]:
        return text_fields(STEP.validate_python(raw))

    assert texts(STEP_EXAMPLES[0]) == [
        ("subject", "Hi %FIRSTNAME%"),
        ("html", "<p>Hello %FULLNAME%</p>"),
        ("text", "Hello"),
        ("from_name", "Team"),
    ]
    update = {"type": "update_contact", "fields": {"first_name": "%FIRSTNAME%", "n": 3}}
    assert texts(update) == [("fields.first_name", "%FIRSTNAME%")]
    assert texts({"type": "add_tag", "tag": "x"}) == []


def test_wait_and_split_models() -> None:
    naive = STEP.validate_python({"type": "wait", "until": "2030-01-01T09:00:00"})
    assert isinstance(naive, WaitStep) and naive.until == datetime(2030, 1, 1, 9, tzinfo=UTC)

    invalid = [
        {"type": "wait", "for": {"days": 1}, "timeout": {"days": 1}},
        {"type": "wait"},
        {"type": "goal", "condition": {"tag": "x"}, "timeout": {"days": 1}},
        {"type": "split", "mode": "even", "paths": [{"next": "a"}]},
        {"type": "split", "mode": "even", "paths": [{}, {}], "winner": {"condition": {"tag": "x"}}},
        {"type": "update_deal_field", "field": "f", "value": "v", "clear": True},
        {"type": "adjust_contact_score", "score": "s", "op": "add"},
        {
            "type": "add_deal",
            "title": "t",
            "value": 1,
            "currency": "EURO",
            "pipeline": "p",
            "stage": "s",
        },
        {"type": "webhook", "url": "ftp://x"},
        {"type": "webhook", "url": "https://x.io", "headers": {"Idempotency-Key": "k"}},
        {"type": "webhook", "url": "https://x.io", "headers": {"Bad Name": "v"}},
        {"type": "webhook", "url": "https://x.io", "headers": {"X-Ok": "two\nlines"}},
        {"type": "facebook_audience_add"},
        {"type": "facebook_audience_add", "create_if_missing": True},
        {"type": "facebook_audience_add", "audience": "../act_1/ads"},
        {"type": "send_notification_email", "to": ["nope"], "subject": "s", "body": "b"},
        {"type": "update_contact", "fields": {"x": {"nested": 1}}},
        {"type": "update_contact", "fields": {}},
    ]
    for raw in invalid:
        with pytest.raises(ValidationError):
            STEP.validate_python(raw)


def test_conditions() -> None:
    condition = CONDITION.validate_python(
        {
            "all": [
                {"tag": "a"},
                {"not": {"field": "seen", "op": "within_last", "value": {"days": 7}}},
                {"any": [{"email": "clicked", "step": "x"}]},
            ]
        }
    )
    assert isinstance(condition, AllOf)
    assert condition_depth(condition) == 3
    leaves = list(iter_leaves(condition))
    assert [type(leaf) for leaf in leaves] == [TagCondition, FieldCondition, EmailCondition]
    assert leaves[1].value == Duration(days=7)  # type: ignore[union-attr]
    assert isinstance(condition.all[1], Not)
    dumped = condition.model_dump(exclude_none=True)
    assert dumped["all"][1] == {"not": {"field": "seen", "op": "within_last", "value": {"days": 7}}}
    assert CONDITION.validate_python(dumped) == condition

    for bad in [
        {"field": "x", "op": "within_last", "value": 3},
        {"field": "x", "op": "gt"},
        {"field": "x", "op": "like", "value": 1},
        {"all": []},
        {"tag": "a", "list": "b"},
        {"unknown": 1},
        "tag",
    ]:
        with pytest.raises(ValidationError):
            CONDITION.validate_python(bad)
    assert CONDITION.validate_python({"field": "x", "op": "is_blank"}) is not None


def test_json_schema() -> None:
    schema = automation_json_schema()

    assert schema["type"] == "object"
    assert {"name", "start", "steps"} <= set(schema["required"])
    assert "WaitStep" in schema["$defs"]
    assert "for" in schema["$defs"]["WaitStep"]["properties"]
    assert "not" in schema["$defs"]["Not"]["properties"]
    json.dumps(schema)


def test_step_base_is_shared() -> None:
    for example in STEP_EXAMPLES:
        step = STEP.validate_python(example)
        assert isinstance(step, StepBase)
        assert step.on_error in ("continue", "end")
    assert isinstance(Automation.model_validate(SPEC_EXAMPLE), Automation)
