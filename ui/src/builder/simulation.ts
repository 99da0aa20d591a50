/**
 * The Test panel's pure parts: a script of events as the author types it ("3d", "email
 * clicked of welcome") → the body of POST /api/v1/simulate, and its answer → what the canvas
 * draws on each step (docs/studio.md#test).
 */

export type Duration = { weeks?: number; days?: number; hours?: number; minutes?: number; seconds?: number };

export type ScriptKind = "event" | "email_opened" | "email_clicked" | "tag_added" | "tag_removed" | "field";

export interface ScriptRow {
  offset: string; // "3d", "2h", "1d 12h", "30m"
  kind: ScriptKind;
  name: string; // event name, tag, field name, or the step of an email
  value: string; // a field's new value
}

export interface MadeUpContact {
  first_name: string;
  email: string;
  tags: string; // comma separated
  fields: string; // "plan=free, city=Paris"
}

export interface SimulationStep {
  at: string;
  step: string;
  type?: string;
  outcome?: string;
  reason?: string | null;
  detail?: string | null;
}

export interface SimulationMessage {
  at: string;
  step: string;
  channel: string;
  to?: string | null;
  subject?: string | null;
  html?: string | null;
  text?: string | null;
}

export interface SimulationResult {
  status: string;
  reason?: string | null;
  waiting_at?: string | null;
  started_at?: string | null;
  simulated?: string | null;
  path: SimulationStep[];
  messages: SimulationMessage[];
  writes?: Record<string, unknown>[];
  goals?: string[];
  workflow_id?: string;
  temporal_ui_url?: string | null;
}

const UNITS: Record<string, keyof Duration> = {
  w: "weeks",
  d: "days",
  h: "hours",
  m: "minutes",
  min: "minutes",
  s: "seconds",
};

/** "3d", "2h", "1d 12h", "90m" → a duration; null when it is not one ("0", "3x", ""). */
export function parseOffset(text: string): Duration | null {
  const cleaned = text.trim().toLowerCase();
  if (!cleaned) return null;
  const out: Duration = {};
  let rest = cleaned;
  const part = /^\s*(\d+(?:\.\d+)?)\s*(min|w|d|h|m|s)/;
  let total = 0;
  while (rest.trim()) {
    const match = part.exec(rest);
    if (!match) return null;
    const unit = UNITS[match[2]];
    const amount = Number(match[1]);
    out[unit] = (out[unit] ?? 0) + amount;
    total += amount;
    rest = rest.slice(match[0].length);
  }
  return total > 0 ? out : null;
}

/** One script row as the simulate route reads it, or a message saying what is wrong. */
export function scriptEvent(row: ScriptRow): { event: Record<string, unknown> } | { error: string } {
  const at = parseOffset(row.offset);
  if (!at) return { error: `"${row.offset}" is not an offset like 3d, 2h or 1d 12h` };
  const name = row.name.trim();
  if (!name) return { error: "each row needs a name, tag, field or step" };
  switch (row.kind) {
    case "event":
      return { event: { at, event: name } };
    case "email_opened":
      return { event: { at, email: "opened", step: name } };
    case "email_clicked":
      return { event: { at, email: "clicked", step: name } };
    case "tag_added":
      return { event: { at, tag_added: name } };
    case "tag_removed":
      return { event: { at, tag_removed: name } };
    case "field":
      return { event: { at, fields: { [name]: row.value } } };
  }
}

/** The made-up contact as the simulate route reads it. */
export function madeUpContact(contact: MadeUpContact): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (contact.first_name.trim()) out.first_name = contact.first_name.trim();
  if (contact.email.trim()) out.email = contact.email.trim();
  const tags = contact.tags
    .split(",")
    .map((tag) => tag.trim())
    .filter(Boolean);
  if (tags.length) out.tags = tags;
  const fields: Record<string, string> = {};
  for (const pair of contact.fields.split(",")) {
    const [key, ...value] = pair.split("=");
    if (key.trim()) fields[key.trim()] = value.join("=").trim();
  }
  if (Object.keys(fields).length) out.fields = fields;
  return out;
}

/** "+2d 3h" from the start of the simulation to `at`. */
export function sinceStart(start: string, at: string): string {
  const ms = Date.parse(at) - Date.parse(start);
  if (!Number.isFinite(ms) || ms < 1000) return "+0";
  let seconds = Math.round(ms / 1000);
  const days = Math.floor(seconds / 86400);
  seconds -= days * 86400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const parts = [days && `${days}d`, hours && `${hours}h`, minutes && `${minutes}m`, !days && !hours && !minutes && seconds && `${seconds}s`].filter(Boolean);
  return `+${parts.join(" ")}`;
}

/** Each step on the simulated path → the lines its node shows: "+2d · held · until …". */
export function overlayOf(result: SimulationResult): Record<string, string[]> {
  const overlay: Record<string, string[]> = {};
  const start = simulationStart(result);
  for (const entry of result.path) {
    const line = [start ? sinceStart(start, entry.at) : entry.at, entry.outcome, entry.reason].filter(Boolean).join(" · ");
    (overlay[entry.step] ??= []).push(line);
  }
  return overlay;
}

/** The virtual moment the run started. */
export function simulationStart(result: SimulationResult): string | undefined {
  return result.started_at ?? result.path[0]?.at;
}

/** One sentence for the answer's status: "completed after P4DT1H", "still running at …". */
export function statusLine(result: SimulationResult): string {
  const after = result.simulated ? ` after ${humanIso(result.simulated)} of virtual time` : "";
  const why = result.reason ? ` (${result.reason})` : result.waiting_at ? ` (waiting at ${result.waiting_at})` : "";
  const goals = result.goals?.length ? `; goals reached: ${result.goals.join(", ")}` : "";
  return `${result.status}${why}${after}${goals}`;
}

/** "P4DT1H" → "4d 1h"; anything else as written. */
export function humanIso(duration: string): string {
  const match = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(duration);
  if (!match) return duration;
  const [, w, d, h, m, s] = match;
  const parts = [w && `${w}w`, d && `${d}d`, h && `${h}h`, m && `${m}m`, s && `${s}s`].filter(Boolean);
  return parts.length ? parts.join(" ") : "0s";
}
