// The process-tree scenario (issue 3, "Tests"): a whole family of processes
//
//   launch under ckrun → checkpoint mid-work → kill -9 ckrun → nothing of
//   the session is left → restart → checkpoint mid-work → kill -9 → nothing
//   left → restart → it runs to the end → the result is exactly what an
//   uninterrupted run produces
//
// Killing ckrun alone must take the whole family with it (the program's
// parent-death signal, and every shim losing its session): /proc is
// checked for anything left of the session, by descent and by the
// session's socket name in the environment.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXAMPLES, EXAMPLE_BIN, T_GONE } from './paths.js';
import { python3 } from './examples.js';
import { type Proc, sleep, within } from './proc.js';
import { alive, descendants, isZombie } from './processes.js';
import { checkpoint, sessionSocketName } from './ckrun.js';
import { Scope } from './scope.js';
import { generations, readManifest } from './images.js';

// ---------------------------------------------------------------- examples

export const TREE_C_EXAMPLES = ['family', 'daemon', 'offsets', 'sessions', 'ptyjobs'] as const;
export type TreeCExample = (typeof TREE_C_EXAMPLES)[number];
export type TreeExample = TreeCExample | 'pool.py';

let built = false;

/** Compile the process-tree examples into examples/bin (once per test process, skipping up-to-date ones). */
export function buildTreeExamples(): void {
  if (built) return;
  fs.mkdirSync(EXAMPLE_BIN, { recursive: true });
  const common = fs.statSync(path.join(EXAMPLES, 'common.h')).mtimeMs;
  for (const name of TREE_C_EXAMPLES) {
    const src = path.join(EXAMPLES, `${name}.c`);
    const bin = path.join(EXAMPLE_BIN, name);
    if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= Math.max(common, fs.statSync(src).mtimeMs)) continue;
    const tmp = `${bin}.tmp${process.pid}`;
    try {
      execFileSync('gcc', ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`building ${name} failed:\n${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
    }
    fs.renameSync(tmp, bin);
  }
  built = true;
}

export function treeProgram(name: TreeExample, args: string[] = []): string[] {
  if (name === 'pool.py') return [python3(), path.join(EXAMPLES, 'pool.py'), ...args];
  buildTreeExamples();
  return [path.join(EXAMPLE_BIN, name), ...args];
}

// ---------------------------------------------------------------- the session in /proc

interface Left {
  pid: number;
  comm: string;
  state: string;
  /** parent, wait channel, signal masks and descriptors: why it did not die */
  detail: string;
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

function linkOr(file: string): string {
  try {
    return fs.readlinkSync(file);
  } catch {
    return '?';
  }
}

function describeLeft(pid: number): Left | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
    const state = s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
    const status = readOr(`/proc/${pid}/status`, '');
    const field = (k: string): string => status.match(new RegExp(`^${k}:\\s*(.*)$`, 'm'))?.[1] ?? '?';
    let fds = '?';
    try {
      fds = fs
        .readdirSync(`/proc/${pid}/fd`)
        .map((fd) => `${fd}->${linkOr(`/proc/${pid}/fd/${fd}`)}`)
        .join(' ');
    } catch {
      // gone or not readable
    }
    const detail =
      `ppid ${field('PPid')}, threads ${field('Threads')}, wchan ${readOr(`/proc/${pid}/wchan`, '?')}, ` +
      `SigBlk ${field('SigBlk')}, SigPnd ${field('SigPnd')}, ShdPnd ${field('ShdPnd')}, SigCgt ${field('SigCgt')}, fds ${fds}`;
    return { pid, comm, state, detail };
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) processes whose environment names the session socket of ckptDir. */
export function sessionByEnv(ckptDir: string): number[] {
  const want = `CKRUN_SOCK=${sessionSocketName(ckptDir)}`;
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (env.includes(want) && !isZombie(pid)) out.push(pid);
    } catch {
      // gone, or not readable
    }
  }
  return out;
}

/** How long the processes of a session may take to die after ckrun was killed. */
export const T_DIE = 1_000;

/**
 * kill -9 ckrun, and only ckrun: every process of its session must die
 * with it, at once (within T_DIE: not by finishing their work). Zombies
 * waiting for init do not count. Throws naming the survivors otherwise
 * (after killing them, so that the next step starts clean).
 */
export async function kill9Session(p: Proc, ckptDir: string, what: string): Promise<void> {
  const below = descendants(p.pid);
  const byEnv = sessionByEnv(ckptDir);
  try {
    process.kill(p.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  // not waitExit: that also waits for stdout to drain, which a survivor holding it open delays
  await within(p.exited, T_GONE);
  const watch = [...new Set([...below, ...byEnv])];
  const end = Date.now() + T_DIE;
  let left: number[] = [];
  for (;;) {
    left = [...new Set([...watch, ...sessionByEnv(ckptDir)])].filter((pid) => alive(pid) && !isZombie(pid));
    if (left.length === 0 || Date.now() > end) break;
    await sleep(50);
  }
  if (left.length === 0) {
    await p.waitExit(T_GONE);
    return;
  }
  const info = left.map(describeLeft).filter((x): x is Left => x !== undefined);
  for (const x of info) {
    try {
      process.kill(x.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  throw new Error(
    `${what}: kill -9 of ckrun (pid ${p.pid}) left ${info.length} process(es) of its session running after ${T_DIE / 1000} s: ` +
      info.map((x) => `${x.pid} (${x.comm}, state ${x.state}; ${x.detail})`).join(', '),
  );
}

// ---------------------------------------------------------------- generations

export interface TreeManifest {
  root: number;
  processes: { pid: number; image: string; ppid?: number; pgid?: number; sid?: number }[];
  shared_files?: [number, number][][];
  shm_owners?: [number, number, number][];
}

export function treeManifest(gen: string): TreeManifest {
  const m = readManifest(gen) as unknown as TreeManifest;
  if (!Array.isArray(m.processes)) throw new Error(`${gen}: the manifest lists no processes`);
  return m;
}

/** A complete generation number `expected` with at least `min` processes, every image present. */
export function checkTreeGeneration(gen: string, expected: number, min: number, what: string): TreeManifest {
  if (path.basename(gen) !== String(expected)) throw new Error(`${what}: expected generation ${expected}, the checkpoint made ${gen}`);
  const m = treeManifest(gen);
  if (m.processes.length < min)
    throw new Error(`${what}: generation ${gen} holds ${m.processes.length} process(es), expected at least ${min}: ${JSON.stringify(m.processes)}`);
  for (const p of m.processes) {
    if (!fs.existsSync(path.join(gen, p.image))) throw new Error(`${what}: ${gen} lacks ${p.image}, which its manifest names`);
    for (const k of ['ppid', 'pgid', 'sid'] as const)
      if (typeof p[k] !== 'number') throw new Error(`${what}: the manifest entry of process ${p.pid} has no ${k}: ${JSON.stringify(p)}`);
  }
  if (m.processes.length > 1) {
    if (!Array.isArray(m.shared_files)) throw new Error(`${what}: the manifest has no shared_files`);
    if (!Array.isArray(m.shm_owners)) throw new Error(`${what}: the manifest has no shm_owners`);
  }
  return m;
}

// ---------------------------------------------------------------- the scenario

export interface TreeStage {
  /** 0: the launched run, 1: the first restart */
  stage: 0 | 1;
  proc: Proc;
  ckpt: string;
}

export interface TreeScenario {
  name: string;
  /** argv of the program (absolute paths) */
  program: string[];
  /** where the checkpointed runs work */
  cwd: string;
  /** processes every checkpoint must hold at least */
  minProcesses: number;
  /** returns when the run has done enough work to be checkpointed (the first time, and after the first restart) */
  progress(s: TreeStage): Promise<void>;
  /** checks a generation right after it was made */
  checkGeneration?(gen: string, m: TreeManifest, stage: 0 | 1): void;
  /** checks after the checkpoint, while the checkpointed run goes on */
  runsOn?(s: TreeStage): Promise<void>;
  /** the final, uninterrupted-equivalent result; runs[0..2]: launched, restart 1, restart 2 */
  verify(runs: [Proc, Proc, Proc]): Promise<void> | void;
  /** the status the last run must exit with (default 0) */
  status?: number;
  /** more arguments for restart 1 and restart 2 */
  restartExtra?: [string[], string[]];
}

/** launch → checkpoint → kill -9 → restart → checkpoint → kill -9 → restart → verify. */
export async function treeScenario(scope: Scope, o: TreeScenario): Promise<void> {
  const ckpt = scope.ckptDir('ckpt');
  const elsewhere = scope.dir('elsewhere');

  const s1 = scope.launch({ dir: ckpt, program: o.program, cwd: o.cwd, label: `ckrun ${o.name}` });
  await o.progress({ stage: 0, proc: s1, ckpt });
  const gen1 = await checkpoint(ckpt).catch((e: Error) => {
    throw new Error(`${o.name}: the first checkpoint failed: ${e.message}\n${s1.describe()}`);
  });
  const m1 = checkTreeGeneration(gen1, 1, o.minProcesses, `${o.name}, first checkpoint`);
  o.checkGeneration?.(gen1, m1, 0);
  await o.runsOn?.({ stage: 0, proc: s1, ckpt });
  await kill9Session(s1, ckpt, `${o.name}, launched run`);

  const r1 = scope.restart({ dir: ckpt, cwd: elsewhere, label: `restart 1 of ${o.name}`, extra: o.restartExtra?.[0] });
  await o.progress({ stage: 1, proc: r1, ckpt });
  const gen2 = await checkpoint(ckpt).catch((e: Error) => {
    throw new Error(`${o.name}: the checkpoint of the restarted family failed: ${e.message}\n${r1.describe()}`);
  });
  const m2 = checkTreeGeneration(gen2, 2, o.minProcesses, `${o.name}, second checkpoint`);
  o.checkGeneration?.(gen2, m2, 1);
  await o.runsOn?.({ stage: 1, proc: r1, ckpt });
  await kill9Session(r1, ckpt, `${o.name}, first restart`);
  if (generations(ckpt).join() !== '1,2') throw new Error(`${o.name}: generations in ${ckpt}: ${generations(ckpt).join(', ')}; expected 1, 2`);

  const r2 = scope.restart({ dir: ckpt, cwd: elsewhere, label: `restart 2 of ${o.name}`, extra: o.restartExtra?.[1] });
  const exit = await r2.waitExit();
  if (exit.code !== (o.status ?? 0))
    throw new Error(`${o.name}: the second restart should run the family to its end and exit ${o.status ?? 0}\n${r2.describe()}`);
  await o.verify([s1, r1, r2]);
}

/** Waits until pred() holds or the run ends / time runs out. */
export async function until(p: Proc, pred: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (!p.running) throw new Error(`${p.label} ended while waiting for ${what}\n${p.describe()}`);
    if (Date.now() > end) throw new Error(`${p.label}: waited ${timeoutMs / 1000} s for ${what}\n${p.describe()}`);
    await sleep(50);
  }
}

/** The lines of a text file (without the last empty one); [] when it does not exist. */
export function fileLines(file: string): string[] {
  let t: string;
  try {
    t = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const lines = t.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** A group of shared_files that holds a descriptor of each of these processes. */
export function sharedGroupOf(m: TreeManifest, pids: number[], fd?: number): [number, number][] | undefined {
  return (m.shared_files ?? []).find((g) => pids.every((pid) => g.some(([p, f]) => p === pid && (fd === undefined || f === fd))));
}

// ---------------------------------------------------------------- a C project for make

/** Units of the make project (each a .c file; main.c sums them). */
export const MAKE_UNITS = 16;
const UNITS = MAKE_UNITS;

function unitValue(i: number): number {
  let s = i + 1;
  for (let k = 0; k < 1000; k++) s = (s * 31 + k * (i + 7)) % 1000003;
  return s;
}

/** A project of UNITS functions and a main that sums them; each recipe sleeps a little so the build takes a few seconds. */
export function writeProject(dir: string): string {
  for (let i = 0; i < UNITS; i++) {
    fs.writeFileSync(
      path.join(dir, `f${i}.c`),
      `/* unit ${i} */\nint f${i}(void)\n{\n\tlong s = ${i + 1};\n\tfor (long k = 0; k < 1000; k++)\n\t\ts = (s * 31 + k * ${i + 7}) % 1000003;\n\treturn (int)s;\n}\n`,
    );
  }
  const decls = Array.from({ length: UNITS }, (_, i) => `int f${i}(void);`).join('\n');
  const sum = Array.from({ length: UNITS }, (_, i) => `f${i}()`).join(' + ');
  fs.writeFileSync(path.join(dir, 'main.c'), `#include <stdio.h>\n${decls}\nint main(void)\n{\n\tprintf("sum=%ld\\n", (long)${sum});\n\treturn 0;\n}\n`);
  const objs = ['main.o', ...Array.from({ length: UNITS }, (_, i) => `f${i}.o`)].join(' ');
  fs.writeFileSync(
    path.join(dir, 'Makefile'),
    `CC = gcc\nOBJS = ${objs}\n\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n\n%.o: %.c\n\tsleep 0.4\n\t$(CC) -O2 -c -o $@ $<\n`,
  );
  let total = 0;
  for (let i = 0; i < UNITS; i++) total += unitValue(i);
  return `sum=${total}`;
}
