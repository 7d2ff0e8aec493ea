// Stopped processes in a checkpoint (docs/design.md, "Stopped and traced
// processes"). A process stopped by SIGSTOP or job control runs no signal
// handler until SIGCONT, so its shim could never answer; ckrun-hold
// (addon/ckrun-hold.c) traces it for the length of the checkpoint and runs
// only the shim's handler, while for its parent and everyone else it stays
// stopped. When the checkpoint ends the tracer lets go, and the kernel puts
// the process back in its group stop without telling anyone.
import { closeSync, existsSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { native, spawnChild, type ExitStatus } from './native.js';
import { buildDir } from './paths.js';
import { readLines, splitLine } from './protocol.js';

/** The tracer's program (`CKRUN_HOLD` overrides it, for tests). */
export function holderPath(env: NodeJS.ProcessEnv = process.env): string {
  return env['CKRUN_HOLD'] || join(buildDir(), 'ckrun-hold');
}

/** A stopped process ckrun runs the shim of, until release(). */
export interface Hold {
  /** The signal that stopped it (SIGSTOP, SIGTSTP, ...), 0 when it was not stopped after all. */
  readonly stopSignal: number;
  /** The checkpoint is over: the process goes back to its stop. Resolves once the tracer has let go. */
  release(): Promise<void>;
}

export class HoldError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HoldError';
  }
}

/** A process's state letter (/proc/PID/stat) and its tracer's PID (0: none). */
export function jobState(outer: number): { state: string; tracer: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${outer}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    const m = /^TracerPid:\s*(\d+)/m.exec(readFileSync(`/proc/${outer}/status`, 'utf8'));
    return { state, tracer: m ? Number(m[1]) : 0 };
  } catch {
    return undefined;
  }
}

/** "process 7 (gdb, /usr/bin/gdb)", for messages. */
export function describeTracer(pid: number): string {
  let comm = '?';
  let exe = '?';
  try {
    comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    // gone, or not ours to read
  }
  try {
    exe = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] || '?';
  } catch {
    // gone
  }
  return `process ${pid} (${comm}, ${exe})`;
}

/**
 * Traces the stopped process `outer` (its PID in ckrun's namespace) so that
 * its shim can answer the checkpoint; resolves once every thread is held.
 * `signal` is the shim's internal signal.
 */
export function holdStopped(outer: number, signal: number, what: string): Promise<Hold> {
  const program = holderPath();
  if (!existsSync(program)) return Promise.reject(new HoldError(`${program} is missing: build ckrun with npm install`));
  const [mine, theirs] = native().socketPair();
  let exited: ExitStatus | undefined;
  let onExit: (() => void) | undefined;
  let pid: number;
  try {
    pid = spawnChild(
      { file: program, argv: [program, String(outer), String(signal)], env: process.env['CKRUN_HOLD_TRACE'] ? [`CKRUN_HOLD_TRACE=${process.env['CKRUN_HOLD_TRACE']}`] : [], fds: [theirs, theirs, 2], pdeathsig: 9 },
      (st) => {
        exited = st;
        onExit?.();
      },
    );
  } finally {
    closeSync(theirs);
  }
  const sock = new Socket({ fd: mine, readable: true, writable: true });
  sock.on('error', () => undefined);
  const gone = new Promise<void>((resolve) => {
    onExit = resolve;
    if (exited) resolve();
  });
  let released: Promise<void> | undefined;
  const release = (): Promise<void> => (released ??= letGo());
  const letGo = async (): Promise<void> => {
    sock.end();
    const t = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL'); // its tracees are let go by the kernel, as when it ends
      } catch {
        // gone
      }
    }, 20_000);
    await gone;
    clearTimeout(t);
    sock.destroy();
  };
  return new Promise<Hold>((resolve, reject) => {
    let answered = false;
    readLines(
      sock,
      (line) => {
        if (answered) return;
        answered = true;
        const [word, rest] = splitLine(line);
        if (word === 'held') resolve({ stopSignal: Number(rest) || 0, release });
        else {
          void release();
          reject(new HoldError(`${what} is stopped, and ckrun cannot run its shim while it stays stopped: ${rest || line}`));
        }
      },
      () => undefined,
    );
    void gone.then(() => {
      if (answered) return;
      answered = true;
      sock.destroy();
      reject(new HoldError(`${what} is stopped, and ckrun's tracer for it (ckrun-hold) ended without a word (status ${exited?.status ?? '?'})`));
    });
  });
}
