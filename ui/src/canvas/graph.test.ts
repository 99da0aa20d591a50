import { describe, expect, it } from "vitest";
import { buildGraph, endId, START } from "./graph";

const edgesOf = (steps: Record<string, Record<string, unknown>>, start = Object.keys(steps)[0]) =>
  buildGraph({ start, steps }).edges.map((e) => [e.id, e.target, e.kind, e.label, e.dashed, e.insertable] as const);

describe("buildGraph", () => {
  it("draws `next` and a dangling end for a linear step", () => {
    const graph = buildGraph({ start: "a", steps: { a: { type: "add_tag", tag: "x", next: "b" }, b: { type: "add_tag", tag: "y" } } });
    expect(graph.edges.map((e) => [e.id, e.target, e.kind])).toEqual([
      [`${START}:start`, "a", "start"],
      ["a:next", "b", "next"],
      ["b:next", endId("b", "next"), "next"],
    ]);
    expect(graph.nodes.filter((n) => n.kind === "end").map((n) => n.id)).toEqual([endId("b", "next")]);
    const dangling = graph.edges.find((e) => e.id === "b:next")!;
    expect(dangling.to).toBeNull();
    expect(dangling.insertable).toBe(true);
  });

  it("draws if/else yes and no", () => {
    expect(edgesOf({ c: { type: "if_else", condition: {}, yes: "y", no: null }, y: { type: "end" } })).toEqual([
      [`${START}:start`, "c", "start", "", false, true],
      ["c:yes", "y", "yes", "yes", false, true],
      ["c:no", endId("c", "no"), "no", "no", false, true],
    ]);
  });

  it("draws every path of an even split, even two to one step", () => {
    const edges = edgesOf({
      s: { type: "split", mode: "even", paths: [{ next: "a" }, { next: "b" }, { next: "a", weight: 2 }] },
      a: { type: "end" },
      b: { type: "end" },
    });
    expect(edges.slice(1).map((e) => [e[0], e[1], e[2], e[3]])).toEqual([
      ["s:paths.0.next", "a", "path", "path 0"],
      ["s:paths.1.next", "b", "path", "path 1"],
      ["s:paths.2.next", "a", "path", "path 2"],
    ]);
  });

  it("draws a split until's before and after", () => {
    const edges = edgesOf({ s: { type: "split", mode: "until", until: { contacts: 10 }, before: "a", after: null }, a: { type: "end" } });
    expect(edges.slice(1).map((e) => [e[0], e[1], e[2]])).toEqual([
      ["s:before", "a", "before"],
      ["s:after", endId("s", "after"), "after"],
    ]);
  });

  it("draws a goto as a dashed edge where nothing can be inserted", () => {
    const edges = edgesOf({ a: { type: "wait", for: { days: 1 }, next: "g" }, g: { type: "goto", target: "a" } });
    expect(edges).toContainEqual(["g:target", "a", "goto", "go to", true, false]);
  });

  it("draws goal jumps from the start, dashed", () => {
    const edges = edgesOf({ a: { type: "add_tag", tag: "t", next: "goal1" }, goal1: { type: "goal", condition: {} } });
    expect(edges).toContainEqual([`${START}:goal:goal1`, "goal1", "goal", "goal met", true, false]);
    expect(edges).toContainEqual(["a:next", "goal1", "next", "", false, true]);
  });

  it("labels a conditional wait's timeout and a waiting goal's timeout", () => {
    const edges = edgesOf({
      w: { type: "wait", condition: {}, timeout: { days: 3 }, next: "g" },
      g: { type: "goal", condition: {}, unmet: "wait", timeout: { hours: 4 }, next: null },
    });
    expect(edges).toContainEqual(["w:next", "g", "timeout", "met or after 3 d", false, true]);
    expect(edges).toContainEqual(["g:next", endId("g", "next"), "timeout", "met or after 4 h", false, true]);
  });

  it("gives an end step no outgoing edge", () => {
    expect(edgesOf({ e: { type: "end" } })).toEqual([[`${START}:start`, "e", "start", "", false, true]]);
  });

  it("ends a reference to an unknown step instead of drawing to nowhere", () => {
    const edges = edgesOf({ a: { type: "add_tag", tag: "t", next: "ghost" } });
    expect(edges[1][1]).toBe(endId("a", "next"));
  });
});
