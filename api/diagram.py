"""An automation's flow as a Mermaid flowchart or a server-rendered SVG, with live counts.

Both renderings read one `Flow`: the current version's steps in document order, their labels
(`describe_step` plus the report's counts) and the labelled edges (`references`). The SVG is a
simple layered layout in pure Python: rank = longest path from `start` (loops broken at their
back edges), one row of boxes per rank, straight arrows downwards and a detour on the right
for arrows that go back up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from store.reports import Report, StepReport
from workflows.document import Automation
from workflows.steps import StepBase, describe_step

# --- the flow both renderings draw ---------------------------------------------------------

# Step type → node kind, which picks the Mermaid shape and the SVG fill.
KINDS: dict[str, str] = {
    "if_else": "decision",
    "split": "decision",
    "goal": "goal",
    "wait": "wait",
    "end": "end",
}


@dataclass(frozen=True)
class Node:
    key: str  # a safe node id (s0, s1, ...): step ids may be Mermaid keywords such as "end"
    step_id: str
    kind: str
    title: str  # describe_step's summary
    counts: str  # "entered 120 · waiting 3 · held 1"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str  # "" for a plain `next`
    dotted: bool = False  # a goto


def _edge_label(field: str, counts: StepReport | None) -> str:
    """yes / no / path n / before / after, with how many contacts took it when known."""
    if field in ("next", "target"):
        return ""
    if field.startswith("paths."):
        index = field.split(".")[1]
        label, reason = f"path {index}", f"path:{index}"
    else:
        label, reason = field, field
    taken = counts.completed_by_reason.get(reason) if counts else None
    return f"{label} ({taken})" if taken else label


def _counts(step: StepReport | None, goal_rate: str | None) -> str:
    if step is None:
        return "entered 0"
    parts = [f"entered {step.entered}"]
    skipped = sum(step.skipped.values())
    parts += [f"skipped {skipped}"] if skipped else []
    parts += [f"failed {step.failed}"] if step.failed else []
    parts += [f"waiting {step.waiting}"] if step.waiting else []
    parts += [f"held {step.held}"] if step.held else []
    parts += [goal_rate] if goal_rate else []
    return " · ".join(parts)


@dataclass(frozen=True)
class Flow:
    start: str
    nodes: list[Node]
    edges: list[Edge]

    @classmethod
    def of(cls, document: dict[str, Any], report: Report) -> Flow:
        automation = Automation.model_validate(document)
        keys = {step_id: f"s{i}" for i, step_id in enumerate(automation.steps)}
        by_step = {s.step: s for s in report.steps}
        goal_rates = {
            g.step: f"achieved {g.achieved}" + (f" ({g.rate:.0%})" if g.rate is not None else "")
            for g in report.goals
        }
        nodes, edges = [], []
        for step_id, step in automation.steps.items():
            counts = by_step.get(step_id)
            nodes.append(
                Node(
                    key=keys[step_id],
                    step_id=step_id,
                    kind=KINDS.get(step.type, "action"),
                    title=describe_step(step_id, step),
                    counts=_counts(counts, goal_rates.get(step_id)),
                )
            )
            edges += _edges_of(keys, step_id, step, counts)
        return cls(start=keys[automation.start], nodes=nodes, edges=edges)


def _edges_of(
    keys: dict[str, str], step_id: str, step: StepBase, counts: StepReport | None
) -> list[Edge]:
    seen: set[tuple[str, str]] = set()
    edges = []
    for field, target in step.references():
        if target is None or target not in keys:
            continue
        label = _edge_label(field, counts)
        if (target, label) in seen:  # two paths to one step with one label: draw once
            continue
        seen.add((target, label))
        edges.append(Edge(keys[step_id], keys[target], label, dotted=step.type == "goto"))
    return edges


# --- Mermaid -------------------------------------------------------------------------------

# Mermaid reads `#name;` / `#code;` as entities: the only way to put quotes, angle brackets
# and `#` inside a quoted label without ending it or injecting HTML.
_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
_SHAPES: dict[str, tuple[str, str]] = {
    "action": ("[", "]"),
    "decision": ("{", "}"),
    "goal": ("{{", "}}"),
    "wait": ("(", ")"),
    "end": ("([", "])"),
}
_MERMAID_CLASSES = {
    "goal": "fill:#e3f4e1,stroke:#2e7d32,stroke-width:2px",
    "decision": "fill:#fff6d8,stroke:#b08900",
    "wait": "fill:#e4f0fb,stroke:#1f6fb2",
}


def mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in " ".join(text.split()))


def to_mermaid(flow: Flow) -> str:
    """`flowchart TD` text; GitHub and the Mermaid live editor render it as is."""
    lines = ["flowchart TD", '    start_(("start"))']
    for node in flow.nodes:
        opening, closing = _SHAPES[node.kind]
        label = f"{mermaid_text(node.title)}<br/>{mermaid_text(node.counts)}"
        lines.append(f'    {node.key}{opening}"{label}"{closing}')
    lines.append(f"    start_ --> {flow.start}")
    for edge in flow.edges:
        arrow = "-.->" if edge.dotted else "-->"
        label = f'|"{mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {edge.source} {arrow}{label} {edge.target}")
    for kind, style in _MERMAID_CLASSES.items():
        members = [n.key for n in flow.nodes if n.kind == kind]
        if members:
            lines.append(f"    classDef {kind} {style}")
            lines.append(f"    class {','.join(members)} {kind}")
    return "\n".join(lines) + "\n"


# --- SVG -----------------------------------------------------------------------------------

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 260, 58, 40, 56, 30
CHARS_PER_LINE = 38  # at 12px sans-serif in a 260px box
_FILLS = {
    "action": ("#ffffff", "#555555"),
    "decision": ("#fff6d8", "#b08900"),
    "goal": ("#e3f4e1", "#2e7d32"),
    "wait": ("#e4f0fb", "#1f6fb2"),
    "end": ("#eeeeee", "#777777"),
}


def ranks(flow: Flow) -> dict[str, int]:
    """Longest path from `start` (and from each step it cannot reach), ignoring back edges."""
    out: dict[str, list[str]] = {n.key: [] for n in flow.nodes}
    for edge in flow.edges:
        out[edge.source].append(edge.target)
    # Back edges close loops (goto): found by a depth-first walk, then left out of the ranking.
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 = on the walk's path, 2 = done
    roots = [flow.start] + [n.key for n in flow.nodes if n.key != flow.start]
    order: list[str] = []  # reverse post-order = a topological order of the rest
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            key, i = stack.pop()
            if i < len(out[key]):
                stack.append((key, i + 1))
                nxt = out[key][i]
                if state.get(nxt) == 1:
                    back.add((key, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[key] = 2
                order.append(key)
    rank = dict.fromkeys(out, 0)
    for key in reversed(order):
        for nxt in out[key]:
            if (key, nxt) not in back:
                rank[nxt] = max(rank[nxt], rank[key] + 1)
    return rank


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= CHARS_PER_LINE else text[: CHARS_PER_LINE - 1] + "…"


def to_svg(flow: Flow) -> str:
    """A standalone SVG document (every label XML-escaped)."""
    rank = ranks(flow)
    rows: dict[int, list[str]] = {}
    for node in flow.nodes:  # document order within a row
        rows.setdefault(rank[node.key], []).append(node.key)
    widest = max((len(r) for r in rows.values()), default=1)
    width = 2 * MARGIN + widest * BOX_W + (widest - 1) * GAP_X + 60  # room for back edges
    height = 2 * MARGIN + (max(rows, default=0) + 1) * (BOX_H + GAP_Y)
    position: dict[str, tuple[float, float]] = {}
    for r, keys in rows.items():
        row_width = len(keys) * BOX_W + (len(keys) - 1) * GAP_X
        left = (width - 60 - row_width) / 2
        for i, key in enumerate(keys):
            position[key] = (left + i * (BOX_W + GAP_X), MARGIN + r * (BOX_H + GAP_Y))

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for n, edge in enumerate(flow.edges):
        parts.append(_svg_edge(edge, position, width - 30 + (n % 4) * 6))
    for node in flow.nodes:
        parts.append(_svg_node(node, *position[node.key]))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _svg_edge(edge: Edge, position: dict[str, tuple[float, float]], detour_x: float) -> str:
    (sx, sy), (tx, ty) = position[edge.source], position[edge.target]
    if ty > sy:  # downwards: bottom centre to top centre
        points = [(sx + BOX_W / 2, sy + BOX_H), (tx + BOX_W / 2, ty)]
        label_at = ((sx + tx + BOX_W) / 2 + 4, (sy + BOX_H + ty) / 2)
    else:  # back up (a loop) or sideways: through the gaps between rows and the right margin,
        # so the arrow crosses no box
        out_x, in_x = sx + BOX_W / 2 + 20, tx + BOX_W / 2 + 20
        below, above = sy + BOX_H + GAP_Y / 4, ty - GAP_Y / 4
        points = [
            (out_x, sy + BOX_H),
            (out_x, below),
            (detour_x, below),
            (detour_x, above),
            (in_x, above),
            (in_x, ty),
        ]
        label_at = (out_x + 4, below - 3)
    dash = ' stroke-dasharray="5,4"' if edge.dotted else ""
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    svg = (
        f'<polyline points="{path}" fill="none" stroke="#555" stroke-width="1.4"{dash} '
        'marker-end="url(#arrow)"/>'
    )
    if edge.label:
        x, y = label_at
        svg += f'<text x="{x:.1f}" y="{y:.1f}" fill="#333">{escape(edge.label)}</text>'
    return svg


def _svg_node(node: Node, x: float, y: float) -> str:
    fill, stroke = _FILLS[node.kind]
    radius = 18 if node.kind in ("wait", "end") else 4
    double = node.kind == "goal"
    shape = (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="{radius}" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="{3 if double else 1.4}"/>'
    )
    title = f"<title>{escape(node.title)}</title>"
    lines = [
        (node.step_id, ' font-weight="bold"'),
        (node.title.rsplit(" (step ", 1)[0], ""),
        (node.counts, ' fill="#444"'),
    ]
    texts = "".join(
        f'<text x="{x + 10:.1f}" y="{y + 17 + i * 15:.1f}"{attrs}>{escape(_clip(text))}</text>'
        for i, (text, attrs) in enumerate(lines)
    )
    return f"<g class={quoteattr(node.kind)}>{title}{shape}{texts}</g>"
