"""`make demo` (`cairn demo`): with the stack up, load the examples, import sample contacts,
act out what each persona does (visits, carts, purchases, tags) and follow the runs until
they settle, then point at one of them in the Temporal UI."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from cli.operate import (
    CommandError,
    ImportOptions,
    apply_automation,
    call_api,
    import_contacts,
    read_rows,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
API = "/api/v1"
# Steps where a contact may legitimately sit for days: a run parked there has settled.
PARKING_STEPS = {"wait", "goal", "split"}
# What the sales-pipeline example expects to exist (it warns otherwise).
CRM_RECORDS = [
    ("/pipelines", {"name": "Sales", "stages": ["Lead", "Qualified", "Won"]}),
    ("/users", {"email": "sam@example.com", "name": "Sam Seller"}),
]

Act = Callable[[httpx.AsyncClient, str], Awaitable[None]]


async def _event(client: httpx.AsyncClient, email: str, event: str, **data: Any) -> None:
    response = await call_api(
        client, "POST", f"{API}/events", json={"email": email, "event": event, "data": data}
    )
    if response.status_code != 202:
        raise CommandError(f"event {event} for {email}: {response.status_code} {response.text}")


async def _lead(client: httpx.AsyncClient, email: str) -> None:
    # Two pricing-page visits: 25 lead points each; at 50 the sales pipeline opens a deal.
    pages = ("https://example.com/pricing", "https://example.com/pricing/teams")
    for visits, page in enumerate(pages, start=1):
        await _event(client, email, "page_visited", url=page)
        await _scored(client, email, visits)


async def _scored(client: httpx.AsyncClient, email: str, visits: int, within: float = 60.0) -> None:
    """Wait until the visit's lead-scoring run has entered and ended: a contact is in one
    automation once at a time, so a second visit during the first run would not score."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        record = (await call_api(client, "POST", f"{API}/contacts", json={"email": email})).json()
        runs = [a for a in record.get("automations", []) if a["automation"] == "lead-scoring"]
        if len(runs) >= visits and all(r["status"] != "running" for r in runs):
            return
        await asyncio.sleep(0.2)
    raise CommandError(f"{email}'s lead-scoring run did not end within {within:.0f} s")


async def _qualified(client: httpx.AsyncClient, email: str) -> None:
    """A lead whom sales then qualifies: the `qualified` tag sends them to the warehouse and
    Salesforce (webhook-salesforce)."""
    await _lead(client, email)
    contact = await _contact_id(client, email)
    await _tag(client, contact, "qualified")


async def _shopper(client: httpx.AsyncClient, email: str) -> None:
    await _event(client, email, "cart_abandoned", cart_value=129.0)


async def _buyer(client: httpx.AsyncClient, email: str) -> None:
    await _shopper(client, email)
    await _event(client, email, "purchased", order_value=129.0)


async def _lapsed(client: httpx.AsyncClient, email: str) -> None:
    await _tag(client, await _contact_id(client, email), "lapsed")


async def _tag(client: httpx.AsyncClient, contact: int, tag: str) -> None:
    response = await call_api(client, "POST", f"{API}/contacts/{contact}/tags", json={"tag": tag})
    if response.status_code not in (200, 201):
        raise CommandError(
            f"tag {tag} for contact {contact}: {response.status_code} {response.text}"
        )


async def _browser(client: httpx.AsyncClient, email: str) -> None:
    await _event(client, email, "product_viewed", product="Pro plan")


async def _subscriber(client: httpx.AsyncClient, email: str) -> None:
    """Subscribing (done by the import) is all they do: the welcome series takes it from there."""


PERSONAS: dict[str, Act] = {
    "lead": _lead,
    "qualified": _qualified,
    "shopper": _shopper,
    "buyer": _buyer,
    "lapsed": _lapsed,
    "browser": _browser,
    "subscriber": _subscriber,
}


async def _contact_id(client: httpx.AsyncClient, email: str) -> int:
    # An upsert with nothing to change answers with the contact's record.
    response = await call_api(client, "POST", f"{API}/contacts", json={"email": email})
    return int(response.json()["id"])


class Demo:
    def __init__(self, client: httpx.AsyncClient, examples: Path, out: TextIO) -> None:
        self.client, self.examples, self.out = client, examples, out
        self.step_types: dict[tuple[str, str], str] = {}

    def say(self, message: str = "") -> None:
        print(message, file=self.out, flush=True)

    async def run(self, settle_within: float) -> int:
        await self._check_api()
        self.say("1. Automations from examples/")
        await self._prepare_crm()
        for path in sorted(self.examples.glob("*.json")) + sorted(self.examples.glob("*.yaml")):
            if await apply_automation(self.client, path, self.out, self.out) != 0:
                raise CommandError(f"{path} could not be applied")
        await self._load_step_types()

        csv = self.examples / "contacts.csv"
        self.say(f"\n2. Contacts from {csv.name}, subscribed to the newsletter")
        rows = read_rows(csv)
        result = await import_contacts(
            self.client, csv, ImportOptions(tags=["demo"], list="newsletter"), rows=rows
        )
        self.say(f"   imported {result.imported} of {len(rows)} rows")
        for line, why in result.bad:
            self.say(f"   {csv.name}:{line}: {why} (left out)")
        people = [
            (row["email"] or "", row.get("persona") or "subscriber")
            for line, row in rows
            if line not in {bad for bad, _ in result.bad}
        ]

        self.say("\n3. What they do")
        for email, persona in people:
            act = PERSONAS.get(persona)
            if act is None:
                raise CommandError(f"{csv.name}: unknown persona {persona!r} for {email}")
            await act(self.client, email)
            self.say(f"   {email:<24} {persona}")

        self.say("\n4. Runs")
        ids = [await _contact_id(self.client, email) for email, _ in people]
        runs = await self._follow(ids, settle_within)
        if runs is None:
            self.say(f"   runs still moving after {settle_within:.0f} s; see the Temporal UI")
            return 1
        await self._print_link(runs)
        return 0

    async def _check_api(self) -> None:
        try:
            response = await self.client.get("/healthz")
        except httpx.HTTPError as err:
            raise CommandError(
                f"no Cairn API at {self.client.base_url} ({err}); start it with `make run`"
            ) from err
        if response.status_code != 200:
            raise CommandError(f"the API at {self.client.base_url} is not healthy: {response.text}")

    async def _prepare_crm(self) -> None:
        for path, body in CRM_RECORDS:
            response = await call_api(self.client, "POST", f"{API}{path}", json=body)
            if response.status_code not in (201, 409):  # 409: there from an earlier demo
                raise CommandError(f"POST {path}: {response.status_code} {response.text}")

    async def _load_step_types(self) -> None:
        listed = (await call_api(self.client, "GET", f"{API}/automations")).json()
        for summary in listed:
            found = await call_api(self.client, "GET", f"{API}/automations/{summary['id']}")
            steps = (found.json().get("document") or {}).get("steps") or {}
            for step_id, step in steps.items():
                self.step_types[(summary["id"], step_id)] = step.get("type", "")

    def _settled(self, run: dict[str, Any]) -> bool:
        if run["status"] != "running":
            return True
        step = self.step_types.get((run["automation"], run.get("current_step") or ""))
        return step in PARKING_STEPS

    async def _follow(
        self, contact_ids: list[int], settle_within: float
    ) -> list[dict[str, Any]] | None:
        """Print the runs' progress whenever it changes; the runs once settled (the same
        picture twice in a row, every run finished or parked), None on timeout."""
        started = time.monotonic()
        previous: str | None = None
        while time.monotonic() - started < settle_within:
            runs: list[dict[str, Any]] = []
            for cid in contact_ids:
                record = (await call_api(self.client, "GET", f"{API}/contacts/{cid}")).json()
                runs += record.get("automations", [])
            picture = _summary(runs)
            if picture == previous and runs and all(self._settled(r) for r in runs):
                self.say("   settled")
                return runs
            if picture != previous:
                self.say(f"   [{time.monotonic() - started:5.1f}s] {picture}")
            previous = picture
            await asyncio.sleep(1.0)
        return None

    async def _print_link(self, runs: list[dict[str, Any]]) -> None:
        # The most interesting run to open: one that went down the sales pipeline.
        run = next((r for r in runs if r["automation"] == "sales-pipeline"), runs[0])
        found = await call_api(self.client, "GET", f"{API}/runs/{quote(run['workflow_id'])}")
        link = found.json().get("temporal_ui_url", "") if found.status_code == 200 else ""
        self.say(f"\n5. Contact {run['workflow_id'].split(':')[2]} in the Temporal UI:\n   {link}")
        self.say(f"   report: cairn automations report {run['automation']}")


def _summary(runs: list[dict[str, Any]]) -> str:
    by_status = Counter(r["status"] for r in runs)
    waiting = Counter(
        f"{r['automation']}/{r.get('current_step')}" for r in runs if r["status"] == "running"
    )
    text = f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    if waiting:
        text += " | at " + ", ".join(f"{where} ×{n}" for where, n in sorted(waiting.items()))
    return text


async def run_demo(
    client: httpx.AsyncClient,
    *,
    examples: Path = EXAMPLES,
    settle_within: float = 120.0,
    out: TextIO | None = None,
) -> int:
    """The whole demo; its exit code."""
    return await Demo(client, examples, out or sys.stdout).run(settle_within)
