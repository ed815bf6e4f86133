/**
 * Small numeric helpers for the bench: percentiles over round-trip samples, rounding for the report, and
 * the shape every figure takes in the JSON (value + unit + the workload that produced it).
 */

/** One reported figure: never a bare number (the brief: "each figure carries its unit and workload"). */
export interface Figure {
  value: number;
  unit: string;
  workload: string;
}

export function figure(value: number, unit: string, workload: string): Figure {
  return { value: round(value), unit, workload };
}

/** Rounds to 3 significant decimals for small values, to integers for large ones. */
export function round(v: number): number {
  if (!Number.isFinite(v)) return v;
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v);
  if (a >= 10) return Math.round(v * 10) / 10;
  if (a >= 1) return Math.round(v * 100) / 100;
  return Math.round(v * 1000) / 1000;
}

/** Nearest-rank percentile (p in 0..100) of samples; sorts a copy. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export interface LatencySummary { p50: number; p99: number; mean: number; min: number; max: number; n: number }

/** Summary of round-trip samples given in µs. */
export function summarize(samplesUs: readonly number[]): LatencySummary {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const s of samplesUs) {
    sum += s;
    if (s < min) min = s;
    if (s > max) max = s;
  }
  return { p50: percentile(samplesUs, 50), p99: percentile(samplesUs, 99), mean: sum / samplesUs.length, min, max, n: samplesUs.length };
}
