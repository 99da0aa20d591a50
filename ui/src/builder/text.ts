/** The text view's two formats: the draft written as YAML or JSON, and read back. */
import { parse, stringify } from "yaml";
import type { Draft } from "./draft";

export type TextFormat = "yaml" | "json";

export function writeDraft(draft: Draft, format: TextFormat): string {
  return format === "json" ? `${JSON.stringify(draft, null, 2)}\n` : stringify(draft, { lineWidth: 0 });
}

/** The draft in `text`, or the reason it is not one (a syntax error, or not an object). */
export function readDraft(text: string, format: TextFormat): { draft: Draft } | { error: string } {
  let value: unknown;
  try {
    value = format === "json" ? JSON.parse(text) : parse(text, { uniqueKeys: true });
  } catch (error) {
    return { error: error instanceof Error ? error.message.split("\n")[0] : String(error) };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { error: "An automation is an object (name, start, steps…)." };
  }
  const draft = value as Draft;
  if (draft.steps === undefined || draft.steps === null || typeof draft.steps !== "object" || Array.isArray(draft.steps)) {
    return { error: "“steps” must be a map from step id to step." };
  }
  for (const [id, step] of Object.entries(draft.steps)) {
    if (step === null || typeof step !== "object" || typeof (step as { type?: unknown }).type !== "string") {
      return { error: `Step “${id}” needs a “type”.` };
    }
  }
  return { draft };
}
