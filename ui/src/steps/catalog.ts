// Every step type of an automation document (docs/automations.md#steps), grouped into the
// families the builder's "+" menu shows. `catalog.test.ts` checks this list against the API's
// JSON Schema, so a new step type cannot be forgotten here.

export type FamilyId = "sending" | "workflow" | "contacts" | "crm" | "integrations";

export interface Family {
  id: FamilyId;
  label: string;
  icon: string; // one character, for text (menus)
  path: string; // an SVG path in a 24×24 box, drawn white on the family's color (canvas)
  color: string; // the node's accent
}

export interface StepKind {
  type: string;
  label: string;
  family: FamilyId;
  description: string;
}

export const FAMILIES: Family[] = [
  // An envelope.
  { id: "sending", label: "Sending", icon: "✉", path: "M3 6h18v12H3z M3 6l9 7 9-7", color: "#1d4ed8" },
  // A fork: one path in, two out.
  { id: "workflow", label: "Conditions & workflow", icon: "◇", path: "M12 3v7 M12 10l-6 6v5 M12 10l6 6v5", color: "#b45309" },
  // A person.
  { id: "contacts", label: "Contacts", icon: "☺", path: "M12 4a4 4 0 1 1 0 8a4 4 0 1 1 0-8z M4 21c0-4 4-6 8-6s8 2 8 6", color: "#15803d" },
  // A briefcase.
  { id: "crm", label: "CRM", icon: "$", path: "M3 8h18v12H3z M9 8V5h6v3 M3 13h18", color: "#7c3aed" },
  // Two arrows: out to another system and back.
  { id: "integrations", label: "Integrations", icon: "⇄", path: "M4 8h14 M14 4l4 4-4 4 M20 16H6 M10 12l-4 4 4 4", color: "#0f766e" },
];

const k = (type: string, family: FamilyId, label: string, description: string): StepKind => ({
  type,
  family,
  label,
  description,
});

export const STEP_KINDS: StepKind[] = [
  k("send_email", "sending", "Send an email", "Send an email through SMTP."),
  k("send_site_message", "sending", "Site message", "Show a message on the contact's next visit."),
  k("send_sms", "sending", "Send an SMS", "Send a text message."),
  k("send_notification_email", "sending", "Notify by email", "Send an internal email about the contact."),

  k("wait", "workflow", "Wait", "Hold the contact for a time, until a date, or until a condition holds."),
  k("if_else", "workflow", "If / else", "Branch on a condition."),
  k("split", "workflow", "Split", "Share contacts between paths, or split until a threshold."),
  k("goal", "workflow", "Goal", "A target contacts jump to as soon as its condition holds."),
  k("goto", "workflow", "Go to", "Jump to another step."),
  k("start_automation", "workflow", "Start an automation", "Enroll the contact in another automation."),
  k("end_automation", "workflow", "End an automation", "End the contact's run in another automation."),
  k("end", "workflow", "End", "End this run here."),
  k("webhook", "workflow", "Webhook", "Send the contact to another system over HTTP."),
  k("perform_math", "workflow", "Perform math", "Change a numeric or date field."),

  k("subscribe", "contacts", "Subscribe", "Subscribe the contact to a list."),
  k("unsubscribe", "contacts", "Unsubscribe", "Unsubscribe the contact from a list."),
  k("convert", "contacts", "Conversion", "Record a conversion."),
  k("update_contact", "contacts", "Update contact", "Set standard and custom fields of the contact."),
  k("add_tag", "contacts", "Add a tag", "Tag the contact."),
  k("remove_tag", "contacts", "Remove a tag", "Remove a tag from the contact."),
  k("add_contact_note", "contacts", "Add a note", "Add a note to the contact."),
  k("adjust_contact_score", "contacts", "Adjust score", "Change one of the contact's scores."),

  k("add_deal", "crm", "Add a deal", "Create a deal for the contact."),
  k("update_deal_title", "crm", "Deal title", "Rename the current deal."),
  k("update_deal_status", "crm", "Deal status", "Open, win or lose the current deal."),
  k("update_deal_owner", "crm", "Deal owner", "Give the current deal to another user."),
  k("update_deal_value", "crm", "Deal value", "Set the current deal's value."),
  k("update_deal_stage", "crm", "Deal stage", "Move the current deal to a stage."),
  k("update_deal_field", "crm", "Deal field", "Set, copy into, or clear a custom field of the deal."),
  k("update_account_field", "crm", "Account field", "Set a field of the contact's account."),
  k("add_task", "crm", "Add a task", "Create a task on the contact or its deal."),
  k("add_deal_note", "crm", "Deal note", "Add a note to the current deal."),
  k("complete_task", "crm", "Complete tasks", "Complete matching open tasks."),
  k("adjust_deal_score", "crm", "Deal score", "Change one of the current deal's scores."),
  k("add_to_account", "crm", "Add to account", "Attach the contact to an account."),

  k("facebook_audience_add", "integrations", "Facebook audience: add", "Add the contact to a Facebook custom audience."),
  k("facebook_audience_remove", "integrations", "Facebook audience: remove", "Remove the contact from a Facebook custom audience."),
  k("salesforce_create_contact", "integrations", "Salesforce contact", "Create the contact in Salesforce as a Contact."),
  k("salesforce_create_lead", "integrations", "Salesforce lead", "Create the contact in Salesforce as a Lead."),
];

export const STEP_KIND: Record<string, StepKind> = Object.fromEntries(
  STEP_KINDS.map((kind) => [kind.type, kind]),
);

export const FAMILY: Record<FamilyId, Family> = Object.fromEntries(
  FAMILIES.map((family) => [family.id, family]),
) as Record<FamilyId, Family>;

/** The family of a step type; unknown types (a newer API) fall back to workflow. */
export function familyOf(type: string): Family {
  return FAMILY[STEP_KIND[type]?.family ?? "workflow"];
}
