// An automation document → the nodes and edges the canvas draws. Positions come from
// `layout.ts`; nothing here is stored. Every outgoing reference of every step type becomes an
// edge (see workflows/steps.py `references()`): `next`, if/else `yes`/`no`, split
// `paths.N.next` / `before` / `after`, goto `target`; a wait on a condition with a timeout
// labels its `next` edge; goals get a dashed "jump" edge from the start (contacts jump to a
// goal from anywhere above it as soon as its condition holds). A reference left empty ends the
// run: it becomes a small "end" node, where the builder offers its "+".

export type Json = Record<string, unknown>;

export interface AutomationDocument {
  id?: string;
  name?: string;
  start?: string;
  steps?: Record<string, Json>;
  triggers?: Json[];
  [key: string]: unknown;
}

export type EdgeKind =
  | "next"
  | "yes"
  | "no"
  | "path"
  | "before"
  | "after"
  | "goto"
  | "goal"
  | "timeout"
  | "start";

export interface GraphNode {
  id: string; // the step id; "__start__" or "__end__:<from>:<branch>" for the pseudo-nodes
  kind: "step" | "start" | "end";
  stepId?: string;
  type?: string;
  label: string;
  detail: string;
}

export interface GraphEdge {
  id: string; // "<from>:<branch>", the key `edgeLabels` uses
  source: string;
  target: string;
  from: string; // the step id the edge leaves ("__start__" for the entry)
  to: string | null; // the step id it reaches; null for a dangling end
  branch: string; // the field path in the step: next, yes, no, paths.0.next, before, after, target
  kind: EdgeKind;
  label: string;
  dashed: boolean;
  insertable: boolean; // the builder may insert a step here
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export const START = "__start__";
export const endId = (from: string, branch: string) => `__end__:${from}:${branch}`;

function str(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

export function describeDuration(value: unknown): string {
  if (!value || typeof value !== "object") return "";
  const units: [string, string][] = [
    ["weeks", "w"],
    ["days", "d"],
    ["hours", "h"],
    ["minutes", "min"],
    ["seconds", "s"],
  ];
  const parts = units
    .map(([unit, short]) => [(value as Json)[unit], short] as const)
    .filter(([amount]) => typeof amount === "number" && amount > 0)
    .map(([amount, short]) => `${amount} ${short}`);
  return parts.join(" ");
}

/** A one-line summary of a step's settings, shown under its label. */
export function stepDetail(step: Json): string {
  const type = String(step.type ?? "");
  switch (type) {
    case "send_email":
    case "send_notification_email":
      return str(step.subject) ?? "";
    case "send_sms":
      return str(step.body)?.slice(0, 40) ?? "";
    case "wait": {
      if (step.for) return `for ${describeDuration(step.for)}`;
      if (str(step.until)) return `until ${String(step.until).slice(0, 16).replace("T", " ")}`;
      const timeout = describeDuration(step.timeout);
      return timeout ? `until condition, at most ${timeout}` : "until condition";
    }
    case "split":
      if (step.mode === "even") return `${Array.isArray(step.paths) ? step.paths.length : 0} paths`;
      return "split until";
    case "goto":
      return `to ${String(step.target ?? "")}`;
    case "add_tag":
    case "remove_tag":
      return str(step.tag) ?? "";
    case "subscribe":
    case "unsubscribe":
      return str(step.list) ?? "";
    case "start_automation":
    case "end_automation":
      return str(step.automation) ?? "";
    case "webhook":
      return str(step.url) ?? "";
    default:
      return "";
  }
}

interface Ref {
  branch: string;
  kind: EdgeKind;
  label: string;
  target: string | null;
}

/** The outgoing references of a step, in the order workflows/steps.py lists them. */
export function referencesOf(step: Json): Ref[] {
  const ref = (branch: string, kind: EdgeKind, label: string, target: unknown): Ref => ({
    branch,
    kind,
    label,
    target: str(target),
  });
  switch (step.type) {
    case "end":
      return [];
    case "goto":
      return [ref("target", "goto", "go to", step.target)];
    case "if_else":
      return [ref("yes", "yes", "yes", step.yes), ref("no", "no", "no", step.no)];
    case "split":
      if (step.mode === "until") {
        return [ref("before", "before", "before", step.before), ref("after", "after", "after", step.after)];
      }
      return (Array.isArray(step.paths) ? step.paths : []).map((path, index) =>
        ref(`paths.${index}.next`, "path", `path ${index}`, (path as Json | null)?.next),
      );
    case "wait":
      if (step.condition && step.timeout) {
        return [ref("next", "timeout", `met or after ${describeDuration(step.timeout)}`, step.next)];
      }
      return [ref("next", "next", "", step.next)];
    case "goal":
      if (step.unmet === "wait" && step.timeout) {
        return [ref("next", "timeout", `met or after ${describeDuration(step.timeout)}`, step.next)];
      }
      return [ref("next", "next", "", step.next)];
    default:
      return [ref("next", "next", "", step.next)];
  }
}

export function buildGraph(document: AutomationDocument, labelOf?: (type: string) => string): Graph {
  const steps = document.steps ?? {};
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  const triggers = Array.isArray(document.triggers) ? document.triggers : [];
  const triggerText = triggers.map((t) => String((t as Json).type ?? "?")).join(", ");
  nodes.push({
    id: START,
    kind: "start",
    label: "Start",
    detail: triggerText ? `when ${triggerText}` : "enrolled through the API",
  });
  const start = str(document.start);
  if (start && start in steps) {
    edges.push({
      id: `${START}:start`,
      source: START,
      target: start,
      from: START,
      to: start,
      branch: "start",
      kind: "start",
      label: "",
      dashed: false,
      insertable: true,
    });
  }
  for (const [stepId, step] of Object.entries(steps)) {
    const type = String(step?.type ?? "?");
    nodes.push({
      id: stepId,
      kind: "step",
      stepId,
      type,
      label: str(step?.name) ?? (labelOf ? labelOf(type) : type),
      detail: stepDetail(step ?? {}),
    });
    const seen = new Set<string>();
    for (const ref of referencesOf(step ?? {})) {
      const id = `${stepId}:${ref.branch}`;
      const known = ref.target !== null && ref.target in steps;
      if (known && ref.kind === "goto") {
        edges.push({ id, source: stepId, target: ref.target!, from: stepId, to: ref.target, branch: ref.branch, kind: "goto", label: ref.label, dashed: true, insertable: false });
        continue;
      }
      if (known) {
        // Two paths of a split to one step stay two edges: each has its own share.
        const key = `${ref.target}|${ref.label}`;
        if (seen.has(key)) continue;
        seen.add(key);
        edges.push({ id, source: stepId, target: ref.target!, from: stepId, to: ref.target, branch: ref.branch, kind: ref.kind, label: ref.label, dashed: false, insertable: true });
        continue;
      }
      // An empty (or unknown) reference ends the run here.
      const end = endId(stepId, ref.branch);
      nodes.push({ id: end, kind: "end", label: "End", detail: "" });
      edges.push({ id, source: stepId, target: end, from: stepId, to: null, branch: ref.branch, kind: ref.kind, label: ref.label, dashed: false, insertable: ref.kind !== "goto" });
    }
  }
  for (const [stepId, step] of Object.entries(steps)) {
    if (step?.type !== "goal") continue;
    edges.push({
      id: `${START}:goal:${stepId}`,
      source: START,
      target: stepId,
      from: START,
      to: stepId,
      branch: "goal",
      kind: "goal",
      label: "goal met",
      dashed: true,
      insertable: false,
    });
  }
  return { nodes, edges };
}
