import { describe, expect, it } from "vitest";
import documentSchema from "../api/document.schema.json";
import { humanTitle, defaultStep, defaultTrigger, formSchema, stepDefinitions, triggerDefinitions, type DocumentSchema } from "./schema";

const schema = documentSchema as unknown as DocumentSchema;

describe("schema", () => {
  it("finds every step type", () => {
    const defs = stepDefinitions(schema);
    expect(Object.keys(defs).length).toBe(40);
    expect(defs["split:until"]).toBe("SplitUntilStep");
    expect(Object.keys(triggerDefinitions(schema))).toContain("tag_added");
  });
  it("makes defaults", () => {
    expect(defaultStep(schema, "send_email")).toEqual({ type: "send_email" });
    expect(defaultStep(schema, "wait")).toEqual({ type: "wait", for: { days: 1 } });
    expect(defaultStep(schema, "if_else")).toEqual({ type: "if_else", condition: { tag: "" } });
    expect(defaultStep(schema, "send_notification_email")).toEqual({ type: "send_notification_email", to: [""] });
    expect(defaultStep(schema, "add_deal")).toMatchObject({ value: 0 });
    expect(defaultStep(schema, "split")).toEqual({ type: "split", mode: "even", paths: [{}, {}] });
    expect(defaultStep(schema, "split:until")).toMatchObject({ type: "split", mode: "until" });
    expect(defaultTrigger(schema, "tag_added")).toEqual({ type: "tag_added" });
    for (const type of Object.keys(stepDefinitions(schema))) defaultStep(schema, type);
  });
  it("labels definitions for people", () => {
    expect(humanTitle("GoalAchievedCondition")).toBe("Goal achieved");
    expect(humanTitle("AllOf")).toBe("All of");
    expect(humanTitle("TagAddedTrigger")).toBe("Tag added");
  });
  it("makes form schemas without references", () => {
    const form = formSchema(schema, "IfElseStep");
    expect(Object.keys(form.properties ?? {}).sort()).toEqual(["condition", "name", "on_error"]);
    const goto = formSchema(schema, "GotoStep", ["a", "b"]);
    expect(goto.properties?.target.enum).toEqual(["a", "b"]);
    expect(JSON.stringify(form.properties)).not.toContain('"null"');
    const wait = formSchema(schema, "WaitStep");
    expect(wait.properties?.condition.oneOf?.[0]).toEqual({ type: "null", title: "None" });
    expect(Object.keys(wait.properties ?? {})).not.toContain("next");
    expect(wait.properties?.for.title).toBe("For");
    expect(wait.$defs?.EventCondition.properties?.within.title).toBe("Within");
  });
});
