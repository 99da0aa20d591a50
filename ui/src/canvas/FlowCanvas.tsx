// The automation canvas: the document laid out top-down by elkjs (positions never stored),
// drawn with React Flow. Read-only on the automation page; the builder passes `onInsert`,
// `problems` and `overlay`. Every node is a button (Tab to reach it, Enter to open it); every
// "+" is a button too.
import { memo, useEffect, useMemo, useState } from "react";
import {
  BaseEdge,
  EdgeLabelRenderer,
  type Edge,
  type EdgeProps,
  Handle,
  type Node,
  type NodeProps,
  Position,
  ReactFlow,
  ReactFlowProvider,
  Controls,
  useReactFlow,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { type AutomationDocument, buildGraph, type GraphEdge, type GraphNode } from "./graph";
import { layout, type Layout, type Point } from "./layout";
import { familyOf, STEP_KIND } from "../steps/catalog";
import "./canvas.css";

export interface StepCounts {
  entered: number;
  waiting: number;
  completed: number;
  skipped: number;
  failed: number;
}

export interface InsertPoint {
  from: string; // the step the new step follows ("__start__" before the first step)
  to: string | null; // the step it precedes; null at a dangling end
  branch?: string; // the field of `from`: next, yes, no, paths.N.next, before, after, start
}

export interface FlowCanvasProps {
  document: AutomationDocument;
  counts?: Record<string, StepCounts>;
  edgeLabels?: Record<string, string>; // edge id ("<from>:<branch>") → text, e.g. a split share
  problems?: Record<string, string[]>; // step id → messages, shown on the node in red
  overlay?: Record<string, string[]>; // step id → lines drawn on the node (e.g. simulated times)
  selected?: string | null;
  onSelectStep?: (stepId: string) => void;
  onInsert?: (edge: InsertPoint) => void;
  height?: number | string;
}

type StepNodeData = {
  node: GraphNode;
  counts?: StepCounts;
  problems?: string[];
  overlay?: string[];
  selected: boolean;
  onSelect?: (id: string) => void;
  onInsertEnd?: () => void;
  fromLabel?: string;
};

type RoutedEdgeData = {
  edge: GraphEdge;
  points: Point[];
  text: string;
  onInsert?: () => void;
  fromLabel: string;
};

export function FamilyIcon({ type, size = 24 }: { type: string; size?: number }) {
  const family = familyOf(type);
  return (
    <span className="fc-icon" style={{ background: family.color, width: size, height: size }} aria-hidden="true">
      <svg viewBox="0 0 24 24" width={size - 8} height={size - 8} fill="none" stroke="#fff" strokeWidth="2.2" strokeLinecap="round" strokeLinejoin="round">
        <path d={family.path} />
      </svg>
    </span>
  );
}

function CountsLine({ counts }: { counts?: StepCounts }) {
  if (!counts) return null;
  return (
    <div className="fc-counts">
      <span title="entered">in {counts.entered}</span>
      <span title="waiting now" className={counts.waiting ? "fc-waiting" : undefined}>
        waiting {counts.waiting}
      </span>
      <span title="completed">done {counts.completed}</span>
      {counts.skipped > 0 && <span title="skipped">skipped {counts.skipped}</span>}
      {counts.failed > 0 && (
        <span title="failed" className="fc-failed">
          failed {counts.failed}
        </span>
      )}
    </div>
  );
}

const StepNode = memo(function StepNode({ data }: NodeProps<Node<StepNodeData>>) {
  const { node, counts, problems, overlay, selected, onSelect, onInsertEnd, fromLabel } = data;
  if (node.kind === "end") {
    return (
      <div className="fc-end">
        <Handle type="target" position={Position.Top} isConnectable={false} />
        {onInsertEnd ? (
          <button className="fc-plus" aria-label={`Add a step after ${fromLabel}`} onClick={onInsertEnd}>
            +
          </button>
        ) : (
          <span>End</span>
        )}
      </div>
    );
  }
  if (node.kind === "start") {
    return (
      <div className="fc-start">
        <strong>Start</strong>
        <span>{node.detail}</span>
        <Handle type="source" position={Position.Bottom} isConnectable={false} />
      </div>
    );
  }
  const family = familyOf(node.type ?? "");
  const kind = STEP_KIND[node.type ?? ""];
  const hasProblems = (problems?.length ?? 0) > 0;
  return (
    <div
      className={`fc-node${selected ? " fc-selected" : ""}${hasProblems ? " fc-has-problems" : ""}`}
      style={{ borderLeftColor: family.color }}
      data-step={node.stepId}
    >
      <Handle type="target" position={Position.Top} isConnectable={false} />
      <button
        className="fc-node-button"
        aria-pressed={selected}
        onClick={() => onSelect?.(node.stepId!)}
      >
        <span className="fc-sr">Step {node.stepId}: </span>
        <FamilyIcon type={node.type ?? ""} />
        <span className="fc-text">
          <span className="fc-label">{node.label}</span>
          <span className="fc-detail">
            {node.detail || kind?.label || node.type} <span className="fc-id">· {node.stepId}</span>
          </span>
        </span>
      </button>
      <CountsLine counts={counts} />
      {problems?.map((p, i) => (
        <div key={`p${i}`} className="fc-problem" role="note">
          ⚠ {p}
        </div>
      ))}
      {overlay?.map((line, i) => (
        <div key={`o${i}`} className="fc-overlay">
          {line}
        </div>
      ))}
      <Handle type="source" position={Position.Bottom} isConnectable={false} />
    </div>
  );
});

function pathOf(points: Point[]): string {
  return points.map((p, i) => `${i === 0 ? "M" : "L"} ${p.x} ${p.y}`).join(" ");
}

function RoutedEdge({ id, data, sourceX, sourceY, targetX, targetY, markerEnd }: EdgeProps<Edge<RoutedEdgeData>>) {
  const points = data?.points?.length ? data.points : [{ x: sourceX, y: sourceY }, { x: targetX, y: targetY }];
  const first = points[0];
  const last = points[points.length - 1];
  const beforeLast = points[points.length - 2] ?? first;
  const plusAt = { x: last.x, y: Math.max(beforeLast.y, last.y - 22) };
  const edge = data?.edge;
  return (
    <>
      <BaseEdge
        id={id}
        path={pathOf(points)}
        markerEnd={markerEnd}
        style={{
          stroke: edge?.kind === "goal" ? "#15803d" : edge?.kind === "no" ? "#b91c1c" : "#64748b",
          strokeWidth: 1.5,
          strokeDasharray: edge?.dashed ? "5 4" : undefined,
        }}
      />
      <EdgeLabelRenderer>
        {data?.text && (
          <div
            className={`fc-edge-label fc-edge-${edge?.kind}`}
            // Beside the edge's start, not on it: a short edge's "+" sits on the line below.
            style={{ transform: `translate(${first.x + 10}px, ${first.y + 2}px)` }}
          >
            {data.text}
          </div>
        )}
        {data?.onInsert && edge?.to !== null && (
          <button
            className="fc-plus fc-edge-plus nodrag nopan"
            style={{ transform: `translate(-50%, -50%) translate(${plusAt.x}px, ${plusAt.y}px)` }}
            aria-label={`Add a step after ${data.fromLabel}`}
            onClick={data.onInsert}
          >
            +
          </button>
        )}
      </EdgeLabelRenderer>
    </>
  );
}

const nodeTypes = { step: StepNode };
const edgeTypes = { routed: RoutedEdge };

function structureKey(document: AutomationDocument, lines: Record<string, number>): string {
  return JSON.stringify([document.start, document.steps, document.triggers, lines]);
}

function Canvas(props: FlowCanvasProps) {
  const { document, counts, edgeLabels, problems, overlay, selected, onSelectStep, onInsert } = props;
  const graph = useMemo(
    () => buildGraph(document, (type) => STEP_KIND[type]?.label ?? type),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [JSON.stringify([document.start, document.steps, document.triggers])],
  );
  const extraLines = useMemo(() => {
    const lines: Record<string, number> = {};
    for (const [id, list] of Object.entries(problems ?? {})) lines[id] = (lines[id] ?? 0) + list.length;
    for (const [id, list] of Object.entries(overlay ?? {})) lines[id] = (lines[id] ?? 0) + list.length;
    return lines;
  }, [problems, overlay]);
  const key = structureKey(document, extraLines);
  const [laid, setLaid] = useState<{ key: string; layout: Layout } | null>(null);
  useEffect(() => {
    let live = true;
    layout(graph, extraLines).then((result) => {
      if (live) setLaid({ key, layout: result });
    });
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  const labelOf = (stepId: string) =>
    stepId === "__start__" ? "the start" : graph.nodes.find((n) => n.id === stepId)?.label ?? stepId;

  const nodes: Node<StepNodeData>[] = useMemo(() => {
    if (!laid) return [];
    return graph.nodes.map((node) => {
      const position = laid.layout.positions[node.id] ?? { x: 0, y: 0 };
      const endEdge = node.kind === "end" ? graph.edges.find((e) => e.target === node.id) : undefined;
      return {
        id: node.id,
        type: "step",
        position: { x: position.x, y: position.y },
        style: { width: position.width, height: position.height },
        draggable: false,
        selectable: false,
        data: {
          node,
          counts: node.stepId ? counts?.[node.stepId] : undefined,
          problems: node.stepId ? problems?.[node.stepId] : undefined,
          overlay: node.stepId ? overlay?.[node.stepId] : undefined,
          selected: !!node.stepId && node.stepId === selected,
          onSelect: onSelectStep,
          fromLabel: endEdge ? `${labelOf(endEdge.from)}${endEdge.label ? ` (${endEdge.label})` : ""}` : undefined,
          onInsertEnd:
            endEdge && onInsert && endEdge.insertable
              ? () => onInsert({ from: endEdge.from, to: null, branch: endEdge.branch })
              : undefined,
        },
      };
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [laid, graph, counts, problems, overlay, selected, onSelectStep, onInsert]);

  const edges: Edge<RoutedEdgeData>[] = useMemo(() => {
    if (!laid) return [];
    return graph.edges.map((edge) => ({
      id: edge.id,
      source: edge.source,
      target: edge.target,
      type: "routed",
      markerEnd: { type: "arrowclosed" as never, color: "#64748b" },
      selectable: false,
      focusable: false,
      data: {
        edge,
        points: laid.layout.routes[edge.id] ?? [],
        text: edgeLabels?.[edge.id] ?? edge.label,
        fromLabel: `${labelOf(edge.from)}${edge.label ? ` (${edge.label})` : ""}`,
        onInsert:
          onInsert && edge.insertable
            ? () => onInsert({ from: edge.from, to: edge.to, branch: edge.branch })
            : undefined,
      },
    }));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [laid, graph, edgeLabels, onInsert]);

  return (
    <div className="fc-wrap" style={{ height: props.height ?? "100%" }} data-testid="flow-canvas" data-laid-out={laid ? "yes" : "no"}>
      {laid && <Flow nodes={nodes} edges={edges} layoutKey={laid.key} />}
    </div>
  );
}

function Flow({ nodes, edges, layoutKey }: { nodes: Node<StepNodeData>[]; edges: Edge<RoutedEdgeData>[]; layoutKey: string }) {
  const flow = useReactFlow();
  useEffect(() => {
    // A new structure: fit it (only then; live counts never move the view).
    window.requestAnimationFrame(() => flow.fitView({ padding: 0.1, maxZoom: 1 }));
  }, [layoutKey, flow]);
  return (
    <ReactFlow
      nodes={nodes}
      edges={edges}
      nodeTypes={nodeTypes}
      edgeTypes={edgeTypes}
      nodesDraggable={false}
      nodesConnectable={false}
      nodesFocusable={false}
      edgesFocusable={false}
      elementsSelectable={false}
      fitView
      fitViewOptions={{ padding: 0.1, maxZoom: 1 }}
      minZoom={0.2}
      maxZoom={1.5}
      proOptions={{ hideAttribution: true }}
      panOnScroll
    >
      <Controls showInteractive={false} />
    </ReactFlow>
  );
}

export function FlowCanvas(props: FlowCanvasProps) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
}

export default FlowCanvas;
