"""Personalization tags (docs/automations.md#personalization): ``%FIRSTNAME%``, ``%FIELD_NAME%``… found, checked, rendered."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Any

KNOWN_TAGS: frozenset[str] = frozenset(
    {
        "FIRSTNAME",
        "LASTNAME",
        "FULLNAME",
        "EMAIL",
        "PHONE",
        "TODAY",
        "UNSUBSCRIBELINK",
        "DEAL_TITLE",
        "DEAL_VALUE",
        "ACCOUNT_NAME",
    }
)

# `%XX%` with two hex digits is URL percent-encoding ("caf%C3%A9"), not a tag: leaving it
# alone keeps encoded links in an HTML body intact.
_NOT_PERCENT_ENCODING = r"(?![0-9A-Fa-f]{2}%)"
_TAG = re.compile(r"%" + _NOT_PERCENT_ENCODING + r"([A-Z][A-Z0-9_]*)%")
# Something an author meant as a tag but wrote wrongly: lower case, dashes or spaces.
_TAG_LIKE = re.compile(
    r"%" + _NOT_PERCENT_ENCODING + r"([A-Za-z][A-Za-z0-9_-]*(?: [A-Za-z0-9_-]+){0,3})%"
)
_SEPARATORS = re.compile(r"[\s-]+")
# Other engines' placeholders (Liquid/Handlebars, JavaScript/shell): plain text in Cairn,
# which authors coming from those tools may expect to be filled in.
_FOREIGN_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]{1,64}?)\s*\}\}|\$\{\s*([^{}]{1,64}?)\s*\}")


def tag_for_field(field: str) -> str:
    """The tag name of a field: upper case, spaces and dashes as underscores."""
    return _SEPARATORS.sub("_", field.strip()).upper()


def _compact(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name).upper()


_COMPACT_KNOWN: dict[str, str] = {_compact(tag): tag for tag in KNOWN_TAGS}


def find_tags(text: str) -> list[str]:
    """Names of the well-formed tags in `text` (without ``%``), first occurrence order."""
    return list(dict.fromkeys(match.group(1) for match in _TAG.finditer(text)))


def _malformed_tags(text: str) -> list[str]:
    # Look only between well-formed tags, exactly as `render` will read the text.
    found: list[str] = []
    for literal in _TAG.split(text)[::2]:
        for match in _TAG_LIKE.finditer(literal):
            name = match.group(1)
            if " " in name and not (name.isupper() or _compact(name) in _COMPACT_KNOWN):
                # "50%off and 20%" reads as text, not as a tag someone mistyped.
                continue
            if name != name.upper() or "-" in name or " " in name:
                found.append(name)
    return found


def unknown_tags(text: str, custom_fields: Collection[str] | None = None) -> list[str]:
    """Tags in `text` that will not render (names without ``%``, first occurrence order).

    With `custom_fields` None (unknown at save time) only malformed tags are reported, such
    as ``%firstname%`` or ``%FIRST NAME%``; with it, also well-formed tags that are neither
    standard nor one of those fields.
    """
    unknown = _malformed_tags(text)
    if custom_fields is not None:
        allowed = KNOWN_TAGS | {tag_for_field(field) for field in custom_fields}
        unknown += [name for name in find_tags(text) if name not in allowed]
    return list(dict.fromkeys(unknown))


def foreign_placeholders(text: str) -> list[tuple[str, str]]:
    """(as written, inner name) of each ``{{name}}`` or ``${name}`` in `text`: they are sent as
    written, never evaluated, and most likely meant as a tag."""
    return list(
        dict.fromkeys(
            (match.group(0), match.group(1) or match.group(2))
            for match in _FOREIGN_PLACEHOLDER.finditer(text)
        )
    )


def suggest_tag(name: str) -> str:
    """The well-formed tag an author most likely meant: ``first name`` → ``%FIRSTNAME%``."""
    return f"%{_COMPACT_KNOWN.get(_compact(name), tag_for_field(name))}%"


def render(text: str, values: Mapping[str, str], *, html: bool) -> str:
    """Replace each ``%TAG%`` by its value (unknown: empty), HTML-escaped in HTML bodies.

    One pass: a value that itself contains ``%EMAIL%`` is inserted as is, never expanded.
    """

    def substitute(match: re.Match[str]) -> str:
        value = values.get(match.group(1), "")
        return html_lib.escape(value, quote=True) if html else value

    return _TAG.sub(substitute, text)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(_as_text(item) for item in value)
    return str(value)


def contact_values(
    contact: Mapping[str, Any], *, today: date, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The tag → text map for a contact (keys email, first_name, last_name, phone, fields)."""
    fields = contact.get("fields") or {}
    # Custom fields first so a custom field called "email" cannot mask the standard tag.
    values = {tag_for_field(str(name)): _as_text(value) for name, value in fields.items()}
    first = _as_text(contact.get("first_name"))
    last = _as_text(contact.get("last_name"))
    values.update(
        FIRSTNAME=first,
        LASTNAME=last,
        FULLNAME=f"{first} {last}".strip(),
        EMAIL=_as_text(contact.get("email")),
        PHONE=_as_text(contact.get("phone")),
        TODAY=today.isoformat(),
    )
    values.update(extra or {})
    return values
