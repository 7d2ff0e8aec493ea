// Child processes for the benchmark: commands run to completion with a
// timeout, long-running processes read line by line, process trees found
// through /proc and killed with SIGKILL. Every child is tracked so that an
// exit (normal, error or signal) kills whatever is left.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const live = new Set<number>();

/** CLOCK_MONOTONIC in ns (libuv's hrtime is CLOCK_MONOTONIC on Linux). */
export function monoNs(): number {
  return Number(process.hrtime.bigint());
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Parent PID of every process, from /proc/PID/stat. */
function parentMap(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  return children;
}

/** Every descendant of pid, parents before their children. */
export function descendants(pid: number): number[] {
  const children = parentMap();
  const out: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

function kill9(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/** SIGKILL to pid's descendants (deepest first), then to pid. Synchronous. */
export function killTreeNow(pid: number): void {
  for (const p of descendants(pid).reverse()) kill9(p);
  kill9(pid);
}

export function pidExists(pid: number): boolean {
  try {
    readFileSync(`/proc/${pid}/stat`);
    return true;
  } catch {
    return false;
  }
}

/** Waits until /proc/PID is gone; false after timeoutMs. */
export async function waitPidGone(pid: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (pidExists(pid)) {
    if (Date.now() > end) return false;
    await sleep(5);
  }
  return true;
}

/** Kills every tracked child's tree; installed for exit and fatal signals. */
export function killAllTracked(): void {
  for (const pid of live) killTreeNow(pid);
  live.clear();
}

let cleanupInstalled = false;

export function installCleanup(onSignal: () => void): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', killAllTracked);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: killing every child process and cleaning up\n`);
      killAllTracked();
      onSignal();
      process.exit(130);
    });
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOpts {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The name used in error messages (default: the command). */
  label?: string;
}

/** A running child whose stdout is read line by line and whose stderr is kept. */
export class LineProc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly lines: string[] = [];
  stderr = '';
  /** Characters of stderr received so far (stderr itself keeps only the last 512 KiB). */
  private stderrTotal = 0;
  readonly exited: Promise<ExitInfo>;
  readonly label: string;
  exitInfo: ExitInfo | undefined;
  /** Lines are kept in `lines` unless a listener returns true (consumed). */
  private listeners: ((line: string) => boolean)[] = [];
  private partial = '';
  private wakers = new Set<() => void>();

  constructor(
    readonly command: string,
    readonly args: string[],
    opts: SpawnOpts = {},
  ) {
    this.label = opts.label ?? command;
    this.child = spawn(command, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    if (this.child.pid === undefined) throw new Error(`cannot start ${command}`);
    this.pid = this.child.pid;
    live.add(this.pid);
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => this.onData(chunk));
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      this.stderr += chunk;
      this.stderrTotal += chunk.length;
      if (this.stderr.length > 1 << 20) this.stderr = this.stderr.slice(-(1 << 19));
      this.wake();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.stderr += `\n(spawn error: ${e.message})`;
      });
      this.child.on('close', (code, signal) => {
        live.delete(this.pid);
        this.exitInfo = { code, signal };
        this.wake();
        resolve(this.exitInfo);
      });
    });
  }

  /** Calls fn for every line from now on; fn returns true to consume the line. */
  onLine(fn: (line: string) => boolean): void {
    this.listeners.push(fn);
  }

  private onData(chunk: string): void {
    this.partial += chunk;
    let i: number;
    while ((i = this.partial.indexOf('\n')) >= 0) {
      const line = this.partial.slice(0, i);
      this.partial = this.partial.slice(i + 1);
      let consumed = false;
      for (const fn of this.listeners) consumed = fn(line) || consumed;
      if (!consumed) this.lines.push(line);
    }
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  /** A mark for stderrSince. */
  stderrMark(): number {
    return this.stderrTotal;
  }

  /** What stderr received since mark (as much of it as is kept). */
  stderrSince(mark: number): string {
    const back = this.stderrTotal - mark;
    return back >= this.stderr.length ? this.stderr : this.stderr.slice(this.stderr.length - back);
  }

  /** The last lines of stderr, for error messages. */
  stderrTail(n = 8): string {
    return this.stderr.trim().split('\n').slice(-n).join('\n');
  }

  /**
   * Resolves with the first kept line (from index `from` on) matching pred;
   * rejects when the process exits first or after timeoutMs.
   */
  waitLine(pred: (line: string) => boolean, timeoutMs: number, what: string, from = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      let idx = from;
      const finish = (err: Error | null, line?: string): void => {
        clearTimeout(timer);
        this.wakers.delete(check);
        if (err) reject(err);
        else resolve(line!);
      };
      const check = (): void => {
        for (; idx < this.lines.length; idx++) if (pred(this.lines[idx]!)) return finish(null, this.lines[idx]!);
        if (this.exitInfo)
          finish(
            new Error(
              `${what}: ${this.label} exited (${this.exitInfo.signal ?? `status ${this.exitInfo.code}`}) first` +
                (this.stderr.trim() ? `; its stderr ends with:\n${this.stderrTail()}` : ''),
            ),
          );
      };
      const timer = setTimeout(
        () => finish(new Error(`${what}: nothing within ${timeoutMs} ms` + (this.stderr.trim() ? `; stderr:\n${this.stderrTail()}` : ''))),
        timeoutMs,
      );
      this.wakers.add(check);
      check();
    });
  }

  /** Waits for the exit; SIGKILLs the tree after timeoutMs. */
  async waitExit(timeoutMs: number): Promise<ExitInfo> {
    const timer = setTimeout(() => killTreeNow(this.pid), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Ends it: SIGKILL to its descendants first (a ckrun session then reaps
   * the program and exits on its own), then to the process itself if it
   * has not exited within graceMs.
   */
  async kill(graceMs = 5000): Promise<ExitInfo> {
    if (this.exitInfo) return this.exitInfo;
    for (const p of descendants(this.pid).reverse()) kill9(p);
    const timer = setTimeout(() => killTreeNow(this.pid), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

export interface RunResult extends ExitInfo {
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, ns. */
  ns: number;
}

/** Runs a command to completion; its tree is SIGKILLed after timeoutMs (the result says so). */
export async function run(command: string, args: string[], timeoutMs: number, opts: SpawnOpts = {}): Promise<RunResult> {
  const t0 = monoNs();
  const p = new LineProc(command, args, opts);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killTreeNow(p.pid);
  }, timeoutMs);
  const exit = await p.exited;
  const ns = monoNs() - t0;
  clearTimeout(timer);
  const stdout = p.lines.join('\n') + (p.lines.length ? '\n' : '');
  const stderr = timedOut ? `${p.stderr}\n(killed after ${timeoutMs} ms)` : p.stderr;
  return { ...exit, stdout, stderr, ns };
}

/** run(), throwing unless the command exits 0. */
export async function runOk(command: string, args: string[], timeoutMs: number, opts: SpawnOpts = {}): Promise<RunResult> {
  const r = await run(command, args, timeoutMs, opts);
  if (r.code !== 0)
    throw new Error(
      `${[command, ...args].join(' ')} failed (${r.signal ?? `status ${r.code}`})` + (r.stderr.trim() ? `:\n${r.stderr.trim().split('\n').slice(-8).join('\n')}` : ''),
    );
  return r;
}
