// The "+" menu: every step type, grouped by family as catalog.ts groups them, filtered by what
// the person types. Arrow keys move between types, Enter picks, Escape closes (focus returns to
// the "+" that opened it).
import { useEffect, useMemo, useRef, useState, type KeyboardEvent } from "react";
import { FAMILIES, STEP_KINDS, type StepKind } from "../steps/catalog";

export interface InsertMenuProps {
  title: string; // "Add a step after Welcome email"
  onPick: (type: string) => void;
  onClose: () => void;
  known?: Set<string>; // the step types this server's schema knows (others are hidden)
}

export function InsertMenu({ title, onPick, onClose, known }: InsertMenuProps) {
  const [filter, setFilter] = useState("");
  const list = useRef<HTMLDivElement>(null);
  const search = useRef<HTMLInputElement>(null);
  const opener = useRef<Element | null>(document.activeElement);

  useEffect(() => {
    search.current?.focus();
    const back = opener.current;
    return () => {
      if (back instanceof HTMLElement && back.isConnected) back.focus();
    };
  }, []);

  const groups = useMemo(() => {
    const words = filter.trim().toLowerCase();
    const matches = (kind: StepKind) =>
      (!known || known.has(kind.type)) &&
      (!words || `${kind.label} ${kind.type} ${kind.description}`.toLowerCase().includes(words));
    return FAMILIES.map((family) => ({
      family,
      kinds: STEP_KINDS.filter((kind) => kind.family === family.id && matches(kind)),
    })).filter((group) => group.kinds.length > 0);
  }, [filter, known]);

  const items = () => Array.from(list.current?.querySelectorAll<HTMLButtonElement>("button[data-type]") ?? []);

  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === "Escape") {
      event.preventDefault();
      onClose();
      return;
    }
    const buttons = items();
    if (!buttons.length) return;
    const index = buttons.indexOf(document.activeElement as HTMLButtonElement);
    const move = (to: number) => {
      event.preventDefault();
      buttons[(to + buttons.length) % buttons.length].focus();
    };
    if (event.key === "ArrowDown") move(index + 1);
    else if (event.key === "ArrowUp") move(index < 0 ? buttons.length - 1 : index - 1);
    else if (event.key === "Home" && index >= 0) move(0);
    else if (event.key === "End" && index >= 0) move(buttons.length - 1);
    else if (event.key === "Enter" && index < 0 && document.activeElement === search.current) {
      event.preventDefault();
      buttons[0].click();
    }
  };

  return (
    <div className="b-overlay" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="b-menu" role="dialog" aria-modal="true" aria-label={title} onKeyDown={onKeyDown}>
        <div className="b-menu-head">
          <h2>{title}</h2>
          <button type="button" className="b-close" aria-label="Close" onClick={onClose}>
            ×
          </button>
        </div>
        <input
          ref={search}
          type="search"
          className="b-menu-search"
          placeholder="Search step types"
          aria-label="Search step types"
          value={filter}
          onChange={(e) => setFilter(e.target.value)}
        />
        <div className="b-menu-groups" ref={list}>
          {groups.map(({ family, kinds }) => (
            <section key={family.id} className="b-menu-group" aria-labelledby={`family-${family.id}`}>
              <h3 id={`family-${family.id}`}>
                <span className="b-family-icon" style={{ background: family.color }} aria-hidden="true">
                  {family.icon}
                </span>
                {family.label}
              </h3>
              <ul>
                {kinds.map((kind) => (
                  <li key={kind.type}>
                    <button type="button" data-type={kind.type} title={kind.description} onClick={() => onPick(kind.type)}>
                      <span className="b-kind-label">{kind.label}</span>
                      <span className="b-kind-type" aria-hidden="true">
                        {kind.type}
                      </span>
                    </button>
                  </li>
                ))}
              </ul>
            </section>
          ))}
          {groups.length === 0 && <p className="hint">No step type matches “{filter}”.</p>}
        </div>
      </div>
    </div>
  );
}
