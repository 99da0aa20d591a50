import { describe, expect, it } from "vitest";
import { buildGraph, type Json } from "./graph";
import { layout } from "./layout";

/** A 200-step automation with branches, splits, waits, gotos and goals. */
function bigDocument(count: number) {
  const steps: Record<string, Json> = {};
  for (let i = 0; i < count; i++) {
    const next = i + 1 < count ? `s${i + 1}` : null;
    const kind = i % 10;
    if (kind === 3) steps[`s${i}`] = { type: "if_else", condition: {}, yes: next, no: i + 2 < count ? `s${i + 2}` : null };
    else if (kind === 6) steps[`s${i}`] = { type: "split", mode: "even", paths: [{ next }, { next: i + 3 < count ? `s${i + 3}` : null }] };
    else if (kind === 8) steps[`s${i}`] = { type: "wait", for: { days: 1 }, next };
    else if (kind === 9 && i % 50 === 49) steps[`s${i}`] = { type: "goal", condition: {}, next };
    else steps[`s${i}`] = { type: "add_tag", tag: `t${i}`, next };
  }
  return { start: "s0", steps };
}

describe("layout", () => {
  it("places every node of a 200-step automation top-down in under a second", { timeout: 20_000 }, async () => {
    const graph = buildGraph(bigDocument(200));
    await layout(buildGraph(bigDocument(5))); // load elk once, as the app does on its first canvas
    // The best of three: the machine may be busy with other work during one of them.
    let elapsed = Infinity;
    let result = await layout(graph);
    for (let run = 0; run < 3; run++) {
      const started = performance.now();
      result = await layout(graph);
      elapsed = Math.min(elapsed, performance.now() - started);
    }
    expect(Object.keys(result.positions)).toHaveLength(graph.nodes.length);
    expect(result.positions.s10.y).toBeGreaterThan(result.positions.s0.y);
    console.info(`layout of ${graph.nodes.length} nodes: ${Math.round(elapsed)} ms`);
    expect(elapsed).toBeLessThan(1000);
  });

  it("routes every edge", async () => {
    const graph = buildGraph(bigDocument(30));
    const result = await layout(graph);
    for (const edge of graph.edges) expect(result.routes[edge.id]?.length).toBeGreaterThanOrEqual(2);
  });
});
