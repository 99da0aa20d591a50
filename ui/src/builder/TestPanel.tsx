// Test: simulate the draft for a made-up or a real contact with a script of events
// (POST /api/v1/simulate). The real interpreter runs on Temporal with time skipping; nothing
// is sent and no contact changes. The answer's path is drawn on the canvas by the page.
import { useState } from "react";
import { messageOf, simulate } from "./api";
import type { Draft } from "./draft";
import {
  madeUpContact,
  overlayOf,
  parseOffset,
  scriptEvent,
  simulationStart,
  sinceStart,
  statusLine,
  type MadeUpContact,
  type ScriptKind,
  type ScriptRow,
  type SimulationResult,
} from "./simulation";

const KINDS: [ScriptKind, string, string][] = [
  ["event", "Event", "event name"],
  ["email_clicked", "Email clicked", "step of the email"],
  ["email_opened", "Email opened", "step of the email"],
  ["tag_added", "Tag added", "tag"],
  ["tag_removed", "Tag removed", "tag"],
  ["field", "Field changed", "field"],
];

export interface TestPanelProps {
  draft: Draft;
  onResult: (overlay: Record<string, string[]> | null, result: SimulationResult | null) => void;
  onClose: () => void;
}

export function TestPanel({ draft, onResult, onClose }: TestPanelProps) {
  const [who, setWho] = useState<"made_up" | "real">("made_up");
  const [contact, setContact] = useState<MadeUpContact>({ first_name: "Ada", email: "ada@example.com", tags: "", fields: "" });
  const [contactId, setContactId] = useState("");
  const [rows, setRows] = useState<ScriptRow[]>([]);
  const [horizon, setHorizon] = useState("90d");
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<SimulationResult | null>(null);

  const setRow = (index: number, change: Partial<ScriptRow>) =>
    setRows(rows.map((row, i) => (i === index ? { ...row, ...change } : row)));

  const start = async () => {
    setError(null);
    const events: Record<string, unknown>[] = [];
    for (const [index, row] of rows.entries()) {
      const read = scriptEvent(row);
      if ("error" in read) {
        setError(`Event ${index + 1}: ${read.error}`);
        return;
      }
      events.push(read.event);
    }
    const until = parseOffset(horizon);
    if (!until) {
      setError(`Horizon: "${horizon}" is not a duration like 90d`);
      return;
    }
    const body: Record<string, unknown> = { document: draft, events, horizon: until };
    if (who === "real") {
      const id = Number(contactId);
      if (!Number.isInteger(id) || id < 1) {
        setError("A real contact is given by its id (a number).");
        return;
      }
      body.contact_id = id;
    } else {
      body.contact = madeUpContact(contact);
    }
    setRunning(true);
    try {
      const answer = await simulate(body);
      setResult(answer);
      onResult(overlayOf(answer), answer);
    } catch (failure) {
      setResult(null);
      onResult(null, null);
      const status = (failure as { status?: number }).status;
      setError(
        status === 404 || status === 405
          ? "This server has no simulation route (POST /api/v1/simulate) yet."
          : status === 422
            ? `The draft cannot run: ${messageOf(failure)}`
            : messageOf(failure),
      );
    } finally {
      setRunning(false);
    }
  };

  const first = result ? simulationStart(result) : undefined;
  return (
    <section className="b-panel" aria-labelledby="test-panel-title">
      <div className="b-panel-head">
        <h2 id="test-panel-title">Test this draft</h2>
        <button type="button" className="b-close" aria-label="Close the test panel" onClick={onClose}>
          ×
        </button>
      </div>
      <p className="hint">Runs the real automation on virtual time: nothing is sent, no contact changes.</p>
      <fieldset className="b-fieldset">
        <legend>Contact</legend>
        <div className="b-radios">
          <label>
            <input type="radio" name="who" checked={who === "made_up"} onChange={() => setWho("made_up")} /> Made up
          </label>
          <label>
            <input type="radio" name="who" checked={who === "real"} onChange={() => setWho("real")} /> A real contact (copied)
          </label>
        </div>
        {who === "made_up" ? (
          <div className="b-grid">
            <label htmlFor="sim-first-name">First name</label>
            <input id="sim-first-name" value={contact.first_name} onChange={(e) => setContact({ ...contact, first_name: e.target.value })} />
            <label htmlFor="sim-email">Email</label>
            <input id="sim-email" type="email" value={contact.email} onChange={(e) => setContact({ ...contact, email: e.target.value })} />
            <label htmlFor="sim-tags">Tags</label>
            <input id="sim-tags" placeholder="lead, vip" value={contact.tags} onChange={(e) => setContact({ ...contact, tags: e.target.value })} />
            <label htmlFor="sim-fields">Fields</label>
            <input id="sim-fields" placeholder="plan=free, city=Paris" value={contact.fields} onChange={(e) => setContact({ ...contact, fields: e.target.value })} />
          </div>
        ) : (
          <div className="b-grid">
            <label htmlFor="sim-contact-id">Contact id</label>
            <input id="sim-contact-id" inputMode="numeric" value={contactId} onChange={(e) => setContactId(e.target.value)} />
          </div>
        )}
      </fieldset>
      <fieldset className="b-fieldset">
        <legend>What happens (after the start)</legend>
        {rows.length === 0 && <p className="hint">No events: the contact does nothing.</p>}
        <ol className="b-script">
          {rows.map((row, index) => {
            const placeholder = KINDS.find(([kind]) => kind === row.kind)?.[2] ?? "";
            return (
              <li key={index} className="b-script-row">
                <input
                  aria-label={`Event ${index + 1}: after`}
                  className="b-offset"
                  placeholder="3d"
                  value={row.offset}
                  onChange={(e) => setRow(index, { offset: e.target.value })}
                />
                <select aria-label={`Event ${index + 1}: kind`} value={row.kind} onChange={(e) => setRow(index, { kind: e.target.value as ScriptKind })}>
                  {KINDS.map(([kind, label]) => (
                    <option key={kind} value={kind}>
                      {label}
                    </option>
                  ))}
                </select>
                {row.kind === "email_opened" || row.kind === "email_clicked" ? (
                  <select aria-label={`Event ${index + 1}: ${placeholder}`} value={row.name} onChange={(e) => setRow(index, { name: e.target.value })}>
                    <option value="">(pick a step)</option>
                    {Object.entries(draft.steps)
                      .filter(([, step]) => step.type === "send_email")
                      .map(([id]) => (
                        <option key={id} value={id}>
                          {id}
                        </option>
                      ))}
                  </select>
                ) : (
                  <input
                    aria-label={`Event ${index + 1}: ${placeholder}`}
                    placeholder={placeholder}
                    value={row.name}
                    onChange={(e) => setRow(index, { name: e.target.value })}
                  />
                )}
                {row.kind === "field" && (
                  <input aria-label={`Event ${index + 1}: new value`} placeholder="value" value={row.value} onChange={(e) => setRow(index, { value: e.target.value })} />
                )}
                <button type="button" aria-label={`Remove event ${index + 1}`} onClick={() => setRows(rows.filter((_, i) => i !== index))}>
                  ×
                </button>
              </li>
            );
          })}
        </ol>
        <button type="button" onClick={() => setRows([...rows, { offset: "1d", kind: "event", name: "", value: "" }])}>
          Add an event
        </button>
      </fieldset>
      <div className="b-row">
        <label htmlFor="sim-horizon">Simulate up to</label>
        <input id="sim-horizon" className="b-offset" value={horizon} onChange={(e) => setHorizon(e.target.value)} />
        <button type="button" className="primary" onClick={start} disabled={running}>
          {running ? "Simulating…" : "Start the test"}
        </button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {result && (
        <div className="b-result" aria-live="polite">
          <h3>Result</h3>
          <p data-testid="simulation-status">
            <strong>{statusLine(result)}</strong>
          </p>
          {result.temporal_ui_url && (
            <p>
              <a href={result.temporal_ui_url} target="_blank" rel="noreferrer">
                Open this simulation in the Temporal UI
              </a>
            </p>
          )}
          <ol className="b-path" aria-label="Simulated path">
            {result.path.map((entry, index) => (
              <li key={index}>
                <span className="b-when">{first ? sinceStart(first, entry.at) : entry.at}</span> <code>{entry.step}</code>{" "}
                {entry.outcome}
                {entry.reason && ` (${entry.reason})`} {entry.detail && <span className="hint">{entry.detail}</span>}
              </li>
            ))}
          </ol>
          <h3>Messages ({result.messages.length})</h3>
          {result.messages.map((message, index) => (
            <article key={index} className="b-message">
              <header>
                <span className="b-when">{first ? sinceStart(first, message.at) : message.at}</span> {message.channel} to {message.to ?? "—"} ·{" "}
                <code>{message.step}</code>
                {message.subject && (
                  <div>
                    <strong>{message.subject}</strong>
                  </div>
                )}
              </header>
              {message.html ? (
                <iframe title={`Message ${index + 1} from step ${message.step}`} sandbox="" srcDoc={message.html} className="b-message-frame" />
              ) : (
                <pre className="b-message-body">{message.text ?? ""}</pre>
              )}
            </article>
          ))}
          {(result.writes?.length ?? 0) > 0 && (
            <>
              <h3>Would write</h3>
              <ul>
                {result.writes!.map((write, index) => (
                  <li key={index}>
                    <code>{JSON.stringify(write)}</code>
                  </li>
                ))}
              </ul>
            </>
          )}
        </div>
      )}
    </section>
  );
}
