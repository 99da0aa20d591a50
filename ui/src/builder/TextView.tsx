// The same draft as YAML or JSON. Editing the text updates the draft (and so the canvas) as
// soon as it parses; while it does not, the error shows and the last good draft stays.
import { useEffect, useRef, useState } from "react";
import type { Draft } from "./draft";
import { readDraft, writeDraft, type TextFormat } from "./text";

export interface TextViewProps {
  draft: Draft;
  onDraft: (draft: Draft) => void;
}

export function TextView({ draft, onDraft }: TextViewProps) {
  const [format, setFormat] = useState<TextFormat>("yaml");
  const [text, setText] = useState(() => writeDraft(draft, format));
  const [error, setError] = useState<string | null>(null);
  // The draft this text last produced: a change from elsewhere rewrites the text, ours does not.
  const ours = useRef<Draft>(draft);

  useEffect(() => {
    if (draft !== ours.current) {
      ours.current = draft;
      setText(writeDraft(draft, format));
      setError(null);
    }
  }, [draft, format]);

  const switchTo = (next: TextFormat) => {
    setFormat(next);
    setText(writeDraft(draft, next));
    setError(null);
  };

  return (
    <div className="b-text">
      <div className="b-text-bar" role="group" aria-label="Text format">
        {(["yaml", "json"] as const).map((option) => (
          <button
            key={option}
            type="button"
            aria-pressed={format === option}
            className={format === option ? "b-toggle-on" : ""}
            onClick={() => switchTo(option)}
          >
            {option.toUpperCase()}
          </button>
        ))}
        <span className={error ? "error" : "hint"} role="status" aria-live="polite">
          {error ? `Not applied: ${error}` : "In sync with the canvas."}
        </span>
      </div>
      <textarea
        className="b-textarea"
        aria-label={`The automation as ${format.toUpperCase()}`}
        spellCheck={false}
        value={text}
        aria-invalid={error !== null}
        onChange={(event) => {
          const value = event.target.value;
          setText(value);
          const read = readDraft(value, format);
          if ("error" in read) {
            setError(read.error);
          } else {
            setError(null);
            ours.current = read.draft;
            onDraft(read.draft);
          }
        }}
      />
    </div>
  );
}
