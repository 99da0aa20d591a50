// One automation: its flow on the canvas with live counts (the report, every few seconds) and
// split shares on the edges; a node opens a side panel with the step's settings, its counts and
// the contacts waiting there (each linking to its contact page and its run in Temporal's UI).
import { useCallback, useMemo, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { type Report, useAutomation, useReport, useWaitingContacts } from "../api/queries";
import { FamilyIcon, FlowCanvas, type StepCounts } from "../canvas/FlowCanvas";
import { START, type AutomationDocument } from "../canvas/graph";
import { familyOf, STEP_KIND } from "../steps/catalog";
import { contactName, errorText, formatDate, percent } from "./format";

const PAGE = 20;

function countsOf(report: Report | undefined, document: AutomationDocument | null): Record<string, StepCounts> {
  const counts: Record<string, StepCounts> = {};
  if (!report) return counts;
  for (const stepId of Object.keys(document?.steps ?? {})) {
    counts[stepId] = { entered: 0, waiting: 0, completed: 0, skipped: 0, failed: 0 };
  }
  for (const step of report?.steps ?? []) {
    counts[step.step] = {
      entered: step.entered,
      waiting: step.waiting,
      completed: step.completed,
      skipped: Object.values(step.skipped ?? {}).reduce((a, b) => a + b, 0),
      failed: step.failed,
    };
  }
  return counts;
}

function edgeLabelsOf(report: Report | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const split of report?.splits ?? []) {
    const total = split.paths.reduce((sum, path) => sum + path.contacts, 0);
    split.paths.forEach((path, index) => {
      const branch = split.mode === "until" ? (index === 0 ? "before" : "after") : `paths.${index}.next`;
      const share = total ? ` · ${Math.round((100 * path.contacts) / total)}%` : "";
      const winner = split.winner === index ? " ★" : "";
      labels[`${split.step}:${branch}`] = `${path.label}${share}${winner}`;
    });
  }
  for (const step of report?.steps ?? []) {
    for (const branch of ["yes", "no"]) {
      const taken = step.completed_by_reason?.[branch];
      if (step.type === "if_else" && taken) labels[`${step.step}:${branch}`] = `${branch} (${taken})`;
    }
  }
  for (const goal of report?.goals ?? []) {
    labels[`${START}:goal:${goal.step}`] = `goal met · ${goal.achieved}${goal.rate != null ? ` (${percent(goal.rate)})` : ""}`;
  }
  return labels;
}

function WaitingList({ automationId, stepId }: { automationId: string; stepId: string }) {
  const [offset, setOffset] = useState(0);
  const waiting = useWaitingContacts(automationId, stepId, offset, PAGE);
  const rows = waiting.data?.contacts ?? [];
  const total = waiting.data?.total;
  return (
    <div>
      <h3>Waiting here{total !== undefined ? ` (${total})` : ""}</h3>
      {waiting.error && <p className="error">{errorText(waiting.error)}</p>}
      {rows.length === 0 && !waiting.isPending && <p className="muted">Nobody is waiting at this step.</p>}
      <ul className="waiting">
        {rows.map((row) => (
          <li key={row.workflow_id}>
            <Link to={`/contacts/${row.contact_id}`}>{row.email ?? contactName({ ...row, id: row.contact_id })}</Link>
            {" "}
            <a href={row.temporal_ui_url} target="_blank" rel="noreferrer" className="small">
              <span className="sr-only">Run of {row.email ?? `contact ${row.contact_id}`} </span>in Temporal UI ↗
            </a>
            <div className="muted small">since {formatDate(row.last_activity_at)}</div>
          </li>
        ))}
      </ul>
      <div className="pager">
        <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
          Previous
        </button>
        <button disabled={total === undefined ? rows.length < PAGE : offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>
          Next
        </button>
      </div>
    </div>
  );
}

function SidePanel({
  automationId,
  stepId,
  step,
  counts,
  onClose,
}: {
  automationId: string;
  stepId: string;
  step: Record<string, unknown>;
  counts?: StepCounts;
  onClose: () => void;
}) {
  const type = String(step.type ?? "");
  const family = familyOf(type);
  return (
    <aside className="side-panel card" aria-label={`Step ${stepId}`}>
      <div className="panel-head">
        <h2>
          <FamilyIcon type={type} />
          {String(step.name ?? STEP_KIND[type]?.label ?? type)}
        </h2>
        <button onClick={onClose} aria-label="Close the step panel">
          ✕
        </button>
      </div>
      <p className="muted">
        {STEP_KIND[type]?.label ?? type} · step <code>{stepId}</code> · {family.label}
      </p>
      <h3>Counts</h3>
      <dl className="counts-grid">
        {(["entered", "waiting", "completed", "skipped", "failed"] as const).map((key) => (
          <div key={key}>
            <dt>{key}</dt>
            <dd data-count={key}>{counts?.[key] ?? 0}</dd>
          </div>
        ))}
      </dl>
      <h3>Settings</h3>
      <pre className="settings">{JSON.stringify(step, null, 2)}</pre>
      <WaitingList key={stepId} automationId={automationId} stepId={stepId} />
    </aside>
  );
}

export function AutomationPage() {
  const { id = "" } = useParams();
  const automation = useAutomation(id);
  const report = useReport(id);
  const [selected, setSelected] = useState<string | null>(null);
  const document = (automation.data?.document ?? null) as AutomationDocument | null;
  const counts = useMemo(() => countsOf(report.data, document), [report.data, document]);
  const edgeLabels = useMemo(() => edgeLabelsOf(report.data), [report.data]);
  const onSelect = useCallback((stepId: string) => setSelected(stepId), []);
  const step = selected && document?.steps ? document.steps[selected] : undefined;
  const runs = report.data?.runs ?? {};

  if (automation.error) {
    return (
      <section>
        <h1>Automation</h1>
        <p role="alert" className="error">
          {errorText(automation.error)}
        </p>
      </section>
    );
  }
  return (
    <section className="automation-page">
      <div className="page-head">
        <h1>{automation.data?.name ?? id}</h1>
        {automation.data && (
          <span className={`badge ${automation.data.status === "active" ? "badge-on" : "badge-off"}`}>
            {automation.data.status} · v{automation.data.version}
          </span>
        )}
        <span className="muted" aria-live="polite">
          {Object.entries(runs)
            .map(([status, count]) => `${count} ${status}`)
            .join(" · ")}
        </span>
        <Link className="button primary" to={`/automations/${encodeURIComponent(id)}/edit`}>
          Edit
        </Link>
      </div>
      <div className="automation-body">
        <div className="canvas-area">
          {document ? (
            <FlowCanvas
              document={document}
              counts={counts}
              edgeLabels={edgeLabels}
              selected={selected}
              onSelectStep={onSelect}
            />
          ) : (
            <p>Loading…</p>
          )}
        </div>
        {selected && step && (
          <SidePanel
            automationId={id}
            stepId={selected}
            step={step}
            counts={counts[selected]}
            onClose={() => setSelected(null)}
          />
        )}
      </div>
    </section>
  );
}
