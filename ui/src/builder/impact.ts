/** The Publish dialog's reading of POST /api/v1/automations/{id}/impact. */

export interface ImpactStep {
  step: string;
  waiting: number;
  change: "removed" | "changed" | "unchanged";
  goes_to?: string | null;
  ends?: boolean;
}

export interface Impact {
  version_from?: number | null;
  running: number;
  steps: ImpactStep[];
  affected: number;
  ending: number;
  problems?: { step?: string | null; path: string; message: string; severity: string }[];
}

const plural = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`;

/**
 * "12 contacts wait at steps that change; 3 at `old_email`, removed, go to `pause`; 1 run will end."
 * Lines: the headline first, then one per step that changes, then the runs that end.
 */
export function impactLines(impact: Impact): string[] {
  if (impact.running === 0) return ["No contact is running in this automation: publishing moves no one."];
  const lines = [
    impact.affected === 0
      ? `${plural(impact.running, "contact is", "contacts are")} running; none waits at a step that changes.`
      : `${plural(impact.affected, "contact waits", "contacts wait")} at steps that change (of ${impact.running} running).`,
  ];
  for (const step of impact.steps) {
    if (step.change === "unchanged" || step.waiting === 0) continue;
    if (step.change === "changed") {
      lines.push(`${step.waiting} at ${step.step}: changed, re-entered with the new settings (time already waited is kept).`);
    } else if (step.ends) {
      lines.push(`${step.waiting} at ${step.step}: removed, their run ends (step_removed).`);
    } else {
      lines.push(`${step.waiting} at ${step.step}: removed, go to ${step.goes_to ?? "the end"}.`);
    }
  }
  if (impact.ending > 0) lines.push(`${plural(impact.ending, "run", "runs")} will end.`);
  return lines;
}
