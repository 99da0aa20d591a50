// Positions for a graph: elkjs's layered algorithm, top-down (like ActiveCampaign's builder).
// Computed on every render of a new structure; never stored.
import ELK, { type ElkExtendedEdge, type ElkNode } from "elkjs/lib/elk.bundled.js";
import type { Graph } from "./graph";

export const NODE_WIDTH = 240;
export const NODE_HEIGHT = 76;
export const END_SIZE = { width: 64, height: 28 };
export const START_SIZE = { width: 240, height: 52 };

export interface Point {
  x: number;
  y: number;
}

export interface Layout {
  positions: Record<string, Point & { width: number; height: number }>;
  routes: Record<string, Point[]>; // edge id → its bend points, start to end
  width: number;
  height: number;
}

const elk = new ELK();

export function sizeOf(graph: Graph, id: string, extraLines: Record<string, number> = {}) {
  const node = graph.nodes.find((n) => n.id === id);
  if (node?.kind === "end") return END_SIZE;
  if (node?.kind === "start") return START_SIZE;
  return { width: NODE_WIDTH, height: NODE_HEIGHT + 16 * (extraLines[id] ?? 0) };
}

/** Lays out `graph`; `extraLines` adds room on a node for problems or overlay lines. */
export async function layout(graph: Graph, extraLines: Record<string, number> = {}): Promise<Layout> {
  const sizes = new Map(graph.nodes.map((n) => [n.id, sizeOf(graph, n.id, extraLines)]));
  const input: ElkNode = {
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "DOWN",
      "elk.edgeRouting": "ORTHOGONAL",
      "elk.layered.spacing.nodeNodeBetweenLayers": "44",
      "elk.spacing.nodeNode": "40",
      "elk.spacing.edgeNode": "24",
      "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
      "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
      // Few crossing-minimisation passes: the document's order is already a good one, and a
      // 200-step flow then lays out in well under a second.
      "elk.layered.thoroughness": "1",
      "elk.layered.crossingMinimization.forceNodeModelOrder": "false",
    },
    children: graph.nodes.map((n) => ({ id: n.id, ...sizes.get(n.id)! })),
    edges: graph.edges.map((e): ElkExtendedEdge => ({ id: e.id, sources: [e.source], targets: [e.target] })),
  };
  const result = await elk.layout(input);
  const positions: Layout["positions"] = {};
  for (const child of result.children ?? []) {
    positions[child.id] = { x: child.x ?? 0, y: child.y ?? 0, width: child.width ?? 0, height: child.height ?? 0 };
  }
  const routes: Layout["routes"] = {};
  for (const edge of result.edges ?? []) {
    const section = edge.sections?.[0];
    if (!section) continue;
    routes[edge.id] = [section.startPoint, ...(section.bendPoints ?? []), section.endPoint];
  }
  return { positions, routes, width: result.width ?? 0, height: result.height ?? 0 };
}
