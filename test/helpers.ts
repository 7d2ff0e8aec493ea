// Test harness for ckrun: builds the examples, drives the `ckrun` command
// line (bin/ckrun.js) as a user would, watches output while programs run,
// kills whole process trees with SIGKILL, and reads images on its own
// (a small CBOR codec and CRC-32C, independent of the project's code).
//
// Everything goes through the CLI; nothing here imports src/.

import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { socketNameFor } from '../src/protocol.js';

// ---------------------------------------------------------------- paths

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'ckrun') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the ckrun repository root');
    dir = up;
  }
}

export const ROOT = findRoot();
export const CKRUN = path.join(ROOT, 'bin', 'ckrun.js');
export const EXAMPLES = path.join(ROOT, 'examples');
export const EXAMPLE_BIN = path.join(EXAMPLES, 'bin');
export const NODE = process.execPath;

/** Generous limits: the suite must not hang, but a slow machine must not fail it either. */
export const T_STEP = 60_000; // for a program to reach a given output line
export const T_EXIT = 90_000; // for a program to finish
export const T_CKPT = 60_000; // for a checkpoint to complete
export const T_GONE = 15_000; // for killed processes to be reaped

// ---------------------------------------------------------------- examples

export const C_EXAMPLES = ['counter', 'threads', 'files', 'signals', 'mmap', 'dirty', 'idlers', 'fdnumbers', 'creds'] as const;
export type CExample = (typeof C_EXAMPLES)[number];
/** one program per kind of event descriptor (test/events.test.ts); built like the others, not in ALL_EXAMPLES */
export const EVENT_C_EXAMPLES = ['ev-timerfd', 'ev-signalfd', 'ev-inotify', 'ev-ptimer', 'ev-epoll'] as const;
export type EventExample = (typeof EVENT_C_EXAMPLES)[number];
/** programs of the process-fidelity tests (test/eintr.test.ts, test/memory-*.test.ts); built like the others, not in ALL_EXAMPLES */
export const PROCESS_C_EXAMPLES = ['blocking', 'sparse', 'memattrs', 'clonefiles'] as const;
export type ProcessExample = (typeof PROCESS_C_EXAMPLES)[number];
export type ExampleName = CExample | EventExample | ProcessExample | 'loop.py' | 'timer.js';
export const ALL_EXAMPLES: ExampleName[] = [...C_EXAMPLES, 'loop.py', 'timer.js'];

let built = false;

/** Compile examples/*.c into examples/bin once per test process, skipping up-to-date binaries. */
export function buildExamples(): void {
  if (built) return;
  fs.mkdirSync(EXAMPLE_BIN, { recursive: true });
  const common = fs.statSync(path.join(EXAMPLES, 'common.h')).mtimeMs;
  for (const name of [...C_EXAMPLES, ...EVENT_C_EXAMPLES, ...PROCESS_C_EXAMPLES]) {
    const src = path.join(EXAMPLES, `${name}.c`);
    const bin = path.join(EXAMPLE_BIN, name);
    const newest = Math.max(common, fs.statSync(src).mtimeMs);
    if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= newest) continue;
    const tmp = `${bin}.tmp${process.pid}`;
    try {
      execFileSync('gcc', ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      const err = e as { stderr?: Buffer };
      throw new Error(`building ${name} failed:\n${err.stderr?.toString() ?? String(e)}`);
    }
    fs.renameSync(tmp, bin);
  }
  built = true;
}

function which(cmd: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error(`${cmd} not found in PATH`);
}

export function python3(): string {
  return which('python3');
}

/** The argv that runs an example (absolute paths throughout). */
export function exampleProgram(name: ExampleName, args: string[] = []): string[] {
  if (name === 'loop.py') return [python3(), path.join(EXAMPLES, 'loop.py'), ...args];
  if (name === 'timer.js') return [NODE, path.join(EXAMPLES, 'timer.js'), ...args];
  buildExamples();
  return [path.join(EXAMPLE_BIN, name), ...args];
}

/** Deterministic contents for the input file of the `files` example. */
export function inputBytes(size = 20_000): Buffer {
  const b = Buffer.alloc(size);
  let x = 0x2545f491;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** The pattern the `mmap` example writes into both of its files at start. */
export function mmapPattern(pages = 256): Buffer {
  const b = Buffer.alloc(pages * 4096);
  for (let p = 0; p < pages; p++) for (let i = 0; i < 4096; i++) b[p * 4096 + i] = (p * 7 + i * 13 + 1) & 0xff;
  return b;
}

// ---------------------------------------------------------------- output lines

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

// ---------------------------------------------------------------- processes

interface ChildLike extends Promise<unknown> {
  pid?: number;
  stdout: Readable | null;
  stderr: Readable | null;
  stdin: Writable | null;
  once(event: 'exit', fn: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
}

export interface Exit {
  code: number | null;
  signal: string | null;
  error?: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  input?: string;
  label?: string;
}

/**
 * A running command (usually ckrun) whose output is collected line by line
 * while it runs. `pid` is the PID of the command itself (for ckrun: the
 * launcher/coordinator).
 */
export class Proc {
  readonly label: string;
  readonly argv: string[];
  readonly pid: number;
  readonly started = Date.now();
  stdout = '';
  stderr = '';
  /** complete stdout lines so far */
  lines: string[] = [];
  maxStep = 0;
  exit: Exit | undefined;
  readonly exited: Promise<Exit>;
  /** resolves once the command exited and its stdout/stderr are drained (or a grace time passed) */
  readonly done: Promise<Exit>;
  private partial = '';
  private listeners = new Set<() => void>();

  constructor(file: string, args: string[], opts: RunOptions = {}) {
    this.argv = [file, ...args];
    this.label = opts.label ?? path.basename(args[0] ?? file);
    const child = execa(file, args, {
      cwd: opts.cwd,
      env: opts.env,
      extendEnv: true,
      reject: false,
      buffer: false,
      stripFinalNewline: false,
      ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'pipe' as const }),
    }) as unknown as ChildLike;
    this.pid = child.pid ?? -1;
    const ends: Promise<void>[] = [];
    for (const [stream, isOut] of [
      [child.stdout, true],
      [child.stderr, false],
    ] as const) {
      if (!stream) continue;
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (isOut ? this.onStdout(chunk) : this.onStderr(chunk)));
      ends.push(
        new Promise<void>((res) => {
          stream.once('end', () => res());
          stream.once('close', () => res());
          stream.once('error', () => res());
        }),
      );
    }
    this.exited = new Promise<Exit>((res) => {
      child.once('exit', (code, signal) => res({ code, signal }));
      // spawn failures never emit 'exit'
      child.then(
        (r) => {
          const rr = r as { failed?: boolean; exitCode?: number; signal?: string; message?: string };
          if (rr.failed && rr.exitCode === undefined && !rr.signal)
            res({ code: null, signal: null, error: rr.message ?? 'spawn failed' });
        },
        (e: unknown) => res({ code: null, signal: null, error: String(e) }),
      );
    }).then((x) => {
      this.exit = x;
      this.notify();
      return x;
    });
    const drained = Promise.all(ends);
    this.done = this.exited.then(async (x) => {
      // a program that outlives ckrun may keep the pipe open; do not wait for it forever
      await within(drained, 5000);
      this.notify();
      return x;
    });
  }

  private onStdout(chunk: string): void {
    this.stdout += chunk;
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      this.lines.push(line);
      const s = stepOf(line);
      if (s !== undefined && s > this.maxStep) this.maxStep = s;
    }
    this.notify();
  }

  private onStderr(chunk: string): void {
    this.stderr += chunk;
    this.notify();
  }

  private notify(): void {
    for (const fn of [...this.listeners]) fn();
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Human-readable state for failure messages: command, status, the last output. */
  describe(maxLines = 25): string {
    const st = this.exit
      ? this.exit.error
        ? `failed to start: ${this.exit.error}`
        : `exited with ${this.exit.signal ? `signal ${this.exit.signal}` : `status ${this.exit.code}`}`
      : 'still running';
    const tail = this.lines.slice(-maxLines);
    const err = this.stderr.length > 4000 ? '…' + this.stderr.slice(-4000) : this.stderr;
    return [
      `[${this.label}] ${this.argv.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`,
      `  ${st} after ${((Date.now() - this.started) / 1000).toFixed(1)} s; ${this.lines.length} stdout lines`,
      `  stdout${this.lines.length > maxLines ? ` (last ${maxLines})` : ''}:`,
      ...tail.map((l) => `    | ${l}`),
      ...(this.partial ? [`    | ${this.partial}⏎(no newline)`] : []),
      `  stderr:`,
      ...(err ? err.trimEnd().split('\n').map((l) => `    ! ${l}`) : ['    (empty)']),
    ].join('\n');
  }

  /**
   * Wait until pred() holds (checked at every output and at exit). Fails
   * with the output so far when the command exits first or time runs out.
   */
  waitFor(pred: () => boolean, what: string, timeoutMs = T_STEP): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let finished = false;
      const finish = (err?: Error) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.listeners.delete(check);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        if (pred()) return finish();
        if (this.exit !== undefined) {
          // give the pipes a moment to deliver the last lines
          void this.done.then(() =>
            pred() ? finish() : finish(new Error(`${this.label} ended before ${what}\n${this.describe()}`)),
          );
        }
      };
      const timer = setTimeout(
        () => finish(new Error(`${this.label}: waited ${timeoutMs / 1000} s for ${what}\n${this.describe()}`)),
        timeoutMs,
      );
      this.listeners.add(check);
      check();
    });
  }

  waitForLine(match: string | RegExp, timeoutMs = T_STEP): Promise<string> {
    const test = (l: string) => (typeof match === 'string' ? l === match : match.test(l));
    let found = '';
    return this.waitFor(
      () => {
        const l = this.lines.find(test);
        if (l !== undefined) found = l;
        return l !== undefined;
      },
      `a line ${typeof match === 'string' ? JSON.stringify(match) : String(match)}`,
      timeoutMs,
    ).then(() => found);
  }

  /** Wait until a line `step M` with M >= n has been printed. */
  waitForStep(n: number, timeoutMs = T_STEP): Promise<number> {
    return this.waitFor(() => this.maxStep >= n, `step ${n}`, timeoutMs).then(() => this.maxStep);
  }

  /** Wait until the command exits and its output is collected. */
  async waitExit(timeoutMs = T_EXIT): Promise<Exit> {
    const r = await within(this.done, timeoutMs);
    if (!r) throw new Error(`${this.label}: did not finish within ${timeoutMs / 1000} s\n${this.describe()}`);
    return r;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** p's value, or undefined if it takes longer than ms (the timer never keeps the process alive). */
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

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

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/**
 * `kill -9` a process and everything below it (for ckrun: the program, its
 * threads, any helper), as a crash would, and wait until all of them are
 * reaped so that their PIDs are free again. Returns the PIDs killed.
 */
export async function killTree(root: number): Promise<number[]> {
  const killed = new Set<number>();
  for (let round = 0; round < 3; round++) {
    const below = descendants(root).filter((p) => !killed.has(p));
    const targets = [...below.reverse(), ...(killed.has(root) ? [] : [root])];
    if (!targets.length) break;
    for (const p of targets) {
      kill(p, 'SIGKILL');
      killed.add(p);
    }
    await sleep(20);
  }
  const left = await waitGone([...killed]);
  if (left.length) process.stderr.write(`warning: processes still present after kill -9: ${left.join(' ')}\n`);
  return [...killed];
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

// ---------------------------------------------------------------- ckrun

/** Start `ckrun [--dir DIR] [--interval S] [--signal SIG] [EXTRA...] -- PROGRAM...`. */
export function launch(o: {
  program: string[];
  dir?: string;
  interval?: number;
  signal?: string;
  /** more options for ckrun (before `--`) */
  extra?: string[];
  cwd?: string;
  env?: Record<string, string>;
  input?: string;
  label?: string;
}): Proc {
  const args = [CKRUN];
  if (o.dir !== undefined) args.push('--dir', o.dir);
  if (o.interval !== undefined) args.push('--interval', String(o.interval));
  if (o.signal !== undefined) args.push('--signal', o.signal);
  args.push(...(o.extra ?? []), '--', ...o.program);
  return new Proc(NODE, args, { cwd: o.cwd, env: o.env, input: o.input, label: o.label ?? `ckrun ${path.basename(o.program[0])}` });
}

/** The command users run (bin/ckrun): its `restart` starts in the restore host (preload/front.c). */
export const CKRUN_SH = path.join(ROOT, 'bin', 'ckrun');

/** Start `ckrun restart [--dir DIR | IMAGE]`. */
export function restart(o: {
  dir?: string;
  image?: string;
  cwd?: string;
  label?: string;
  extra?: string[];
  /** through bin/ckrun, whose restore host restores before node starts */
  front?: boolean;
  env?: Record<string, string>;
}): Proc {
  const args = o.front ? ['restart'] : [CKRUN, 'restart'];
  if (o.dir !== undefined) args.push('--dir', o.dir);
  if (o.image !== undefined) args.push(o.image);
  args.push(...(o.extra ?? []));
  return new Proc(o.front ? CKRUN_SH : NODE, args, { cwd: o.cwd, env: o.env, label: o.label ?? 'ckrun restart' });
}

export interface CliResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  describe(): string;
}

/** Run `ckrun ARGS...` to completion (with front: through bin/ckrun, see restart()). */
export async function ckrun(
  args: string[],
  o: { cwd?: string; input?: string; timeout?: number; env?: Record<string, string>; front?: boolean } = {},
): Promise<CliResult> {
  const r = (await execa(o.front ? CKRUN_SH : NODE, o.front ? args : [CKRUN, ...args], {
    cwd: o.cwd,
    env: o.env,
    input: o.input ?? '',
    reject: false,
    timeout: o.timeout ?? T_CKPT,
    stripFinalNewline: false,
  })) as unknown as {
    exitCode?: number;
    signal?: string;
    stdout: string;
    stderr: string;
    timedOut: boolean;
  };
  const res: CliResult = {
    code: r.exitCode ?? null,
    signal: r.signal ?? null,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    timedOut: r.timedOut,
    describe() {
      return [
        `ckrun ${args.join(' ')}`,
        `  ${res.timedOut ? 'TIMED OUT' : res.signal ? `killed by ${res.signal}` : `exit status ${res.code}`}`,
        `  stdout: ${res.stdout.trimEnd() || '(empty)'}`,
        `  stderr: ${res.stderr.trimEnd() || '(empty)'}`,
      ].join('\n');
    },
  };
  return res;
}

/** Complete generations in DIR (numbered directories holding manifest.cbor), ascending. */
export function generations(dir: string): number[] {
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+$/.test(e) && fs.existsSync(path.join(dir, e, 'manifest.cbor')))
    .map(Number)
    .sort((a, b) => a - b);
}

/** Turn what `ckrun checkpoint` printed (a generation directory or an image in it) into the generation directory. */
function generationOf(printed: string, cwd: string): string {
  const p = path.resolve(cwd, printed);
  if (fs.existsSync(path.join(p, 'manifest.cbor'))) return p;
  if (fs.existsSync(p) && fs.statSync(p).isFile() && fs.existsSync(path.join(path.dirname(p), 'manifest.cbor')))
    return path.dirname(p);
  throw new Error(`ckrun checkpoint printed ${JSON.stringify(printed)}, which is no complete generation (no manifest.cbor)`);
}

/** `ckrun checkpoint --dir DIR`: must exit 0 and print the new generation; returns its directory. */
export async function checkpoint(dir: string | undefined, o: { cwd?: string } = {}): Promise<string> {
  const r = await ckrun(dir === undefined ? ['checkpoint'] : ['checkpoint', '--dir', dir], { cwd: o.cwd });
  if (r.code !== 0) throw new Error(`checkpoint failed:\n${r.describe()}`);
  const printed = r.stdout.trim().split('\n').filter(Boolean).pop() ?? '';
  if (!printed) throw new Error(`ckrun checkpoint printed no path:\n${r.describe()}`);
  return generationOf(printed, o.cwd ?? process.cwd());
}

/** Wait for a complete generation in DIR that is not in `before`; returns its directory. */
export async function waitForGeneration(dir: string, before: number[], proc?: Proc, timeoutMs = T_CKPT): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const fresh = generations(dir).filter((g) => !before.includes(g));
    if (fresh.length) return path.join(dir, String(fresh[fresh.length - 1]));
    if (Date.now() > end)
      throw new Error(
        `no new generation in ${dir} within ${timeoutMs / 1000} s (have: ${generations(dir).join(', ') || 'none'}; entries: ${safeList(dir)})` +
          (proc ? `\n${proc.describe()}` : ''),
      );
    if (proc && !proc.running) {
      await sleep(200);
      const again = generations(dir).filter((g) => !before.includes(g));
      if (again.length) return path.join(dir, String(again[again.length - 1]));
      throw new Error(`ckrun ended while waiting for a checkpoint in ${dir}\n${proc.describe()}`);
    }
    await sleep(50);
  }
}

function safeList(dir: string): string {
  try {
    return fs.readdirSync(dir).join(' ') || '(empty)';
  } catch (e) {
    return String(e);
  }
}

/** `kill -USR2 <ckrun>` (or another signal), then wait for the new generation. */
export async function checkpointBySignal(proc: Proc, dir: string, sig: NodeJS.Signals = 'SIGUSR2'): Promise<string> {
  const before = generations(dir);
  process.kill(proc.pid, sig);
  return waitForGeneration(dir, before, proc);
}

export interface Manifest {
  format?: string;
  version?: number;
  generation?: number;
  root?: number;
  argv?: string[];
  cwd?: string;
  processes?: { pid: number; image: string; bytes?: number; pause_ns?: number }[];
  [k: string]: unknown;
}

/** The manifest of a generation: version 2 is framed as `[h'<map>', crc32c]` (checked here), version 1 the bare map. */
export function readManifest(genDir: string): Manifest {
  const buf = fs.readFileSync(path.join(genDir, 'manifest.cbor'));
  const v = cborDecode(buf).value;
  if (Array.isArray(v)) {
    if (v.length !== 2 || !Buffer.isBuffer(v[0]) || crc32c(v[0]) !== Number(v[1])) throw new Error(`${genDir}: the manifest's frame or checksum is bad`);
    return toPlain(cborDecode(v[0]).value) as Manifest;
  }
  return toPlain(v) as Manifest;
}

/** The image files of a generation (from its manifest, else every *.ckpt in it). */
export function imagesOf(genDir: string): string[] {
  try {
    const m = readManifest(genDir);
    if (Array.isArray(m.processes) && m.processes.length)
      return m.processes.map((p) => path.join(genDir, String(p.image)));
  } catch {
    /* fall back */
  }
  return fs
    .readdirSync(genDir)
    .filter((f) => f.endsWith('.ckpt'))
    .map((f) => path.join(genDir, f));
}

/** The name ckrun gives the session socket of DIR (ckrun's own function: a copy went stale once). */
export function sessionSocketName(dir: string): string {
  return socketNameFor(fs.realpathSync(dir));
}

// ---------------------------------------------------------------- native runs

export interface NativeRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  lines: string[];
}

/** Run a program without ckrun, to completion. */
export async function runNative(argv: string[], o: { cwd?: string; timeout?: number } = {}): Promise<NativeRun> {
  const r = (await execa(argv[0], argv.slice(1), {
    cwd: o.cwd,
    reject: false,
    timeout: o.timeout ?? T_EXIT,
    stripFinalNewline: false,
    input: '',
  })) as unknown as { exitCode?: number; signal?: string; stdout: string; stderr: string };
  const stdout = String(r.stdout ?? '');
  const lines = stdout.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return { code: r.exitCode ?? null, signal: r.signal ?? null, stdout, stderr: String(r.stderr ?? ''), lines };
}

// ---------------------------------------------------------------- scope: temp dirs and cleanup

/**
 * Temporary directories under os.tmpdir() and processes of one test, all
 * removed/killed by cleanup() (also the programs ckrun started, found by
 * their descent, their command line, or their session socket).
 */
export class Scope {
  readonly dirs: string[] = [];
  readonly procs: Proc[] = [];
  readonly ckptDirs: string[] = [];
  readonly root: string;

  constructor(name: string) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `ckrun-test-${name.replace(/[^a-z0-9]+/gi, '-')}-`));
    this.dirs.push(this.root);
  }

  /** A fresh empty directory inside this scope. */
  dir(name: string): string {
    const d = path.join(this.root, name);
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  /** A directory for checkpoints (tracked so that cleanup finds its session's processes). */
  ckptDir(name = 'ckpt'): string {
    const d = this.dir(name);
    this.ckptDirs.push(d);
    return d;
  }

  track<T extends Proc>(p: T): T {
    this.procs.push(p);
    return p;
  }

  launch(o: Parameters<typeof launch>[0]): Proc {
    return this.track(launch(o));
  }

  restart(o: Parameters<typeof restart>[0]): Proc {
    return this.track(restart(o));
  }

  /** kill -9 the process tree of p, and wait until its output is collected. */
  async kill9(p: Proc): Promise<number[]> {
    const pids = await killTree(p.pid);
    await p.waitExit(T_GONE);
    return pids;
  }

  /** Processes (other than tracked ckruns) that belong to this scope's sessions. */
  strays(): ProcInfo[] {
    const socks = this.ckptDirs.filter((d) => fs.existsSync(d)).map((d) => `CKRUN_SOCK=${sessionSocketName(d)}`);
    return findProcesses((p) => {
      if (p.cmdline.some((a) => a.includes(this.root))) return true;
      if (!socks.length) return false;
      try {
        const env = fs.readFileSync(`/proc/${p.pid}/environ`, 'utf8').split('\0');
        return env.some((e) => socks.includes(e));
      } catch {
        return false;
      }
    });
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) if (p.running || descendants(p.pid).length) await killTree(p.pid);
    let strays: ProcInfo[] = [];
    try {
      strays = this.strays();
    } catch {
      /* best effort */
    }
    for (const s of strays) kill(s.pid, 'SIGKILL');
    if (strays.length) await waitGone(strays.map((s) => s.pid));
    if (!process.env.CKRUN_TEST_KEEP)
      for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
    else process.stderr.write(`kept ${this.root}\n`);
  }
}

// ---------------------------------------------------------------- CRC-32C

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli), as used by the image format. crc32c("123456789") = 0xe3069283. */
export function crc32c(buf: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < buf.length; i++) c = CRC32C_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------- CBOR (RFC 8949), small and strict

export type Cbor = number | bigint | string | Buffer | boolean | null | undefined | Cbor[] | { [k: string]: Cbor };

class CborError extends Error {}

/** Decode one CBOR item at offset; returns it and where it ends. Big integers come back as bigint. */
export function cborDecode(buf: Buffer, offset = 0): { value: Cbor; end: number } {
  let o = offset;
  const need = (n: number) => {
    if (o + n > buf.length) throw new CborError(`CBOR: truncated at byte ${o}`);
  };
  const arg = (info: number): number | bigint | null => {
    if (info < 24) return info;
    if (info === 24) {
      need(1);
      return buf[o++];
    }
    if (info === 25) {
      need(2);
      const v = buf.readUInt16BE(o);
      o += 2;
      return v;
    }
    if (info === 26) {
      need(4);
      const v = buf.readUInt32BE(o);
      o += 4;
      return v;
    }
    if (info === 27) {
      need(8);
      const v = buf.readBigUInt64BE(o);
      o += 8;
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    if (info === 31) return null;
    throw new CborError(`CBOR: bad additional info ${info} at byte ${o - 1}`);
  };
  const BREAK = Symbol('break');
  const item = (): Cbor | typeof BREAK => {
    need(1);
    const ib = buf[o++];
    const major = ib >> 5;
    const info = ib & 31;
    if (major === 7) {
      switch (info) {
        case 20:
          return false;
        case 21:
          return true;
        case 22:
          return null;
        case 23:
          return undefined;
        case 25: {
          need(2);
          const h = buf.readUInt16BE(o);
          o += 2;
          const e = (h >> 10) & 0x1f;
          const m = h & 0x3ff;
          const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (m + 1024) * 2 ** (e - 25);
          return h & 0x8000 ? -v : v;
        }
        case 26: {
          need(4);
          const v = buf.readFloatBE(o);
          o += 4;
          return v;
        }
        case 27: {
          need(8);
          const v = buf.readDoubleBE(o);
          o += 8;
          return v;
        }
        case 31:
          return BREAK;
        default:
          if (info < 24) return info; // simple value
          if (info === 24) {
            need(1);
            return buf[o++];
          }
          throw new CborError(`CBOR: bad simple value at byte ${o - 1}`);
      }
    }
    const a = arg(info);
    switch (major) {
      case 0:
        if (a === null) throw new CborError('CBOR: indefinite integer');
        return a;
      case 1:
        if (a === null) throw new CborError('CBOR: indefinite integer');
        return typeof a === 'bigint' ? -1n - a : -1 - a;
      case 2:
      case 3: {
        let bytes: Buffer;
        if (a === null) {
          const parts: Buffer[] = [];
          for (;;) {
            const c = item();
            if (c === BREAK) break;
            if (!Buffer.isBuffer(c) && typeof c !== 'string') throw new CborError('CBOR: bad chunk');
            parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c, 'utf8'));
          }
          bytes = Buffer.concat(parts);
        } else {
          const n = Number(a);
          need(n);
          bytes = Buffer.from(buf.subarray(o, o + n));
          o += n;
        }
        return major === 2 ? bytes : bytes.toString('utf8');
      }
      case 4: {
        const out: Cbor[] = [];
        if (a === null) {
          for (;;) {
            const c = item();
            if (c === BREAK) break;
            out.push(c);
          }
        } else {
          for (let i = 0; i < Number(a); i++) {
            const c = item();
            if (c === BREAK) throw new CborError('CBOR: unexpected break');
            out.push(c);
          }
        }
        return out;
      }
      case 5: {
        const out: { [k: string]: Cbor } = {};
        for (let i = 0; a === null || i < Number(a); i++) {
          const k = item();
          if (k === BREAK) {
            if (a === null) break;
            throw new CborError('CBOR: unexpected break');
          }
          const v = item();
          if (v === BREAK) throw new CborError('CBOR: unexpected break');
          out[Buffer.isBuffer(k) ? k.toString('hex') : String(k)] = v;
        }
        return out;
      }
      case 6: {
        const inner = item();
        if (inner === BREAK) throw new CborError('CBOR: unexpected break');
        if ((a === 2 || a === 3) && Buffer.isBuffer(inner)) {
          const n = inner.length ? BigInt('0x' + inner.toString('hex')) : 0n;
          return a === 2 ? n : -1n - n;
        }
        return inner;
      }
    }
    throw new CborError('CBOR: unreachable');
  };
  const v = item();
  if (v === BREAK) throw new CborError('CBOR: unexpected break');
  return { value: v, end: o };
}

function head(major: number, n: number | bigint): Buffer {
  const v = BigInt(n);
  if (v < 24n) return Buffer.from([(major << 5) | Number(v)]);
  if (v < 0x100n) return Buffer.from([(major << 5) | 24, Number(v)]);
  if (v < 0x10000n) {
    const b = Buffer.alloc(3);
    b[0] = (major << 5) | 25;
    b.writeUInt16BE(Number(v), 1);
    return b;
  }
  if (v < 0x100000000n) {
    const b = Buffer.alloc(5);
    b[0] = (major << 5) | 26;
    b.writeUInt32BE(Number(v), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = (major << 5) | 27;
  b.writeBigUInt64BE(v, 1);
  return b;
}

/** Encode (integers shortest, maps with text keys). Non-integer numbers become float64. */
export function cborEncode(v: Cbor): Buffer {
  if (v === false) return Buffer.from([0xf4]);
  if (v === true) return Buffer.from([0xf5]);
  if (v === null) return Buffer.from([0xf6]);
  if (v === undefined) return Buffer.from([0xf7]);
  if (typeof v === 'bigint') return v >= 0n ? head(0, v) : head(1, -1n - v);
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v >= 0 ? head(0, v) : head(1, -1 - v);
    const b = Buffer.alloc(9);
    b[0] = 0xfb;
    b.writeDoubleBE(v, 1);
    return b;
  }
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    return Buffer.concat([head(3, s.length), s]);
  }
  if (Buffer.isBuffer(v)) return Buffer.concat([head(2, v.length), v]);
  if (Array.isArray(v)) return Buffer.concat([head(4, v.length), ...v.map(cborEncode)]);
  const keys = Object.keys(v);
  return Buffer.concat([head(5, keys.length), ...keys.flatMap((k) => [cborEncode(k), cborEncode(v[k])])]);
}

/** bigint → number where exact, recursively (for comparisons and JSON). */
export function toPlain(v: unknown): unknown {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Buffer.isBuffer(v)) return v;
  if (Array.isArray(v)) return v.map(toPlain);
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = toPlain(x);
    return o;
  }
  return v;
}

// ---------------------------------------------------------------- images (docs/image-format.md)

export const HEADER_BLOCK = 4096;

export interface ImageHeader {
  magic: string;
  version: number;
  data_offset: number;
  data_length: number;
  meta_offset: number;
  meta_length: number;
  meta_crc: number;
  file_length: number;
  [k: string]: Cbor;
}

export interface HeaderBlock {
  header: ImageHeader;
  headerBytes: Buffer;
  crc: number;
  crcOk: boolean;
}

function readAt(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    const n = fs.readSync(fd, b, 0, length, offset);
    return b.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** Decode the header block `[h'<header map>', crc32c]` at the start of an image. */
export function readHeaderBlock(file: string): HeaderBlock {
  const block = readAt(file, 0, HEADER_BLOCK);
  const { value } = cborDecode(block);
  if (!Array.isArray(value) || value.length !== 2 || !Buffer.isBuffer(value[0]))
    throw new Error(`${file}: header block is not [bytes, crc]`);
  const headerBytes = value[0];
  const crc = Number(value[1]);
  const header = toPlain(cborDecode(headerBytes).value) as ImageHeader;
  return { header, headerBytes, crc, crcOk: crc32c(headerBytes) === crc };
}

/** Re-encode the header map (after mutate), with a correct CRC, padded to the 4096-byte block. */
export function rewriteHeader(file: string, mutate: (h: ImageHeader) => void): void {
  const { header } = readHeaderBlock(file);
  mutate(header);
  const bytes = cborEncode(header as unknown as Cbor);
  const block = cborEncode([bytes, crc32c(bytes)]);
  if (block.length > HEADER_BLOCK) throw new Error('header block too large');
  const padded = Buffer.alloc(HEADER_BLOCK);
  block.copy(padded);
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, padded, 0, HEADER_BLOCK, 0);
  } finally {
    fs.closeSync(fd);
  }
}

/** Flip all bits of the byte at offset. */
export function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    if (fs.readSync(fd, b, 0, 1, offset) !== 1) throw new Error(`${file}: no byte at ${offset}`);
    b[0] ^= 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

export interface Image {
  file: string;
  size: number;
  header: ImageHeader;
  headerCrcOk: boolean;
  metaCrcOk: boolean;
  /** the metadata map, bigints kept where they do not fit a double exactly */
  meta: Record<string, unknown>;
}

/** Read header and metadata of an image (checksums reported, not enforced). */
export function readImage(file: string): Image {
  const hb = readHeaderBlock(file);
  const h = hb.header;
  const metaBytes = readAt(file, Number(h.meta_offset), Number(h.meta_length));
  const meta = toPlain(cborDecode(metaBytes).value) as Record<string, unknown>;
  return {
    file,
    size: fs.statSync(file).size,
    header: h,
    headerCrcOk: hb.crcOk,
    metaCrcOk: crc32c(metaBytes) === Number(h.meta_crc),
    meta,
  };
}

export interface Run {
  address: number | bigint;
  pages: number;
  offset: number;
  crc: number;
}

/** The saved page runs of every memory region of an image. */
export function runsOf(img: Image): Run[] {
  const out: Run[] = [];
  for (const r of (img.meta.memory as Record<string, unknown>[] | undefined) ?? []) {
    for (const run of (r.runs as unknown[][] | undefined) ?? []) {
      out.push({
        address: run[0] as number | bigint,
        pages: Number(run[1]),
        offset: Number(run[2]),
        crc: Number(run[3]),
      });
    }
  }
  return out;
}

/** Bytes of the file at [offset, offset+length). */
export function readBytes(file: string, offset: number, length: number): Buffer {
  return readAt(file, offset, length);
}
