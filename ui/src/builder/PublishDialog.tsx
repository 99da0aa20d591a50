// Before a new version of a live automation is saved: what it would do to the contacts in it
// now (POST /api/v1/automations/{id}/impact), then Publish or Cancel.
import { useEffect, useRef } from "react";
import { trapTab } from "./focus";
import { impactLines, type Impact } from "./impact";

export interface PublishDialogProps {
  impact: Impact | null; // null: the server could not say
  unavailable?: string | null;
  busy: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}

export function PublishDialog({ impact, unavailable, busy, onConfirm, onCancel }: PublishDialogProps) {
  const confirm = useRef<HTMLButtonElement>(null);
  const dialog = useRef<HTMLDivElement>(null);
  useEffect(() => confirm.current?.focus(), []);
  const errors = (impact?.problems ?? []).filter((p) => p.severity === "error");
  return (
    <div className="b-overlay">
      <div
        ref={dialog}
        className="b-dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="publish-title"
        onKeyDown={(e) => (e.key === "Escape" ? onCancel() : trapTab(e, dialog.current))}
      >
        <h2 id="publish-title">Publish a new version{impact?.version_from ? ` (after version ${impact.version_from})` : ""}</h2>
        {impact ? (
          <ul className="b-impact" data-testid="impact">
            {impactLines(impact).map((line, index) => (
              <li key={index}>{line}</li>
            ))}
          </ul>
        ) : (
          <p className="hint">{unavailable ?? "This server cannot tell the impact of a new version."}</p>
        )}
        {errors.length > 0 && <p className="error">The draft has {errors.length} problem(s): publishing will be refused.</p>}
        <div className="b-actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button ref={confirm} type="button" className="primary" disabled={busy} onClick={onConfirm}>
            {busy ? "Publishing…" : "Publish"}
          </button>
        </div>
      </div>
    </div>
  );
}
