// Running commands: a Proc collects a running command's output line by
// line and waits for lines, steps or its end; runNative runs a program
// without ckrun to completion.
import { execa } from 'execa';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { stepOf } from './lines.js';
import { T_EXIT, T_STEP } from './paths.js';

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
