// The API's verdict on the draft (POST /api/v1/automations/validate), asked again a moment
// after the last edit. Answers to older drafts are dropped.
import { useEffect, useRef, useState } from "react";
import { messageOf, validateDraft, type Problem } from "./api";
import type { Draft } from "./draft";

export interface ValidationState {
  checking: boolean;
  problems: Problem[];
  unavailable: string | null; // the server could not validate (an older API, a failure)
}

export const VALIDATE_DELAY_MS = 400;

export function useValidation(draft: Draft): ValidationState {
  const [state, setState] = useState<ValidationState>({ checking: true, problems: [], unavailable: null });
  const latest = useRef(0);
  useEffect(() => {
    const ticket = ++latest.current;
    setState((s) => ({ ...s, checking: true }));
    const timer = window.setTimeout(async () => {
      try {
        const answer = await validateDraft(draft);
        if (ticket === latest.current) setState({ checking: false, problems: answer.problems ?? [], unavailable: null });
      } catch (error) {
        if (ticket !== latest.current) return;
        const status = (error as { status?: number }).status;
        const unavailable =
          status === 404 || status === 405
            ? "This server cannot validate drafts (no POST /api/v1/automations/validate): problems show when you save."
            : `Validation failed: ${messageOf(error)}`;
        setState({ checking: false, problems: [], unavailable });
      }
    }, VALIDATE_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [draft]);
  return state;
}

/** Problems by step id (for the canvas) and the rest (for the list above it). */
export function splitProblems(problems: Problem[], steps: Record<string, unknown>) {
  const byStep: Record<string, string[]> = {};
  const general: Problem[] = [];
  for (const problem of problems) {
    const text = (problem.severity === "warning" ? "warning: " : "") + withField(problem);
    if (problem.step && problem.step in steps) (byStep[problem.step] ??= []).push(text);
    else general.push(problem);
  }
  return { byStep, general };
}

/** The message, after the field it is about when it does not name it ("subject: String should…"). */
export function withField(problem: Problem): string {
  const field = problem.step ? problem.path.replace(`steps.${problem.step}`, "").replace(/^\./, "") : problem.path;
  const leaf = field.split(".").filter((part) => !/^\d+$/.test(part)).pop();
  if (!field || !leaf || problem.message.includes(`"${leaf}"`)) return problem.message;
  return `${field}: ${problem.message}`;
}
