// The reads and writes the pages share, as TanStack Query hooks, through the typed client
// (`schema.d.ts`, regenerated from the API by `make ui-client`).
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, type Schemas, unwrap } from "./client";

export const LIVE_MS = 3000;

export type AutomationPublic = Schemas["AutomationPublic"];
export type ContactPublic = Schemas["ContactPublic"];
export type Report = Schemas["Report"];
export type StepReport = Schemas["StepReport"];

export type AutomationListItem = Schemas["AutomationSummary"];
export type WaitingContact = Schemas["AutomationContact"];
export type ContactSummary = Schemas["ContactSummary"];
export type TimelineItem = Schemas["Timeline"]["items"][number];
export type TimelineEvent = Extract<TimelineItem, { kind: "event" }>;
export type TimelineEmail = Extract<TimelineItem, { kind: "email" }>;
export type TimelineRun = Extract<TimelineItem, { kind: "run" }>;
export type TrailStep = Schemas["RunStep"];

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
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/automations/{automation_id}/contacts", {
          params: { path: { automation_id: id }, query: { status: "running", step: step ?? undefined, limit, offset } },
        }),
      ),
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
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/contacts", {
          params: { query: { q: q || undefined, tag: tag || undefined, cursor: cursor ?? undefined, limit } },
        }),
      ),
  });
}

export function useTimeline(id: string, cursor: string | null, limit = 50) {
  return useQuery({
    queryKey: ["timeline", id, cursor, limit],
    placeholderData: keepPreviousData,
    refetchInterval: LIVE_MS,
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/contacts/{contact_id}/timeline", {
          params: { path: { contact_id: Number(id) }, query: { cursor: cursor ?? undefined, limit } },
        }),
      ),
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
      return unwrap(
        await api.PUT("/api/v1/automations/{automation_id}", { params: { path: { automation_id: id } }, body: document }),
      );
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
      return unwrap(await api.POST("/api/v1/automations", { body: document }));
    },
    onSettled: () => client.invalidateQueries({ queryKey: ["automations"] }),
  });
}
