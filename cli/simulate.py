"""`cairn simulate`: an automation's simulation as a readable timeline (docs/simulation.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import httpx
from pydantic import TypeAdapter

from cli.operate import CommandError, _detail, call_api, load_document

_OFFSET = re.compile(r"^(?:(\d+(?:\.\d+)?)([wdhms]))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_TIMEDELTA: TypeAdapter[timedelta] = TypeAdapter(timedelta)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
# `--event` words: what a scripted event says after its offset.
EVENT_HELP = (
    '"OFFSET WHAT": OFFSET like 3d, 2h30m, 0; WHAT one of: NAME (an event), open STEP, '
    "click STEP [URL], tag NAME, untag NAME, field NAME=VALUE, subscribe LIST, "
    "unsubscribe LIST, deal stage=NAME|status=won|value=N"
)


def parse_offset(text: str) -> dict[str, float]:
    if text == "0":
        return {}
    if not _OFFSET.match(text):
        raise CommandError(f"{text!r} is not an offset (like 3d, 2h30m, 45m or 0)")
    offset: dict[str, float] = {}
    for amount, unit in _PART.findall(text):
        name = _UNITS[unit]
        offset[name] = offset.get(name, 0) + float(amount)
    return {k: int(v) if v.is_integer() else v for k, v in offset.items()}


def parse_event(text: str) -> dict[str, Any]:
    """`"3d purchase"`, `"2h click welcome"`, `"1d tag vip"`… as a scripted event."""
    words = text.split()
    if len(words) < 2:
        raise CommandError(f"--event {text!r}: expected {EVENT_HELP}")
    offset, verb, rest = parse_offset(words[0]), words[1], words[2:]
    event: dict[str, Any] = {"at": offset} if offset else {}

    def one(what: str) -> str:
        if len(rest) != 1:
            raise CommandError(f"--event {text!r}: {verb} takes one {what}")
        return rest[0]

    if verb in ("open", "click"):
        if not rest or len(rest) > 2:
            raise CommandError(
                f"--event {text!r}: {verb} STEP" + (" [URL]" if verb == "click" else "")
            )
        event |= {"email": "opened" if verb == "open" else "clicked", "step": rest[0]}
        if len(rest) == 2:
            event["link"] = rest[1]
    elif verb in ("tag", "untag"):
        event["tag_added" if verb == "tag" else "tag_removed"] = one("tag")
    elif verb in ("subscribe", "unsubscribe"):
        event["subscribed" if verb == "subscribe" else "unsubscribed"] = one("list")
    elif verb in ("field", "deal"):
        pairs = [word.split("=", 1) for word in rest]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise CommandError(f"--event {text!r}: {verb} NAME=VALUE")
        values = {k: _value(v) for k, v in pairs}
        event["fields" if verb == "field" else "deal"] = values
    else:
        if rest:
            raise CommandError(f"--event {text!r}: expected {EVENT_HELP}")
        event["event"] = verb
    return event


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def request_body(
    contact: Path | None,
    contact_id: int | None,
    events: Sequence[str],
    start_at: str | None,
    horizon: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"events": [parse_event(e) for e in events]}
    if contact is not None:
        try:
            body["contact"] = json.loads(contact.read_text())
        except (OSError, ValueError) as err:
            raise CommandError(f"{contact}: {err}") from err
    if contact_id is not None:
        body["contact_id"] = contact_id
    if start_at is not None:
        body["start_at"] = start_at
    if horizon is not None:
        body["horizon"] = parse_offset(horizon) or {"seconds": 1}
    return body


def target_request(target: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where to ask and what: a draft file is sent whole, anything else is a saved automation."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.exists():
            raise CommandError(f"{target}: no such file")
        return "/api/v1/simulate", {**body, "document": load_document(path)}
    return f"/api/v1/automations/{target}/simulate", body


async def simulate(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    out: TextIO,
    *,
    as_json: bool = False,
) -> int:
    response = await call_api(client, "POST", url, json=body)
    if response.status_code != 200:
        raise CommandError(f"simulation refused ({response.status_code}): {_problems(response)}")
    result = response.json()
    out.write(json.dumps(result, indent=2) + "\n" if as_json else render_timeline(result))
    return 0


def _problems(response: httpx.Response) -> str:
    detail = _detail(response)
    if isinstance(detail, list):
        return "; ".join(
            f"{p.get('step') or '.'.join(map(str, p.get('loc', [])))}: "
            f"{p.get('message') or p.get('msg')}"
            for p in detail
            if isinstance(p, dict)
        )
    return str(detail)


def render_timeline(result: dict[str, Any]) -> str:
    """The path, the script and the messages in virtual-time order, then the outcome."""
    start = datetime.fromisoformat(result["started_at"])
    rows: list[tuple[datetime, int, str]] = []
    for order, entry in enumerate(result["path"]):
        what = entry["outcome"] + (f" ({entry['reason']})" if entry.get("reason") else "")
        detail = f"  {entry['detail']}" if entry.get("detail") else ""
        rows.append((_at(entry), order, f"{entry['step']:<16} {entry['type']:<18} {what}{detail}"))
    for entry in result.get("script", []):
        note = "" if entry["applied"] else f" (no change: {entry['note']})"
        rows.append((_at(entry), -1, f"{'» script':<16} {entry['what']}{note}"))
    for message in result["messages"]:
        subject = f' "{message["subject"]}"' if message.get("subject") else ""
        rows.append(
            (_at(message), 10_000, f"{'  ✉ ' + message['channel']:<16} to {message['to']}{subject}")
        )
    for request in result.get("requests", []):
        rows.append(
            (_at(request), 10_000, f"{'  → http':<16} {request['method']} {request['url']}")
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    lines = [f"{_offset(at - start):>10}  {text}" for at, _, text in rows]
    status = result["status"]
    if status == "running":
        status += f", waiting at {result['waiting_at']}" if result.get("waiting_at") else ""
    elif result.get("reason"):
        status += f" ({result['reason']})"
    summary = [
        "",
        f"{status} after {_offset(_duration(result['simulated']))} of virtual time"
        f" ({result.get('elapsed_seconds', 0):.1f} s)",
        f"goals: {', '.join(result['goals']) or 'none'}",
    ]
    for write in result["writes"]:
        detail = ", ".join(f"{k}={v}" for k, v in write.get("detail", {}).items())
        summary.append(
            f"write: {write['step']} {write['kind']} {write['outcome']} {detail}".rstrip()
        )
    for message in result["messages"]:
        body = (message.get("text") or "").strip().splitlines()
        summary += [
            "",
            f"{message['channel']} at {_offset(_at(message) - start)} ({message['step']})"
            f" to {message['to']}"
            + (f': "{message["subject"]}"' if message.get("subject") else ""),
            *(f"    {line}" for line in body[:12]),
        ]
    summary += ["", f"Temporal UI: {result['temporal_ui_url']}"]
    return "\n".join(lines + summary) + "\n"


def _at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"])


def _duration(iso: str) -> timedelta:
    """An ISO 8601 duration as the API writes a timedelta (P3DT4H5M6.5S)."""
    return _TIMEDELTA.validate_python(iso)


def _offset(delta: timedelta) -> str:
    """`+3d 2h`, `+45m`, `+0s`: how long after the start, to the minute."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return "+" + (" ".join(parts) if parts else f"{secs}s")
