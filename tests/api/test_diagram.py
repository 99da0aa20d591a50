"""The live diagram: Mermaid text with counts and an SVG drawn server-side, labels escaped."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.diagram import Flow, ranks, to_mermaid
from store.reports import Report, StepReport
from tests.helpers.runs import finished
from tests.helpers.stack import Stack, eventually

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = 'Say "hi" <script>alert(1)</script> [x] {y} #1 & |pipe|'

FLOW: dict[str, Any] = {
    "start": "welcome",
    "steps": {
        "welcome": {
            "type": "send_email",
            "subject": "Hi %FIRSTNAME%",
            "html": "<p>Hi</p>",
            "next": "check",
        },
        "check": {"type": "if_else", "condition": {"tag": "vip"}, "yes": "end", "no": "loop"},
        "loop": {"type": "goto", "target": "welcome", "name": HOSTILE},
        "end": {"type": "end"},
        "bought": {"type": "goal", "condition": {"event": "purchase"}, "next": None},
    },
}


def _report(**steps: StepReport) -> Report:
    return Report(
        automation_id="x",
        version=1,
        generated_at=datetime(2026, 11, 27, tzinfo=UTC),
        runs={},
        steps=list(steps.values()),
        goals=[],
        splits=[],
    )


def test_mermaid_escapes_labels_and_uses_safe_node_ids() -> None:
    text = to_mermaid(Flow.of({"name": "n", **FLOW}, _report()))
    assert text.startswith("flowchart TD\n")
    loop_line = next(line for line in text.splitlines() if line.strip().startswith("s2"))
    # The label stays one quoted string: no raw quote, bracket of HTML or `#` inside it.
    label = loop_line.split('"', 1)[1].rsplit('"', 1)[0]
    assert '"' not in label and "<script>" not in label and "&" not in label.replace("#amp;", "")
    assert "#quot;hi#quot;" in label and "#lt;script#gt;" in label and "#35;1" in label
    # "end" is a Mermaid keyword: step ids never become node ids.
    assert not re.search(r"^\s*end\b", text, re.M)
    assert 's1 -->|"no"| s2' in text and "s2 -.-> s0" in text
    assert "s3([" in text and "s4{{" in text and "class s4 goal" in text


def test_layers_follow_the_longest_path_and_ignore_loop_back_edges() -> None:
    flow = Flow.of({"name": "n", **FLOW}, _report())
    assert ranks(flow) == {"s0": 0, "s1": 1, "s2": 2, "s3": 2, "s4": 0}


async def test_diagram_shows_live_counts_as_mermaid_and_svg(stack: Stack) -> None:
    automation_id = await stack.automation(FLOW)
    vip = await stack.contact(first_name="Vi")
    await stack.http.post(f"/api/v1/contacts/{vip['id']}/tags", json={"tag": "vip"})
    await finished(stack, (await stack.enroll(vip["id"], automation_id)).id)

    response = await stack.http.get(f"/api/v1/automations/{automation_id}/diagram")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 's0["send_email #quot;Hi %FIRSTNAME%#quot; (step welcome)<br/>entered 1"]' in text
    assert 's1 -->|"yes (1)"| s3' in text
    assert "achieved 0" in text

    response = await stack.http.get(f"/api/v1/automations/{automation_id}/diagram?format=svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    root = ET.fromstring(response.content)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    groups = root.findall(f"{SVG}g")
    assert len(groups) == len(FLOW["steps"])
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "welcome" in texts and "entered 1" in texts and "yes (1)" in texts
    titles = ["".join(t.itertext()) for t in root.iter(f"{SVG}title")]
    assert any(HOSTILE.split("<")[0] in title and "<script>" in title for title in titles)
    assert not list(root.iter(f"{SVG}script"))  # the hostile name stayed text
    assert len(root.findall(f"{SVG}polyline")) == 4  # yes, no, goto back up, next


README = Path(__file__).parents[2] / "README.md"
REPORTS = Path(__file__).parents[2] / "docs" / "reports.md"


def _tour_automation() -> dict[str, Any]:
    """The README tour's automation, parsed from its curl command (triggers left out, so no
    other test's "lead" tag enrolls anyone in it)."""
    tour = README.read_text().split("## A five-minute tour", 1)[1]
    body = "{" + tour.split("-d '{", 1)[1].split("\n}'", 1)[0] + "\n}"
    document: dict[str, Any] = json.loads(body)
    document.pop("triggers")
    return document


async def test_documented_diagram_is_what_the_route_draws_for_the_tour(stack: Stack) -> None:
    """Ada's tour: the welcome email, the wait, the purchase that pulls her to the goal."""
    # An id of its own: "welcome-series" belongs to the examples the demo test applies.
    document = {**_tour_automation(), "id": stack.unique("tour")}
    response = await stack.http.post("/api/v1/automations", json=document)
    assert response.status_code == 201, response.text
    automation_id = response.json()["id"]
    ada = await stack.contact(first_name="Ada")
    with stack.env.with_time_skipping_disabled():  # she must really sit in "pause"
        handle = await stack.enroll(ada["id"], automation_id)

    async def parked() -> None:
        assert (await stack.run(handle.id))["current_step"] == "pause"

    await eventually(parked)
    bought = await stack.http.post(
        "/api/v1/events", json={"contact": ada["id"], "event": "purchase"}
    )
    assert bought.status_code == 202
    await finished(stack, handle.id)

    diagram = (await stack.http.get(f"/api/v1/automations/{automation_id}/diagram")).text
    section = REPORTS.read_text().split("## Diagrams", 1)[1]
    shown = section.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert shown == diagram, f"docs/reports.md should show:\n{diagram}"
