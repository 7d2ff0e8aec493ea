// Processes as /proc shows them: descendants, zombies, PIDs in namespaces,
// and kill -9 of a whole tree as a crash would.
import * as fs from 'node:fs';
import { T_GONE } from './paths.js';
import { sleep } from './proc.js';

/** Parent PID of every process, from /proc/PID/stat. */
function processTable(): Map<number, { ppid: number; state: string }> {
  const t = new Map<number, { ppid: number; state: string }>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      t.set(Number(e), { state: rest[0], ppid: Number(rest[1]) });
    } catch {
      /* gone */
    }
  }
  return t;
}

/** Every descendant of pid (children, grandchildren, …), deepest last. */
export function descendants(pid: number): number[] {
  const t = processTable();
  const kids = new Map<number, number[]>();
  for (const [p, { ppid }] of t) {
    if (!kids.has(ppid)) kids.set(ppid, []);
    kids.get(ppid)!.push(p);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    for (const c of kids.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

export function alive(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

export function isZombie(pid: number): boolean {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

/** Wait until none of the PIDs exists any more (not even as a zombie). Returns those still there. */
export async function waitGone(pids: number[], timeoutMs = T_GONE): Promise<number[]> {
  const end = Date.now() + timeoutMs;
  let left = pids.filter(alive);
  while (left.length && Date.now() < end) {
    await sleep(50);
    left = left.filter(alive);
  }
  return left;
}

export function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/**
 * SIGSTOP every process in the trees below `roots` (and the roots), looking
 * again until a look finds none it had not stopped: a stopped process forks
 * no more, so a master that respawns its workers (nginx, PostgreSQL) cannot
 * start one that escapes the kill. Returns every PID stopped.
 */
export function freezeTrees(roots: number[]): number[] {
  const stopped = new Set<number>();
  for (let round = 0; round < 100; round++) {
    const found = roots.flatMap((r) => [r, ...descendants(r)]).filter((p) => !stopped.has(p) && alive(p));
    if (!found.length) break;
    for (const p of found) {
      kill(p, 'SIGSTOP');
      stopped.add(p);
    }
  }
  return [...stopped];
}

/**
 * `kill -9` a process and everything below it (for ckrun: the program, its
 * threads, any helper), as a crash would, and wait until all of them are
 * reaped so that their PIDs are free again. The whole tree is stopped
 * first, then killed (see freezeTrees). Returns the PIDs killed.
 */
export async function killTree(root: number): Promise<number[]> {
  return killFrozen(freezeTrees([root]));
}

/** SIGKILL stopped processes and wait until they are gone. */
export async function killFrozen(pids: number[]): Promise<number[]> {
  for (const p of pids) kill(p, 'SIGKILL');
  const left = await waitGone(pids);
  if (left.length) process.stderr.write(`warning: processes still present after kill -9: ${left.join(' ')}\n`);
  return pids;
}

/** The PIDs of a process in each PID namespace, outermost first (NSpid of /proc/PID/status). */
export function nsPids(pid: number, tid?: number): number[] {
  try {
    const st = fs.readFileSync(tid === undefined ? `/proc/${pid}/status` : `/proc/${pid}/task/${tid}/status`, 'utf8');
    const m = /^NSpid:\s*(.*)$/m.exec(st);
    return m ? m[1].trim().split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

/** Thread IDs of a process as it sees them (innermost namespace). */
export function innerTids(pid: number): number[] {
  let tasks: string[] = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tasks.map((t) => nsPids(pid, Number(t)).pop()).filter((t): t is number => t !== undefined);
}

/**
 * The process below `root` (a ckrun) that is the restored program with
 * original PID `pid`: its PID in its innermost namespace is `pid`.
 */
export function findRestored(root: number, pid: number): { outer: number; levels: number } | undefined {
  for (const d of descendants(root)) {
    const ns = nsPids(d);
    if (ns.length && ns[ns.length - 1] === pid && !isZombie(d)) return { outer: d, levels: ns.length };
  }
  return undefined;
}

export interface ProcInfo {
  pid: number;
  cmdline: string[];
  exe: string | null;
}

/** Processes matching pred (the test runner and its ancestors excluded). */
export function findProcesses(pred: (p: ProcInfo) => boolean): ProcInfo[] {
  const mine = new Set<number>([process.pid]);
  const t = processTable();
  for (let p = process.ppid; p > 1 && !mine.has(p); p = t.get(p)?.ppid ?? 0) mine.add(p);
  const out: ProcInfo[] = [];
  for (const [pid, { state }] of t) {
    if (mine.has(pid) || state === 'Z') continue;
    let cmdline: string[] = [];
    let exe: string | null = null;
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue;
    }
    try {
      exe = fs.readlinkSync(`/proc/${pid}/exe`);
    } catch {
      exe = null;
    }
    const info = { pid, cmdline, exe };
    if (pred(info)) out.push(info);
  }
  return out;
}
