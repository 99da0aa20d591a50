import { describe, expect, it } from "vitest";
import { blankDraft, deleteStep, insertStep, renameStep, updateSettings, type Draft, addDetachedStep, setField, switchSplitMode } from "./draft";

const tour = (): Draft => ({
  name: "Welcome",
  start: "welcome",
  triggers: [{ type: "tag_added", tag: "lead" }],
  steps: {
    welcome: { type: "send_email", subject: "Hi", html: "<p>x</p>", next: "pause" },
    pause: { type: "wait", for: { days: 2 }, next: "check" },
    check: { type: "if_else", condition: { tag: "vip" }, yes: "hot", no: null },
    hot: { type: "add_tag", tag: "engaged" },
  },
});

describe("insertStep", () => {
  it("puts a step on a next edge and links it to the edge's target", () => {
    const result = insertStep(tour(), { from: "welcome", to: "pause" }, { type: "add_tag", tag: "x" });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.id).toBe("add_tag");
    expect(result.draft.steps.welcome.next).toBe("add_tag");
    expect(result.draft.steps.add_tag).toEqual({ type: "add_tag", tag: "x", next: "pause" });
  });

  it("makes ids unique from the type", () => {
    let draft = tour();
    for (const expected of ["send_email", "send_email_2"]) {
      const result = insertStep(draft, { from: "welcome", to: "pause" }, { type: "send_email" });
      if (!result.ok) throw new Error(result.message);
      expect(result.id).toBe(expected);
      draft = result.draft;
    }
    expect(draft.steps.welcome.next).toBe("send_email_2");
    expect(draft.steps.send_email_2.next).toBe("send_email");
    expect(draft.steps.send_email.next).toBe("pause");
  });

  it("follows the branch of an if/else", () => {
    const result = insertStep(tour(), { from: "check", to: null, branch: "no" }, { type: "send_sms", body: "hey" });
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.steps.check.no).toBe("send_sms");
    expect(result.draft.steps.check.yes).toBe("hot");
    expect(result.draft.steps.send_sms).toEqual({ type: "send_sms", body: "hey" });
  });

  it("puts an inserted if/else's yes branch on the old target", () => {
    const result = insertStep(tour(), { from: "pause", to: "check" }, { type: "if_else", condition: { tag: "" } });
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.steps.if_else.yes).toBe("check");
    expect(result.draft.steps.if_else.no).toBeUndefined();
  });

  it("follows a split path", () => {
    const draft = tour();
    draft.steps.split = { type: "split", mode: "even", paths: [{ next: "hot" }, {}] };
    draft.steps.check = { ...draft.steps.check, no: "split" };
    const result = insertStep(draft, { from: "split", to: null, branch: "paths.1.next" }, { type: "end" });
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.steps.split.paths).toEqual([{ next: "hot" }, { next: "end" }]);
  });

  it("inserts before the first step", () => {
    const result = insertStep(tour(), { from: null, to: "welcome" }, { type: "wait", for: { hours: 1 } });
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.start).toBe("wait");
    expect(result.draft.steps.wait.next).toBe("welcome");
  });

  it("starts a blank draft", () => {
    const result = insertStep(blankDraft(), { from: null, to: null }, { type: "send_email" });
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.start).toBe("send_email");
    expect(result.draft.steps.send_email).toEqual({ type: "send_email" });
  });

  it("refuses an end step in the middle of a path", () => {
    const result = insertStep(tour(), { from: "welcome", to: "pause" }, { type: "end" });
    expect(result).toEqual({ ok: false, message: expect.stringContaining("end of a path") });
  });

  it("refuses an unknown source", () => {
    expect(insertStep(tour(), { from: "nope", to: null }, { type: "end" }).ok).toBe(false);
  });

  it("never changes the draft it was given", () => {
    const draft = tour();
    const copy = structuredClone(draft);
    insertStep(draft, { from: "welcome", to: "pause" }, { type: "add_tag" });
    deleteStep(draft, "pause");
    expect(draft).toEqual(copy);
  });
});

describe("deleteStep", () => {
  it("reconnects the predecessor to the next step", () => {
    const result = deleteStep(tour(), "pause");
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.steps.welcome.next).toBe("check");
    expect(result.draft.steps.pause).toBeUndefined();
  });

  it("moves the start on", () => {
    const result = deleteStep(tour(), "welcome");
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.start).toBe("pause");
  });

  it("reconnects a branch that pointed at the step", () => {
    const result = deleteStep(tour(), "hot");
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.steps.check.yes).toBeUndefined();
  });

  it("keeps the one branch of an if/else that leads on", () => {
    const result = deleteStep(tour(), "check");
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.steps.pause.next).toBe("hot");
  });

  it("refuses an if/else whose two branches lead on", () => {
    const draft = tour();
    draft.steps.check = { ...draft.steps.check, no: "welcome" };
    const result = deleteStep(draft, "check");
    expect(result).toEqual({ ok: false, message: expect.stringContaining("yes, no") });
  });

  it("sends a goto on to the successor, or refuses", () => {
    const draft = tour();
    draft.steps.hot = { ...draft.steps.hot, next: "again" };
    draft.steps.again = { type: "goto", target: "pause" };
    const result = deleteStep(draft, "pause");
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.steps.again.target).toBe("check");
    const loop = { ...draft, steps: { ...draft.steps, again: { type: "goto", target: "hot" }, hot: { type: "add_tag", tag: "x" } } };
    expect(deleteStep(loop, "hot")).toEqual({ ok: false, message: expect.stringContaining("goto") });
  });

  it("ends the predecessor's path when a goto goes", () => {
    const draft = tour();
    draft.steps.hot = { ...draft.steps.hot, next: "again" };
    draft.steps.again = { type: "goto", target: "pause" };
    const result = deleteStep(draft, "again");
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.steps.hot.next).toBeUndefined();
  });
});

describe("settings and the rest", () => {
  it("keeps type and references when settings change", () => {
    const draft = updateSettings(tour(), "welcome", { subject: "New", html: "<p>y</p>", text: "", next: "hot" });
    expect(draft.steps.welcome).toEqual({ type: "send_email", subject: "New", html: "<p>y</p>", next: "pause" });
  });

  it("drops what a form leaves empty", () => {
    const draft = updateSettings(tour(), "pause", { condition: { event: "buy", within: {}, count: { op: undefined } }, timeout: {} });
    expect(draft.steps.pause).toEqual({ type: "wait", condition: { event: "buy" }, next: "check" });
  });

  it("keeps split paths' targets and drops those of removed paths", () => {
    const draft = tour();
    draft.steps.s = { type: "split", mode: "even", paths: [{ next: "hot" }, { next: "pause" }, { next: "welcome" }] };
    const changed = updateSettings(draft, "s", { paths: [{ weight: 3 }, { weight: 1 }] });
    expect(changed.steps.s).toEqual({ type: "split", mode: "even", paths: [{ weight: 3, next: "hot" }, { weight: 1, next: "pause" }] });
  });

  it("renames a step and every reference to it", () => {
    const result = renameStep(tour(), "pause", "breathe");
    if (!result.ok) throw new Error(result.message);
    expect(result.draft.steps.welcome.next).toBe("breathe");
    expect(result.draft.steps.breathe.next).toBe("check");
    expect(renameStep(tour(), "pause", "welcome").ok).toBe(false);
    expect(renameStep(tour(), "pause", "no spaces").ok).toBe(false);
  });

  it("adds a goal nobody points to", () => {
    const result = addDetachedStep(tour(), { type: "goal", condition: { event: "purchase" } });
    if (!result.ok) throw new Error(result.message);
    expect(result.id).toBe("goal");
    expect(Object.values(result.draft.steps).some((s) => s.next === "goal")).toBe(false);
  });

  it("sets and clears top-level fields", () => {
    expect(setField(tour(), "entry", "multiple").entry).toBe("multiple");
    expect("timezone" in setField({ ...tour(), timezone: "UTC" }, "timezone", "")).toBe(false);
  });
});

describe("switchSplitMode", () => {
  it("carries the branches over in order", () => {
    const draft = tour();
    draft.steps.s = { type: "split", mode: "even", name: "AB", paths: [{ next: "hot" }, { next: "pause" }, { next: "welcome" }] };
    const until = switchSplitMode(draft, "s", { type: "split", mode: "until", until: { contacts: 1 } });
    expect(until.steps.s).toEqual({ type: "split", mode: "until", name: "AB", until: { contacts: 1 }, before: "hot", after: "pause" });
    const even = switchSplitMode(until, "s", { type: "split", mode: "even", paths: [{}, {}] });
    expect(even.steps.s).toEqual({ type: "split", mode: "even", name: "AB", paths: [{ next: "hot" }, { next: "pause" }] });
  });
});
