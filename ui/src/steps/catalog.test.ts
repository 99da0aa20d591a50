import { describe, expect, it } from "vitest";
import documentSchema from "../api/document.schema.json";
import { FAMILIES, STEP_KINDS } from "./catalog";

// The automation document's JSON Schema as the API serves it (GET /api/v1/automations/schema;
// `make ui-client` writes it next to the typed client): its step models are the truth.
function apiStepTypes(): string[] {
  const defs = (documentSchema as { $defs: Record<string, { properties?: { type?: { const?: string } } }> }).$defs;
  const types = new Set<string>();
  for (const [name, model] of Object.entries(defs)) {
    const literal = model.properties?.type?.const;
    if (name.endsWith("Step") && literal) types.add(literal);
  }
  return [...types].sort();
}

describe("step catalog", () => {
  it("covers every step type of the API's schema, once", () => {
    const api = apiStepTypes();
    expect(api.length).toBeGreaterThanOrEqual(39);
    const ours = STEP_KINDS.map((kind) => kind.type);
    expect(new Set(ours).size).toBe(ours.length);
    expect([...ours].sort()).toEqual(api);
  });

  it("puts every step in one of the five families", () => {
    const families = new Set(FAMILIES.map((f) => f.id));
    expect(families.size).toBe(5);
    for (const kind of STEP_KINDS) expect(families.has(kind.family)).toBe(true);
  });
});
