"""`cairn automations apply|report` and `cairn contacts import` against a real HTTP API."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from cli.main import main
from cli.operate import ProgressBar, render_report
from core.settings import get_settings
from core.temporal import SEARCH_ATTRIBUTES
from tests.helpers.served import served_api
from tests.helpers.stack import API_TOKEN, Stack, eventually


@pytest.fixture(scope="module")
async def api_url(stack: Stack) -> AsyncIterator[str]:
    async with served_api(stack) as url:
        yield url


@pytest.fixture(autouse=True)
def token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI reads its token from CAIRN_API_TOKEN, as a user sets it."""
    token_as(monkeypatch, API_TOKEN)
    yield
    get_settings.cache_clear()


def token_as(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("CAIRN_API_TOKEN", token)
    get_settings.cache_clear()


async def cairn(api_url: str, *argv: str) -> int:
    """Run the CLI as a user would (it calls asyncio.run, hence its own thread)."""
    return await asyncio.to_thread(main, [*argv, "--api-url", api_url])


async def test_apply_prints_problems_like_a_compiler_then_creates_and_updates(
    stack: Stack, api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    automation_id = stack.unique("cli")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        f"id: {automation_id}\nname: Broken\nstart: hello\n"
        "steps:\n  hello: {type: add_tag, tag: x, next: nowhere}\n"
        "  mail: {type: send_email}\n"
    )
    assert await cairn(api_url, "automations", "apply", str(broken)) == 1
    err = capsys.readouterr().err
    assert f"{broken}: step hello: error: " in err and "nowhere" in err
    assert f"{broken}: step mail: error: " in err
    assert "nothing applied" in err
    assert (await stack.http.get(f"/api/v1/automations/{automation_id}")).status_code == 404

    good = tmp_path / "good.yaml"
    good.write_text(
        f"id: {automation_id}\nname: Good\nstart: hello\n"
        "steps:\n  hello: {type: add_tag, tag: x}\n"
    )
    assert await cairn(api_url, "automations", "apply", str(good)) == 0
    assert f"created {automation_id} (version 1, active)" in capsys.readouterr().out
    assert await cairn(api_url, "automations", "apply", str(good)) == 0
    assert f"updated {automation_id} (version 2, active)" in capsys.readouterr().out

    as_json = tmp_path / "not.json"
    as_json.write_text("{nope")
    assert await cairn(api_url, "automations", "apply", str(as_json)) == 1
    assert f"cairn: {as_json}: not valid json" in capsys.readouterr().err


async def test_apply_reports_server_side_problems_and_a_wrong_token(
    stack: Stack,
    api_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Locally valid, but the automation it starts exists only on a server that knows it.
    file = tmp_path / "chain.json"
    file.write_text(
        '{"name": "Chain", "start": "go", "steps": '
        '{"go": {"type": "start_automation", "automation": "no-such-automation"}}}'
    )
    assert await cairn(api_url, "automations", "apply", str(file)) == 1
    assert f"{file}: step go: error: " in capsys.readouterr().err
    token_as(monkeypatch, "wrong")
    assert await cairn(api_url, "automations", "apply", str(file)) == 1
    assert "refused the token (set CAIRN_API_TOKEN)" in capsys.readouterr().err


async def test_a_token_on_the_command_line_is_refused(
    stack: Stack, api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ps` shows every user a command's arguments: the token comes from the environment only."""
    file = tmp_path / "any.yaml"  # never read: refused before
    argv = ["automations", "apply", str(file), "--api-url", api_url, "--token", API_TOKEN]
    assert await asyncio.to_thread(main, argv) == 2
    assert "set CAIRN_API_TOKEN instead" in capsys.readouterr().err


async def test_report_renders_the_api_report(
    stack: Stack, api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    automation_id = await stack.automation(
        {"start": "hello", "steps": {"hello": {"type": "add_tag", "tag": "x"}}}
    )
    await stack.enroll((await stack.contact())["id"], automation_id)
    assert await cairn(api_url, "automations", "report", automation_id) == 0
    assert "hello" in capsys.readouterr().out
    assert await cairn(api_url, "automations", "report", "no-such-automation") == 1
    assert "no report for 'no-such-automation'" in capsys.readouterr().err


def test_report_rendering_is_generic() -> None:
    text = render_report(
        {
            "automation": "a",
            "steps": [
                {"step": "hello", "entered": 3, "skipped": {"no_email": 1}},
                {"step": "bye", "entered": 2, "failed": 0},
            ],
            "goals": [],
            "runs": {"running": 1, "completed": 2},
            "splits": [{"step": "ab", "paths": [{"path": 0, "contacts": 4}]}],
            "odd": {"nested": {"deep": 1}},
        }
    )
    lines = text.splitlines()
    assert lines[0] == "automation: a"
    assert lines[1:3] == ["goals: -", "runs: running=1, completed=2"]
    assert lines[5].split() == ["step", "entered", "skipped", "failed"]
    assert lines[7].split() == ["hello", "3", "no_email=1", "-"]
    assert "splits:" in lines and "ab    path=0, contacts=4" in text
    assert text.endswith('"deep": 1\n    }\n  }\n}')
    assert render_report([1, 2]) == "[\n  1,\n  2\n]"


CSV = """email,first_name,Plan,birthday,ignored
ada@{domain},Ada,pro,1990-05-17,x
,Nobody,free,,
not-an-email,Bad,free,,
grace@{domain},{long},free,,
"linus@{domain}","Linus
Torvalds",free,,
ADA@{domain},Ada L.,pro,,
"""


async def test_import_keeps_good_rows_and_reports_bad_ones_by_line(
    stack: Stack, api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    domain = f"{stack.unique('d')}.example.com"
    tag, listed = stack.unique("imported"), stack.unique("list")
    automation_id = await stack.automation(
        {"start": "hello", "steps": {"hello": {"type": "add_tag", "tag": "welcomed"}}}
    )
    file = tmp_path / "contacts.csv"
    file.write_text(CSV.format(domain=domain, long="G" * 300))
    code = await cairn(
        api_url,
        "contacts",
        "import",
        str(file),
        "--map",
        "Plan=plan",
        "--map",
        "ignored=-",
        "--tag",
        tag,
        "--tag",
        "csv",
        "--list",
        listed,
        "--enroll",
        automation_id,
        "--concurrency",
        "3",
    )
    out, err = capsys.readouterr()
    assert code == 0
    # Ada twice (the second row updates her), Linus once; the multi-line cell counts two lines.
    assert (
        f"{file}: imported 3 of 6 rows (2 new); enrollment refused: 1 already_running" in out
        or (f"{file}: imported 3 of 6 rows (2 new); enrollment refused: 1 already_entered" in out)
    )
    bad = [line for line in err.splitlines() if line.startswith(f"{file}:")]
    assert bad[0] == f"{file}:3: no email"
    assert bad[1] == f"{file}:4: invalid email 'not-an-email'"
    assert bad[2].startswith(f"{file}:5: first_name: ")
    assert len(bad) == 3
    # stderr is no terminal here: plain progress lines, no bar redrawn with carriage returns.
    assert "6/6 rows\n" in err and "\r" not in err

    async def imported() -> dict[str, Any]:
        found = await stack.http.post(
            "/api/v1/contacts", json={"email": f"ada@{domain}"}
        )  # an upsert with nothing new reads her back
        record = found.json()
        assert "welcomed" in record["tags"], record
        return record  # type: ignore[no-any-return]

    ada = await eventually(imported)
    assert ada["first_name"] == "Ada L."
    assert ada["fields"] == {"plan": "pro", "birthday": "1990-05-17"}
    assert {tag, "csv"} <= set(ada["tags"])
    assert ada["lists"] == [{"list": listed, "status": "active"}]
    assert [a["automation"] for a in ada["automations"]] == [automation_id]
    linus = (await stack.http.post("/api/v1/contacts", json={"email": f"linus@{domain}"})).json()
    assert linus["first_name"] == "Linus\nTorvalds"


async def test_import_with_no_good_row_fails(
    api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "bad.csv"
    file.write_text("email,name\n,nobody\nnope,x\n")
    assert await cairn(api_url, "contacts", "import", str(file)) == 1
    out, err = capsys.readouterr()
    assert "imported 0 of 2 rows" in out
    assert f"{file}:2: no email" in err and f"{file}:3: invalid email 'nope'" in err
    assert await cairn(api_url, "contacts", "import", str(file), "--map", "oops") == 1
    assert "--map 'oops': expected CSV_COLUMN=FIELD" in capsys.readouterr().err
    assert await cairn(api_url, "contacts", "import", str(tmp_path / "missing.csv")) == 1
    assert "cannot read" in capsys.readouterr().err


async def test_import_counts_blank_lines_and_multi_line_cells_in_line_numbers(
    stack: Stack, api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    domain = f"{stack.unique('d')}.example.com"
    file = tmp_path / "gaps.csv"
    file.write_text(
        "email,first_name\n"  # 1
        "\n"  # 2
        f"one@{domain},One\n"  # 3
        "\n"  # 4
        "\n"  # 5
        ",Nobody\n"  # 6
        f'"two@{domain}","Two\r\nLines"\n'  # 7-8
        "nope,Bad\n"  # 9
        ',"No\nEmail"\n'  # 10-11
        "\n"  # 12
        "nope-again,Bad\n"  # 13
    )
    assert await cairn(api_url, "contacts", "import", str(file)) == 0
    out, err = capsys.readouterr()
    assert f"{file}: imported 2 of 6 rows (2 new)" in out
    assert [line for line in err.splitlines() if line.startswith(f"{file}:")] == [
        f"{file}:6: no email",
        f"{file}:9: invalid email 'nope'",
        f"{file}:10: no email",
        f"{file}:13: invalid email 'nope-again'",
    ]


async def test_import_reports_each_row_whose_tag_or_list_was_refused(
    stack: Stack, api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    domain = f"{stack.unique('d')}.example.com"
    file = tmp_path / "refused.csv"
    file.write_text(f"email\na@{domain}\n,nobody\nb@{domain}\n")
    too_long = "x" * 201  # the API takes names of up to 200 characters
    code = await cairn(
        api_url, "contacts", "import", str(file), "--tag", "fine", "--tag", too_long,
        "--list", too_long,
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0  # the contacts themselves were imported
    assert f"{file}: imported 2 of 3 rows (2 new)" in out
    bad = [line for line in err.splitlines() if line.startswith(f"{file}:")]
    assert bad[0].endswith("at most 200 characters"), bad[0]  # the API's own words
    assert [line.split(": ", 2)[1] for line in bad] == [
        f"imported, but not subscribed to {too_long!r}",
        f"imported, but not tagged {too_long!r}",
        "no email",
        f"imported, but not subscribed to {too_long!r}",
        f"imported, but not tagged {too_long!r}",
    ]
    assert [line.split(":")[1] for line in bad] == ["2", "2", "3", "4", "4"]
    record = (await stack.http.post("/api/v1/contacts", json={"email": f"a@{domain}"})).json()
    assert record["tags"] == ["fine"] and record["lists"] == []


async def test_import_applies_rows_of_one_email_in_file_order(
    stack: Stack, api_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    domain = f"{stack.unique('d')}.example.com"
    rows = []
    for n in range(1, 41):
        rows.append(f"{'SAME' if n % 2 else 'same'}@{domain},v{n},{n}")
        rows.append(f"other{n}@{domain},o{n},{n}")
    file = tmp_path / "same.csv"
    file.write_text("email,first_name,n\n" + "\n".join(rows) + "\n")
    code = await cairn(api_url, "contacts", "import", str(file), "--concurrency", "8")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{file}: imported 80 of 80 rows (41 new)" in out
    # Plain progress lines, every tenth of the way.
    assert [line for line in err.splitlines() if line.endswith(" rows")] == [
        f"{n}/80 rows" for n in range(8, 81, 8)
    ]
    same = (await stack.http.post("/api/v1/contacts", json={"email": f"same@{domain}"})).json()
    assert (same["first_name"], same["fields"]) == ("v40", {"n": "40"})


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = ProgressBar(4, out, width=8)
    for _ in range(4):
        bar.advance()
    assert out.getvalue() == (
        "\r[##......] 1/4 rows\r[####....] 2/4 rows\r[######..] 3/4 rows\r[########] 4/4 rows\n"
    )


async def _cairn_setup(target: str, namespace: str, cwd: Path) -> tuple[int, str]:
    """`cairn setup` as its own process, as a deployment runs it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "setup",
        "--wait",
        "10",
        "--retention-days",
        "3",
        env={
            **os.environ,
            "CAIRN_TEMPORAL_ADDRESS": target,
            "CAIRN_TEMPORAL_NAMESPACE": namespace,
        },
        cwd=cwd,  # no stray .env file is read
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


async def test_setup_creates_the_namespace_then_its_search_attributes_idempotently(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    target = env.client.service_client.config.target_host
    namespace = f"cairn-setup-{uuid.uuid4().hex[:8]}"
    code, output = await _cairn_setup(target, namespace, tmp_path)
    assert code == 0, output
    where = f"namespace {namespace!r} at {target}"
    assert f"created {where} (retention 3 days)" in output
    names = ", ".join(sorted(key.name for key in SEARCH_ATTRIBUTES))
    assert f"registered search attributes {names} in {where}" in output

    code, output = await _cairn_setup(target, namespace, tmp_path)
    assert code == 0, output
    assert f"{where} already exists" in output
    assert f"search attributes already registered in {where}" in output

    described = await env.client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    retention = described.config.workflow_execution_retention_ttl
    assert retention.ToTimedelta() == timedelta(days=3)
    listed = await env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    assert {key.name for key in SEARCH_ATTRIBUTES} <= set(listed.custom_attributes)


def test_keys_show_prints_the_keys_others_hold_and_nothing_else(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cairn keys show webhook|site`: what a webhook receiver or a website backend needs,
    derived from CAIRN_SECRET_KEY (never the secret itself); `--old` adds a rotation's keys."""
    from core.settings import Settings, get_settings

    monkeypatch.setenv("CAIRN_SECRET_KEY", "the-current-secret-key-0123")
    monkeypatch.setenv("CAIRN_SECRET_KEY_OLD", "the-former-secret-key-4567")
    get_settings.cache_clear()
    try:
        shown = {}
        for purpose in ("webhook", "site"):
            assert main(["keys", "show", purpose]) == 0
            shown[purpose] = capsys.readouterr().out.split()
            assert main(["keys", "show", purpose, "--old"]) == 0
            current, old = capsys.readouterr().out.split()
            assert [current] == shown[purpose] and old != current
            assert old == Settings(  # type: ignore[call-arg]
                _env_file=None, secret_key="the-former-secret-key-4567"
            ).shared_key(purpose)
        assert len({k for keys in shown.values() for k in keys}) == 2
        assert all(len(k) == 64 and "secret" not in k for keys in shown.values() for k in keys)
        with pytest.raises(SystemExit):  # the other keys are never shown
            main(["keys", "show", "tracking"])
    finally:
        get_settings.cache_clear()


async def test_tokens_create_list_revoke_round_trip(
    stack: Stack,
    api_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = stack.unique("website")
    created = await cairn(api_url, "tokens", "create", name, "--scope", "site", "--scope", "site")
    assert created == 0
    printed = capsys.readouterr()
    token = printed.out.strip()
    assert token.startswith("cairn_") and len(token) > 40 and "\n" not in token
    assert f"created token {name!r} with scopes site" in printed.err
    assert "only this once" in printed.err

    # The printed token works for its scope, and only for it.
    contact = await stack.contact()
    visit = {"contact": contact["id"], "url": "https://shop.test/"}
    headers = {"Api-Token": token}
    assert (await stack.http.post("/api/v1/site/visits", json=visit, headers=headers)).is_success
    assert (await stack.http.get("/api/v1/automations", headers=headers)).status_code == 403
    # A site token cannot manage tokens: the CLI says why.
    token_as(monkeypatch, token)
    assert await cairn(api_url, "tokens", "list") == 1
    assert "needs the 'admin' scope" in capsys.readouterr().err
    token_as(monkeypatch, API_TOKEN)

    assert await cairn(api_url, "tokens", "list") == 0
    listing = capsys.readouterr().out
    line = next(line for line in listing.splitlines() if line.startswith(name))
    assert "site" in line and token not in listing
    assert listing.splitlines()[0].split() == [
        "name",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]

    assert await cairn(api_url, "tokens", "revoke", name) == 0
    assert f"revoked token {name!r}" in capsys.readouterr().out
    assert (
        await stack.http.post("/api/v1/site/visits", json=visit, headers=headers)
    ).status_code == 401
    assert await cairn(api_url, "tokens", "revoke", "no-such-token") == 1
    assert "not revoked: no token named 'no-such-token'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # argparse: not a scope at all
        main(["tokens", "create", stack.unique(), "--scope", "nope"])
    assert exited.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
