// The side panel of the selected step: its id, its settings (a form generated from the step
// type's schema), its problems, and delete.
import { useEffect, useState } from "react";
import { STEP_KIND } from "../steps/catalog";
import { SchemaForm } from "./SchemaForm";
import { deleteStep, renameStep, switchSplitMode, updateSettings, type Draft, type Edit } from "./draft";
import { definitionOf, defaultStep, formSchema, type DocumentSchema } from "./schema";

export interface StepPanelProps {
  schema: DocumentSchema;
  draft: Draft;
  stepId: string;
  problems: string[];
  onDraft: (draft: Draft, select?: string | null) => void;
  onClose: () => void;
}

export function StepPanel({ schema, draft, stepId, problems, onDraft, onClose }: StepPanelProps) {
  const step = draft.steps[stepId];
  const [newId, setNewId] = useState(stepId);
  const [refusal, setRefusal] = useState<string | null>(null);
  useEffect(() => {
    setNewId(stepId);
    setRefusal(null);
  }, [stepId]);
  if (!step) return null;
  const kind = STEP_KIND[step.type];
  const definition = definitionOf(schema, step);
  const apply = (edit: Edit, select?: string | null) => {
    if (edit.ok) {
      setRefusal(null);
      onDraft(edit.draft, select);
    } else {
      setRefusal(edit.message);
    }
  };
  const { type: _type, ...settings } = step;
  return (
    <section className="b-panel" aria-labelledby="step-panel-title">
      <div className="b-panel-head">
        <h2 id="step-panel-title">{kind?.label ?? step.type}</h2>
        <button type="button" className="b-close" aria-label="Close the step panel" onClick={onClose}>
          ×
        </button>
      </div>
      <p className="hint">{kind?.description}</p>
      <form
        className="b-row"
        onSubmit={(event) => {
          event.preventDefault();
          apply(renameStep(draft, stepId, newId.trim()), newId.trim());
        }}
      >
        <label htmlFor="step-id">Step id</label>
        <input id="step-id" value={newId} onChange={(e) => setNewId(e.target.value)} />
        <button type="submit" disabled={newId.trim() === stepId}>
          Rename
        </button>
      </form>
      {step.type === "split" && (
        <div className="b-row">
          <label htmlFor="split-mode">Mode</label>
          <select
            id="split-mode"
            value={step.mode === "until" ? "until" : "even"}
            onChange={(e) => onDraft(switchSplitMode(draft, stepId, defaultStep(schema, `split:${e.target.value}`)))}
          >
            <option value="even">Even: share by weight</option>
            <option value="until">Until: one path, then the other</option>
          </select>
        </div>
      )}
      {problems.length > 0 && (
        <ul className="b-problems" aria-label={`Problems of step ${stepId}`}>
          {problems.map((problem, index) => (
            <li key={index}>{problem}</li>
          ))}
        </ul>
      )}
      {definition ? (
        <SchemaForm
          key={`${stepId}:${String(step.mode ?? "")}`}
          idPrefix={`step_${stepId}`}
          schema={formSchema(schema, definition, Object.keys(draft.steps))}
          value={settings}
          onChange={(value) => onDraft(updateSettings(draft, stepId, value))}
        />
      ) : (
        <p className="error">This server's schema does not know the step type “{step.type}”. Edit it in the text view.</p>
      )}
      {refusal && (
        <p className="error" role="alert">
          {refusal}
        </p>
      )}
      <div className="b-actions">
        <button type="button" className="danger" onClick={() => apply(deleteStep(draft, stepId), null)}>
          Delete step
        </button>
      </div>
    </section>
  );
}
