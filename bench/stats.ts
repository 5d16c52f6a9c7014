/** Same-run comparisons: every figure is a ratio or difference of paired samples. */

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length };
}

/** Runs `baseline` and `subject` alternately `runs` times after `warmup` unrecorded pairs. */
export async function paired(
  runs: number,
  baseline: () => Promise<number>,
  subject: () => Promise<number>,
  warmup = 1,
): Promise<{ baseline: number[]; subject: number[] }> {
  const out = { baseline: [] as number[], subject: [] as number[] };
  for (let i = 0; i < warmup + runs; i++) {
    // Alternate which goes first, so neither always runs on a warmer or colder machine.
    const first = i % 2 === 0;
    const a = first ? await baseline() : await subject();
    const b = first ? await subject() : await baseline();
    if (i < warmup) continue;
    out.baseline.push(first ? a : b);
    out.subject.push(first ? b : a);
  }
  return out;
}

export const ratios = (subject: number[], baseline: number[]) => subject.map((s, i) => s / baseline[i]);
export const differences = (subject: number[], baseline: number[]) => subject.map((s, i) => s - baseline[i]);

export const fmt = (value: number, digits = 2) => value.toFixed(digits);
export const fmtSpread = (s: Spread, digits = 2, unit = '') =>
  `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
