// The builder (/automations/new, /automations/:id/edit): a draft of the automation document
// edited on the canvas ("+" on edges, a side panel per step), in forms (settings, triggers,
// goals) or as text; validated by the API as it changes; tested by simulation; saved (new) or
// published after reading its impact on the contacts inside (existing). See docs/studio.md.
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useState } from "react";
import { Link, useLocation, useNavigate, useParams } from "react-router-dom";
import { FlowCanvas, type InsertPoint } from "../canvas/FlowCanvas";
import { START } from "../canvas/graph";
import { createAutomation, fetchAutomation, fetchSchema, impactOf, messageOf, problemsOf, publishVersion, type Problem } from "./api";
import { AutomationPanel } from "./AutomationPanel";
import { blankDraft, branchLabel, insertStep, type Draft } from "./draft";
import type { Impact } from "./impact";
import { InsertMenu } from "./InsertMenu";
import { PublishDialog } from "./PublishDialog";
import { defaultStep, stepDefinitions, type DocumentSchema } from "./schema";
import { StepPanel } from "./StepPanel";
import { TestPanel } from "./TestPanel";
import { TextView } from "./TextView";
import { splitProblems, useValidation } from "./useValidation";
import "./builder.css";

export function BuilderPage() {
  const { id } = useParams();
  const schema = useQuery({ queryKey: ["document-schema"], queryFn: fetchSchema, staleTime: Infinity });
  const automation = useQuery({
    queryKey: ["automation-document", id],
    queryFn: () => fetchAutomation(id!),
    enabled: id !== undefined,
    staleTime: Infinity,
    refetchOnMount: "always",
  });
  const failure = schema.error ?? automation.error;
  if (failure) {
    return (
      <section>
        <h1>{id ? `Edit ${id}` : "New automation"}</h1>
        <p className="error" role="alert">
          {messageOf(failure)}
        </p>
        <Link to="/automations">Back to the automations</Link>
      </section>
    );
  }
  if (!schema.data || (id !== undefined && !automation.data)) {
    return <p className="hint">Loading the builder…</p>;
  }
  const initial = id ? stripForEditing(automation.data?.document ?? blankDraft(id)) : blankDraft();
  return <Builder key={id ?? "new"} id={id ?? null} schema={schema.data} initial={initial} />;
}

/** The stored document as a draft: its id is the URL's, never edited here. */
function stripForEditing(document: Draft): Draft {
  const { id: _id, ...rest } = document;
  return rest as Draft;
}

type Panel = "settings" | "step" | "test";

interface PublishState {
  impact: Impact | null;
  unavailable: string | null;
}

function Builder({ id, schema, initial }: { id: string | null; schema: DocumentSchema; initial: Draft }) {
  const navigate = useNavigate();
  const location = useLocation();
  const queryClient = useQueryClient();
  const [draft, setDraftState] = useState<Draft>(initial);
  const [selected, setSelected] = useState<string | null>(null);
  const [panel, setPanel] = useState<Panel>("settings");
  const [view, setView] = useState<"canvas" | "text">("canvas");
  const [inserting, setInserting] = useState<InsertPoint | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>((location.state as { saved?: string } | null)?.saved ?? null);
  const [serverProblems, setServerProblems] = useState<Problem[] | null>(null);
  const [overlay, setOverlay] = useState<Record<string, string[]> | null>(null);
  const [publish, setPublish] = useState<PublishState | null>(null);
  const [busy, setBusy] = useState(false);
  // The draft as last loaded or saved: closing the tab with changes beyond it asks first.
  const [clean, setClean] = useState<Draft>(initial);
  const dirty = draft !== clean;
  useEffect(() => {
    if (!dirty) return;
    const warn = (event: BeforeUnloadEvent) => event.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);
  // An existing automation's draft is checked under its own id (a step may start it, an email
  // condition names its steps), as the PUT will save it.
  const checked = useMemo(() => (id ? { ...draft, id } : draft), [draft, id]);
  const validation = useValidation(checked);

  const known = useMemo(() => new Set(Object.keys(stepDefinitions(schema)).map((t) => t.split(":")[0])), [schema]);
  const problems = serverProblems ?? validation.problems;
  const { byStep, general } = useMemo(() => splitProblems(problems, draft.steps), [problems, draft.steps]);
  const errors = problems.filter((p) => p.severity !== "warning").length;

  const setDraft = useCallback((next: Draft, select?: string | null) => {
    setDraftState(next);
    setServerProblems(null);
    setOverlay(null);
    setNotice(null);
    if (select !== undefined) {
      setSelected(select);
      setPanel(select ? "step" : "settings");
    }
  }, []);

  const selectStep = useCallback((stepId: string) => {
    setSelected(stepId);
    setPanel("step");
  }, []);

  const onInsert = useCallback((point: InsertPoint) => setInserting(point), []);

  const pick = (type: string) => {
    if (!inserting) return;
    const from = inserting.from === START ? null : inserting.from;
    const edit = insertStep(
      draft,
      { from, to: inserting.to, branch: inserting.branch === "start" ? undefined : inserting.branch },
      defaultStep(schema, type),
    );
    setInserting(null);
    if (edit.ok) setDraft(edit.draft, edit.id ?? null);
    else setNotice(edit.message);
  };

  const menuTitle = (point: InsertPoint) => {
    if (point.from === START || !draft.steps[point.from]) return Object.keys(draft.steps).length ? "Add a step at the start" : "Add the first step";
    const step = draft.steps[point.from];
    const name = String(step.name ?? point.from);
    const branch = point.branch && point.branch !== "next" ? ` (${branchLabel(point.branch)})` : "";
    return `Add a step after ${name}${branch}`;
  };

  const save = async () => {
    setNotice(null);
    setSaved(null);
    if (!id) {
      setBusy(true);
      try {
        const answer = await createAutomation(draft);
        setClean(draft);
        await queryClient.invalidateQueries({ queryKey: ["automations"] });
        const message = `Saved as “${answer.id}”, version ${answer.version}.`;
        navigate(`/automations/${answer.id}/edit`, { replace: true, state: { saved: message } });
      } catch (error) {
        refused(error);
      } finally {
        setBusy(false);
      }
      return;
    }
    setBusy(true);
    try {
      setPublish({ impact: await impactOf(id, draft), unavailable: null });
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status === 404 || status === 405) {
        setPublish({ impact: null, unavailable: "This server cannot tell the impact of a new version yet." });
      } else if (status === 422) {
        refused(error);
      } else {
        setPublish({ impact: null, unavailable: `The impact could not be read: ${messageOf(error)}` });
      }
    } finally {
      setBusy(false);
    }
  };

  const confirmPublish = async () => {
    if (!id) return;
    setBusy(true);
    try {
      const answer = await publishVersion(id, draft);
      setClean(draft);
      setPublish(null);
      setSaved(`Published version ${answer.version}.`);
      await queryClient.invalidateQueries({ queryKey: ["automations"] });
      queryClient.removeQueries({ queryKey: ["automation-document", id] });
    } catch (error) {
      setPublish(null);
      refused(error);
    } finally {
      setBusy(false);
    }
  };

  const refused = (error: unknown) => {
    const listed = problemsOf((error as { detail?: unknown }).detail);
    if (listed.length) {
      setServerProblems(listed);
      setNotice(`The API refused this version: ${listed.length} problem${listed.length === 1 ? "" : "s"}, shown on the steps they name.`);
    } else {
      setNotice(messageOf(error));
    }
  };

  const status = validation.checking
    ? "Checking…"
    : validation.unavailable
      ? "Not validated"
      : errors
        ? `${errors} problem${errors === 1 ? "" : "s"}`
        : "Valid";

  const empty = Object.keys(draft.steps).length === 0;
  return (
    <div className="b-page">
      <div className="b-header">
        <label htmlFor="automation-name" className="b-name-label">
          Name
        </label>
        <input
          id="automation-name"
          className="b-name"
          value={draft.name ?? ""}
          onChange={(e) => setDraft({ ...draft, name: e.target.value })}
        />
        {id && <span className="b-id">id {id}</span>}
        <span className={`b-status ${errors ? "b-status-bad" : validation.unavailable || validation.checking ? "b-status-unknown" : ""}`} role="status" aria-live="polite" data-testid="validation-status">
          {status}
        </span>
        <div className="b-tabs" role="group" aria-label="View">
          <button type="button" aria-pressed={view === "canvas"} className={view === "canvas" ? "b-toggle-on" : ""} onClick={() => setView("canvas")}>
            Canvas
          </button>
          <button type="button" aria-pressed={view === "text"} className={view === "text" ? "b-toggle-on" : ""} onClick={() => setView("text")}>
            Text
          </button>
        </div>
        <button type="button" aria-pressed={panel === "settings"} onClick={() => { setPanel("settings"); setSelected(null); }}>
          Settings
        </button>
        <button type="button" aria-pressed={panel === "test"} onClick={() => setPanel("test")}>
          Test
        </button>
        <button type="button" className="primary" onClick={save} disabled={busy}>
          {id ? "Publish…" : "Save"}
        </button>
      </div>
      {(saved || notice || validation.unavailable || general.length > 0) && (
        <div className="b-messages">
          {saved && (
            <p className="b-saved" role="status">
              {saved} {id && <Link to={`/automations/${id}`}>Open the automation</Link>}
            </p>
          )}
          {notice && (
            <p className="error" role="alert">
              {notice}
            </p>
          )}
          {validation.unavailable && !serverProblems && <p className="hint">{validation.unavailable}</p>}
          {general.length > 0 && (
            <ul className="b-problems" aria-label="Problems of the automation">
              {general.map((problem, index) => (
                <li key={index} className={problem.severity === "warning" ? "b-warning" : ""}>
                  {problem.severity === "warning" ? "warning: " : ""}
                  {problem.message} {problem.path && <code>{problem.path}</code>}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <div className="b-body">
        <div className={`b-main${overlay ? " b-simulated" : ""}`}>
          {view === "text" ? (
            <TextView draft={draft} onDraft={(next) => setDraft(next)} />
          ) : empty ? (
            <div className="b-empty">
              <p>This automation has no step yet.</p>
              <button type="button" className="primary" onClick={() => setInserting({ from: START, to: null })}>
                Add the first step
              </button>
            </div>
          ) : (
            <FlowCanvas
              document={draft}
              problems={byStep}
              overlay={overlay ?? undefined}
              selected={selected}
              onSelectStep={selectStep}
              onInsert={onInsert}
            />
          )}
        </div>
        <aside className="b-side" aria-label="Side panel">
          {panel === "step" && selected && draft.steps[selected] ? (
            <StepPanel
              schema={schema}
              draft={draft}
              stepId={selected}
              problems={byStep[selected] ?? []}
              onDraft={setDraft}
              onClose={() => {
                setSelected(null);
                setPanel("settings");
              }}
            />
          ) : panel === "test" ? (
            <TestPanel draft={draft} onResult={(lines) => setOverlay(lines)} onClose={() => setPanel("settings")} />
          ) : (
            <AutomationPanel
              schema={schema}
              draft={draft}
              onDraft={setDraft}
              onSelectStep={selectStep}
              problems={general.filter((p) => p.path.startsWith("triggers")).map((p) => p.message)}
            />
          )}
        </aside>
      </div>
      {inserting && <InsertMenu title={menuTitle(inserting)} known={known} onPick={pick} onClose={() => setInserting(null)} />}
      {publish && (
        <PublishDialog
          impact={publish.impact}
          unavailable={publish.unavailable}
          busy={busy}
          onConfirm={confirmPublish}
          onCancel={() => setPublish(null)}
        />
      )}
    </div>
  );
}
