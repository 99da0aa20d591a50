// The reads and writes the pages share, as TanStack Query hooks. Routes in the typed client go
// through it; the few the Studio's API work adds are read with `getJson` and typed here until
// `make ui-client` picks them up.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, getJson, type Schemas, unwrap } from "./client";

export const LIVE_MS = 3000;

export type AutomationPublic = Schemas["AutomationPublic"];
export type ContactPublic = Schemas["ContactPublic"];
export type Report = Schemas["Report"];
export type StepReport = Schemas["StepReport"];

export interface RunCounts {
  running: number;
  completed: number;
  waiting: number;
}

/** An item of GET /automations: the summary, with its triggers, counts and goal rate. */
export type AutomationListItem = Schemas["AutomationSummary"] & {
  triggers?: string[];
  counts?: RunCounts;
  goal_rate?: number | null;
};

export interface WaitingContact {
  contact_id: number;
  email: string | null;
  status: string;
  current_step: string | null;
  workflow_id: string;
  entered_at: string;
  last_activity_at: string;
  waiting_since?: string | null;
  temporal_ui_url?: string | null;
  [key: string]: unknown;
}

export interface WaitingPage {
  total?: number;
  limit?: number;
  offset?: number;
  contacts?: WaitingContact[];
  items?: WaitingContact[];
  next?: string | null;
}

export interface ContactSummary {
  id: number;
  email: string | null;
  first_name?: string | null;
  last_name?: string | null;
  tags?: string[];
  created_at?: string;
  [key: string]: unknown;
}

export interface CursorPage<T> {
  items: T[];
  next?: string | null;
  total?: number | null;
  limit?: number;
}

export interface TrailStep {
  step: string;
  type?: string;
  outcome?: string;
  at?: string;
  [key: string]: unknown;
}

export interface TimelineItem {
  at: string;
  kind: "event" | "email" | "run" | string;
  [key: string]: unknown;
}

export function useAutomations() {
  return useQuery({
    queryKey: ["automations"],
    queryFn: async () => unwrap(await api.GET("/api/v1/automations")) as AutomationListItem[],
    refetchInterval: LIVE_MS,
  });
}

export function useAutomation(id: string) {
  return useQuery({
    queryKey: ["automation", id],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/automations/{automation_id}", { params: { path: { automation_id: id } } })),
  });
}

export function useReport(id: string) {
  return useQuery({
    queryKey: ["report", id],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/automations/{automation_id}/report", { params: { path: { automation_id: id } } })),
    refetchInterval: LIVE_MS,
  });
}

export function useWaitingContacts(id: string, step: string | null, offset: number, limit = 20) {
  return useQuery({
    queryKey: ["waiting", id, step, offset, limit],
    enabled: step !== null,
    placeholderData: keepPreviousData,
    refetchInterval: LIVE_MS,
    queryFn: () => {
      const query = new URLSearchParams({ status: "running", limit: String(limit), offset: String(offset) });
      if (step) query.set("step", step);
      return getJson<WaitingPage>(`/api/v1/automations/${encodeURIComponent(id)}/contacts?${query}`);
    },
  });
}

export function useContact(id: string) {
  return useQuery({
    queryKey: ["contact", id],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/contacts/{contact_id}", { params: { path: { contact_id: Number(id) } } })),
    refetchInterval: LIVE_MS,
  });
}

export function useContactSearch(q: string, tag: string, cursor: string | null, limit = 25) {
  return useQuery({
    queryKey: ["contacts", q, tag, cursor, limit],
    placeholderData: keepPreviousData,
    queryFn: () => {
      const query = new URLSearchParams({ limit: String(limit) });
      if (q) query.set("q", q);
      if (tag) query.set("tag", tag);
      if (cursor) query.set("cursor", cursor);
      return getJson<CursorPage<ContactSummary>>(`/api/v1/contacts?${query}`);
    },
  });
}

export function useTimeline(id: string, cursor: string | null, limit = 50) {
  return useQuery({
    queryKey: ["timeline", id, cursor, limit],
    placeholderData: keepPreviousData,
    refetchInterval: LIVE_MS,
    queryFn: () => {
      const query = new URLSearchParams({ limit: String(limit) });
      if (cursor) query.set("cursor", cursor);
      return getJson<CursorPage<TimelineItem>>(`/api/v1/contacts/${encodeURIComponent(id)}/timeline?${query}`);
    },
  });
}

/** Activate (PUT the document with status active) or deactivate (DELETE) an automation. */
export function useSetStatus() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ id, active }: { id: string; active: boolean }) => {
      if (!active) {
        return unwrap(await api.DELETE("/api/v1/automations/{automation_id}", { params: { path: { automation_id: id } } }));
      }
      const current = unwrap(
        await api.GET("/api/v1/automations/{automation_id}", { params: { path: { automation_id: id } } }),
      );
      const document = { ...(current.document ?? {}), status: "active" };
      return getJson(`/api/v1/automations/${encodeURIComponent(id)}`, { method: "PUT", body: JSON.stringify(document) });
    },
    onSettled: (_data, _error, { id }) => {
      client.invalidateQueries({ queryKey: ["automations"] });
      client.invalidateQueries({ queryKey: ["automation", id] });
    },
  });
}

/** A copy of an automation's current document under a new name (a new id, inactive). */
export function useDuplicate() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ id, name }: { id: string; name: string }) => {
      const current = unwrap(
        await api.GET("/api/v1/automations/{automation_id}", { params: { path: { automation_id: id } } }),
      );
      const document: Record<string, unknown> = { ...(current.document ?? {}), name, status: "inactive" };
      delete document.id;
      return getJson<{ id: string }>("/api/v1/automations", { method: "POST", body: JSON.stringify(document) });
    },
    onSettled: () => client.invalidateQueries({ queryKey: ["automations"] }),
  });
}
