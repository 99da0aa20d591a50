"""The HTTP API as a user calls it, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import httpx

from tests.helpers.stack import Stack, eventually


async def test_every_api_route_needs_the_token(any_stack: Stack) -> None:
    app_transport = any_stack.http._transport  # the same app, without the default token header
    async with httpx.AsyncClient(
        transport=app_transport, base_url="http://cairn.test"
    ) as anonymous:
        for method, path in [
            ("GET", "/api/v1/automations"),
            ("POST", "/api/v1/contacts"),
            ("GET", "/api/v1/contacts/1"),
            ("POST", "/api/v1/events"),
            ("GET", "/api/v1/runs/cairn:x:1"),
            ("GET", "/api/v1/automations/schema"),
        ]:
            assert (await anonymous.request(method, path)).status_code == 401
            wrong = await anonymous.request(method, path, headers={"Api-Token": "wrong"})
            assert wrong.status_code == 401
            assert wrong.json() == {"detail": "missing or wrong Api-Token header"}
        assert (await anonymous.get("/healthz")).status_code == 200


async def test_contact_upsert_read_patch_delete(any_stack: Stack) -> None:
    http = any_stack.http
    email = f"{any_stack.unique('Ada')}@Example.com"
    created = await http.post(
        "/api/v1/contacts",
        json={"email": f"  {email} ", "first_name": "Ada", "fields": {"plan": "pro"}},
    )
    assert created.status_code == 201
    contact = created.json()
    assert contact["email"] == email.lower()
    again = await http.post(
        "/api/v1/contacts", json={"email": email.upper(), "last_name": "Lovelace"}
    )
    assert again.status_code == 200
    assert again.json()["id"] == contact["id"]
    assert again.json()["first_name"] == "Ada" and again.json()["last_name"] == "Lovelace"
    assert again.json()["fields"] == {"plan": "pro"}

    cid = contact["id"]
    patched = await http.patch(
        f"/api/v1/contacts/{cid}",
        json={"phone": "+15550100", "fields": {"plan": "team", "seats": 3}},
    )
    assert patched.status_code == 200
    assert patched.json()["phone"] == "+15550100"
    assert patched.json()["fields"] == {"plan": "team", "seats": 3}

    assert (await http.post(f"/api/v1/contacts/{cid}/tags", json={"tag": "vip"})).status_code == 201
    assert (await http.post(f"/api/v1/contacts/{cid}/tags", json={"tag": "vip"})).status_code == 200
    assert (
        await http.post(f"/api/v1/contacts/{cid}/lists", json={"list": "newsletter"})
    ).status_code == 200
    record = (await http.get(f"/api/v1/contacts/{cid}")).json()
    assert record["tags"] == ["vip"]
    assert record["lists"] == [{"list": "newsletter", "status": "active"}]
    assert (await http.delete(f"/api/v1/contacts/{cid}/tags/vip")).status_code == 200
    assert (await http.delete(f"/api/v1/contacts/{cid}/tags/vip")).status_code == 404

    assert (await http.delete(f"/api/v1/contacts/{cid}")).status_code == 204
    assert (await http.get(f"/api/v1/contacts/{cid}")).status_code == 404


async def test_bad_contact_input_is_a_clear_422(any_stack: Stack) -> None:
    http = any_stack.http
    for body in [
        {},
        {"email": "not-an-email"},
        {"email": "a@b.co", "fields": {"x": {"nested": 1}}},
        {"email": "a@b.co", "unknown": 1},
        {"email": 12},
        [],
    ]:
        response = await http.post("/api/v1/contacts", json=body)
        assert response.status_code == 422, (body, response.text)
        assert "detail" in response.json()
    # NaN and infinities parse in Python but are no JSON numbers: refused before any route.
    contact = (await http.post("/api/v1/contacts", json={"email": "nan@example.com"})).json()
    for number in ("NaN", "Infinity", "1e999"):
        for method, url, text in [
            ("POST", "/api/v1/contacts", f'{{"email": "n@b.co", "fields": {{"x": {number}}}}}'),
            ("PATCH", f"/api/v1/contacts/{contact['id']}", f'{{"scores": {{"x": {number}}}}}'),
            (
                "POST",
                "/api/v1/events",
                f'{{"contact": 1, "event": "e", "data": {{"v": {number}}}}}',
            ),
        ]:
            headers = {"Content-Type": "application/json"}
            response = await http.request(method, url, content=text, headers=headers)
            assert response.status_code == 422, (url, text, response.text)
            assert "is not a JSON number" in response.json()["detail"]
    assert (await http.get("/api/v1/contacts/999999999")).status_code == 404
    assert (await http.get("/api/v1/contacts/abc")).status_code == 422
    assert (
        await http.post("/api/v1/contacts/1/lists", json={"list": "x", "status": "maybe"})
    ).status_code == 422


async def test_invalid_automation_lists_every_problem(any_stack: Stack) -> None:
    response = await any_stack.http.post(
        "/api/v1/automations",
        json={
            "name": "Broken",
            "start": "first",
            "steps": {
                "first": {"type": "send_emial", "next": "second"},
                "second": {"type": "add_tag", "next": "nowhere"},
                "third": {"type": "wait", "for": {"days": 1}, "next": None},
            },
        },
    )
    assert response.status_code == 422
    problems = response.json()["detail"]
    by_step = {(p["step"], p["severity"]) for p in problems}
    assert ("first", "error") in by_step  # unknown step type
    assert ("second", "error") in by_step  # missing tag / dangling next
    messages = " ".join(p["message"] for p in problems)
    assert "send_emial" in messages


async def test_automation_create_read_version_deactivate(any_stack: Stack) -> None:
    http = any_stack.http
    document = {
        "name": "Welcome series",
        "triggers": [{"type": "tag_added", "tag": "lead"}],
        "start": "hello",
        "steps": {"hello": {"type": "add_tag", "tag": "welcomed"}},
    }
    created = await http.post("/api/v1/automations", json=document)
    assert created.status_code == 201
    automation_id = created.json()["id"]
    assert automation_id.startswith("welcome-series")
    assert created.json()["version"] == 1
    read = (await http.get(f"/api/v1/automations/{automation_id}")).json()
    assert read["document"]["steps"]["hello"]["tag"] == "welcomed"
    assert any(a["id"] == automation_id for a in (await http.get("/api/v1/automations")).json())

    document["steps"]["hello"]["tag"] = "welcomed-v2"
    updated = await http.put(f"/api/v1/automations/{automation_id}", json=document)
    assert updated.status_code == 200 and updated.json()["version"] == 2
    read = (await http.get(f"/api/v1/automations/{automation_id}")).json()
    assert read["document"]["steps"]["hello"]["tag"] == "welcomed-v2"

    assert (await http.delete(f"/api/v1/automations/{automation_id}")).json()[
        "status"
    ] == "inactive"
    contact = await any_stack.contact()
    refused = await http.post(
        f"/api/v1/contacts/{contact['id']}/automations", json={"automation": automation_id}
    )
    assert refused.status_code == 409
    assert (await http.get("/api/v1/automations/nope")).status_code == 404
    missing = await http.post(
        f"/api/v1/contacts/{contact['id']}/automations", json={"automation": "nope"}
    )
    assert missing.status_code == 404


async def test_schema_and_health(any_stack: Stack) -> None:
    schema = (await any_stack.http.get("/api/v1/automations/schema")).json()
    assert "steps" in schema.get("properties", {}) or "$defs" in schema
    health = (await any_stack.http.get("/healthz")).json()
    assert health == {"status": "ok", "database": True, "temporal": True, "outbox_dead_letters": 0}


async def test_events_are_recorded_and_fire_triggers(any_stack: Stack) -> None:
    http = any_stack.http
    automation_id = await any_stack.automation(
        {
            "triggers": [{"type": "event", "event": "purchase", "data": {"plan": "pro"}}],
            "start": "thanks",
            "steps": {"thanks": {"type": "add_tag", "tag": "customer"}},
        }
    )
    contact = await any_stack.contact()
    assert (
        await http.post(
            "/api/v1/events",
            json={"email": contact["email"], "event": "purchase", "data": {"plan": "free"}},
        )
    ).status_code == 202
    assert (
        await http.post(
            "/api/v1/events",
            json={"contact": contact["id"], "event": "purchase", "data": {"plan": "pro", "n": 1}},
        )
    ).status_code == 202
    assert (
        await http.post("/api/v1/events", json={"email": "nobody@example.com", "event": "x"})
    ).status_code == 404
    assert (await http.post("/api/v1/events", json={"event": "x"})).status_code == 422

    async def tagged() -> None:
        record = await any_stack.record(contact["id"])
        assert "customer" in record["tags"]
        assert [a["automation"] for a in record["automations"]] == [automation_id]

    await eventually(tagged)


async def test_bulk_enrollment_by_ids_and_by_condition(any_stack: Stack) -> None:
    http = any_stack.http
    tag = any_stack.unique("segment")
    automation_id = await any_stack.automation(
        {"start": "t", "steps": {"t": {"type": "add_tag", "tag": "bulk"}}}
    )
    contacts = [await any_stack.contact() for _ in range(6)]
    for contact in contacts[:2]:
        await http.post(f"/api/v1/contacts/{contact['id']}/tags", json={"tag": tag})
    by_ids = await http.post(
        f"/api/v1/automations/{automation_id}/enroll",
        json={"contacts": [c["id"] for c in contacts[2:]] + [contacts[2]["id"]]},
    )
    assert by_ids.status_code == 202, by_ids.text
    assert by_ids.json()["enrolled"] == 4 and by_ids.json()["refused"] == {}
    by_condition = await http.post(
        f"/api/v1/automations/{automation_id}/enroll", json={"condition": {"tag": tag}}
    )
    assert by_condition.json()["enrolled"] == 2
    again = await http.post(
        f"/api/v1/automations/{automation_id}/enroll", json={"condition": {"tag": tag}}
    )
    # Each of the two is refused: still running, or already finished (entry "once").
    assert again.json()["enrolled"] == 0 and again.json()["workflow_ids"] == []
    refused = again.json()["refused"]
    assert set(refused) <= {"already_entered", "already_running"} and sum(refused.values()) == 2
    bad = await http.post(
        f"/api/v1/automations/{automation_id}/enroll", json={"condition": {"tagg": "x"}}
    )
    assert bad.status_code == 422
    assert (
        await http.post(f"/api/v1/automations/{automation_id}/enroll", json={})
    ).status_code == 422
    assert (
        await http.post("/api/v1/automations/nope/enroll", json={"contacts": [1]})
    ).status_code == 404

    async def all_tagged() -> None:
        for contact in contacts:
            assert "bulk" in (await any_stack.record(contact["id"]))["tags"]

    await eventually(all_tagged)


async def test_taking_another_contacts_email_is_a_409(any_stack: Stack) -> None:
    """Through any path (the email field, a custom field named email, PATCH): a conflict with
    what is stored is a 409 that loses nothing, never a 5xx."""
    http = any_stack.http
    ada, bob = (await any_stack.contact(), await any_stack.contact())
    attempts = [
        ("POST", "/api/v1/contacts", {"email": ada["email"], "fields": {"email": bob["email"]}}),
        ("PATCH", f"/api/v1/contacts/{ada['id']}", {"email": bob["email"]}),
        ("PATCH", f"/api/v1/contacts/{ada['id']}", {"fields": {"email": bob["email"]}}),
    ]
    for method, path, body in attempts:
        answer = await http.request(method, path, json=body)
        assert answer.status_code == 409, (method, path, answer.text)
        assert "email" in answer.json()["detail"]
    assert (await any_stack.record(ada["id"]))["email"] == ada["email"]
    assert (await any_stack.record(bob["id"]))["email"] == bob["email"]
