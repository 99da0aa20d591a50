"""CRM routes (docs/crm.md#routes) on every database: users, pipelines, deals, notes, tasks, accounts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from store.conditions import evaluate_all
from store.crm import format_money
from store.models import Account, Pipeline
from tests.helpers.crm import api_get, api_patch, api_post, sales_pipeline, sales_user
from tests.helpers.runs import finished
from tests.helpers.stack import POSTGRES_URL, Stack, eventually

API = "/api/v1"


def _loc(response_json: Any) -> list[Any]:
    return [e["loc"] for e in response_json["detail"]]


async def test_users_and_pipelines(any_stack: Stack) -> None:
    stack = any_stack
    user = await sales_user(stack)
    assert user["name"] == "Sam Seller" and user["email"].endswith("@example.com")
    assert await api_get(stack, f"/users/{user['id']}") == user
    renamed = await api_patch(stack, f"/users/{user['id']}", {"name": "Sam S."})
    assert renamed["name"] == "Sam S."
    await api_post(stack, "/users", {"email": user["email"].upper(), "name": "Twin"}, status=409)
    await api_post(stack, "/users", {"email": "not-an-email", "name": "X"}, status=422)
    await api_get(stack, "/users/999999", status=404)

    name = stack.unique("Pipe")
    pipeline = await api_post(stack, "/pipelines", {"name": name, "stages": ["Lead", "Won"]})
    assert [s["name"] for s in pipeline["stages"]] == ["Lead", "Won"]
    await api_post(stack, "/pipelines", {"name": name.upper(), "stages": ["A"]}, status=409)
    bad = await api_post(stack, "/pipelines", {"name": stack.unique("P"), "stages": []}, status=422)
    assert ["body", "stages"] in _loc(bad)
    await api_post(
        stack, "/pipelines", {"name": stack.unique("P"), "stages": ["A", "a"]}, status=422
    )

    # Stages are kept by name: reordered, one added, one removed.
    changed = await api_patch(
        stack, f"/pipelines/{pipeline['id']}", {"stages": ["Won", "Demo", "lead"]}
    )
    assert [s["name"] for s in changed["stages"]] == ["Won", "Demo", "lead"]
    assert changed["stages"][2]["id"] == pipeline["stages"][0]["id"]
    listed = await api_get(stack, "/pipelines?limit=1&offset=0")
    assert len(listed["items"]) == 1 and listed["total"] >= 1 and listed["limit"] == 1
    await api_get(stack, "/pipelines?limit=0", status=422)


async def test_deals_notes_and_the_contact_record(any_stack: Stack) -> None:
    stack = any_stack
    pipeline = await sales_pipeline(stack)
    owner = await sales_user(stack)
    contact = await stack.contact(first_name="Ada")
    deal = await api_post(
        stack,
        "/deals",
        {
            "title": "Pro plan",
            "value": 125000,
            "currency": "usd",
            "pipeline": pipeline,
            "owner": owner["email"],
            "fields": {"source": "web"},
            "scores": {"fit": 7},
            "contacts": [contact["id"]],
        },
    )
    assert (deal["pipeline"], deal["stage"], deal["status"]) == (pipeline, "Lead", "open")
    assert (deal["currency"], deal["formatted_value"]) == ("USD", "$1,250.00")
    assert deal["owner"]["id"] == owner["id"] and deal["scores"] == {"fit": 7.0}
    assert deal["contacts"] == [contact["id"]]

    # Stage by name within the deal's pipeline; fields merge; null removes.
    moved = await api_patch(
        stack,
        f"/deals/{deal['id']}",
        {"stage": "qualified", "fields": {"source": None, "seats": 5}, "owner": None},
    )
    assert (moved["stage"], moved["fields"], moved["owner"]) == ("Qualified", {"seats": 5}, None)

    bad = await api_post(
        stack,
        "/deals",
        {"title": "x", "currency": "USD", "pipeline": pipeline, "stage": "Nope"},
        status=422,
    )
    assert _loc(bad) == [["body", "stage"]] and "Nope" in bad["detail"][0]["msg"]
    bad = await api_post(
        stack, "/deals", {"title": "x", "currency": "USD", "pipeline": "No such"}, status=422
    )
    assert _loc(bad) == [["body", "pipeline"]]
    bad = await api_post(
        stack,
        "/deals",
        {"title": "x", "currency": "USD", "pipeline": pipeline, "owner": "nobody@example.com"},
        status=422,
    )
    assert _loc(bad) == [["body", "owner"]]
    await api_post(
        stack,
        "/deals",
        {"title": "x", "currency": "USD", "pipeline": pipeline, "contacts": [10**12]},
        status=422,
    )
    await api_post(
        stack, "/deals", {"title": "x", "currency": "dollars", "pipeline": pipeline}, 422
    )
    await api_post(
        stack, "/deals", {"title": "x", "currency": "USD", "pipeline": 1, "extra": 1}, 422
    )
    await api_get(stack, "/deals/999999999", status=404)

    note = await api_post(stack, f"/deals/{deal['id']}/notes", {"note": "Called them"})
    edited = await api_patch(stack, f"/deals/{deal['id']}/notes/{note['id']}", {"note": "Called!"})
    assert edited["note"] == "Called!"
    notes = await api_get(stack, f"/deals/{deal['id']}/notes")
    assert [n["note"] for n in notes["items"]] == ["Called!"] and notes["total"] == 1
    await api_patch(stack, f"/deals/{deal['id'] + 1000}/notes/{note['id']}", {"note": "x"}, 404)

    later = await api_post(
        stack,
        "/deals",
        {
            "title": "Add-on",
            "currency": "EUR",
            "value": 999,
            "pipeline": pipeline,
            "contacts": [contact["id"]],
        },
    )
    record = await stack.record(contact["id"])
    # Newest first, with pipeline and stage names.
    assert [(d["id"], d["pipeline"], d["stage"]) for d in record["deals"]] == [
        (later["id"], pipeline, "Lead"),
        (deal["id"], pipeline, "Qualified"),
    ]
    by_contact = await api_get(stack, f"/deals?contact={contact['id']}&limit=1")
    assert by_contact["total"] == 2 and [d["id"] for d in by_contact["items"]] == [deal["id"]]
    won = await api_get(stack, f"/deals?contact={contact['id']}&status=won")
    assert won["total"] == 0
    assert (await api_get(stack, "/deals?pipeline=No%20such"))["total"] == 0

    # Replacing the deal's contacts.
    other = await stack.contact()
    await api_patch(stack, f"/deals/{later['id']}", {"contacts": [other["id"]]})
    assert [d["id"] for d in (await stack.record(contact["id"]))["deals"]] == [deal["id"]]
    assert [d["id"] for d in (await stack.record(other["id"]))["deals"]] == [later["id"]]


async def test_tasks_accounts_and_members(any_stack: Stack) -> None:
    stack = any_stack
    pipeline = await sales_pipeline(stack)
    user = await sales_user(stack, name=stack.unique("Rep"))
    contact = await stack.contact()
    deal = await api_post(
        stack,
        "/deals",
        {"title": "D", "currency": "USD", "pipeline": pipeline, "contacts": [contact["id"]]},
    )
    due = datetime(2030, 1, 2, 9, 0, tzinfo=UTC)
    on_deal = await api_post(
        stack,
        "/tasks",
        {
            "title": "Call",
            "type": "call",
            "deal": deal["id"],
            "assignee": user["name"],
            "due_at": due.isoformat(),
        },
    )
    assert (on_deal["deal"], on_deal["assignee"]["id"], on_deal["done"]) == (
        deal["id"],
        user["id"],
        False,
    )
    assert datetime.fromisoformat(on_deal["due_at"]) == due
    on_contact = await api_post(stack, "/tasks", {"title": "Email", "contact": contact["id"]})
    assert on_contact["type"] == "todo"
    bad = await api_post(
        stack, "/tasks", {"title": "Both", "deal": deal["id"], "contact": contact["id"]}, 422
    )
    assert "exactly one" in str(bad["detail"])
    await api_post(stack, "/tasks", {"title": "x", "deal": 10**12}, 422)
    done = await api_patch(stack, f"/tasks/{on_deal['id']}", {"done": True, "assignee": None})
    assert done["done"] and done["done_at"] and done["assignee"] is None
    assert (await api_get(stack, f"/tasks?deal={deal['id']}&done=true"))["total"] == 1
    assert (await api_get(stack, f"/tasks?contact={contact['id']}"))["total"] == 1
    record = await stack.record(contact["id"])
    assert {t["id"] for t in record["tasks"]} == {on_deal["id"], on_contact["id"]}

    name = stack.unique("Acme")
    account = await api_post(stack, "/accounts", {"name": name, "url": "https://acme.example"})
    await api_post(stack, "/accounts", {"name": name.lower()}, status=409)
    await api_post(stack, "/accounts", {"name": "x", "url": "ftp://nope"}, status=422)
    patched = await api_patch(
        stack, f"/accounts/{account['id']}", {"fields": {"size": 50}, "url": None}
    )
    assert (patched["fields"], patched["url"]) == ({"size": 50}, None)
    member = await api_post(
        stack, f"/accounts/{account['id']}/contacts", {"contact": contact["id"], "job_title": "CTO"}
    )
    assert member == {
        **member,
        "account": account["id"],
        "contact": contact["id"],
        "job_title": "CTO",
    }
    await api_post(stack, f"/accounts/{account['id']}/contacts", {"contact": 10**12}, status=422)
    await api_patch(
        stack, f"/accounts/{account['id']}/contacts/{contact['id']}", {"job_title": "CEO"}
    )
    members = await api_get(stack, f"/accounts/{account['id']}/contacts")
    assert [(m["contact"], m["job_title"]) for m in members["items"]] == [(contact["id"], "CEO")]
    assert (await stack.record(contact["id"]))["account"] == {
        **patched,
        "job_title": "CEO",
        "updated_at": (await stack.record(contact["id"]))["account"]["updated_at"],
    }
    # A contact has one account: adding it to another moves it.
    other = await api_post(stack, "/accounts", {"name": stack.unique("Other")})
    await api_post(stack, f"/accounts/{other['id']}/contacts", {"contact": contact["id"]})
    assert (await stack.record(contact["id"]))["account"]["name"] == other["name"]
    await api_patch(
        stack, f"/accounts/{account['id']}/contacts/{contact['id']}", {"job_title": "x"}, 404
    )


async def test_deal_condition_reads_the_current_deal(any_stack: Stack) -> None:
    stack = any_stack
    sales, support = await sales_pipeline(stack), await sales_pipeline(stack, "New", "Done")
    owner = await sales_user(stack)
    contact = await stack.contact()
    cid = contact["id"]
    base = {"currency": "USD", "contacts": [cid]}
    await api_post(stack, "/deals", {**base, "title": "Old", "value": 100, "pipeline": sales})
    await api_post(
        stack, "/deals", {**base, "title": "Lost one", "pipeline": sales, "status": "lost"}
    )
    big = await api_post(
        stack,
        "/deals",
        {
            **base,
            "title": "Big",
            "value": 50_000,
            "pipeline": sales,
            "stage": "Qualified",
            "owner": owner["email"],
            "fields": {"region": "EU"},
            "scores": {"heat": 40},
        },
    )
    await api_post(stack, "/deals", {**base, "title": "Ticket", "pipeline": support})

    def deal(field: str, op: str, value: Any = None, pipeline: str | None = None) -> dict[str, Any]:
        leaf = {"deal": {"field": field, "op": op, "value": value}}
        return {**leaf, "pipeline": pipeline} if pipeline else leaf

    cases = [
        (deal("title", "is", "ticket"), True),  # the newest deal, any pipeline
        (deal("title", "is", "big", sales), True),  # the newest deal of that pipeline
        (deal("stage", "is", "qualified", sales), True),
        (deal("pipeline", "is", sales, sales), True),
        (deal("value", "gte", 50_000, sales), True),
        (deal("status", "is", "open", sales), True),
        (deal("owner", "is", owner["email"], sales), True),
        (deal("region", "is", "EU", sales), True),  # custom field
        (deal("heat", "gt", 30, sales), True),  # score
        (deal("currency", "is", "EUR", sales), False),
        (deal("title", "is", "Old", sales), False),
        (deal("title", "is_not_blank", None, "No such pipeline"), False),
        ({"not": deal("stage", "is", "Won", sales)}, True),
    ]
    async with stack.db.read() as session:
        results = await evaluate_all(session, cid, [c for c, _ in cases], datetime.now(UTC))
        assert results == [expected for _, expected in cases]
    # Won or lost, the newest deal is still the one read (and the one deal steps act on).
    await api_patch(stack, f"/deals/{big['id']}", {"status": "won"})
    async with stack.db.read() as session:
        won = [deal("status", "is", "won", sales), deal("title", "is", "Big", sales)]
        assert await evaluate_all(session, cid, won, datetime.now(UTC)) == [True, True]
        lonely = (await stack.contact())["id"]
        assert await evaluate_all(
            session, lonely, [deal("title", "is_blank")], datetime.now(UTC)
        ) == [False]


def test_money_is_formatted_with_its_currency() -> None:
    assert format_money(125000, "USD") == "$1,250.00"
    assert format_money(125000, "eur") == "€1,250.00"
    assert format_money(5, "GBP") == "£0.05"
    assert format_money(1250, "JPY") == "¥1,250"
    assert format_money(1234567, "KWD") == "KWD 1,234.567"
    assert format_money(100000, "CHF") == "CHF 1,000.00"


async def test_crm_routes_need_the_token_and_refuse_bad_input_clearly(any_stack: Stack) -> None:
    stack = any_stack
    crm = [f"{API}/{name}" for name in ("users", "pipelines", "deals", "tasks", "accounts")]
    for path in crm:
        for method in ("GET", "POST"):
            response = await stack.http.request(method, path, headers={"Api-Token": "wrong"})
            assert response.status_code == 401, (method, path)

    pipeline = await sales_pipeline(stack)
    deal = await api_post(stack, "/deals", {"title": "D", "currency": "USD", "pipeline": pipeline})
    account = await api_post(stack, "/accounts", {"name": stack.unique("A")})
    hostile: list[tuple[str, str, Any]] = [
        ("POST", "/deals", {"title": "x" * 501, "currency": "USD", "pipeline": pipeline}),
        ("POST", "/deals", {"title": "x", "currency": "USD", "pipeline": pipeline, "value": -1}),
        ("POST", "/deals", {"title": "x", "currency": "USD", "pipeline": pipeline, "value": 2**63}),
        ("POST", "/deals", {"title": " ", "currency": "USD", "pipeline": pipeline}),
        ("POST", "/deals", {"title": "x", "currency": "USD", "pipeline": 2**62}),
        (
            "POST",
            "/deals",
            {"title": "x", "currency": "USD", "pipeline": pipeline, "status": "maybe"},
        ),
        ("POST", "/deals", {"title": "x", "currency": "USD", "pipeline": {"a": 1}}),
        ("POST", "/deals", [1, 2]),
        ("PATCH", f"/deals/{deal['id']}", {"scores": {"s": "lots"}}),
        ("PATCH", f"/deals/{deal['id']}", {"fields": {"f": {"nested": True}}}),
        ("PATCH", f"/deals/{deal['id']}", {"stage": "Nowhere"}),
        ("PATCH", f"/deals/{deal['id']}", {"contacts": [0]}),
        ("PATCH", f"/deals/{2**62}", {"title": "x"}),
        ("PATCH", "/deals/0", {"title": "x"}),
        ("GET", "/deals?status=maybe", None),
        ("GET", "/deals?limit=100000", None),
        ("GET", "/tasks?offset=-1", None),
        ("POST", "/tasks", {"title": "t", "contact": 1, "due_at": "tomorrow"}),
        ("POST", "/tasks", {"title": "t", "contact": 1, "type": "x" * 51}),
        ("POST", "/pipelines", {"name": "x" * 201, "stages": ["a"]}),
        ("POST", "/pipelines", {"name": stack.unique("P"), "stages": ["a"] * 101}),
        ("PATCH", f"/pipelines/{2**62}", {"name": "x"}),
        ("POST", "/users", {"email": "a@b.c", "name": ""}),
        ("POST", f"/accounts/{account['id']}/contacts", {"contact": "me"}),
        ("PATCH", f"/accounts/{account['id']}/contacts/1", {"job_title": "x" * 201}),
    ]
    for method, path, body in hostile:
        response = await stack.http.request(method, f"{API}{path}", json=body)
        assert 400 <= response.status_code < 500, (
            method,
            path,
            response.status_code,
            response.text,
        )
        assert "detail" in response.json()


async def test_deal_condition_reads_the_newest_deal_whatever_its_status(any_stack: Stack) -> None:
    """Outside a deal's own run, the condition reads the contact's most recently created deal
    (in the leaf's pipeline if given), open, won or lost: the deal deal steps act on too."""
    stack = any_stack
    sales, support = await sales_pipeline(stack), await sales_pipeline(stack, "New", "Done")
    cid = (await stack.contact())["id"]
    base = {"currency": "USD", "contacts": [cid], "pipeline": sales}
    first = await api_post(stack, "/deals", {**base, "title": "First", "value": 100})
    second = await api_post(stack, "/deals", {**base, "title": "Second", "value": 200})
    ticket = await api_post(stack, "/deals", {**base, "title": "Ticket", "pipeline": support})

    def status(value: str, pipeline: str | None = sales) -> dict[str, Any]:
        leaf = {"deal": {"field": "status", "op": "is", "value": value}}
        return {**leaf, "pipeline": pipeline} if pipeline else leaf

    async def holds(*conditions: dict[str, Any]) -> list[bool]:
        async with stack.db.read() as session:
            return await evaluate_all(session, cid, list(conditions), datetime.now(UTC))

    title_second = {"deal": {"field": "title", "op": "is", "value": "Second"}, "pipeline": sales}
    assert await holds(status("open"), status("won"), title_second) == [True, False, True]
    await api_patch(stack, f"/deals/{second['id']}", {"status": "lost"})
    # The newest deal, lost: an older open one does not take its place.
    assert await holds(status("open"), status("lost"), title_second) == [False, True, True]
    await api_patch(stack, f"/deals/{first['id']}", {"status": "won"})
    assert await holds(status("won"), status("lost")) == [False, True]
    # Without a pipeline, the newest deal of any pipeline.
    assert await holds(status("open", None), status("lost", None)) == [True, False]
    await api_patch(stack, f"/deals/{ticket['id']}", {"status": "won"})
    assert await holds(status("won", None), status("won", support)) == [True, True]
    # Reopened, it is open again.
    await api_patch(stack, f"/deals/{second['id']}", {"status": "open"})
    assert await holds(status("open"), title_second) == [True, True]


async def test_saving_warns_of_a_user_name_several_users_share(any_stack: Stack) -> None:
    stack = any_stack
    pipeline = await sales_pipeline(stack)
    shared = stack.unique("Alex")
    first = await sales_user(stack, name=shared)
    await sales_user(stack, name=shared.upper())
    document = {
        "name": stack.unique("shared-owner"),
        "start": "deal",
        "steps": {
            "deal": {
                "type": "add_deal",
                "title": "D",
                "value": 1,
                "currency": "USD",
                "pipeline": pipeline,
                "stage": "Lead",
                "owner": shared,
                "next": "task",
            },
            "task": {
                "type": "add_task",
                "title": "t",
                "due_in": {"days": 1},
                "assignee": first["email"],  # an email names one user
            },
        },
    }
    saved = await api_post(stack, "/automations", document)
    assert [(w["step"], w["path"]) for w in saved["warnings"]] == [("deal", "steps.deal.owner")]
    assert "several users" in saved["warnings"][0]["message"]
    assert shared in saved["warnings"][0]["message"]


async def test_names_are_unique_whatever_their_case_in_the_database(any_stack: Stack) -> None:
    """The unique indexes on lower(name) (migration 0006) refuse what the code's own check
    could miss when two transactions race."""
    stack = any_stack
    account_name, pipeline_name = stack.unique("Acme"), await sales_pipeline(stack)
    await api_post(stack, "/accounts", {"name": account_name})
    for row in (Account(name=account_name.upper()), Pipeline(name=pipeline_name.lower())):
        with pytest.raises(IntegrityError):
            async with stack.db.write() as session:
                session.add(row)
    async with stack.db.read() as session:
        assert (
            await session.scalar(
                select(func.count()).where(func.lower(Account.name) == account_name.lower())
            )
            == 1
        )


@pytest.mark.skipif(not POSTGRES_URL, reason="CAIRN_TEST_POSTGRES_URL not set")
async def test_concurrent_creations_of_one_name_make_one_account_and_one_pipeline(
    pg_stack: Stack,
) -> None:
    """On PostgreSQL, writers do not queue (SQLite's one writer at a time makes this race
    impossible there): another transaction holds "acme" uncommitted while an add_to_account
    step creates "ACME" and the API creates a pipeline of a held name. Both wait on the unique
    index; once the holder commits, the step joins the account it finds, the API answers 409."""
    stack = pg_stack
    account_name, pipeline_name = stack.unique("acme"), stack.unique("pipe")
    automation_id = await stack.automation(
        {"start": "join", "steps": {"join": {"type": "add_to_account", "account": "%COMPANY%"}}}
    )
    contact = await stack.contact(fields={"company": account_name.upper()})
    waiting = select(func.count()).select_from(text("pg_locks")).where(text("NOT granted"))
    async with stack.db.write() as holder:
        holder.add_all([Account(name=account_name), Pipeline(name=pipeline_name)])
        await holder.flush()
        handle = await stack.enroll(contact["id"], automation_id)
        created = asyncio.create_task(
            stack.http.post(
                f"{API}/pipelines", json={"name": pipeline_name.upper(), "stages": ["A"]}
            )
        )

        async def both_wait() -> None:
            async with stack.db.read() as session:
                assert await session.scalar(waiting) == 2

        await eventually(both_wait)
    response = await created
    assert response.status_code == 409, response.text
    assert pipeline_name.upper() in response.json()["detail"]
    run = await finished(stack, handle.id)
    assert [(s["step"], s["outcome"]) for s in run["steps"]] == [("join", "done")]
    record = await stack.record(contact["id"])
    assert record["account"]["name"] == account_name  # the holder's spelling: its account
    async with stack.db.read() as session:
        for model, name in ((Account, account_name), (Pipeline, pipeline_name)):
            assert (
                await session.scalar(select(func.count()).where(func.lower(model.name) == name))
                == 1
            )


async def test_read_paths_list_and_rename(any_stack: Stack) -> None:
    stack = any_stack
    # Users: the newest are last in the list (by id), with their records.
    before = (await api_get(stack, "/users?limit=1"))["total"]
    ann, bob = await sales_user(stack, name="Ann"), await sales_user(stack, name="Bob")
    users = await api_get(stack, f"/users?limit=2&offset={before}")
    assert users == {"items": [ann, bob], "total": before + 2, "limit": 2, "offset": before}
    assert (await api_get(stack, f"/users?limit=1&offset={before + 1}"))["items"] == [bob]

    # Pipelines: listed with their stages, read by id.
    before = (await api_get(stack, "/pipelines?limit=1"))["total"]
    name = await sales_pipeline(stack, "Lead", "Won")
    (pipeline,) = (await api_get(stack, f"/pipelines?limit=5&offset={before}"))["items"]
    assert (pipeline["name"], [s["name"] for s in pipeline["stages"]]) == (name, ["Lead", "Won"])
    assert await api_get(stack, f"/pipelines/{pipeline['id']}") == pipeline
    await api_get(stack, "/pipelines/999999999", status=404)

    # A deal and a task by id, as they were created.
    contact = await stack.contact()
    deal = await api_post(
        stack,
        "/deals",
        {
            "title": "Read me",
            "value": 4200,
            "currency": "EUR",
            "pipeline": name,
            "stage": "Won",
            "owner": ann["email"],
            "contacts": [contact["id"]],
        },
    )
    read = await api_get(stack, f"/deals/{deal['id']}")
    assert read == deal
    assert (read["title"], read["formatted_value"], read["stage"], read["owner"]) == (
        "Read me",
        "€42.00",
        "Won",
        ann,
    )
    task = await api_post(
        stack,
        "/tasks",
        {"title": "Ring", "type": "call", "deal": deal["id"], "assignee": bob["id"]},
    )
    assert await api_get(stack, f"/tasks/{task['id']}") == task
    assert (task["title"], task["type"], task["deal"], task["assignee"]) == (
        "Ring",
        "call",
        deal["id"],
        bob,
    )
    await api_get(stack, "/tasks/999999999", status=404)

    # Accounts: listed (newest last), read by id, renamed, and a rename onto a taken name.
    first = await api_post(stack, "/accounts", {"name": stack.unique("Acme")})
    second = await api_post(stack, "/accounts", {"name": stack.unique("Bolt"), "fields": {"n": 1}})
    total = (await api_get(stack, "/accounts?limit=1"))["total"]
    listed = await api_get(stack, f"/accounts?limit=5&offset={total - 2}")
    assert listed["items"] == [first, second] and listed["total"] == total
    assert await api_get(stack, f"/accounts/{second['id']}") == second
    await api_get(stack, "/accounts/999999999", status=404)
    new_name = stack.unique("Acme Renamed")
    renamed = await api_patch(stack, f"/accounts/{first['id']}", {"name": f"  {new_name} "})
    assert (renamed["id"], renamed["name"], renamed["url"]) == (first["id"], new_name, None)
    assert await api_get(stack, f"/accounts/{first['id']}") == renamed
    clash = await api_patch(
        stack, f"/accounts/{first['id']}", {"name": second["name"].upper()}, status=409
    )
    assert second["name"].upper() in clash["detail"]
    # Renaming to its own name in another case is no clash.
    recased = await api_patch(stack, f"/accounts/{first['id']}", {"name": new_name.lower()})
    assert recased["name"] == new_name.lower()
    assert (await api_get(stack, f"/accounts/{second['id']}"))["name"] == second["name"]
