// The builder's calls to the API, through the typed client (`schema.d.ts`, generated from the
// app's OpenAPI by `make ui-client`). The pure parts (impact.ts, simulation.ts) read a subset of
// the same answers, so they can be tested without a server.
import { api, type Schemas, unwrap } from "../api/client";
import type { Draft } from "./draft";
import type { DocumentSchema } from "./schema";

export type Problem = Schemas["DocumentProblem"];
export type Validation = Schemas["DraftChecked"];
export type Saved = Schemas["AutomationSaved"];
export type VersionImpact = Schemas["VersionImpact"];
export type Simulation = Schemas["SimulationResult"];

const byId = (id: string) => ({ params: { path: { automation_id: id } } });

export const fetchSchema = async () =>
  unwrap(await api.GET("/api/v1/automations/schema")) as unknown as DocumentSchema;

export const fetchAutomation = async (id: string) => {
  const automation = unwrap(await api.GET("/api/v1/automations/{automation_id}", byId(id)));
  return { ...automation, document: automation.document as Draft | null | undefined };
};

export const validateDraft = async (draft: Draft): Promise<Validation> =>
  unwrap(await api.POST("/api/v1/automations/validate", { body: draft }));

export const createAutomation = async (draft: Draft): Promise<Saved> =>
  unwrap(await api.POST("/api/v1/automations", { body: draft }));

export const publishVersion = async (id: string, draft: Draft): Promise<Saved> =>
  unwrap(await api.PUT("/api/v1/automations/{automation_id}", { ...byId(id), body: draft }));

export const impactOf = async (id: string, draft: Draft): Promise<VersionImpact> =>
  unwrap(await api.POST("/api/v1/automations/{automation_id}/impact", { ...byId(id), body: draft }));

export const simulate = async (body: Record<string, unknown>): Promise<Simulation> =>
  unwrap(await api.POST("/api/v1/simulate", { body }));

/** The problems of a 422 answer (a list of document problems), or none. */
export function problemsOf(detail: unknown): Problem[] {
  if (!Array.isArray(detail)) return [];
  return detail
    .filter((item): item is Record<string, unknown> => item !== null && typeof item === "object")
    .map((item) => ({
      step: typeof item.step === "string" ? item.step : null,
      path: Array.isArray(item.loc) ? item.loc.join(".") : String(item.path ?? ""),
      message: String(item.message ?? item.msg ?? "invalid"),
      severity: item.severity === "warning" ? ("warning" as const) : ("error" as const),
    }));
}

/** A readable sentence for any API failure. */
export function messageOf(error: unknown): string {
  if (error && typeof error === "object" && "status" in error) {
    const { status, detail } = error as { status: number; detail: unknown };
    if (typeof detail === "string") return `${detail} (HTTP ${status})`;
    const problems = problemsOf(detail);
    if (problems.length) return problems.map((p) => p.message).join("; ");
    return `The API answered HTTP ${status}.`;
  }
  return error instanceof Error ? error.message : String(error);
}
