// What starting the restore host takes, for one process (src/restart.ts)
// and for a family (src/restart-tree.ts): the options of a restart, the
// session it returns, the restore host's environment, and whether the PIDs
// the images need are free.
import { readFile } from 'node:fs/promises';
import type { Generation } from './generations.js';
import type { Image, VerifyCache } from './image.js';
import type { ExitStatus } from './native.js';
import type { Coordinator, Session, SessionOptions } from './session.js';

/** ckrun-restore's exit status when a PID or TID it needs is in use (preload/restore.h): ckrun restores in a new PID namespace. */
export const EXIT_PIDS_TAKEN = 75;

/**
 * Where the restore host of one restart runs: in ckrun's PID namespace
 * (with the images' PIDs) or as PID 1 of a fresh one. An ID the images need
 * may be taken after ckrun looked: the host then exits with EXIT_PIDS_TAKEN
 * before the program runs, and `onExit` starts it again in a fresh PID
 * namespace (`spawnInit`) instead of reporting that exit.
 */
export class HostPlacement {
  pidNamespace: boolean;
  private ready = false;

  constructor(
    private readonly session: Pick<Coordinator, 'ready' | 'pid' | 'verboseLog' | 'onChildExit'>,
    pidNamespace: boolean,
    /** what may be taken, for the verbose log: "a PID of the family" */
    private readonly what: string,
    private readonly spawnInit: (onExit: (st: ExitStatus) => void) => number,
  ) {
    this.pidNamespace = pidNamespace;
    session.ready.then(
      () => {
        this.ready = true;
      },
      () => undefined,
    );
  }

  readonly onExit = (st: ExitStatus): void => {
    if (!this.pidNamespace && !this.ready && st.code === EXIT_PIDS_TAKEN) {
      this.session.verboseLog(`${this.what} was taken meanwhile: restoring in a new PID namespace`);
      this.pidNamespace = true;
      try {
        this.session.pid = this.spawnInit(this.onExit);
        return;
      } catch (e) {
        this.session.verboseLog(`cannot restore in a new PID namespace: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    void this.session.onChildExit(st);
  };

  /** The restore host as PID 1 of a fresh PID namespace. */
  startInFreshNamespace(): number {
    return this.spawnInit(this.onExit);
  }
}

export interface RestartOptions extends SessionOptions {
  /**
   * IMAGE: a `.ckpt` or `.ckpt.gz` file, a generation directory, or a checkpoint DIR
   * (its newest complete generation). Default: the newest complete
   * generation in `dir` (./ckpt).
   */
  image?: string;
  /** Check every data chunk's CRC before restoring (default true). */
  verifyData?: boolean;
  /** Images verified already, by inode (`ckrun restart -` verifies each generation as it arrives). */
  verifyCache?: VerifyCache;
  /** The restore host (default build/Release/ckrun-restore, or CKRUN_RESTORE_HOST). */
  restoreHost?: string;
  /** How long to wait for the image's PID to be freed by a dying process (default 3000 ms). */
  pidWaitMs?: number;
  /** Restore as PID 1 of a new PID namespace even when the PID is free. */
  newPidNamespace?: boolean;
  /**
   * Restart a checkpoint (directory, generation, image) that another user
   * owns: its program then runs with the credentials its image records.
   * Without it such a restart is refused (default false).
   */
  trustOwner?: boolean;
  /**
   * The restore host already restored `image` as this process's child
   * `pid`, and listens on the session's socket at descriptor `fd` (the fast
   * start of `bin/ckrun restart`: preload/front.c): coordinate it.
   */
  adopt?: { pid: number; fd: number };
  /**
   * Told each line that says a newer generation cannot be used and which
   * one is used instead (a checkpoint DIR whose newest generation does not
   * verify). Default: written to stderr as `ckrun restart: LINE`.
   */
  warn?: (line: string) => void;
  /**
   * `--stdio=inherit`: the program's stdio that were regular files at the
   * checkpoint become this ckrun's own (default: the same files again, at
   * their checkpoint offsets).
   */
  stdioInherit?: boolean;
}

export interface RestartedSession extends Session {
  /** The verified image being restored. */
  readonly image: Image;
  /** The generation it belongs to, if any. */
  readonly generation: Generation | undefined;
  /** True when the restore runs in a new PID namespace (`ckrun-restore --init`). */
  readonly pidNamespace: boolean;
}

/**
 * The restore host's environment: CKRUN_TRUST_OWNER=1 only when the user
 * said --trust-owner (never inherited from ckrun's own environment).
 */
export function withTrust(env: string[], trustOwner: boolean | undefined): string[] {
  const out = env.filter((e) => !e.startsWith('CKRUN_TRUST_OWNER='));
  if (trustOwner) out.push('CKRUN_TRUST_OWNER=1');
  return out;
}

type PidState = 'free' | 'dying' | 'live';

/** Whether a process group with this ID has members (of any state). */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a PID/TID is free, held by a zombie or a process being killed, or by a live task. */
export async function pidState(pid: number): Promise<PidState> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    // no process has it, but a process group may still bear it (its members outlive the leader, or are
    // being killed with it): the kernel keeps the ID until the last of them is gone
    return groupExists(pid) ? 'dying' : 'free';
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  if (state === 'Z' || state === 'X' || state === 'x') return 'dying';
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    for (const field of ['SigPnd', 'ShdPnd']) {
      const m = new RegExp(`^${field}:\\s*([0-9a-f]+)`, 'm').exec(status);
      if (m && (BigInt('0x' + m[1]) >> 8n) & 1n) return 'dying'; // SIGKILL pending
    }
  } catch {
    return 'free';
  }
  return 'live';
}
