// Progress on stderr.

const start = Date.now();

/** A progress line on stderr, with the seconds since the start. */
export function log(line: string): void {
  process.stderr.write(`[${((Date.now() - start) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
}

/** The message of an error (or anything thrown). */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
