import { describe, expect, it } from "vitest";
import { humanIso, madeUpContact, overlayOf, parseOffset, scriptEvent, sinceStart, statusLine } from "./simulation";
import { impactLines } from "./impact";
import { readDraft, writeDraft } from "./text";

describe("the test script", () => {
  it("reads offsets", () => {
    expect(parseOffset("3d")).toEqual({ days: 3 });
    expect(parseOffset("1d 12h")).toEqual({ days: 1, hours: 12 });
    expect(parseOffset("90m")).toEqual({ minutes: 90 });
    expect(parseOffset("2w")).toEqual({ weeks: 2 });
    expect(parseOffset("0d")).toBeNull();
    expect(parseOffset("3x")).toBeNull();
    expect(parseOffset("")).toBeNull();
  });

  it("writes each kind of row as the simulate route reads it", () => {
    expect(scriptEvent({ offset: "3d", kind: "event", name: "purchase", value: "" })).toEqual({ event: { at: { days: 3 }, event: "purchase" } });
    expect(scriptEvent({ offset: "2h", kind: "email_clicked", name: "welcome", value: "" })).toEqual({
      event: { at: { hours: 2 }, email: "clicked", step: "welcome" },
    });
    expect(scriptEvent({ offset: "1d", kind: "tag_added", name: "vip", value: "" })).toEqual({ event: { at: { days: 1 }, tag_added: "vip" } });
    expect(scriptEvent({ offset: "1d", kind: "field", name: "plan", value: "pro" })).toEqual({
      event: { at: { days: 1 }, fields: { plan: "pro" } },
    });
    expect(scriptEvent({ offset: "soon", kind: "event", name: "x", value: "" })).toHaveProperty("error");
    expect(scriptEvent({ offset: "1d", kind: "event", name: " ", value: "" })).toHaveProperty("error");
  });

  it("writes the made-up contact", () => {
    expect(madeUpContact({ first_name: "Ada", email: "ada@example.com", tags: "lead, vip,", fields: "plan=free, url=a=b" })).toEqual({
      first_name: "Ada",
      email: "ada@example.com",
      tags: ["lead", "vip"],
      fields: { plan: "free", url: "a=b" },
    });
  });
});

describe("the answer", () => {
  const result = {
    status: "completed",
    reason: null,
    simulated: "P4DT1H",
    path: [
      { at: "2026-12-01T08:00:00Z", step: "welcome", type: "send_email", outcome: "done" },
      { at: "2026-12-01T08:00:01Z", step: "pause", type: "wait", outcome: "done", detail: "2 days" },
      { at: "2026-12-04T09:00:00Z", step: "check", type: "if_else", outcome: "done", reason: "yes" },
    ],
    messages: [],
    goals: ["bought"],
  };

  it("draws each step's virtual time and outcome", () => {
    expect(overlayOf(result)).toEqual({
      welcome: ["+0 · done"],
      pause: ["+1s · done"],
      check: ["+3d 1h · done · yes"],
    });
    expect(sinceStart("2026-12-01T08:00:00Z", "2026-12-01T08:30:00Z")).toBe("+30m");
  });

  it("says how it ended", () => {
    expect(humanIso("P4DT1H")).toBe("4d 1h");
    expect(statusLine(result)).toBe("completed after 4d 1h of virtual time; goals reached: bought");
    expect(statusLine({ ...result, status: "running", simulated: null, goals: [], waiting_at: "pause" })).toBe("running (waiting at pause)");
  });
});

describe("impact", () => {
  it("says who moves where", () => {
    const lines = impactLines({
      running: 15,
      affected: 12,
      ending: 1,
      steps: [
        { step: "old_email", waiting: 3, change: "removed", goes_to: "pause", ends: false },
        { step: "gone", waiting: 1, change: "removed", goes_to: null, ends: true },
        { step: "pause", waiting: 8, change: "changed" },
        { step: "thanks", waiting: 3, change: "unchanged" },
      ],
    });
    expect(lines[0]).toBe("12 contacts wait at steps that change (of 15 running).");
    expect(lines).toContain("3 at old_email: removed, go to pause.");
    expect(lines).toContain("1 at gone: removed, their run ends (step_removed).");
    expect(lines[lines.length - 1]).toBe("1 run will end.");
    expect(lines.join(" ")).not.toContain("thanks");
    expect(impactLines({ running: 0, affected: 0, ending: 0, steps: [] })[0]).toContain("No contact");
  });
});

describe("text view", () => {
  const draft = { name: "W", start: "a", steps: { a: { type: "add_tag", tag: "x" } } };
  it("round-trips YAML and JSON", () => {
    for (const format of ["yaml", "json"] as const) {
      expect(readDraft(writeDraft(draft, format), format)).toEqual({ draft });
    }
  });
  it("explains what it cannot read", () => {
    expect(readDraft("name: [", "yaml")).toHaveProperty("error");
    expect(readDraft("{", "json")).toHaveProperty("error");
    expect(readDraft("- 1", "yaml")).toEqual({ error: expect.stringContaining("object") });
    expect(readDraft("name: x\nsteps: {a: {tag: x}}", "yaml")).toEqual({ error: expect.stringContaining("type") });
    expect(readDraft("a: 1\na: 2\nsteps: {}", "yaml")).toHaveProperty("error");
  });
});
