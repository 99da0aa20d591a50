export function formatDate(value: unknown): string {
  if (typeof value !== "string" || !value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function percent(value: number | null | undefined): string {
  return value === null || value === undefined ? "—" : `${Math.round(value * 100)}%`;
}

export function errorText(error: unknown): string {
  if (!error) return "";
  const detail = (error as { detail?: unknown }).detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => (d as { message?: string; msg?: string }).message ?? (d as { msg?: string }).msg ?? JSON.stringify(d)).join("; ");
  return error instanceof Error ? error.message : String(error);
}

export function contactName(contact: { email?: string | null; first_name?: string | null; last_name?: string | null; id?: number }): string {
  const name = [contact.first_name, contact.last_name].filter(Boolean).join(" ");
  return name || contact.email || `contact ${contact.id ?? ""}`;
}
