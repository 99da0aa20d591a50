"""The `cairn` commands an operator runs against a running API over HTTP: apply automations,
read reports, import contacts, manage API tokens (docs/cli.md). Each returns the process exit code."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import yaml

from core.settings import Settings
from workflows.document import Problem, validate_automation

STANDARD_FIELDS = ("email", "first_name", "last_name", "phone")
SKIP = "-"  # `--map column=-` leaves a column out
# Deliberately loose: the API is the judge; this only spares it rows that cannot be addresses.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class CommandError(Exception):
    """A problem the user must fix (bad file, bad option, API unreachable): printed, exit 1."""


def api_client(settings: Settings, api_url: str | None) -> httpx.AsyncClient:
    """An HTTP client for the API that `settings` describe (or at `api_url`), with
    CAIRN_API_TOKEN: never a command-line argument, which `ps` shows to every user."""
    host = "127.0.0.1" if settings.api_host in {"0.0.0.0", "::", ""} else settings.api_host
    return httpx.AsyncClient(
        base_url=api_url or f"http://{host}:{settings.api_port}",
        headers={"Api-Token": settings.api_token},
        timeout=30.0,
    )


async def call_api(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as err:
        raise CommandError(f"cannot reach the API at {client.base_url}: {err}") from err
    if response.status_code == 401:
        raise CommandError("the API refused the token (set CAIRN_API_TOKEN)")
    return response


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text


# ---------------------------------------------------------------------------------- apply


class _Yaml12Loader(yaml.SafeLoader):
    """YAML without 1.1's `yes`/`no`/`on`/`off` booleans: an if_else step's `yes:` and `no:`
    keys must stay strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_document(path: Path) -> Any:
    """A YAML or JSON automation document (by extension; YAML also reads JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise CommandError(f"{path}: cannot read: {err.strerror}") from err
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_Yaml12Loader)
    except (ValueError, yaml.YAMLError) as err:
        raise CommandError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {err}") from err


def format_problem(path: Path | str, problem: dict[str, Any]) -> str:
    """`FILE: step <id>: error: message`, like a compiler (the path when no step is named)."""
    where = f"step {problem['step']}" if problem.get("step") else problem.get("path") or "document"
    return f"{path}: {where}: {problem.get('severity', 'error')}: {problem['message']}"


def _problems(path: Path, problems: Sequence[Problem | dict[str, Any]], out: TextIO) -> int:
    """Print the problems; how many are errors."""
    errors = 0
    for problem in problems:
        data = problem.model_dump() if isinstance(problem, Problem) else problem
        errors += data.get("severity", "error") == "error"
        print(format_problem(path, data), file=out)
    return errors


async def apply_automation(
    client: httpx.AsyncClient, path: Path, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Validate locally, then create (POST) or update (PUT when its `id` exists)."""
    out, err = out or sys.stdout, err or sys.stderr
    document = load_document(path)
    automation, problems = validate_automation(document)
    if automation is None:
        errors = _problems(path, problems, err)
        print(f"{path}: {errors} error(s); nothing applied", file=err)
        return 1
    wanted = document.get("id") if isinstance(document, dict) else None
    exists = wanted is not None and (
        (await call_api(client, "GET", f"/api/v1/automations/{wanted}")).status_code == 200
    )
    if exists:
        response = await call_api(client, "PUT", f"/api/v1/automations/{wanted}", json=document)
    else:
        response = await call_api(client, "POST", "/api/v1/automations", json=document)
    if response.status_code == 422 and isinstance(_detail(response), list):
        # The server knows more (other automations, CRM pipelines): same format.
        _problems(path, _detail(response), err)
        return 1
    if response.status_code not in (200, 201):
        print(
            f"{path}: error: the API answered {response.status_code}: {_detail(response)}", file=err
        )
        return 1
    body = response.json()
    _problems(path, body.get("warnings", []), err)
    verb = "updated" if exists else "created"
    print(f"{verb} {body['id']} (version {body['version']}, {body['status']})", file=out)
    return 0


# --------------------------------------------------------------------------------- report


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}"
    return "-" if value is None else str(value)


def render_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as an aligned text table; columns in order of first appearance."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def render_report(report: Any) -> str:
    """A report as text: its facts (scalars, flat dicts, empty lists) as `key: value` lines,
    then one table per list of rows (`steps` first); anything else as pretty JSON, so an
    unexpected shape still prints."""
    if not isinstance(report, dict):
        return json.dumps(report, indent=2, default=str)
    facts = {k: v for k, v in report.items() if _is_fact(v)}
    tables = sorted(
        (k for k, v in report.items() if isinstance(v, list) and v and _all_dicts(v)),
        key=lambda k: k != "steps",
    )
    parts = [f"{k}: {_cell(v)}" for k, v in facts.items()]
    for key in tables:
        parts += ["", f"{key}:", render_table(report[key])]
    rest = {k: v for k, v in report.items() if k not in facts and k not in tables}
    if rest:
        parts += ["", json.dumps(rest, indent=2, default=str)]
    return "\n".join(parts).strip("\n")


def _is_fact(value: Any) -> bool:
    """Fits on one line: a scalar, an empty list, or a dict of scalars."""
    if isinstance(value, dict):
        return not any(isinstance(v, (dict, list)) for v in value.values())
    return not isinstance(value, list) or not value


def _all_dicts(values: list[Any]) -> bool:
    return all(isinstance(v, dict) for v in values)


async def show_report(client: httpx.AsyncClient, automation_id: str, out: TextIO) -> int:
    response = await call_api(client, "GET", f"/api/v1/automations/{automation_id}/report")
    if response.status_code != 200:
        raise CommandError(f"no report for {automation_id!r}: {_detail(response)}")
    print(render_report(response.json()), file=out)
    return 0


# --------------------------------------------------------------------------------- tokens


async def create_token(
    client: httpx.AsyncClient, name: str, scopes: Sequence[str], out: TextIO
) -> int:
    """Create a token and print it: the only time anyone sees it (the API keeps its digest)."""
    response = await call_api(
        client, "POST", "/api/v1/tokens", json={"name": name, "scopes": list(scopes)}
    )
    if response.status_code != 201:
        raise CommandError(f"token {name!r} not created: {_detail(response)}")
    body = response.json()
    print(body["token"], file=out)
    print(
        f"created token {name!r} with scopes {', '.join(body['scopes'])}; it is shown only "
        "this once: keep it now",
        file=sys.stderr,
    )
    return 0


async def list_tokens(client: httpx.AsyncClient, out: TextIO) -> int:
    response = await call_api(client, "GET", "/api/v1/tokens")
    if response.status_code != 200:
        raise CommandError(f"cannot list tokens: {_detail(response)}")
    rows = response.json()
    print(render_table(rows) if rows else "no tokens (CAIRN_API_TOKEN is the only one)", file=out)
    return 0


async def revoke_token(client: httpx.AsyncClient, name: str, out: TextIO) -> int:
    response = await call_api(client, "DELETE", f"/api/v1/tokens/{name}")
    if response.status_code != 200:
        raise CommandError(f"token {name!r} not revoked: {_detail(response)}")
    print(f"revoked token {name!r}", file=out)
    return 0


async def show_dead_letters(client: httpx.AsyncClient, out: TextIO) -> int:
    """The outbox's dead letters as a table; exit code 0 (even with some: a listing, not a check)."""
    response = await call_api(client, "GET", "/api/v1/outbox/dead")
    if response.status_code != 200:
        raise CommandError(f"cannot list the dead letters: {_detail(response)}")
    rows = response.json()
    if not rows:
        print("no dead letters", file=out)
        return 0
    columns = ("id", "kind", "contact_id", "attempts", "failed_at", "error")
    print(render_table([{k: row[k] for k in columns} for row in rows]), file=out)
    return 0


async def retry_dead_letter(client: httpx.AsyncClient, dead_id: int, out: TextIO) -> int:
    response = await call_api(client, "POST", f"/api/v1/outbox/dead/{dead_id}/retry")
    if response.status_code != 202:
        raise CommandError(f"cannot retry dead letter {dead_id}: {_detail(response)}")
    print(f"dead letter {dead_id} is back in the outbox", file=out)
    return 0


# --------------------------------------------------------------------------------- import


@dataclass
class ImportOptions:
    mapping: dict[str, str] = field(default_factory=dict)  # CSV column -> field ("-": skip)
    tags: list[str] = field(default_factory=list)
    list: str | None = None
    enroll: str | None = None
    concurrency: int = 8


@dataclass
class ImportResult:
    imported: int = 0
    created: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)
    refused: dict[str, int] = field(default_factory=dict)  # enrollment refusals by reason


def parse_mapping(items: Sequence[str]) -> dict[str, str]:
    """`--map csv_col=field` options as a dict; a malformed one is a CommandError."""
    mapping: dict[str, str] = {}
    for item in items:
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise CommandError(f"--map {item!r}: expected CSV_COLUMN=FIELD (FIELD '-' skips it)")
        mapping[column.strip()] = target.strip()
    return mapping


def row_to_contact(row: dict[str, str | None], mapping: dict[str, str]) -> dict[str, Any]:
    """A CSV row as a `POST /contacts` body; empty cells leave the field as it is."""
    body: dict[str, Any] = {}
    custom: dict[str, str] = {}
    for column, raw in row.items():
        if column is None or raw is None:  # cells beyond the header's columns
            continue
        target = mapping.get(column.strip(), column.strip())
        value = raw.strip()
        if target == SKIP or not value or not target:
            continue
        if target in STANDARD_FIELDS:
            body[target] = value
        else:
            custom[target] = value
    if custom:
        body["fields"] = custom
    return body


def read_rows(path: Path) -> list[tuple[int, dict[str, str | None]]]:
    """(line number, row) for each data row; the header is line 1, and blank lines count."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise CommandError(f"{path}: empty file (a header row is required)")
            rows = []
            for row in reader:
                # line_num is the row's last line (the reader skipped any blank line before
                # it); a quoted cell spanning lines puts its first line that much earlier.
                rows.append((reader.line_num - _line_breaks(row), row))
            return rows
    except OSError as err:
        raise CommandError(f"{path}: cannot read: {err.strerror}") from err
    except (csv.Error, UnicodeDecodeError) as err:
        raise CommandError(f"{path}: not a readable CSV file: {err}") from err


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _line_breaks(row: dict[str | None, Any]) -> int:
    """Line breaks inside the row's cells (cells beyond the header come as a list)."""
    cells: list[Any] = []
    for value in row.values():
        cells += value if isinstance(value, list) else [value]
    return sum(len(_LINE_BREAK.findall(cell)) for cell in cells if isinstance(cell, str))


class ProgressBar:
    """`[#####.....] 50/100` redrawn in place on a terminal; elsewhere (a log file, a pipe) a
    plain `50/100 rows` line every tenth of the way."""

    def __init__(self, total: int, out: TextIO, width: int = 30) -> None:
        self.total, self.out, self.width, self.done = total, out, width, 0
        self.redraw = out.isatty()
        self.every = max(1, -(-total // 10))  # ceil(total / 10)

    def advance(self) -> None:
        self.done += 1
        if self.redraw:
            filled = self.width * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (self.width - filled)
            self.out.write(f"\r[{bar}] {self.done}/{self.total} rows")
            if self.done == self.total:
                self.out.write("\n")
        elif self.done % self.every == 0 or self.done == self.total:
            self.out.write(f"{self.done}/{self.total} rows\n")
        self.out.flush()


async def import_contacts(
    client: httpx.AsyncClient,
    path: Path,
    options: ImportOptions,
    progress: Callable[[], None] = lambda: None,
    rows: list[tuple[int, dict[str, str | None]]] | None = None,
) -> ImportResult:
    """Upsert every row (several requests at once); bad rows are collected, good rows kept.

    Rows of one email go one after the other in file order, so the last one wins whatever
    the timing; different emails go concurrently."""
    rows = read_rows(path) if rows is None else rows
    result = ImportResult()
    limit = asyncio.Semaphore(max(1, options.concurrency))
    by_email: dict[str, list[tuple[int, dict[str, str | None]]]] = {}
    for line, row in rows:
        email = row_to_contact(row, options.mapping).get("email")
        key = email.strip().lower() if email else f"line {line}"  # no email: its own group
        by_email.setdefault(key, []).append((line, row))

    async def in_order(group: list[tuple[int, dict[str, str | None]]]) -> None:
        for line, row in group:
            async with limit:
                try:
                    problems = await _import_row(client, row, options, result)
                except CommandError as err:
                    problems = [str(err)]
            result.bad += [(line, problem) for problem in problems]
            progress()

    await asyncio.gather(*(in_order(group) for group in by_email.values()))
    result.bad.sort()
    return result


async def _import_row(
    client: httpx.AsyncClient,
    row: dict[str, str | None],
    options: ImportOptions,
    result: ImportResult,
) -> list[str]:
    """Import one row; what went wrong with it (nothing: an empty list)."""
    body = row_to_contact(row, options.mapping)
    email = body.get("email")
    if not email:
        return ["no email"]
    if not _EMAIL.match(email):
        return [f"invalid email {email!r}"]
    response = await call_api(client, "POST", "/api/v1/contacts", json=body)
    if response.status_code not in (200, 201):
        return [_explain(response)]
    result.imported += 1
    result.created += response.status_code == 201
    contact = response.json()["id"]
    problems = []
    for tag in options.tags:
        tagged = await call_api(
            client, "POST", f"/api/v1/contacts/{contact}/tags", json={"tag": tag}
        )
        if tagged.status_code not in (200, 201):
            problems.append(f"imported, but not tagged {tag!r}: {_explain(tagged)}")
    if options.list:
        listed = await call_api(
            client, "POST", f"/api/v1/contacts/{contact}/lists", json={"list": options.list}
        )
        if listed.status_code != 200:
            problems.append(f"imported, but not subscribed to {options.list!r}: {_explain(listed)}")
    if options.enroll:
        enrolled = await call_api(
            client,
            "POST",
            f"/api/v1/contacts/{contact}/automations",
            json={"automation": options.enroll},
        )
        if enrolled.status_code == 409:  # the entry rule said no: the row itself is fine
            reason = str(_detail(enrolled)).removeprefix("entry refused: ")
            result.refused[reason] = result.refused.get(reason, 0) + 1
        elif enrolled.status_code != 201:
            problems.append(f"imported, but not enrolled: {_explain(enrolled)}")
    return problems


def _explain(response: httpx.Response) -> str:
    detail = _detail(response)
    if isinstance(detail, list):  # FastAPI's 422: field paths and messages
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:]) or 'row'}: {d.get('msg')}"
            if isinstance(d, dict)
            else str(d)
            for d in detail
        )
    return f"the API answered {response.status_code}: {detail}"


async def run_import(
    client: httpx.AsyncClient,
    path: Path,
    options: ImportOptions,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Import with a progress bar; exit 0 when any row was imported."""
    out, err = out or sys.stdout, err or sys.stderr
    if options.enroll:
        response = await call_api(client, "GET", f"/api/v1/automations/{options.enroll}")
        if response.status_code != 200:
            raise CommandError(f"--enroll: automation {options.enroll!r} not found")
    rows = read_rows(path)
    bar = ProgressBar(len(rows), err)
    result = await import_contacts(client, path, options, bar.advance, rows)
    summary = f"{path}: imported {result.imported} of {len(rows)} rows ({result.created} new)"
    if result.refused:
        refusals = ", ".join(f"{n} {reason}" for reason, n in sorted(result.refused.items()))
        summary += f"; enrollment refused: {refusals}"
    print(summary, file=out)
    for line, why in result.bad:
        print(f"{path}:{line}: {why}", file=err)
    return 0 if result.imported else 1
