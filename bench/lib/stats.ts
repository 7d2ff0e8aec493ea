// Summaries of repeated measurements: median, min, max.

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
  samples: number[];
}

/** Median (mean of the middle two for an even count), min and max; null for no samples. */
export function summarize(samples: readonly number[]): Summary | null {
  const s = samples.filter((x) => Number.isFinite(x));
  if (s.length === 0) return null;
  const sorted = [...s].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, n: s.length, samples: [...s] };
}

/** a / b of two medians; null when either is missing or b is zero. */
export function ratioOfMedians(a: Summary | null, b: Summary | null): number | null {
  if (!a || !b || b.median === 0) return null;
  return a.median / b.median;
}

/** Element-wise a[i] / b[i] for the pairs both have. */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (b[i]! > 0) out.push(a[i]! / b[i]!);
  return out;
}
