/**
 * The builder's draft: an automation document edited in place by pure functions.
 *
 * Every edit returns a new document (the old one is never mutated), so React state, undo and
 * the text view all see plain values. The document is the one the API validates and saves;
 * the canvas is drawn from it.
 */

export type Step = { type: string; [field: string]: unknown };

export interface Draft {
  name: string;
  start: string;
  steps: Record<string, Step>;
  triggers?: Record<string, unknown>[];
  entry?: "once" | "multiple";
  [field: string]: unknown;
}

/** Where an edge leaves a step: the field that holds the reference ("next", "yes", "paths.1.next"…). */
export type RefPath = string;

/** An edge of the canvas: from a step (null: before the first step) along one of its references. */
export interface EdgeRef {
  from: string | null;
  to: string | null;
  branch?: RefPath;
}

/** The result of an edit the draft may refuse. */
export type Edit = { ok: true; draft: Draft; id?: string } | { ok: false; message: string };

const STEP_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function blankDraft(name = "New automation"): Draft {
  return { name, entry: "once", triggers: [], start: "", steps: {} };
}

/** (field path, target) of every reference a step holds, in order: as `references()` in workflows/steps.py. */
export function references(step: Step): [RefPath, string | null][] {
  const ref = (value: unknown): string | null => (typeof value === "string" ? value : null);
  switch (step.type) {
    case "if_else":
      return [
        ["yes", ref(step.yes)],
        ["no", ref(step.no)],
      ];
    case "split":
      if (step.mode === "until") {
        return [
          ["before", ref(step.before)],
          ["after", ref(step.after)],
        ];
      }
      return (Array.isArray(step.paths) ? step.paths : []).map((path, index) => [
        `paths.${index}.next`,
        ref((path as { next?: unknown } | null)?.next),
      ]);
    case "goto":
      return [["target", ref(step.target)]];
    case "end":
      return [];
    default:
      return [["next", ref(step.next)]];
  }
}

/** The reference a step continues through when nothing else decides: its first one. */
export function primaryRef(step: Step): RefPath | null {
  const refs = references(step);
  return refs.length ? refs[0][0] : null;
}

/** Whether a step goes on to several places (if/else, split). */
export function branches(step: Step): boolean {
  return step.type === "if_else" || step.type === "split";
}

/** A copy of `step` with the reference at `path` set to `target` (null removes it). */
export function setRef(step: Step, path: RefPath, target: string | null): Step {
  const parts = path.split(".");
  if (parts.length === 3 && parts[0] === "paths") {
    const index = Number(parts[1]);
    const paths = Array.isArray(step.paths) ? [...(step.paths as Record<string, unknown>[])] : [];
    paths[index] = withField({ ...(paths[index] ?? {}) }, "next", target);
    return { ...step, paths };
  }
  return withField({ ...step }, path, target) as Step;
}

function withField<T extends Record<string, unknown>>(obj: T, key: string, value: unknown): T {
  if (value === null || value === undefined) {
    delete obj[key];
  } else {
    (obj as Record<string, unknown>)[key] = value;
  }
  return obj;
}

/** A new step id made from its type: `send_email`, then `send_email_2`, … */
export function freshId(draft: Draft, type: string): string {
  const base = type.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 58) || "step";
  if (!(base in draft.steps)) return base;
  for (let n = 2; ; n++) {
    const id = `${base}_${n}`;
    if (!(id in draft.steps)) return id;
  }
}

/**
 * Insert a new step on an edge. The new step goes on to the edge's target (through its first
 * reference: `next`, `yes`, the first split path, `before`), and the edge's source now points
 * at the new step. `from: null` inserts before the first step.
 */
export function insertStep(draft: Draft, edge: EdgeRef, step: Step): Edit {
  const id = freshId(draft, step.type);
  const source = edge.from === null ? null : draft.steps[edge.from];
  if (edge.from !== null && source === undefined) {
    return { ok: false, message: `There is no step "${edge.from}".` };
  }
  const branch = edge.branch ?? (source ? primaryRef(source) : null);
  const target = source && branch ? (refAt(source, branch) ?? null) : edge.from === null ? draft.start || null : null;
  let created = { ...step };
  const first = primaryRef(created);
  if (target !== null) {
    if (first === null) {
      return {
        ok: false,
        message: `An "${step.type}" step ends the run: put it at the end of a path, not before "${target}".`,
      };
    }
    created = setRef(created, first, target);
  } else if (created.type === "goto" && typeof created.target !== "string") {
    // A goto needs somewhere to go: the first step, until the author picks another.
    if (draft.start) created = setRef(created, "target", draft.start);
  }
  const steps = { ...draft.steps, [id]: created };
  if (source && branch && edge.from !== null) {
    steps[edge.from] = setRef(source, branch, id);
    return { ok: true, draft: { ...draft, steps }, id };
  }
  return { ok: true, draft: { ...draft, steps, start: id }, id };
}

/** The reference at `path` of a step. */
export function refAt(step: Step, path: RefPath): string | null | undefined {
  const found = references(step).find(([p]) => p === path);
  return found ? found[1] : undefined;
}

/** Add a step no other step points to (a goal: contacts jump to it when its condition holds). */
export function addDetachedStep(draft: Draft, step: Step): Edit {
  const id = freshId(draft, step.type);
  const steps = { ...draft.steps, [id]: step };
  return { ok: true, draft: { ...draft, steps, start: draft.start || id }, id };
}

/**
 * Delete a step and reconnect what pointed at it to what it went on to.
 *
 * A step with one way on (a `next`) hands it to its predecessors. A branching step (if/else,
 * split) is deleted only when at most one of its branches leads anywhere: that branch survives;
 * with two or more, the edit is refused, so no path is dropped silently — delete or end the
 * other branches first. A `goto` or `end` leaves its predecessors ending there. A `goto` that
 * targets the deleted step follows it to its successor, or the edit is refused when there is none.
 */
export function deleteStep(draft: Draft, id: string): Edit {
  const step = draft.steps[id];
  if (step === undefined) return { ok: false, message: `There is no step "${id}".` };
  let successor: string | null = null;
  if (branches(step)) {
    const leading = references(step).filter(([, target]) => target !== null && target !== id);
    const distinct = new Set(leading.map(([, target]) => target));
    if (distinct.size > 1) {
      const names = leading.map(([path]) => branchLabel(path)).join(", ");
      return {
        ok: false,
        message: `"${id}" has several branches that lead on (${names}): delete or end all but one first.`,
      };
    }
    successor = leading.length ? leading[0][1] : null;
  } else if (step.type !== "goto" && step.type !== "end") {
    const next = refAt(step, "next");
    successor = next && next !== id ? next : null;
  }
  const steps: Record<string, Step> = {};
  for (const [otherId, other] of Object.entries(draft.steps)) {
    if (otherId === id) continue;
    let changed = other;
    for (const [path, target] of references(other)) {
      if (target !== id) continue;
      if (other.type === "goto") {
        if (successor === null || successor === otherId) {
          return {
            ok: false,
            message: `The goto step "${otherId}" jumps to "${id}": point it elsewhere or delete it first.`,
          };
        }
      }
      changed = setRef(changed, path, successor);
    }
    steps[otherId] = changed;
  }
  let start = draft.start;
  if (start === id) {
    start = successor ?? Object.keys(steps)[0] ?? "";
  }
  return { ok: true, draft: { ...draft, steps, start } };
}

/** A branch for people: yes, no, path 2 (counted from 1), before, after. */
export function branchLabel(path: RefPath): string {
  const match = /^paths\.(\d+)\.next$/.exec(path);
  if (match) return `path ${Number(match[1]) + 1}`;
  return path;
}

/**
 * Replace a step's settings, keeping its type and its references (the canvas edits those).
 * Fields set to undefined, null or "" are dropped, as the document leaves optional fields out.
 */
export function updateSettings(draft: Draft, id: string, settings: Record<string, unknown>): Draft {
  const old = draft.steps[id];
  if (old === undefined) return draft;
  let step: Step = { ...compact(settings), type: old.type } as Step;
  if (old.type === "split") {
    if (old.mode !== undefined && step.mode === undefined) step.mode = old.mode;
  }
  for (const [path, target] of references(old)) {
    if (step.type === "split" && step.mode !== old.mode) break; // a new mode starts with no branches
    if (path.startsWith("paths.")) {
      const index = Number(path.split(".")[1]);
      if (!Array.isArray(step.paths) || index >= step.paths.length) continue;
    }
    if (old.type === "goto") continue; // its target is a setting, edited in the form
    step = setRef(step, path, target);
  }
  return { ...draft, steps: { ...draft.steps, [id]: step } };
}

/** Rename a step, following every reference to it. */
export function renameStep(draft: Draft, id: string, newId: string): Edit {
  if (!STEP_ID.test(newId)) {
    return { ok: false, message: "A step id is 1–64 of A–Z a–z 0–9 _ -, starting with a letter or digit." };
  }
  if (newId === id) return { ok: true, draft, id };
  if (newId in draft.steps) return { ok: false, message: `There is already a step "${newId}".` };
  const steps: Record<string, Step> = {};
  for (const [otherId, other] of Object.entries(draft.steps)) {
    let changed = other;
    for (const [path, target] of references(other)) {
      if (target === id) changed = setRef(changed, path, newId);
    }
    steps[otherId === id ? newId : otherId] = changed;
  }
  return { ok: true, draft: { ...draft, steps, start: draft.start === id ? newId : draft.start }, id: newId };
}

/** Set (or, with undefined / null / "", remove) one top-level field: name, entry, triggers, timezone… */
export function setField(draft: Draft, field: string, value: unknown): Draft {
  const next: Draft = { ...draft };
  if (value === undefined || value === null || value === "" || (Array.isArray(value) && value.length === 0 && field !== "triggers")) {
    delete next[field];
  } else {
    next[field] = value;
  }
  return next;
}

/** The goal steps of the draft, in document order. */
export function goals(draft: Draft): string[] {
  return Object.entries(draft.steps)
    .filter(([, step]) => step.type === "goal")
    .map(([id]) => id);
}

/**
 * Drop what a form leaves behind for fields the author did not fill: undefined, null, "" and
 * objects left empty by that (an optional duration or count a form opened). Arrays keep their
 * length (a split's paths are counted by position).
 */
export function compact(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const clean = compactValue(item);
    if (clean === undefined) continue;
    if (isPlainObject(clean) && Object.keys(clean).length === 0) continue;
    out[key] = clean;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function compactValue(value: unknown): unknown {
  if (value === undefined || value === null || value === "") return undefined;
  if (Array.isArray(value)) return value.map((item) => compactValue(item) ?? null);
  if (isPlainObject(value)) return compact(value);
  return value;
}

/**
 * Turn a split into the other mode (`fresh`: the new mode's default settings). Its branches
 * carry over in order: paths 1 and 2 of an even split become `before` and `after`, and back.
 */
export function switchSplitMode(draft: Draft, id: string, fresh: Step): Draft {
  const old = draft.steps[id];
  if (old === undefined || old.type !== "split" || old.mode === fresh.mode) return draft;
  const targets = references(old).map(([, target]) => target);
  let step: Step = { ...fresh, ...(old.name ? { name: old.name } : {}), ...(old.on_error ? { on_error: old.on_error } : {}) };
  references(step).forEach(([path], index) => {
    step = setRef(step, path, targets[index] ?? null);
  });
  return { ...draft, steps: { ...draft.steps, [id]: step } };
}
