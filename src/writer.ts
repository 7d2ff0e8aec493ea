// The checkpoint writers: each shim forks one (through a middle process
// that exits at once, docs/design.md "Copy-on-write checkpoints") which
// writes the image while the program runs on, answers `ok` on the
// connection it inherited, and exits. Orphaned, it is re-parented to the
// nearest reaper: ckrun (a child subreaper), or, after a restart in a PID
// namespace of its own, that namespace's init below ckrun. Its shim names
// it in `saved <pid> <writer>` (its PID as the shim sees it); ckrun watches
// its exit through a pidfd, whoever reaps it, so a writer that dies fails
// the checkpoint at once and by name instead of after the answer timeout.
import { readdirSync, readFileSync } from 'node:fs';
import { orphanExit, watchExit, type ExitStatus } from './native.js';
import { isDescendant } from './peers.js';
import { nsPids } from './proctree.js';
import { signalName } from './signals.js';

/** How long the reaper thread's report of a child's exit may take to reach the event loop. */
const ORPHAN_REPORT_MS = 100;

/** Every process below root, checkpoint writers included (/proc/PID/task/TID/children). */
function allBelow(root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  const seen = new Set<number>(queue);
  while (queue.length > 0) {
    const p = queue.shift()!;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      let kids: string;
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.split(' ')) {
        const c = Number(k);
        if (!k || seen.has(c)) continue;
        seen.add(c);
        out.push(c);
        queue.push(c);
      }
    }
  }
  return out;
}

/**
 * The writer's PID in ckrun's namespace: the process below ckrun whose own
 * PID, `depth` namespaces down (the depth of the process that forked it), is
 * `inner`. Undefined when there is none (it has exited and been reaped).
 */
export function findWriter(self: number, inner: number, depth: number): number | undefined {
  if (depth <= 1) {
    const ns = nsPids(inner);
    return ns.length === 1 && isDescendant(inner, self) ? inner : undefined;
  }
  return allBelow(self).find((p) => {
    const ns = nsPids(p);
    return ns.length === depth && ns[depth - 1] === inner;
  });
}

/** "was killed by SIGKILL", "exited with status 1", or, when nobody can say, "ended". */
export function howItEnded(st: ExitStatus | undefined): string {
  if (!st) return 'ended';
  return st.signal !== null ? `was killed by ${signalName(st.signal)}` : `exited with status ${st.code}`;
}

export interface WriterWatch {
  /** The writer's PID in ckrun's namespace. */
  readonly outer: number;
  /** Stops watching (the writer answered). */
  stop(): void;
  /** Kills the writer (the checkpoint failed elsewhere: its image will not be used). */
  kill(): void;
}

/**
 * Watches the writer `inner` (its PID as the process at `depth` sees it);
 * onEnd is called once it has exited, with how it ended when that is known.
 * Undefined when it cannot be watched: it is not below ckrun (any more) and
 * ckrun cannot tell that it ended; then only the answer timeout applies.
 */
export function watchWriter(
  self: number,
  inner: number,
  depth: number,
  onEnd: (st: ExitStatus | undefined) => void,
): WriterWatch | undefined {
  const outer = findWriter(self, inner, depth);
  const watch = outer === undefined ? undefined : watchExit(outer, (st) => onEnd(st ?? orphanExit(outer)));
  if (watch && outer !== undefined) return { outer, stop: () => watch.stop(), kill: () => void watch.signal(9) };
  if (depth > 1) return undefined;
  // gone already: if it was ckrun's child, the reaper saw how, and tells the event loop a moment later
  const timer = setTimeout(() => {
    const st = orphanExit(inner);
    if (st) onEnd(st);
  }, ORPHAN_REPORT_MS);
  return { outer: inner, stop: () => clearTimeout(timer), kill: () => undefined };
}
