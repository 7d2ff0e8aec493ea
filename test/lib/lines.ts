// Reading programs' output lines: progress steps, and comparing runs.

/** The step number of a progress line `step N ...`. */
export function stepOf(line: string): number | undefined {
  const m = /^step (\d+)\b/.exec(line);
  return m ? Number(m[1]) : undefined;
}

export function lastLine(lines: string[]): string {
  return lines.length ? lines[lines.length - 1] : '';
}

/** Index k with ref[k .. k+part.length) equal to part, searching k in [from, to]; -1 if none. */
export function findSlice(ref: string[], part: string[], from = 0, to = ref.length): number {
  for (let k = Math.max(0, from); k <= Math.min(to, ref.length - part.length); k++) {
    let ok = true;
    for (let i = 0; i < part.length && ok; i++) ok = ref[k + i] === part[i];
    if (ok) return k;
  }
  return -1;
}

/** Lines [from, from+n) of a list, numbered, for failure messages. */
export function excerptAround(lines: string[], from: number, n: number): string {
  const lo = Math.max(0, from);
  return lines
    .slice(lo, lo + n)
    .map((l, i) => `  ${String(lo + i).padStart(4)}| ${l}`)
    .join('\n');
}

/** First index where two line lists differ, or -1. */
export function firstDifference(a: string[], b: string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
