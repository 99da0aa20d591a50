"""The automation document (docs/automations.md) and its validation: every problem at once, per step."""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from workflows.conditions import (
    CONDITION_TAGS,
    MAX_CONDITION_DEPTH,
    AllOf,
    AnyOf,
    Condition,
    EmailCondition,
    GoalAchievedCondition,
    InAutomationCondition,
    Not,
)
from workflows.limits import MAX_NESTING, MAX_STEPS, MAX_TEXT_CHARS, MAX_TRIGGERS
from workflows.personalization import foreign_placeholders, suggest_tag, unknown_tags
from workflows.steps import (
    STEP_MODELS,
    STEP_TYPES,
    UNTIL_TAGS,
    EndAutomationStep,
    GoalStep,
    GotoStep,
    SendEmailStep,
    StartAutomationStep,
    Step,
    StepBase,
    successors,
    text_fields,
)
from workflows.triggers import (
    TRIGGER_MODELS,
    TRIGGER_TYPES,
    DateFieldTrigger,
    EmailClickedTrigger,
    EmailOpenedTrigger,
    GoalAchievedTrigger,
    Trigger,
    TriggerBase,
)

STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
AUTOMATION_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# A problem quotes what it is about; a hostile megabyte-long id is quoted this far only.
_MAX_QUOTED = 200

StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN)]


class Automation(BaseModel):
    """An automation: triggers that enroll contacts, and a graph of steps from `start`."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    id: str | None = Field(default=None, pattern=AUTOMATION_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    status: Literal["active", "inactive"] = "active"
    entry: Literal["once", "multiple"] = "once"
    triggers: list[Trigger] = Field(default_factory=list, max_length=MAX_TRIGGERS)
    start: str
    steps: dict[StepId, Step] = Field(max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _email_steps_are_this_automations(self) -> Automation:
        """An `email` leaf naming a `step` but no `automation` means a step of this automation:
        filled in, so a click on a same-named step of another automation never meets it. Done
        on every parse, so documents stored before this rule read the same way."""
        if self.id is None:
            return self
        conditions = [c for step in self.steps.values() for _, c in step.conditions()]
        conditions += [t.filter for t in self.triggers if t.filter is not None]
        for condition in conditions:
            for _, leaf in _walk_condition(condition, ""):
                if isinstance(leaf, EmailCondition) and leaf.step and leaf.automation is None:
                    leaf.automation = self.id
        return self


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 1] + "…"


ShortText = Annotated[str, AfterValidator(_shorten)]


class Problem(BaseModel):
    """One thing wrong (error) or suspicious (warning) in an automation document."""

    step: ShortText | None = None
    path: ShortText
    # Longer: a message quotes the step id, the value and a suggestion.
    message: Annotated[str, AfterValidator(lambda text: text[: 4 * _MAX_QUOTED])]
    severity: Literal["error", "warning"] = "error"


_STEP_ADAPTER: TypeAdapter[StepBase] = TypeAdapter(Step)
_TRIGGER_ADAPTER: TypeAdapter[TriggerBase] = TypeAdapter(Trigger)

# Segments pydantic adds to error locations for the unions it chose between.
_UNION_TAGS = CONDITION_TAGS | UNTIL_TAGS
_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})
_RAW_REF_KEYS = ("next", "yes", "no", "target", "before", "after")
_RAW_TEXT_KEYS = frozenset(field for model in STEP_MODELS for field in model.TEXT_FIELDS)


def _field_names(models: Iterable[type[BaseModel]]) -> set[str]:
    return {info.alias or name for model in models for name, info in model.model_fields.items()}


# Every key the document format knows, for "did you mean" on unknown fields.
_VOCABULARY = sorted(_field_names((Automation, *STEP_MODELS, *TRIGGER_MODELS)))


def _did_you_mean(word: str, choices: Iterable[str], *, quote: str = '"') -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {quote}{match[0]}{quote}?)" if match else ""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _too_deep(value: Any, limit: int) -> bool:
    """Whether `value` nests dicts/lists more than `limit` levels (iteratively, so cycles and
    absurd depths cost nothing but a bounded walk)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _text_problems(document: Mapping[str, Any]) -> Iterator[Problem]:
    """Strings no document may hold, wherever they are: too long, or with a NUL character
    (which PostgreSQL cannot store). Walked iteratively, like `_too_deep`."""
    stack: list[tuple[str, Any]] = [(str(key), value) for key, value in document.items()]
    stack.extend(("", key) for key in document)  # keys are text too
    seen: set[int] = set()  # a document built in Python may contain itself
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict | list):
            if id(node) in seen:
                continue
            seen.add(id(node))
        if isinstance(node, dict):
            stack.extend((path, key) for key in node)
            stack.extend((f"{path}.{key}", value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}.{index}", value) for index, value in enumerate(node))
        elif isinstance(node, str):
            where = path or _shorten(node)
            step = path.split(".")[1] if path.startswith("steps.") else None
            if "\x00" in node:
                yield Problem(
                    step=step,
                    path=path,
                    message=f"{where}: text may not contain the NUL character (\\u0000)",
                )
            if len(node) > MAX_TEXT_CHARS:
                yield Problem(
                    step=step,
                    path=path,
                    message=f"{where}: text may be at most {MAX_TEXT_CHARS:,} characters; "
                    f"this one has {len(node):,}",
                )


# --- pydantic errors → problems ----------------------------------------------------------


def _union_message(kind: str, error: dict[str, Any], choices: Collection[str]) -> str:
    if error["type"] == "union_tag_not_found":
        return f'a {kind} needs a "type"; one of: ' + ", ".join(choices)
    tag = str(error.get("ctx", {}).get("tag", ""))
    return f'unknown {kind} type "{tag}"' + _did_you_mean(tag, choices)


def _problem_from_error(error: dict[str, Any]) -> Problem:
    loc = list(error["loc"])
    kind = error["type"]
    step: str | None = None
    message: str | None = None

    if loc[:1] == ["steps"] and len(loc) >= 2:
        step = str(loc[1])
        rest = loc[2:]
        if rest == ["[key]"]:
            rest = []
            message = (
                f'invalid step id "{_shorten(step)}": use letters, digits, "_" and "-", '
                "starting with a letter or digit, at most 64 characters"
            )
        elif not rest and kind in _TAG_ERRORS:
            message = _union_message("step", error, STEP_TYPES)
        elif rest[:1] == ["split"] and len(rest) == 1 and kind in _TAG_ERRORS:
            rest = []
            if kind == "union_tag_not_found":
                message = 'a split needs "mode": "even" or "until"'
            else:
                mode = error.get("ctx", {}).get("tag", "")
                message = f'unknown split mode "{mode}": use "even" or "until"'
        elif rest:
            # Drop the step type (and split mode) pydantic inserts after the step id.
            rest = (
                rest[2:] if rest[0] == "split" and rest[1:2] in (["even"], ["until"]) else rest[1:]
            )
        loc = ["steps", step, *rest]
    elif loc[:1] == ["triggers"] and len(loc) >= 2:
        if len(loc) == 2 and kind in _TAG_ERRORS:
            message = _union_message("trigger", error, TRIGGER_TYPES)
        elif len(loc) > 2:
            loc = loc[:2] + loc[3:]

    loc = [part for part in loc if part not in _UNION_TAGS]
    path = ".".join(str(part) for part in loc)
    if message is None:
        message = _message_for(kind, error, loc)
    return Problem(step=step, path=path, message=message, severity="error")


def _message_for(kind: str, error: dict[str, Any], loc: list[Any]) -> str:
    last = str(loc[-1]) if loc else ""
    if kind == "missing":
        return f'"{last}" is required'
    if kind == "extra_forbidden":
        if last in _VOCABULARY:
            return f'"{last}" does not apply here'
        return f'unknown field "{last}"' + _did_you_mean(last, _VOCABULARY)
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "must be an object"
    if kind == "string_pattern_mismatch" and loc == ["id"]:
        return (
            'an automation id is lower-case letters, digits, "_" and "-", '
            "starting with a letter or digit, at most 63 characters"
        )
    if kind == "recursion_loop":
        return f"nested too deeply (conditions may be nested at most {MAX_CONDITION_DEPTH} levels)"
    return str(error["msg"]).removeprefix("Value error, ")


# --- graph checks -----------------------------------------------------------------------


def _raw_references(raw: Any) -> list[tuple[str, str]]:
    """References of a step that did not parse, read from its JSON as far as possible."""
    if not isinstance(raw, dict):
        return []
    refs = [(key, raw[key]) for key in _RAW_REF_KEYS if isinstance(raw.get(key), str)]
    paths = raw.get("paths")
    if isinstance(paths, list):
        refs += [
            (f"paths.{index}.next", path["next"])
            for index, path in enumerate(paths)
            if isinstance(path, dict) and isinstance(path.get("next"), str)
        ]
    return refs


class _Graph:
    """The steps of a document, parsed or not, with their references."""

    def __init__(self, steps: Mapping[str, StepBase | None], raw: Mapping[str, Any]) -> None:
        self.steps = steps
        self.refs: dict[str, list[tuple[str, str]]] = {}
        for step_id, step in steps.items():
            if step is None:
                self.refs[step_id] = _raw_references(raw.get(step_id))
            else:
                self.refs[step_id] = [(path, ref) for path, ref in step.references() if ref]

    def successors(self, step_id: str) -> list[str]:
        return [ref for _, ref in self.refs.get(step_id, []) if ref in self.steps]

    def reachable(self, roots: Iterable[str], allowed: Collection[str] | None = None) -> set[str]:
        seen = {root for root in roots if root in self.steps}
        queue = deque(seen)
        while queue:
            for nxt in self.successors(queue.popleft()):
                if nxt not in seen and (allowed is None or nxt in allowed):
                    seen.add(nxt)
                    queue.append(nxt)
        return seen


def _check_references(graph: _Graph, start: Any) -> Iterator[Problem]:
    ids = list(graph.steps)
    if isinstance(start, str) and start not in graph.steps:
        yield Problem(
            path="start",
            message=f'"start" names unknown step "{start}"' + _did_you_mean(start, ids),
        )
    for step_id, refs in graph.refs.items():
        for path, ref in refs:
            if ref not in graph.steps:
                yield Problem(
                    step=step_id,
                    path=f"steps.{step_id}.{path}",
                    message=f'dangling reference: "{path}" names unknown step "{ref}"'
                    + _did_you_mean(ref, ids),
                )


def _check_reachability(graph: _Graph, start: str) -> Iterator[Problem]:
    # Contacts jump to an "anywhere" goal from wherever they are, so it is reachable too.
    goals = [
        step_id
        for step_id, step in graph.steps.items()
        if isinstance(step, GoalStep) and step.scope == "anywhere"
    ]
    reached = graph.reachable([start, *goals])
    for step_id in graph.steps:
        if step_id not in reached:
            yield Problem(
                step=step_id,
                path=f"steps.{step_id}",
                message=f'step "{step_id}" can never be reached from "start" ("{start}")',
                severity="warning",
            )


def _cycle_through(graph: _Graph, anchor: str, members: Collection[str]) -> list[str]:
    """A shortest cycle from `anchor` back to itself within `members`."""
    parents: dict[str, str] = {}
    queue = deque([anchor])
    while queue:
        node = queue.popleft()
        for nxt in graph.successors(node):
            if nxt == anchor:
                path = [node]
                while path[-1] != anchor:
                    path.append(parents[path[-1]])
                return [*reversed(path), anchor]
            if nxt in members and nxt not in parents:
                parents[nxt] = node
                queue.append(nxt)
    return [anchor, anchor]


def _check_loops(graph: _Graph) -> Iterator[Problem]:
    # A step that did not parse counts as pausing: no warning built on a guess.
    flowing = [
        step_id for step_id, step in graph.steps.items() if step is not None and not step.pauses()
    ]
    allowed = set(flowing)
    reach = {
        step_id: graph.reachable(
            [nxt for nxt in graph.successors(step_id) if nxt in allowed], allowed
        )
        for step_id in flowing
    }
    on_cycle = [step_id for step_id in flowing if step_id in reach[step_id]]
    reported: set[str] = set()
    for step_id in on_cycle:
        if step_id in reported:
            continue
        loop = [other for other in on_cycle if other in reach[step_id] and step_id in reach[other]]
        reported.update(loop)
        gotos = [other for other in loop if isinstance(graph.steps[other], GotoStep)]
        anchor = gotos[0] if gotos else loop[0]
        cycle = " → ".join(_cycle_through(graph, anchor, loop))
        if gotos:
            path = f"steps.{anchor}.target"
            message = (
                f"goto loop with no wait: {cycle}; "
                "contacts going round it will end with reason goto_limit"
            )
        else:
            path = f"steps.{anchor}"
            message = f"loop with no wait: {cycle}; contacts would go round it without pause"
        yield Problem(step=anchor, path=path, message=message, severity="warning")


# --- content checks ---------------------------------------------------------------------


def _walk_condition(condition: Condition, path: str) -> Iterator[tuple[str, Condition]]:
    """(path, leaf) of every leaf condition, paths in document terms."""
    stack: list[tuple[str, Condition]] = [(path, condition)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, AllOf):
            stack.extend((f"{where}.all.{i}", child) for i, child in enumerate(node.all))
        elif isinstance(node, AnyOf):
            stack.extend((f"{where}.any.{i}", child) for i, child in enumerate(node.any))
        elif isinstance(node, Not):
            stack.append((f"{where}.not", node.not_))
        else:
            yield where, node


def _condition_problems(
    condition: Condition,
    path: str,
    step: str | None,
    step_ids: Mapping[str, StepBase | None],
    own_id: str | None,
    known: Collection[str] | None,
) -> Iterator[Problem]:
    for where, leaf in _walk_condition(condition, path):
        refs: list[tuple[str, str]] = []
        if isinstance(leaf, EmailCondition):
            if leaf.step is not None and leaf.automation in (None, own_id):
                if leaf.step not in step_ids:
                    yield Problem(
                        step=step,
                        path=f"{where}.step",
                        message=f'condition names unknown step "{leaf.step}"'
                        + _did_you_mean(leaf.step, step_ids),
                    )
                elif not isinstance(step_ids.get(leaf.step), SendEmailStep | type(None)):
                    yield Problem(
                        step=step,
                        path=f"{where}.step",
                        message=f'step "{leaf.step}" sends no email: an email condition names '
                        "a send_email step of this automation (or gives `automation`)",
                    )
            if leaf.automation is not None:
                refs.append(("automation", leaf.automation))
        elif isinstance(leaf, InAutomationCondition):
            refs.append(("in_automation", leaf.in_automation))
        elif isinstance(leaf, GoalAchievedCondition):
            refs.append(("goal_achieved.automation", leaf.goal_achieved.automation))
        if known is not None:
            for field, automation in refs:
                if automation not in known:
                    yield _unknown_automation(step, f"{where}.{field}", automation, known)


def _unknown_automation(
    step: str | None, path: str, automation: str, known: Collection[str]
) -> Problem:
    return Problem(
        step=step,
        path=path,
        message=f'unknown automation "{automation}"' + _did_you_mean(automation, known),
    )


def _tag_problems(step_id: str, fields: Iterable[tuple[str, str]]) -> Iterator[Problem]:
    for field, text in fields:
        for name in unknown_tags(text, None):
            yield Problem(
                step=step_id,
                path=f"steps.{step_id}.{field}",
                message=f'unknown personalization tag "%{name}%" '
                f'(did you mean "{suggest_tag(name)}"?)',
            )
        for written, name in foreign_placeholders(text):
            hint = (
                f'; did you mean "{suggest_tag(name)}"?'
                if re.fullmatch(r"[A-Za-z][\w -]*", name)
                else ""
            )
            yield Problem(
                step=step_id,
                path=f"steps.{step_id}.{field}",
                message=f'"{written}" is not a personalization tag and will be sent as '
                f"written (tags look like %FIRSTNAME%){hint}",
                severity="warning",
            )


def unknown_tag_problems(automation: Automation, custom_fields: Collection[str]) -> list[Problem]:
    """Warnings for well-formed `%TAG%`s that are neither standard nor one of `custom_fields`
    (the names present on contacts, known only where the database is): they render empty."""
    problems: list[Problem] = []
    for step_id, step in automation.steps.items():
        for field, text in text_fields(step):
            malformed = set(unknown_tags(text, None))
            for name in unknown_tags(text, custom_fields):
                if name not in malformed:
                    problems.append(
                        Problem(
                            step=step_id,
                            path=f"steps.{step_id}.{field}",
                            message=f'"%{name}%" is neither a standard tag nor a custom field '
                            "of any contact: it renders empty until contacts have that field",
                            severity="warning",
                        )
                    )
    return problems


def _raw_text_fields(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, dict):
        return []
    return [(k, v) for k, v in raw.items() if k in _RAW_TEXT_KEYS and isinstance(v, str)]


def _content_problems(
    steps: Mapping[str, StepBase | None],
    raw_steps: Mapping[str, Any],
    triggers: Iterable[tuple[int, TriggerBase]],
    own_id: str | None,
    known_automations: Collection[str] | None,
) -> Iterator[Problem]:
    known = None if known_automations is None else {*known_automations, *filter(None, [own_id])}
    for step_id, step in steps.items():
        if step is None:
            yield from _tag_problems(step_id, _raw_text_fields(raw_steps.get(step_id)))
            continue
        yield from _tag_problems(step_id, text_fields(step))
        for path, condition in step.conditions():
            yield from _condition_problems(
                condition, f"steps.{step_id}.{path}", step_id, steps, own_id, known
            )
        if known is not None and isinstance(step, StartAutomationStep | EndAutomationStep):
            if step.automation not in known and not (
                isinstance(step, EndAutomationStep) and step.automation == "all"
            ):
                yield _unknown_automation(
                    step_id, f"steps.{step_id}.automation", step.automation, known
                )
    for index, trigger in triggers:
        if trigger.filter is not None:
            yield from _condition_problems(
                trigger.filter, f"triggers.{index}.filter", None, steps, own_id, known
            )
        if known is not None and isinstance(
            trigger, GoalAchievedTrigger | EmailOpenedTrigger | EmailClickedTrigger
        ):
            if trigger.automation is not None and trigger.automation not in known:
                yield _unknown_automation(
                    None, f"triggers.{index}.automation", trigger.automation, known
                )


def _once_a_year_problems(
    triggers: Iterable[tuple[int, TriggerBase]], automation_entry: Any
) -> Iterator[Problem]:
    """An annual date trigger (a birthday) under the `once` entry rule enrolls each contact
    for their first date only, which is rarely what its author means."""
    for index, trigger in triggers:
        entry = trigger.entry or automation_entry or "once"
        if isinstance(trigger, DateFieldTrigger) and trigger.annual and entry == "once":
            yield Problem(
                path=f"triggers.{index}",
                message="this annual date trigger enrolls each contact once ever (entry "
                '"once"), for one year only; set "entry": "multiple" on the trigger or the '
                "automation to enroll them every year",
                severity="warning",
            )


# --- entry points -----------------------------------------------------------------------


def _parse_each(adapter: TypeAdapter[Any], raw: Any) -> Any:
    try:
        return adapter.validate_python(raw)
    except ValidationError:
        return None  # already reported by the whole-document validation


def _validate(
    data: Any, known_automations: Collection[str] | None
) -> tuple[Automation | None, list[Problem]]:
    if not isinstance(data, Mapping):
        message = f"an automation must be a JSON object, not {_kind(data)}"
        return None, [Problem(path="", message=message)]
    document = dict(data)
    problems: list[Problem] = list(_text_problems(document))

    raw_steps = document.get("steps")
    steps_checkable = isinstance(raw_steps, Mapping)
    if isinstance(raw_steps, Mapping) and len(raw_steps) > MAX_STEPS:
        problems.append(
            Problem(
                path="steps",
                message=f"an automation may have at most {MAX_STEPS} steps; "
                f"this one has {len(raw_steps)}",
            )
        )
        document["steps"] = raw_steps = {}
        steps_checkable = False
    # Anything nested absurdly deep is reported here and kept away from pydantic.
    too_deep: set[str] = set()
    if isinstance(raw_steps, Mapping):
        kept: dict[Any, Any] = {}
        for step_id, raw in raw_steps.items():
            if _too_deep(raw, MAX_NESTING):
                too_deep.add(str(step_id))
                problems.append(_nesting_problem(str(step_id), f"steps.{step_id}"))
            else:
                kept[step_id] = raw
        document["steps"] = kept
    raw_triggers = document.get("triggers")
    if isinstance(raw_triggers, list) and len(raw_triggers) > MAX_TRIGGERS:
        problems.append(
            Problem(
                path="triggers",
                message=f"an automation may have at most {MAX_TRIGGERS} triggers; "
                f"this one has {len(raw_triggers)}",
            )
        )
        document["triggers"] = raw_triggers = []
    if isinstance(raw_triggers, list):
        shallow = []
        for index, raw in enumerate(raw_triggers):
            if _too_deep(raw, MAX_NESTING):
                problems.append(_nesting_problem(None, f"triggers.{index}"))
            else:
                shallow.append(raw)
        document["triggers"] = shallow

    automation: Automation | None = None
    try:
        automation = Automation.model_validate(document)
    except ValidationError as error:
        problems += [
            _problem_from_error(dict(e))
            for e in error.errors(include_url=False, include_input=False)
        ]

    if steps_checkable and isinstance(raw_steps, Mapping):
        if automation is not None and not too_deep:
            steps: dict[str, StepBase | None] = dict(automation.steps)
            triggers = list(enumerate(automation.triggers))
        else:
            # Parse step by step so one broken step does not hide the others' problems.
            steps = {
                step_id: None if step_id in too_deep else _parse_each(_STEP_ADAPTER, raw)
                for step_id, raw in raw_steps.items()
                if isinstance(step_id, str)
            }
            triggers = [
                (index, trigger)
                for index, raw in enumerate(raw_triggers if isinstance(raw_triggers, list) else [])
                if not _too_deep(raw, MAX_NESTING)
                and (trigger := _parse_each(_TRIGGER_ADAPTER, raw)) is not None
            ]
        graph = _Graph(steps, raw_steps)
        start = document.get("start")
        problems += _check_references(graph, start)
        own_id = document.get("id") if isinstance(document.get("id"), str) else None
        problems += _content_problems(steps, raw_steps, triggers, own_id, known_automations)
        problems += _once_a_year_problems(triggers, document.get("entry"))
        if isinstance(start, str) and start in steps:
            problems += _check_reachability(graph, start)
        problems += _check_loops(graph)

    if any(problem.severity == "error" for problem in problems):
        return None, problems
    return automation, problems


def _nesting_problem(step: str | None, path: str) -> Problem:
    return Problem(
        step=step,
        path=path,
        message=f"nested more than {MAX_NESTING} levels deep "
        f"(conditions may be nested at most {MAX_CONDITION_DEPTH} levels)",
    )


def validate_automation(
    data: Any, *, known_automations: Collection[str] | None = None
) -> tuple[Automation | None, list[Problem]]:
    """Parse and check an automation document, listing every problem at once.

    Returns the automation (None when any problem is an error) and the problems, each
    naming its step. `known_automations`, when given, are the ids other steps may name.
    Never raises, whatever `data` is.
    """
    try:
        return _validate(data, known_automations)
    except Exception as error:  # the API promises a list of problems, never a 500
        message = f"the automation could not be validated ({type(error).__name__})"
        return None, [Problem(path="", message=message)]


def automation_json_schema() -> dict[str, Any]:
    """JSON Schema of the automation document, keys as written in JSON."""
    schema = Automation.model_json_schema(by_alias=True)
    # OpenAPI-style discriminator mappings must point at schemas; the nested split union
    # makes pydantic emit an object there, which strict tools reject.
    _drop_nested_mappings(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _drop_nested_mappings(schema: Any) -> None:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            mapping = node.get("discriminator", {}).get("mapping")
            if isinstance(mapping, dict):
                for key in [k for k, v in mapping.items() if not isinstance(v, str)]:
                    del mapping[key]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def reachable_from(automation: Automation, step_id: str) -> set[str]:
    """Steps a contact at `step_id` can get to by following references (itself included)."""
    if step_id not in automation.steps:
        return set()
    seen = {step_id}
    queue = deque([step_id])
    while queue:
        for nxt in successors(automation.steps[queue.popleft()]):
            if nxt in automation.steps and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def can_reach(automation: Automation, step_id: str) -> set[str]:
    """Steps from which `step_id` can be reached (itself included): a goal's "above"."""
    if step_id not in automation.steps:
        return set()
    predecessors: dict[str, list[str]] = {}
    for source, step in automation.steps.items():
        for target in successors(step):
            predecessors.setdefault(target, []).append(source)
    seen = {step_id}
    queue = deque([step_id])
    while queue:
        for previous in predecessors.get(queue.popleft(), []):
            if previous not in seen:
                seen.add(previous)
                queue.append(previous)
    return seen


def secret_free(document: Mapping[str, Any]) -> dict[str, Any]:
    """The stored document as a run sees it: Temporal keeps it in every run's history, so each
    step leaves out what its activity reads from the database itself (a webhook's headers and
    its URL beyond the origin; docs/architecture.md#runs-in-temporal)."""
    steps = {
        step_id: STEP_TYPES[raw["type"]][0].secret_free(raw)
        if isinstance(raw, dict) and raw.get("type") in STEP_TYPES
        else raw
        for step_id, raw in document.get("steps", {}).items()
    }
    return {**document, "steps": steps}


def goal_sources(automation: Automation) -> dict[str, set[str]]:
    """For each goal step, the steps from which it can be reached (its scope "above")."""
    return {
        sid: can_reach(automation, sid) for sid, s in automation.steps.items() if s.type == "goal"
    }


def goal_step(automation: Automation, goal_id: str) -> GoalStep:
    """The goal step `goal_id` (the caller got the id from `goal_sources`)."""
    step = automation.steps[goal_id]
    assert isinstance(step, GoalStep), goal_id
    return step


def goal_condition(automation: Automation, goal_id: str) -> dict[str, Any]:
    """The goal's condition as the JSON the condition activities evaluate."""
    return goal_step(automation, goal_id).condition.model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )


def eligible_goals(
    automation: Automation, sources: dict[str, set[str]], position: str, achieved: Collection[str]
) -> list[str]:
    """The goals a contact at `position` may jump to now (`scope` in docs/automations.md#goal; once per run)."""
    return [
        goal
        for goal, reachers in sources.items()
        if goal != position
        and goal not in achieved
        and (
            getattr(automation.steps[goal], "scope", "anywhere") == "anywhere"
            or position in reachers
        )
    ]
