// Talking to bench/programs/memloop.c under a ckrun session: its gap
// reports, timed checkpoints with the pause seen from inside, its commands.
import { checkpoint, inspect, type ImageInfo } from '../lib/ckrun.js';
import { LineProc, monoNs, sleep } from '../lib/proc.js';

export interface Gap {
  start: number;
  end: number;
  realEnd: bigint;
}

/** Collects the program's "gap" lines as they come (they are not kept as lines). */
export function collectGaps(session: LineProc): Gap[] {
  const gaps: Gap[] = [];
  session.onLine((line) => {
    if (!line.startsWith('gap ')) return false;
    const [, a, b, c] = line.split(' ');
    gaps.push({ start: Number(a), end: Number(b), realEnd: BigInt(c!) });
    return true;
  });
  return gaps;
}

/** The largest gap overlapping [from, to] (CLOCK_MONOTONIC ns); 0 when none > 100 µs. */
export function maxGap(gaps: readonly Gap[], from: number, to: number): number {
  let m = 0;
  for (const g of gaps) if (g.end > from && g.start < to) m = Math.max(m, g.end - g.start);
  return m;
}

/** The gap whose CLOCK_REALTIME span holds `at`. */
export function gapAt(gaps: readonly Gap[], at: bigint): number | null {
  let found: number | null = null;
  for (const g of gaps) {
    const len = g.end - g.start;
    const realStart = g.realEnd - BigInt(len);
    if (realStart <= at && at <= g.realEnd) found = Math.max(found ?? 0, len);
  }
  return found;
}

export function checkpointTimeoutMs(mib: number): number {
  return 60_000 + mib * 200;
}

export const BACKGROUND_WINDOW_NS = 500e6;

export interface TimedCheckpoint {
  generation: string;
  info: ImageInfo;
  /** Request sent → generation complete and on disk. */
  ns: number;
  /** The program's gap holding the image's created_ns. */
  pauseAtStopNs: number | null;
  /** The largest gap between request and completion. */
  maxGapNs: number;
  /** The largest gap in the 500 ms before the request. */
  backgroundMaxGapNs: number;
  /** The verbose log's lines written during the checkpoint. */
  log: string;
}

/** A checkpoint of the session writing to dir, timed, with the program's view of the stop. */
export async function timedCheckpoint(session: LineProc, gaps: Gap[], dir: string, mib: number): Promise<TimedCheckpoint> {
  const mark = session.stderrMark();
  const t0 = monoNs();
  const generation = await checkpoint(dir, checkpointTimeoutMs(mib));
  const t1 = monoNs();
  await sleep(150); // the program flushes its gap lines every 50 ms; ckrun logs
  const info = await inspect(generation);
  return {
    generation,
    info,
    ns: t1 - t0,
    pauseAtStopNs: gapAt(gaps, info.createdNs),
    maxGapNs: maxGap(gaps, t0, t1),
    backgroundMaxGapNs: maxGap(gaps, t0 - BACKGROUND_WINDOW_NS, t0),
    log: session.stderrSince(mark),
  };
}

/**
 * Sends a signal to memloop and resolves with the answer line starting
 * with `word` that arrives after it.
 */
export async function command(session: LineProc, pid: number, signal: 'SIGUSR1' | 'SIGUSR2', word: string, timeoutMs: number): Promise<string[]> {
  const from = session.lines.length;
  process.kill(pid, signal);
  const line = await session.waitLine((l) => l.startsWith(`${word} `), timeoutMs, `memloop's answer to ${signal}`, from);
  return line.split(' ');
}
