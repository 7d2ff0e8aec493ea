// For batch schedulers and supervisors: `ckrun --resume` continues a
// program from its checkpoint directory when it holds checkpoints and
// starts it otherwise (one job script for the first run and every requeue);
// `ckrun --keep-alive` restarts a program killed by a crash, the OOM killer
// or kill -9 from its newest checkpoint.
import { resolve } from 'node:path';
import { constants as osConstants } from 'node:os';
import { errorMessage } from './errors.js';
import { readManifest } from './generations.js';
import { displayPath } from './output.js';
import { DEFAULT_DIR } from './protocol.js';
import { RestartError } from './restart-source.js';
import type { RestartOptions } from './restart-host.js';
import { launch, type LaunchOptions, type Session, type SessionExit } from './session.js';
import { signalName } from './signals.js';
import { numberedGenerations } from './verify.js';

export interface ResumeOptions extends LaunchOptions {
  /** Told each line that says a newer generation cannot be used (as `ckrun restart` says it). */
  warn?: (line: string) => void;
  /** Options only a restart has (--no-verify-data, --stdio=inherit, ...). */
  restart?: Pick<RestartOptions, 'verifyData' | 'stdioInherit' | 'newPidNamespace' | 'trustOwner' | 'restoreHost'>;
}

export interface Resumed {
  session: Session;
  /** The generation the program was restarted from; undefined when it was started afresh. */
  restartedFrom: string | undefined;
}

/** The command line a generation's manifest records (the first one that can be read, newest first). */
async function recordedCommand(gens: { path: string }[]): Promise<{ argv: string[]; path: string } | undefined> {
  for (const g of gens) {
    try {
      return { argv: (await readManifest(g.path)).argv, path: g.path };
    } catch {
      // damaged: the restart below says so, or falls back
    }
  }
  return undefined;
}

function quoted(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * `ckrun --resume`: the newest generation of the directory that verifies
 * is restarted exactly like `ckrun restart --dir DIR` does (the same
 * checks, the same fallback to an older generation, said the same way);
 * when the directory holds no complete generation at all (it is missing,
 * empty, or holds only an interrupted first checkpoint), PROGRAM is
 * launched. A directory whose checkpoints cannot be used, or were taken of
 * another command, is refused: starting afresh over them would throw their
 * work away without a word.
 */
export async function resumeOrLaunch(opts: ResumeOptions): Promise<Resumed> {
  const dir = resolve(opts.cwd ?? process.cwd(), opts.dir ?? DEFAULT_DIR);
  const gens = await numberedGenerations(dir);
  if (gens.length === 0) return { session: await launch(opts), restartedFrom: undefined };
  const argv = [opts.program, ...(opts.args ?? [])];
  const recorded = await recordedCommand(gens);
  const startAfresh = `move ${displayPath(dir)} aside (or remove it) to start the program from the beginning`;
  if (recorded && quoted(recorded.argv) !== quoted(argv))
    throw new RestartError(
      `--resume: ${displayPath(recorded.path)} is a checkpoint of \`${quoted(recorded.argv)}\`, not of \`${quoted(argv)}\`; ` +
        `run the same command to continue it, or ${startAfresh}`,
      1,
    );
  const { restart } = await import('./restart.js');
  const { program: _program, args: _args, shim: _shim, internalSignal: _internal, restart: extra, ...session } = opts;
  try {
    const s = await restart({ ...session, ...extra, dir });
    return { session: s, restartedFrom: s.generation?.path ?? s.image.path };
  } catch (e) {
    // refusals of the checkpoints themselves (a session already writing to DIR says so as it is)
    if (!(e instanceof RestartError)) throw e;
    throw new RestartError(
      `--resume: ${e.message}; ckrun does not start the program afresh while ${displayPath(dir)} holds checkpoints: ` +
        `repair it (ckrun verify ${displayPath(dir)} says what is wrong), or ${startAfresh}`,
      e.exitCode,
    );
  }
}

/**
 * The deaths --keep-alive restarts from a checkpoint: SIGKILL (the OOM
 * killer, kill -9) and the signals of a crash. A program ended by a signal
 * someone sends to end it (SIGTERM, SIGINT, SIGHUP, SIGQUIT, ... — also
 * those ckrun passes on) was asked to stop, and is not restarted.
 */
const UNASKED = new Set<number>(
  ['SIGKILL', 'SIGSEGV', 'SIGBUS', 'SIGILL', 'SIGFPE', 'SIGABRT', 'SIGSYS'].map((n) => (osConstants.signals as Record<string, number>)[n]!),
);

/** How the program died when --keep-alive restarts it; undefined when it ended otherwise. */
export function unaskedDeath(st: SessionExit): string | undefined {
  if (st.stopped || !st.joined || st.signal === null || !UNASKED.has(st.signal)) return undefined;
  return `was killed by ${signalName(st.signal)}${st.signal === osConstants.signals.SIGKILL ? ' (the OOM killer, or kill -9)' : ' (it crashed)'}`;
}

/** Seconds before the n-th restart (1, 2, 4, ... at most 30). */
export function keepAliveDelay(n: number): number {
  return Math.min(30, 2 ** (n - 1));
}

export const DEFAULT_KEEP_ALIVE = 3;

export interface KeepAliveOptions {
  /** Restart at most this many times (DEFAULT_KEEP_ALIVE). */
  max?: number;
  /** Where each restart is said (ckrun's stderr). */
  log: (line: string) => void;
  /** Seconds before the n-th restart (keepAliveDelay). */
  delay?: (n: number) => number;
  /** Restarts the program from its newest checkpoint (the options of the session it continues). */
  restart: () => Promise<Session>;
  /** The checkpoint directory (for the messages). */
  dir: string;
  /** Told each time a session has ended. */
  ended?: () => void;
  /** A signal that asks to stop instead of restarting (--checkpoint-on while the program is down), if one came. */
  stopRequested?: () => number | undefined;
}

/**
 * `--keep-alive[=N]`: waits for the session's end; when the program was
 * killed by a signal it did not ask for, restarts it from the newest
 * checkpoint of its directory (after a pause that doubles each time), at
 * most N times, saying each time what happened. Resolves with the status
 * of the last session.
 */
export async function keepAlive(first: Session, opts: KeepAliveOptions): Promise<SessionExit> {
  const max = opts.max ?? DEFAULT_KEEP_ALIVE;
  const delay = opts.delay ?? keepAliveDelay;
  let session = first;
  for (let n = 1; ; n++) {
    const st = await session.exited;
    opts.ended?.();
    const how = unaskedDeath(st);
    if (how === undefined) return st;
    if (n > max) {
      opts.log(`the program ${how}; it was restarted ${max} time${max === 1 ? '' : 's'} already (--keep-alive=${max}): ckrun ends with its status`);
      return st;
    }
    if ((await numberedGenerations(opts.dir)).length === 0) {
      opts.log(`the program ${how}, and ${displayPath(opts.dir)} holds no checkpoint to restart it from: ckrun ends with its status`);
      return st;
    }
    const secs = delay(n);
    opts.log(`the program ${how}; restarting it from the newest checkpoint in ${displayPath(opts.dir)} in ${secs} s (restart ${n} of ${max})`);
    await new Promise((r) => setTimeout(r, secs * 1000));
    const stop = opts.stopRequested?.();
    if (stop !== undefined) {
      opts.log(`${signalName(stop)} received while the program was down: not restarting it; the newest checkpoint in ${displayPath(opts.dir)} continues it`);
      return st;
    }
    try {
      session = await opts.restart();
    } catch (e) {
      opts.log(`restart ${n} of ${max} failed: ${errorMessage(e)}; ckrun ends with the program's status`);
      return st;
    }
  }
}
