/**
 * The automation document's JSON Schema (GET /api/v1/automations/schema), read for the builder:
 * which definition describes each step type and trigger, a default for each, and the
 * sub-schema a step's form is generated from.
 */

export type JsonSchema = {
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minItems?: number;
  minimum?: number;
  title?: string;
  description?: string;
  [keyword: string]: unknown;
};

export interface DocumentSchema extends JsonSchema {
  $defs: Record<string, JsonSchema>;
}

/** Reference fields: the canvas edits them, the forms never show them. */
export const REFERENCE_FIELDS = ["next", "yes", "no", "before", "after"];

function defName(ref: string): string {
  return ref.replace("#/$defs/", "");
}

function refsOf(node: JsonSchema | undefined): string[] {
  if (!node) return [];
  if (node.$ref) return [defName(node.$ref)];
  return [...(node.oneOf ?? []), ...(node.anyOf ?? [])].flatMap(refsOf);
}

/** The step definitions: one key per type ("split" per mode: "split:even", "split:until"). */
export function stepDefinitions(schema: DocumentSchema): Record<string, string> {
  const steps = schema.properties?.steps;
  const members = Object.values(steps?.patternProperties ?? {}).flatMap(refsOf);
  return keyedByType(schema, members);
}

/** The trigger definitions, by trigger type. */
export function triggerDefinitions(schema: DocumentSchema): Record<string, string> {
  return keyedByType(schema, refsOf(schema.properties?.triggers?.items));
}

function keyedByType(schema: DocumentSchema, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const props = schema.$defs[name]?.properties ?? {};
    const type = props.type?.const;
    if (typeof type !== "string") continue;
    const mode = props.mode?.const;
    out[typeof mode === "string" ? `${type}:${mode}` : type] = name;
  }
  return out;
}

/** The definition that describes `step` (a split by its mode), if the schema knows its type. */
export function definitionOf(schema: DocumentSchema, step: { type: string; mode?: unknown }): string | undefined {
  const defs = stepDefinitions(schema);
  if (step.type === "split") return defs[`split:${step.mode === "until" ? "until" : "even"}`];
  return defs[step.type];
}

function resolve(schema: DocumentSchema, node: JsonSchema): JsonSchema {
  return node.$ref ? (schema.$defs[defName(node.$ref)] ?? {}) : node;
}

function isNull(node: JsonSchema): boolean {
  return node.type === "null";
}

function scalar(schema: DocumentSchema, node: JsonSchema): boolean {
  const n = resolve(schema, node);
  if (n.const !== undefined || n.enum) return true;
  const types = Array.isArray(n.type) ? n.type : [n.type];
  return types.some((t) => t === "string" || t === "number" || t === "integer" || t === "boolean");
}

/**
 * A value for `node` made only of what the schema requires: constants, the first of an enum,
 * the default, an empty text; of a choice (oneOf/anyOf), the simplest option (fewest required
 * fields, all of them plain values), so a recursive condition yields `{"tag": ""}`, not a tree.
 */
export function defaultValue(schema: DocumentSchema, node: JsonSchema, seen: string[] = []): unknown {
  if (node.$ref) {
    const name = defName(node.$ref);
    if (seen.includes(name)) return undefined;
    return defaultValue(schema, schema.$defs[name] ?? {}, [...seen, name]);
  }
  if (node.const !== undefined) return node.const;
  if (node.default !== undefined && node.default !== null) return node.default;
  const options = node.oneOf ?? node.anyOf;
  if (options) {
    const candidates = options.filter((o) => !isNull(o) && !(o.$ref && seen.includes(defName(o.$ref))));
    if (candidates.length === 0) return undefined;
    const cost = (o: JsonSchema): number => {
      const r = resolve(schema, o);
      const required = r.required ?? [];
      const plain = required.every((key) => r.properties?.[key] && scalar(schema, r.properties[key]));
      return (plain ? 0 : 100) + required.length;
    };
    const best = candidates.reduce((a, b) => (cost(b) < cost(a) ? b : a));
    return defaultValue(schema, best, seen);
  }
  if (node.enum) return node.enum[0];
  const type = Array.isArray(node.type) ? node.type[0] : node.type;
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const key of node.required ?? []) {
        const value = defaultValue(schema, node.properties?.[key] ?? {}, seen);
        if (value !== undefined) out[key] = value;
      }
      return out;
    }
    case "array": {
      const count = node.minItems ?? 0;
      return Array.from({ length: count }, () => defaultValue(schema, node.items ?? {}, seen) ?? null);
    }
    case "string":
      return "";
    case "number":
    case "integer":
      return typeof node.minimum === "number" ? node.minimum : 0;
    case "boolean":
      return false;
    default:
      return undefined;
  }
}

// Defaults the schema cannot express (a wait needs exactly one of for/until/condition).
const FRIENDLIER: Record<string, Record<string, unknown>> = {
  wait: { for: { days: 1 } },
};

/**
 * Required texts are left out rather than empty, so the API names them ("subject" is
 * required); a nested choice keeps its shape (a condition stays `{"tag": ""}`, so its form
 * shows the tag condition to fill in rather than the first kind in the list).
 */
function withoutEmptyTexts(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== ""));
}

/** A new step of `type` ("split:until" for a split by mode) with the settings the schema requires. */
export function defaultStep(schema: DocumentSchema, type: string): { type: string; [field: string]: unknown } {
  const defs = stepDefinitions(schema);
  const name = defs[type] ?? defs[`${type}:even`];
  const base = name ? (defaultValue(schema, { $ref: `#/$defs/${name}` }) as Record<string, unknown>) : {};
  const [plainType] = type.split(":");
  return { ...withoutEmptyTexts(base), ...(FRIENDLIER[plainType] ?? {}), type: plainType };
}

/** A new trigger of `type` with the settings the schema requires. */
export function defaultTrigger(schema: DocumentSchema, type: string): Record<string, unknown> {
  const name = triggerDefinitions(schema)[type];
  const base = name ? (defaultValue(schema, { $ref: `#/$defs/${name}` }) as Record<string, unknown>) : {};
  return { ...withoutEmptyTexts(base), type };
}

/**
 * `anyOf: [X, {type: "null"}]` read as X: the document leaves optional fields out rather than
 * writing null, and a form shows one input instead of an "Option 1 / Option 2" choice.
 */
export function withoutNull(node: JsonSchema): JsonSchema {
  if (Array.isArray(node)) return node.map(withoutNull) as unknown as JsonSchema;
  if (node === null || typeof node !== "object") return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "discriminator") continue; // OpenAPI's, not JSON Schema's
    out[key] = value !== null && typeof value === "object" ? withoutNull(value as JsonSchema) : value;
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const options = out[key];
    if (!options) continue;
    const kept = options.filter((o) => !isNull(o));
    if (kept.length === 1) {
      delete out[key];
      Object.assign(out, { ...kept[0], ...out });
    } else if (kept.length !== options.length) {
      out[key] = kept;
    }
  }
  if (out.default === null) delete out.default;
  return out;
}

/**
 * A field without a title of its own (a duration, a count: pydantic titles the definition, not
 * the field) is labelled by its name, "within" → "Within", not by its definition's "Duration".
 */
function titleFields(properties: Record<string, JsonSchema>): Record<string, JsonSchema> {
  for (const [key, prop] of Object.entries(properties)) {
    if (!prop.title) {
      const words = key.replace(/_/g, " ");
      properties[key] = { ...prop, title: words.charAt(0).toUpperCase() + words.slice(1) };
    }
  }
  return properties;
}

/** "GoalAchievedCondition" → "Goal achieved", "AllOf" → "All of", "TagAddedTrigger" → "Tag added". */
export function humanTitle(name: string): string {
  const bare = name.replace(/(Condition|Trigger|Step)$/, "") || name;
  const words = bare.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * The schema a form edits for the definition `name`: its fields without `type` and the
 * reference fields (the canvas draws those), with every definition it may refer to.
 */
export function formSchema(schema: DocumentSchema, name: string, stepIds: string[] = []): JsonSchema {
  const def = withoutNull(schema.$defs[name] ?? {});
  const properties: Record<string, JsonSchema> = {};
  for (const [key, prop] of Object.entries(def.properties ?? {})) {
    if (key === "type" || key === "mode" || REFERENCE_FIELDS.includes(key)) continue;
    if (key === "target" && def.properties?.type?.const === "goto" && stepIds.length) {
      properties[key] = { ...prop, enum: stepIds };
      continue;
    }
    properties[key] = prop;
  }
  const required = (def.required ?? []).filter((key) => key in properties);
  titleFields(properties);
  for (const [key, prop] of Object.entries(properties)) {
    // An optional choice (a wait's condition, a trigger's filter) can be left out: "None" first.
    if (!required.includes(key) && prop.oneOf) {
      properties[key] = { ...prop, oneOf: [{ type: "null", title: "None" }, ...prop.oneOf] };
    }
  }
  const defs: Record<string, JsonSchema> = {};
  for (const [key, value] of Object.entries(schema.$defs)) {
    const plain = withoutNull(value);
    // A choice between definitions (a condition's kind) is labelled by their titles.
    defs[key] = plain.title === key ? { ...plain, title: humanTitle(key) } : plain;
    if (defs[key].properties) defs[key] = { ...defs[key], properties: titleFields({ ...defs[key].properties }) };
  }
  // A split path's `next` is an edge of the canvas too.
  if (defs.SplitPath?.properties) {
    const { next: _next, ...rest } = defs.SplitPath.properties;
    defs.SplitPath = { ...defs.SplitPath, properties: rest };
  }
  return { ...def, properties, required, $defs: defs, title: undefined, description: undefined };
}
