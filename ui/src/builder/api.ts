// The builder's calls to the API. The automation routes are in the typed client's schema;
// validate, impact and simulate may be newer than a checked-in `schema.d.ts`, so they go
// through the same authenticated fetch (`getJson`) with the shapes written out here.
import { getJson } from "../api/client";
import type { Draft } from "./draft";
import type { DocumentSchema } from "./schema";
import type { Impact } from "./impact";
import type { SimulationResult } from "./simulation";

export interface Problem {
  step?: string | null;
  path: string;
  message: string;
  severity: "error" | "warning" | string;
}

export interface Validation {
  valid: boolean;
  problems: Problem[];
}

export interface Saved {
  id: string;
  version: number;
  warnings?: Problem[];
}

export const fetchSchema = () => getJson<DocumentSchema>("/api/v1/automations/schema");

export const fetchAutomation = (id: string) =>
  getJson<{ id: string; version: number; document: Draft | null }>(`/api/v1/automations/${encodeURIComponent(id)}`);

const post = <T,>(path: string, body: unknown, method = "POST") =>
  getJson<T>(path, { method, body: JSON.stringify(body) });

export const validateDraft = (draft: Draft) => post<Validation>("/api/v1/automations/validate", draft);

export const createAutomation = (draft: Draft) => post<Saved>("/api/v1/automations", draft);

export const publishVersion = (id: string, draft: Draft) =>
  post<Saved>(`/api/v1/automations/${encodeURIComponent(id)}`, draft, "PUT");

export const impactOf = (id: string, draft: Draft) =>
  post<Impact>(`/api/v1/automations/${encodeURIComponent(id)}/impact`, draft);

export const simulate = (body: Record<string, unknown>) => post<SimulationResult>("/api/v1/simulate", body);

/** The problems of a 422 answer (a list of document problems), or none. */
export function problemsOf(detail: unknown): Problem[] {
  if (!Array.isArray(detail)) return [];
  return detail
    .filter((item): item is Record<string, unknown> => item !== null && typeof item === "object")
    .map((item) => ({
      step: typeof item.step === "string" ? item.step : null,
      path: Array.isArray(item.loc) ? item.loc.join(".") : String(item.path ?? ""),
      message: String(item.message ?? item.msg ?? "invalid"),
      severity: String(item.severity ?? "error"),
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
