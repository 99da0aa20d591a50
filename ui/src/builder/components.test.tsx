import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import documentSchema from "../api/document.schema.json";
import { InsertMenu } from "./InsertMenu";
import { StepPanel } from "./StepPanel";
import { defaultStep, stepDefinitions, type DocumentSchema } from "./schema";
import type { Draft } from "./draft";

const schema = documentSchema as unknown as DocumentSchema;

afterEach(cleanup);

describe("the + menu", () => {
  it("is driven by the keyboard: filter, arrows, Enter", () => {
    const onPick = vi.fn();
    render(<InsertMenu title="Add a step after Welcome" onPick={onPick} onClose={() => {}} />);
    const search = screen.getByRole("searchbox", { name: "Search step types" });
    expect(document.activeElement).toBe(search);
    fireEvent.change(search, { target: { value: "tag" } });
    fireEvent.keyDown(search, { key: "ArrowDown" });
    expect(document.activeElement?.getAttribute("data-type")).toBe("add_tag");
    fireEvent.keyDown(document.activeElement!, { key: "ArrowDown" });
    expect(document.activeElement?.getAttribute("data-type")).toBe("remove_tag");
    fireEvent.click(document.activeElement!);
    expect(onPick).toHaveBeenCalledWith("remove_tag");
  });

  it("lists every family and closes on Escape", () => {
    const onClose = vi.fn();
    render(<InsertMenu title="Add" onPick={() => {}} onClose={onClose} />);
    for (const family of ["Sending", "Conditions & workflow", "Contacts", "CRM", "Integrations"]) {
      screen.getByRole("heading", { name: family });
    }
    fireEvent.keyDown(screen.getByRole("dialog"), { key: "Escape" });
    expect(onClose).toHaveBeenCalled();
  });
});

describe("step forms", () => {
  it("render for every step type the schema knows, with its default settings", () => {
    for (const type of Object.keys(stepDefinitions(schema))) {
      const draft: Draft = { name: "x", start: "s", steps: { s: defaultStep(schema, type) } };
      const { unmount, container } = render(
        <StepPanel schema={schema} draft={draft} stepId="s" problems={[]} onDraft={() => {}} onClose={() => {}} />,
      );
      expect(container.querySelector("form.b-form"), type).not.toBeNull();
      unmount();
    }
  });

  it("write a change into the draft, keeping the step's references", () => {
    const onDraft = vi.fn();
    const draft: Draft = {
      name: "x",
      start: "s",
      steps: { s: { type: "send_email", subject: "Hi", html: "<p>x</p>", next: "t" }, t: { type: "end" } },
    };
    render(<StepPanel schema={schema} draft={draft} stepId="s" problems={["\"subject\" is too long"]} onDraft={onDraft} onClose={() => {}} />);
    screen.getByRole("list", { name: "Problems of step s" });
    fireEvent.change(screen.getByLabelText("Subject*"), { target: { value: "Hello" } });
    const changed = onDraft.mock.calls[onDraft.mock.calls.length - 1][0] as Draft;
    expect(changed.steps.s).toEqual({ type: "send_email", subject: "Hello", html: "<p>x</p>", next: "t" });
  });

  it("refuse to delete an if/else with two live branches, saying why", () => {
    const onDraft = vi.fn();
    const draft: Draft = {
      name: "x",
      start: "s",
      steps: { s: { type: "if_else", condition: { tag: "a" }, yes: "t", no: "u" }, t: { type: "end" }, u: { type: "end" } },
    };
    render(<StepPanel schema={schema} draft={draft} stepId="s" problems={[]} onDraft={onDraft} onClose={() => {}} />);
    fireEvent.click(screen.getByRole("button", { name: "Delete step" }));
    expect(onDraft).not.toHaveBeenCalled();
    expect(screen.getByRole("alert").textContent).toContain("yes, no");
  });
});
