"""Step types of an automation (docs/automations.md#steps): one pydantic model per ``type``.

Each model knows what carries it out (`ACTIVITY`), its outgoing references (`references`),
the text fields that accept personalization tags (`texts`), the conditions it holds
(`conditions`) and how to summarise itself for the Temporal UI (`detail`), so callers never
switch on the type. `Step` is the one list of models; every table by step type derives from it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from workflows.conditions import BoundedCondition, Condition, NonEmptyStr
from workflows.durations import Duration

_EMAIL_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")  # RFC 9110 token
# Headers a webhook cannot set: Cairn's signature and idempotency headers, and framing.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "x-cairn-signature",
        "x-cairn-timestamp",
        "idempotency-key",
    }
)
_MAX_SUMMARY = 60


def _check_email_address(value: str) -> str:
    if len(value) > 254 or not _EMAIL_ADDRESS.match(value):
        raise ValueError(f'"{value[:80]}" is not an email address')
    return value


def _check_scalar(value: Any) -> Any:
    # Field values end up in a database column and in personalization: keep them flat.
    if value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError("a field value must be a string, a number, true/false or null")
    return value


def _check_http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("the URL must start with http:// or https://")
    return value


def _assume_utc(value: datetime) -> datetime:
    # A date without a zone is read as UTC so timers never depend on a worker's locale.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


EmailAddress = Annotated[
    str, AfterValidator(_check_email_address), WithJsonSchema({"type": "string", "format": "email"})
]
FieldValue = Annotated[
    Any,
    AfterValidator(_check_scalar),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]
HttpUrl = Annotated[
    str, AfterValidator(_check_http_url), WithJsonSchema({"type": "string", "format": "uri"})
]
AwareDatetime = Annotated[datetime, AfterValidator(_assume_utc)]
# A reference to another step; null (or absent) ends the run after this step.
StepRef = str | None


def url_origin(url: str) -> str:
    """`scheme://host:port` of a URL, without credentials, path, query or fragment."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_SUMMARY:
        text = text[: _MAX_SUMMARY - 1] + "…"
    return f'"{text}"'


class StepActivity(NamedTuple):
    """The activity that carries out a step, by its registered name. Local activities are for
    Cairn's own short database work (one history marker each); anything that talks to the
    outside world is a regular activity with its own retries and timeouts (~6 events)."""

    name: str
    local: bool = False


# Cairn's own writes: one local activity per family, each with a table from step type to the
# function that applies it (activities/contacts.py, activities/crm.py).
CONTACT_WRITE = StepActivity("apply_contact_step", local=True)
CRM_WRITE = StepActivity("apply_crm_step", local=True)


class StepBase(BaseModel):
    """What every step has: an optional label and what to do when its activity fails."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    # Fields whose text may hold personalization tags.
    TEXT_FIELDS: ClassVar[tuple[str, ...]] = ()
    # The field that identifies the step in a summary when it has no `name`.
    SUMMARY_FIELD: ClassVar[str | None] = None
    # The activity that carries the step out; None for a step the workflow runs itself
    # (a method of AutomationRun registered with `@handles`). Changing it changes histories.
    ACTIVITY: ClassVar[StepActivity | None] = None

    type: str
    name: str | None = Field(default=None, max_length=200)
    on_error: Literal["continue", "end"] = "continue"

    def references(self) -> list[tuple[str, str | None]]:
        """(field path, step id or None) of every step this one can go to, in order."""
        return []

    def texts(self) -> list[tuple[str, str]]:
        """(field path, text) of every field that accepts personalization tags."""
        return [
            (field, value)
            for field in self.TEXT_FIELDS
            if isinstance(value := getattr(self, field), str)
        ]

    def conditions(self) -> list[tuple[str, Condition]]:
        """(field path, condition) of every condition this step evaluates."""
        return []

    def pauses(self) -> bool:
        """Whether a contact can be held here (a wait), which breaks a `goto` loop."""
        return False

    @classmethod
    def secret_free(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The stored step as runs see it, without what must stay out of Temporal's history
        (docs/architecture.md#runs-in-temporal); the step's activity reads the rest itself."""
        return raw

    def detail(self) -> str:
        """What the step does, for summaries, when it has no `name`."""
        if self.SUMMARY_FIELD is None:
            return ""
        value = getattr(self, self.SUMMARY_FIELD)
        return _quote(str(value)) if value is not None else ""


class LinearStep(StepBase):
    """A step followed by at most one other step."""

    next: StepRef = None

    def references(self) -> list[tuple[str, str | None]]:
        return [("next", self.next)]


class _DealStep(LinearStep):
    """A step acting on the contact's current deal, optionally within one pipeline."""

    pipeline: NonEmptyStr | None = None


# --- Sending ---------------------------------------------------------------------------


class SendEmailStep(LinearStep):
    """Send an email through SMTP."""

    ACTIVITY = StepActivity("send_email")
    TEXT_FIELDS = ("subject", "html", "text", "from_name")
    SUMMARY_FIELD = "subject"

    type: Literal["send_email"]
    subject: NonEmptyStr = Field(max_length=998)
    html: NonEmptyStr
    text: str | None = None
    from_email: EmailAddress | None = None
    from_name: str | None = Field(default=None, max_length=200)
    reply_to: EmailAddress | None = None


class SendSiteMessageStep(LinearStep):
    """Queue a message shown on the contact's next visit of a matching page."""

    ACTIVITY = StepActivity("send_site_message", local=True)
    TEXT_FIELDS = ("html",)
    SUMMARY_FIELD = "page"

    type: Literal["send_site_message"]
    html: NonEmptyStr
    page: NonEmptyStr | None = None
    expires: Duration | None = None


class SendSmsStep(LinearStep):
    """Send a text message."""

    ACTIVITY = StepActivity("send_sms")
    TEXT_FIELDS = ("body",)
    SUMMARY_FIELD = "body"

    type: Literal["send_sms"]
    body: NonEmptyStr = Field(max_length=1600)


class SendNotificationEmailStep(LinearStep):
    """Send an internal email about the contact."""

    ACTIVITY = StepActivity("send_notification_email")
    TEXT_FIELDS = ("subject", "body")
    SUMMARY_FIELD = "subject"

    type: Literal["send_notification_email"]
    to: list[EmailAddress] = Field(min_length=1, max_length=50)
    subject: NonEmptyStr = Field(max_length=998)
    body: NonEmptyStr


# --- Conditions and workflow -------------------------------------------------------------


class WaitStep(LinearStep):
    """Hold the contact for a time, until a date, or until a condition holds."""

    type: Literal["wait"]
    for_: Duration | None = Field(default=None, alias="for")
    until: AwareDatetime | None = None
    condition: BoundedCondition | None = None
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_kind_of_wait(self) -> WaitStep:
        given = [self.for_, self.until, self.condition]
        if sum(value is not None for value in given) != 1:
            raise ValueError('a wait needs exactly one of "for", "until" or "condition"')
        if self.timeout is not None and self.condition is None:
            raise ValueError('"timeout" only applies to a wait with a "condition"')
        return self

    def conditions(self) -> list[tuple[str, Condition]]:
        return [("condition", self.condition)] if self.condition is not None else []

    def pauses(self) -> bool:
        return True

    def detail(self) -> str:
        if self.for_ is not None:
            return self.for_.describe()
        if self.until is not None:
            return f"until {self.until.isoformat()}"
        if self.timeout is not None:
            return f"until condition, at most {self.timeout.describe()}"
        return "until condition"


class IfElseStep(StepBase):
    """Branch on a condition."""

    type: Literal["if_else"]
    condition: BoundedCondition
    yes: StepRef = None
    no: StepRef = None

    def references(self) -> list[tuple[str, str | None]]:
        return [("yes", self.yes), ("no", self.no)]

    def conditions(self) -> list[tuple[str, Condition]]:
        return [("condition", self.condition)]


class SplitPath(BaseModel):
    """One path of an even split, with its relative weight."""

    model_config = ConfigDict(extra="forbid")

    next: StepRef = None
    weight: int = Field(default=1, ge=1, le=1000)


class SplitWinner(BaseModel):
    """When and how an even split picks the winning path."""

    model_config = ConfigDict(extra="forbid")

    condition: BoundedCondition
    after_contacts: int | None = Field(default=None, ge=1)
    after: Duration | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> SplitWinner:
        if (self.after_contacts is None) == (self.after is None):
            raise ValueError('a winner needs exactly one of "after_contacts" or "after"')
        return self


class SplitEvenStep(StepBase):
    """Share contacts between 2 to 10 paths by weight (optionally until a winner is known)."""

    type: Literal["split"]
    mode: Literal["even"]
    paths: list[SplitPath] = Field(min_length=2, max_length=10)
    winner: SplitWinner | None = None

    def references(self) -> list[tuple[str, str | None]]:
        return [(f"paths.{index}.next", path.next) for index, path in enumerate(self.paths)]

    def conditions(self) -> list[tuple[str, Condition]]:
        return [("winner.condition", self.winner.condition)] if self.winner is not None else []

    def detail(self) -> str:
        return f"{len(self.paths)} paths"


class UntilDate(BaseModel):
    """Split until a moment."""

    model_config = ConfigDict(extra="forbid")

    date: AwareDatetime


class UntilContacts(BaseModel):
    """Split until this many contacts have passed."""

    model_config = ConfigDict(extra="forbid")

    contacts: int = Field(ge=1)


class UntilContactsMeeting(BaseModel):
    """Split until this many contacts that passed meet a condition."""

    model_config = ConfigDict(extra="forbid")

    contacts_meeting: int = Field(ge=1)
    condition: BoundedCondition


_UNTIL_SHAPES: dict[str, str] = {
    "contacts_meeting": "UntilContactsMeeting",
    "contacts": "UntilContacts",
    "date": "UntilDate",
}
UNTIL_TAGS: frozenset[str] = frozenset(_UNTIL_SHAPES.values())


def _until_shape(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((tag for key, tag in _UNTIL_SHAPES.items() if key in value), None)
    if isinstance(value, UntilDate | UntilContacts | UntilContactsMeeting):
        return type(value).__name__
    return None


SplitUntil = Annotated[
    Annotated[UntilDate, Tag("UntilDate")]
    | Annotated[UntilContacts, Tag("UntilContacts")]
    | Annotated[UntilContactsMeeting, Tag("UntilContactsMeeting")],
    Discriminator(
        _until_shape,
        custom_error_type="until_shape",
        custom_error_message=(
            '"until" must be {"date": ...}, {"contacts": n} or '
            '{"contacts_meeting": n, "condition": ...}'
        ),
    ),
]


class SplitUntilStep(StepBase):
    """Send everyone to `before` until an automation-wide threshold, then to `after`."""

    type: Literal["split"]
    mode: Literal["until"]
    until: SplitUntil
    before: StepRef = None
    after: StepRef = None

    def references(self) -> list[tuple[str, str | None]]:
        return [("before", self.before), ("after", self.after)]

    def conditions(self) -> list[tuple[str, Condition]]:
        if isinstance(self.until, UntilContactsMeeting):
            return [("until.condition", self.until.condition)]
        return []

    def detail(self) -> str:
        if isinstance(self.until, UntilDate):
            return f"until {self.until.date.isoformat()}"
        if isinstance(self.until, UntilContacts):
            return f"until {self.until.contacts} contacts"
        return f"until {self.until.contacts_meeting} contacts meet the condition"


class GotoStep(StepBase):
    """Jump to another step (loops allowed, guarded at run time)."""

    SUMMARY_FIELD = "target"

    type: Literal["goto"]
    target: NonEmptyStr

    def references(self) -> list[tuple[str, str | None]]:
        return [("target", self.target)]

    def detail(self) -> str:
        return f"to {self.target}"


class GoalStep(LinearStep):
    """A target contacts jump to as soon as its condition holds."""

    type: Literal["goal"]
    condition: BoundedCondition
    unmet: Literal["continue", "wait", "end"] = "continue"
    scope: Literal["anywhere", "above"] = "anywhere"
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _timeout_needs_wait(self) -> GoalStep:
        if self.timeout is not None and self.unmet != "wait":
            raise ValueError('"timeout" only applies with "unmet": "wait"')
        return self

    def conditions(self) -> list[tuple[str, Condition]]:
        return [("condition", self.condition)]

    # No `pauses()`: even with `unmet: "wait"` a goal holds a contact only until it is
    # achieved, which happens once per run; the next pass goes straight through.


class StartAutomationStep(LinearStep):
    """Enroll the contact in another automation."""

    ACTIVITY = StepActivity("start_automation", local=True)
    SUMMARY_FIELD = "automation"

    type: Literal["start_automation"]
    automation: NonEmptyStr


class EndStep(StepBase):
    """End this run here."""

    type: Literal["end"]


class EndAutomationStep(LinearStep):
    """End the contact's run in another automation (or in all others)."""

    ACTIVITY = StepActivity("end_automation", local=True)
    SUMMARY_FIELD = "automation"

    type: Literal["end_automation"]
    automation: NonEmptyStr = Field(description='an automation id, or "all"')


class WebhookStep(LinearStep):
    """Send the contact to another system over HTTP."""

    ACTIVITY = StepActivity("webhook")
    SUMMARY_FIELD = "url"

    type: Literal["webhook"]
    url: HttpUrl = Field(max_length=2048)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    format: Literal["form", "json"] = "form"
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name[:80]!r} is not a valid HTTP header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f'"{name}" is set by Cairn and cannot be overridden')
            if len(value) > 4096 or any(c in value for c in "\r\n\0"):
                raise ValueError(f'header "{name}": at most 4096 characters, on one line')
        return headers

    @classmethod
    def secret_free(cls, raw: dict[str, Any]) -> dict[str, Any]:
        # Headers carry credentials; a URL's path and query carry tokens (Slack, Zapier) and, in
        # a GET, contact fields. The activity reads both from the run's version in the database.
        return {**raw, "url": url_origin(str(raw.get("url", ""))), "headers": {}}

    def detail(self) -> str:
        return _quote(url_origin(str(self.url)))


class PerformMathStep(LinearStep):
    """Change a numeric (or date) custom field of the contact or its current deal."""

    ACTIVITY = CONTACT_WRITE

    type: Literal["perform_math"]
    target: Literal["contact", "deal"] = "contact"
    field: NonEmptyStr
    op: Literal["add", "subtract", "multiply", "divide"]
    value: float = Field(allow_inf_nan=False)
    pipeline: NonEmptyStr | None = None

    def detail(self) -> str:
        return f"{self.op} {self.value:g} to {self.target} {_quote(self.field)}"


# --- Contacts --------------------------------------------------------------------------


class _ListStep(LinearStep):
    SUMMARY_FIELD = "list"

    list: NonEmptyStr


class SubscribeStep(_ListStep):
    """Subscribe the contact to a list."""

    ACTIVITY = CONTACT_WRITE

    type: Literal["subscribe"]


class UnsubscribeStep(_ListStep):
    """Unsubscribe the contact from a list."""

    ACTIVITY = CONTACT_WRITE

    type: Literal["unsubscribe"]


class ConvertStep(LinearStep):
    """Record a conversion."""

    ACTIVITY = CONTACT_WRITE
    SUMMARY_FIELD = "conversion"

    type: Literal["convert"]
    conversion: NonEmptyStr
    value: float | None = Field(default=None, allow_inf_nan=False)


class UpdateContactStep(LinearStep):
    """Set standard and custom fields of the contact."""

    ACTIVITY = CONTACT_WRITE

    type: Literal["update_contact"]
    fields: dict[NonEmptyStr, FieldValue] = Field(min_length=1)

    def texts(self) -> list[tuple[str, str]]:
        return [(f"fields.{k}", v) for k, v in self.fields.items() if isinstance(v, str)]

    def detail(self) -> str:
        return ", ".join(self.fields)


class _TagStep(LinearStep):
    SUMMARY_FIELD = "tag"

    tag: NonEmptyStr


class AddTagStep(_TagStep):
    """Tag the contact."""

    ACTIVITY = CONTACT_WRITE

    type: Literal["add_tag"]


class RemoveTagStep(_TagStep):
    """Remove a tag from the contact."""

    ACTIVITY = CONTACT_WRITE

    type: Literal["remove_tag"]


class AddContactNoteStep(LinearStep):
    """Add a note to the contact."""

    ACTIVITY = CONTACT_WRITE
    TEXT_FIELDS = ("note",)

    type: Literal["add_contact_note"]
    note: NonEmptyStr


class _AudienceStep(LinearStep):
    """A Facebook custom audience, by id; or, with `create_if_missing`, one Cairn creates under
    `audience_name` (and remembers) when no id is given or the given one no longer exists."""

    audience: str | None = Field(default=None, pattern=r"^[0-9]{1,32}$")
    create_if_missing: bool = False
    audience_name: NonEmptyStr | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _audience_or_name(self) -> _AudienceStep:
        if self.create_if_missing and self.audience_name is None:
            raise ValueError('"create_if_missing" needs an "audience_name"')
        if self.audience is None and not self.create_if_missing:
            raise ValueError('an "audience" id is required unless "create_if_missing" is true')
        return self

    def detail(self) -> str:
        return _quote(self.audience or self.audience_name or "")


class FacebookAudienceAddStep(_AudienceStep):
    """Add the contact to a Facebook custom audience."""

    ACTIVITY = StepActivity("facebook_audience_add")

    type: Literal["facebook_audience_add"]


class FacebookAudienceRemoveStep(_AudienceStep):
    """Remove the contact from a Facebook custom audience."""

    ACTIVITY = StepActivity("facebook_audience_remove")

    type: Literal["facebook_audience_remove"]


class _ScoreStep(LinearStep):
    score: NonEmptyStr
    op: Literal["add", "subtract", "set", "reset"]
    value: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _value_unless_reset(self) -> _ScoreStep:
        if self.op != "reset" and self.value is None:
            raise ValueError(f'"{self.op}" needs a "value"')
        return self

    def detail(self) -> str:
        amount = f" {self.value:g}" if self.value is not None else ""
        return f"{_quote(self.score)} {self.op}{amount}"


class AdjustContactScoreStep(_ScoreStep):
    """Change one of the contact's scores."""

    ACTIVITY = CONTACT_WRITE

    type: Literal["adjust_contact_score"]


# --- CRM -------------------------------------------------------------------------------


class AddDealStep(LinearStep):
    """Create a deal for the contact."""

    ACTIVITY = CRM_WRITE
    TEXT_FIELDS = ("title",)
    SUMMARY_FIELD = "title"

    type: Literal["add_deal"]
    title: NonEmptyStr
    value: int = Field(ge=0, description="in minor units of the currency (cents)")
    currency: str
    pipeline: NonEmptyStr
    stage: NonEmptyStr
    owner: NonEmptyStr | None = None
    fields: dict[NonEmptyStr, FieldValue] | None = None

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError('a currency is a 3-letter code such as "USD" or "EUR"')
        return value.upper()

    def texts(self) -> list[tuple[str, str]]:
        fields = self.fields or {}
        extra = [(f"fields.{k}", v) for k, v in fields.items() if isinstance(v, str)]
        return super().texts() + extra


class UpdateDealTitleStep(_DealStep):
    """Rename the current deal."""

    ACTIVITY = CRM_WRITE
    TEXT_FIELDS = ("value",)
    SUMMARY_FIELD = "value"

    type: Literal["update_deal_title"]
    value: NonEmptyStr


class UpdateDealStatusStep(_DealStep):
    """Open, win or lose the current deal."""

    ACTIVITY = CRM_WRITE
    SUMMARY_FIELD = "value"

    type: Literal["update_deal_status"]
    value: Literal["open", "won", "lost"]


class UpdateDealOwnerStep(_DealStep):
    """Give the current deal to another user."""

    ACTIVITY = CRM_WRITE
    SUMMARY_FIELD = "value"

    type: Literal["update_deal_owner"]
    value: NonEmptyStr


class UpdateDealValueStep(_DealStep):
    """Set the current deal's value (minor units)."""

    ACTIVITY = CRM_WRITE
    SUMMARY_FIELD = "value"

    type: Literal["update_deal_value"]
    value: int = Field(ge=0, description="in minor units of the deal's currency (cents)")


class UpdateDealStageStep(_DealStep):
    """Move the current deal to a stage."""

    ACTIVITY = CRM_WRITE
    SUMMARY_FIELD = "value"

    type: Literal["update_deal_stage"]
    value: NonEmptyStr


class UpdateDealFieldStep(_DealStep):
    """Set, copy into, or clear a custom field of the current deal."""

    ACTIVITY = CRM_WRITE
    SUMMARY_FIELD = "field"

    type: Literal["update_deal_field"]
    field: NonEmptyStr
    value: FieldValue = None
    copy_from: NonEmptyStr | None = None
    clear: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> UpdateDealFieldStep:
        sources = [self.value is not None, self.copy_from is not None, self.clear]
        if sum(sources) != 1:
            raise ValueError('give exactly one of "value", "copy_from" or "clear": true')
        return self

    def texts(self) -> list[tuple[str, str]]:
        return [("value", self.value)] if isinstance(self.value, str) else []


class UpdateAccountFieldStep(LinearStep):
    """Set a field of the contact's account."""

    ACTIVITY = CRM_WRITE
    SUMMARY_FIELD = "field"

    type: Literal["update_account_field"]
    field: NonEmptyStr
    value: FieldValue

    def texts(self) -> list[tuple[str, str]]:
        return [("value", self.value)] if isinstance(self.value, str) else []


class AddTaskStep(_DealStep):
    """Create a task on the contact or its current deal."""

    ACTIVITY = CRM_WRITE
    TEXT_FIELDS = ("title",)
    SUMMARY_FIELD = "title"

    type: Literal["add_task"]
    title: NonEmptyStr
    # "type" is the step's own type, so the task's kind is `task_type` (call, email, todo…).
    task_type: NonEmptyStr = "todo"
    due_in: Duration
    assignee: NonEmptyStr | None = None
    on: Literal["deal", "contact"] = "contact"


class AddDealNoteStep(_DealStep):
    """Add a note to the current deal."""

    ACTIVITY = CRM_WRITE
    TEXT_FIELDS = ("note",)

    type: Literal["add_deal_note"]
    note: NonEmptyStr


class CompleteTaskStep(_DealStep):
    """Complete the open tasks of the current deal and of the contact matching a title and/or
    task type."""

    ACTIVITY = CRM_WRITE
    SUMMARY_FIELD = "title"

    type: Literal["complete_task"]
    title: NonEmptyStr | None = None
    task_type: NonEmptyStr | None = None


class AdjustDealScoreStep(_ScoreStep):
    """Change one of the current deal's scores."""

    ACTIVITY = CRM_WRITE

    type: Literal["adjust_deal_score"]
    pipeline: NonEmptyStr | None = None


class AddToAccountStep(LinearStep):
    """Attach the contact to an account (created if missing)."""

    ACTIVITY = CRM_WRITE
    # The name may come from the contact, e.g. "%COMPANY%".
    TEXT_FIELDS = ("account", "job_title")
    SUMMARY_FIELD = "account"

    type: Literal["add_to_account"]
    account: NonEmptyStr
    job_title: NonEmptyStr | None = None


# --- Salesforce ------------------------------------------------------------------------


class SalesforceCreateContactStep(LinearStep):
    """Create the contact in Salesforce as a Contact."""

    ACTIVITY = StepActivity("salesforce_create_contact")

    type: Literal["salesforce_create_contact"]


class SalesforceCreateLeadStep(LinearStep):
    """Create the contact in Salesforce as a Lead."""

    ACTIVITY = StepActivity("salesforce_create_lead")

    type: Literal["salesforce_create_lead"]


SplitStep = Annotated[SplitEvenStep | SplitUntilStep, Field(discriminator="mode")]

# Every step model: add a new one here (STEP_MODELS and every table by type derive from it).
Step = Annotated[
    SendEmailStep
    | SendSiteMessageStep
    | SendSmsStep
    | SendNotificationEmailStep
    | WaitStep
    | IfElseStep
    | SplitStep
    | GotoStep
    | GoalStep
    | StartAutomationStep
    | EndStep
    | EndAutomationStep
    | WebhookStep
    | PerformMathStep
    | SubscribeStep
    | UnsubscribeStep
    | ConvertStep
    | UpdateContactStep
    | AddTagStep
    | RemoveTagStep
    | AddContactNoteStep
    | FacebookAudienceAddStep
    | FacebookAudienceRemoveStep
    | AdjustContactScoreStep
    | AddDealStep
    | UpdateDealTitleStep
    | UpdateDealStatusStep
    | UpdateDealOwnerStep
    | UpdateDealValueStep
    | UpdateDealStageStep
    | UpdateDealFieldStep
    | UpdateAccountFieldStep
    | AddTaskStep
    | AddDealNoteStep
    | CompleteTaskStep
    | AdjustDealScoreStep
    | AddToAccountStep
    | SalesforceCreateContactStep
    | SalesforceCreateLeadStep,
    Field(discriminator="type"),
]


def _models_in(annotation: Any) -> tuple[type[StepBase], ...]:
    """The models of a (possibly nested, annotated) union, in order."""
    if get_origin(annotation) is Annotated:
        return _models_in(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return tuple(model for member in get_args(annotation) for model in _models_in(member))
    return (annotation,)


# Every step model, in the order of `Step`.
STEP_MODELS: tuple[type[StepBase], ...] = _models_in(Step)


def type_of(model: type[StepBase]) -> str:
    """A model's step type: its `type` annotation is a one-value Literal."""
    (value,) = model.model_fields["type"].annotation.__args__  # type: ignore[union-attr]
    return str(value)


# Step type → its model(s); "split" has one model per mode.
STEP_TYPES: dict[str, tuple[type[StepBase], ...]] = {}
for _model in STEP_MODELS:
    STEP_TYPES[type_of(_model)] = (*STEP_TYPES.get(type_of(_model), ()), _model)


def _activity_of(models: tuple[type[StepBase], ...]) -> StepActivity | None:
    (activity,) = {model.ACTIVITY for model in models}  # one per type, whatever the mode
    return activity


# Step type → the activity that carries it out, for the types an activity carries out.
STEP_ACTIVITIES: dict[str, StepActivity] = {
    step_type: activity
    for step_type, models in STEP_TYPES.items()
    if (activity := _activity_of(models)) is not None
}


def steps_run_by(activity: StepActivity) -> frozenset[str]:
    """The step types `activity` carries out (e.g. every type `CRM_WRITE` applies)."""
    return frozenset(t for t, carrier in STEP_ACTIVITIES.items() if carrier == activity)


def successors(step: StepBase) -> list[str]:
    """Step ids this step can go to, in order, without None and duplicates."""
    return list(dict.fromkeys(ref for _, ref in step.references() if ref is not None))


def text_fields(step: StepBase) -> list[tuple[str, str]]:
    """(field path, text) of the step's fields that accept personalization tags."""
    return step.texts()


def describe_step(step_id: str, step: StepBase) -> str:
    """Short summary for the Temporal UI, e.g. ``wait 2 days (step pause)``."""
    detail = _quote(step.name) if step.name else step.detail()
    return f"{step.type} {detail} (step {step_id})" if detail else f"{step.type} (step {step_id})"
