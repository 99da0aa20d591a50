// The automation's own settings: entry rule, triggers (each a form from its trigger type's
// schema), goals, time zone and quiet hours. Fields the server's schema does not know are
// shown as such rather than written into a document it would refuse.
import { useState } from "react";
import { SchemaForm } from "./SchemaForm";
import { addDetachedStep, goals, setField, type Draft } from "./draft";
import { defaultStep, defaultTrigger, formSchema, triggerDefinitions, type DocumentSchema, withoutNull } from "./schema";

export interface AutomationPanelProps {
  schema: DocumentSchema;
  draft: Draft;
  onDraft: (draft: Draft, select?: string | null) => void;
  onSelectStep: (id: string) => void;
  problems: string[]; // problems of the document's own fields (triggers, start…)
}

type Trigger = Record<string, unknown> & { type: string };

export function AutomationPanel({ schema, draft, onDraft, onSelectStep, problems }: AutomationPanelProps) {
  const triggerDefs = triggerDefinitions(schema);
  const [newTrigger, setNewTrigger] = useState(Object.keys(triggerDefs)[0] ?? "");
  const triggers = (Array.isArray(draft.triggers) ? draft.triggers : []) as Trigger[];
  const setTriggers = (next: Trigger[]) => onDraft({ ...draft, triggers: next });
  const props = schema.properties ?? {};
  return (
    <section className="b-panel" aria-labelledby="automation-panel-title">
      <h2 id="automation-panel-title">Automation settings</h2>
      {problems.length > 0 && (
        <ul className="b-problems" aria-label="Problems of the automation">
          {problems.map((problem, index) => (
            <li key={index}>{problem}</li>
          ))}
        </ul>
      )}
      <div className="b-row">
        <label htmlFor="entry-rule">Entry</label>
        <select id="entry-rule" value={draft.entry ?? "once"} onChange={(e) => onDraft(setField(draft, "entry", e.target.value))}>
          <option value="once">Once: a contact enters once, ever</option>
          <option value="multiple">Multiple: again after the previous run ended</option>
        </select>
      </div>

      <h3>Triggers</h3>
      {triggers.length === 0 && <p className="hint">No trigger: contacts are enrolled through the API only.</p>}
      <ol className="b-triggers">
        {triggers.map((trigger, index) => {
          const definition = triggerDefs[trigger.type];
          const { type: _type, ...settings } = trigger;
          return (
            <li key={`${index}:${trigger.type}`} className="b-trigger">
              <div className="b-trigger-head">
                <strong>{trigger.type.replace(/_/g, " ")}</strong>
                <button
                  type="button"
                  className="danger"
                  aria-label={`Remove trigger ${index + 1} (${trigger.type})`}
                  onClick={() => setTriggers(triggers.filter((_, i) => i !== index))}
                >
                  Remove
                </button>
              </div>
              {definition && (
                <SchemaForm
                  idPrefix={`trigger_${index}`}
                  schema={formSchema(schema, definition)}
                  value={settings}
                  onChange={(value) =>
                    setTriggers(triggers.map((t, i) => (i === index ? ({ ...value, type: t.type } as Trigger) : t)))
                  }
                />
              )}
            </li>
          );
        })}
      </ol>
      <div className="b-row">
        <label htmlFor="new-trigger">New trigger</label>
        <select id="new-trigger" value={newTrigger} onChange={(e) => setNewTrigger(e.target.value)}>
          {Object.keys(triggerDefs).map((type) => (
            <option key={type} value={type}>
              {type.replace(/_/g, " ")}
            </option>
          ))}
        </select>
        <button type="button" onClick={() => setTriggers([...triggers, defaultTrigger(schema, newTrigger) as Trigger])}>
          Add trigger
        </button>
      </div>

      <h3>Goals</h3>
      <p className="hint">Contacts jump to a goal from anywhere as soon as its condition holds.</p>
      <ul className="b-goals">
        {goals(draft).map((id) => (
          <li key={id}>
            <button type="button" className="link-button" onClick={() => onSelectStep(id)}>
              {String(draft.steps[id].name ?? id)}
            </button>
          </li>
        ))}
      </ul>
      <button
        type="button"
        onClick={() => {
          const edit = addDetachedStep(draft, defaultStep(schema, "goal"));
          if (edit.ok) onDraft(edit.draft, edit.id);
        }}
      >
        Add a goal
      </button>

      <h3>Delivery</h3>
      {props.timezone ? (
        <div className="b-row">
          <label htmlFor="automation-timezone">Time zone</label>
          <input
            id="automation-timezone"
            placeholder="e.g. Europe/Paris"
            value={String(draft.timezone ?? "")}
            onChange={(e) => onDraft(setField(draft, "timezone", e.target.value.trim()))}
          />
        </div>
      ) : (
        <p className="hint">Time zone: this server's automations have no time zone setting yet.</p>
      )}
      {props.quiet_hours ? (
        <fieldset className="b-fieldset">
          <legend>Quiet hours</legend>
          <SchemaForm
            idPrefix="quiet_hours"
            schema={{ ...withoutNull(props.quiet_hours), $defs: schema.$defs, title: undefined }}
            value={(draft.quiet_hours as Record<string, unknown>) ?? {}}
            onChange={(value) => onDraft(setField(draft, "quiet_hours", Object.keys(value).length ? value : null))}
          />
        </fieldset>
      ) : (
        <p className="hint">Quiet hours: this server's automations have no quiet hours setting yet.</p>
      )}
    </section>
  );
}
