// The checkpoint barrier (docs/design.md, "The checkpoint barrier"): every
// process of the session is stopped, then saved, then resumed, so that no
// process runs while another is being saved.
//
//   ckrun → shim                         shim → ckrun
//   [parent <image>] stop <image path>   stopped <pid>
//   save [skip=<dev>:<ino>,...]          saved <pid> [<writer pid>]
//   resume | abort                       (the writer) ok <bytes> <pause_ns> <total_ns>
//
// The writer's exit is watched from `saved` on: one that exits without
// answering fails the checkpoint at once, by name (src/writer.ts).
//
// Between "stopped" from everyone and "save", ckrun walks /proc below
// itself: a process that joined meanwhile (forked just before the stop) is
// stopped too; one that never joins (no shim in it) fails the checkpoint.
// While everyone is stopped it finds the open file descriptions processes
// share and picks the one image that stores each shared memory object.
import { join } from 'node:path';
import {
  describeProcess,
  innerIds,
  inStrictSeccomp,
  isLive,
  nsPids,
  ProcessGoneError,
  saveLine,
  socketInodes,
  sessionPidMap,
  foreignNamespace,
  sessionProcesses,
  sharedFiles,
  shimDescriptors,
  shmObjectsOf,
  shmPlan,
  type FdRef,
  type InnerIds,
  type Member,
  type OwnDescriptor,
  type ShmObject,
  type TreeProcess,
} from './proctree.js';
import { describeTracer, jobState, type Hold } from './hold.js';
import type { ExitStatus } from './native.js';
import { howItEnded, type WriterWatch } from './writer.js';
import { unbuildableSessions } from './tree-rebuild.js';

/** A connected process as the barrier sees it. */
export interface Participant {
  /** PID as the program sees it (what it said in hello / restored). */
  readonly pid: number;
  /** Its connection closed (it exited or exec'd). */
  readonly gone: boolean;
}

export interface BarrierHost<P extends Participant> {
  /** Every process connected right now. */
  connected(): P[];
  send(p: P, line: string): void;
  /**
   * The next line from p whose first word is one of `words`. Rejects with
   * an Error for an `error` line or a timeout, and with ProcessGoneError
   * when p's connection closes first.
   */
  expect(p: P, words: readonly string[], timeoutMs: number, what: string): Promise<string>;
  /** Forget any answer still awaited from p. */
  cancel(p: P): void;
  /** The image p's next one may be incremental to (`parent <path>`), if any. */
  parentImage(p: P): string | undefined;
  /** The client inodes of ckrun's connections: the shims' own sockets. */
  ownSockets(): number[];
  /**
   * Asks a process below ckrun that has not connected (forked since it
   * last joined a checkpoint) to connect; false when it has no shim that
   * could (yet).
   */
  askToJoin(outer: number): boolean;
  /**
   * Watches p's checkpoint writer (`writer`: its PID as p sees it, from
   * `saved`; `depth`: how many PID namespaces deep p is); onEnd is called
   * once it has exited. Absent: writers are not watched (only the answer
   * timeout applies).
   */
  watchWriter?(p: P, writer: number, depth: number, onEnd: (st: ExitStatus | undefined) => void): WriterWatch | undefined;
  /**
   * Runs the shim of the stopped process `outer` (its PID in ckrun's
   * namespace; `what` names it in messages) for the length of the
   * checkpoint while it stays stopped for everyone else (src/hold.ts).
   * Absent: a stopped process cannot be checkpointed.
   */
  hold?(outer: number, what: string): Promise<Hold>;
  verbose(line: string): void;
}

export interface BarrierOptions {
  /** The partial generation directory the images go to. */
  genPath: string;
  /** ckrun's PID: the session is every process below it. */
  self: number;
  /** For `stopped` and `saved` (default 30 s). */
  stepTimeoutMs?: number;
  /** For the writer's `ok` (default 60 s). */
  answerTimeoutMs?: number;
  /** How long a process below ckrun may take to say hello once asked, or to get a shim (default 2 s). */
  helloGraceMs?: number;
  /**
   * Called once every process is saved and before any is resumed, with the
   * processes below ckrun: what must be read at the checkpoint's instant
   * besides the images (the files the program writes, src/files.ts). A
   * throw fails the checkpoint; the program runs on.
   */
  whileStopped?: (members: Member[]) => void;
  /**
   * Keep every process stopped once its image is complete (`hold` instead
   * of `resume`: the writers answer, the threads stay parked): the last
   * round of `ckrun migrate`. The result's `release` then lets them run
   * on; until it is called ckrun repeats `hold` (the shim runs on by
   * itself after a minute of silence).
   */
  hold?: boolean;
}

export interface SavedProcess<P extends Participant> {
  proc: P;
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** File name inside the generation directory. */
  image: string;
  bytes: number;
  pauseNs: number;
  totalNs: number;
}

export interface BarrierResult<P extends Participant> {
  processes: SavedProcess<P>[];
  /** Descriptor groups sharing one open file description across processes. */
  sharedFiles: FdRef[][];
  /** [dev, ino, pid]: the image of pid stores the shared memory object. */
  shmOwners: [number, number, number][];
  /** With `hold`: lets every process run on (they stay stopped until then); `false`: only stops holding them (they were killed). */
  release?: (resume?: boolean) => void;
  /**
   * With `hold`, just before ckrun kills them: every process puts its
   * established TCP connections in repair mode (the kill then sends
   * neither FIN nor RST) and answers; rejects with the first refusal
   * (no CAP_NET_ADMIN), every process then thawed again.
   */
  freeze?: () => Promise<void>;
}

/** How often a held checkpoint says `hold` again (the shim waits a minute for a line). */
const HOLD_REPEAT_MS = 15_000;

export const STEP_TIMEOUT_MS = 30_000;
export const ANSWER_TIMEOUT_MS = 60_000;
/**
 * How long after its writer exited a process's answer may still come: the
 * writer sends it before it exits, but ckrun may see the exit first.
 */
const WRITER_ANSWER_GRACE_MS = 250;
export const HELLO_GRACE_MS = 2_000;
/** A join request may come too early (before fork's child handler ran, in a vfork child): asked again this often. */
const JOIN_RETRY_MS = 100;

/** A checkpoint the barrier could not complete; the program runs on. */
export class BarrierError extends Error {
  constructor(
    message: string,
    /** Every process the checkpoint asked to stop left before it was saved. */
    readonly everyoneLeft = false,
  ) {
    super(message);
    this.name = 'BarrierError';
  }
}

interface Part<P extends Participant> {
  proc: P;
  stopped: boolean;
  /** Left during the checkpoint (exited): not in this generation. */
  dropped: boolean;
  outer?: number;
  ids?: InnerIds;
  /** Its checkpoint writer, as `saved` named it (the PID the process sees). */
  writer?: number;
  writerWatch?: WriterWatch;
  /** Rejects when the writer exited and no answer came (see WRITER_ANSWER_GRACE_MS). */
  writerEnd?: Promise<never>;
  /** Its answer (or failure) is in: the writer's end means nothing any more. */
  answered?: boolean;
  /** Its writer was killed by ckrun because the checkpoint failed elsewhere. */
  abandoned?: boolean;
  /** `save` was sent: what it is told now is after its checkpoint's instant. */
  saveSent?: boolean;
  /** The signal that stopped it (SIGSTOP, job control), once ckrun holds it. */
  stopSignal?: number;
}

/** A process's failure that only follows from another's (its writer was killed by ckrun). */
class Abandoned extends Error {}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** "process 7 (PID 9)", and where the writer's PID differs in ckrun's namespace, that one too. */
function writerName<P extends Participant>(x: Part<P>, writer: number): string {
  const outer = x.writerWatch?.outer;
  const here = outer !== undefined && outer !== writer ? `; ${outer} in ckrun's PID namespace` : '';
  return `process ${x.proc.pid} (PID ${writer}${here})`;
}

function splitWords(line: string): string[] {
  return line.trim().split(/\s+/);
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function imageName(pid: number): string {
  return `${pid}.ckpt`;
}

/** Takes one checkpoint of every process of the session. */
export async function checkpointBarrier<P extends Participant>(host: BarrierHost<P>, opts: BarrierOptions): Promise<BarrierResult<P>> {
  return new Barrier(host, opts).run();
}

class Barrier<P extends Participant> {
  private readonly parts = new Map<P, Part<P>>();
  private readonly firstSeen = new Map<number, number>();
  /** Outer PID → when it was last asked to join. */
  private readonly asked = new Map<number, number>();
  /** Outer PID → when it was first asked to join. */
  private readonly firstAsked = new Map<number, number>();
  private readonly stepMs: number;
  private readonly answerMs: number;
  private readonly graceMs: number;
  private resumed = false;
  /** Stopped processes ckrun runs the shims of, by their PID in ckrun's namespace. */
  private readonly holds = new Map<number, Promise<Hold | undefined>>();
  /** Inner PID → PID in ckrun's namespace, as /proc showed it last. */
  private outerOf = new Map<number, number>();
  /** A failure found while waiting (a process traced by a debugger): ends the checkpoint. */
  private trouble: BarrierError | undefined;
  private watcher: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: BarrierHost<P>,
    private readonly opts: BarrierOptions,
  ) {
    this.stepMs = opts.stepTimeoutMs ?? STEP_TIMEOUT_MS;
    this.answerMs = opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    this.graceMs = opts.helloGraceMs ?? HELLO_GRACE_MS;
  }

  async run(): Promise<BarrierResult<P>> {
    try {
      this.outerOf = sessionPidMap(this.opts.self);
      this.watchStops();
      // processes forked since the last checkpoint join when the sweep asks them
      await this.stopAll(this.host.connected().filter((p) => !p.gone));
      await this.sweep();
      if (this.parts.size === 0) throw new BarrierError('no process of the session is connected to ckrun');
      const plan = this.examine();
      if (this.live().length === 0) throw new BarrierError('every process of the session exited during the checkpoint', true);
      const foreign = foreignNamespace(plan.members);
      if (foreign) throw new BarrierError(foreign);
      const unbuildable = unbuildableSessions(this.live().flatMap((x) => (x.ids ? [x.ids] : [])));
      if (unbuildable) throw new BarrierError(`${unbuildable}; the program runs on`);
      // a process not seen below ckrun holds sockets ckrun cannot list: then none are named
      const socks = plan.members.length === this.live().length ? socketInodes(plan.members.map((m) => m.outer)) : undefined;
      await this.save(plan.skip, socks);
      this.watchWriters();
      this.opts.whileStopped?.(plan.members);
      if (this.opts.hold) {
        if (this.holds.size > 0)
          throw new BarrierError('a process of the session is stopped (SIGSTOP, SIGTSTP...): ckrun cannot hold it for a migration; continue it and try again');
        return await this.holdStopped(plan);
      }
      this.resumed = true;
      // every process saved answers, or the checkpoint fails: the plan holds
      return { processes: await this.resume(), sharedFiles: plan.sharedFiles, shmOwners: plan.owners };
    } catch (e) {
      if (!this.resumed) this.abort();
      this.stopWriters();
      throw this.trouble ?? (e instanceof BarrierError ? e : new BarrierError(errorMessage(e)));
    } finally {
      if (this.watcher) clearInterval(this.watcher);
      await this.releaseHolds();
    }
  }

  // ---- stopped and traced processes ---------------------------------------

  /**
   * While the checkpoint runs, a process that is stopped (SIGSTOP, job
   * control) is held: its shim runs although it stays stopped. One traced
   * by another tracer (a debugger, strace) cannot take part: the
   * checkpoint fails naming the tracer.
   */
  private watchStops(): void {
    this.watcher = setInterval(() => {
      for (const x of this.live()) {
        if (x.proc.gone) continue;
        const outer = x.outer ?? this.outerOf.get(x.proc.pid);
        if (outer !== undefined) this.lookAt(outer, x);
      }
    }, 50);
    this.watcher.unref();
  }

  /** Holds `outer` if it is stopped; notes a foreign tracer. Returns the hold in progress, if any. */
  private lookAt(outer: number, x?: Part<P>): Promise<Hold | undefined> | undefined {
    const known = this.holds.get(outer);
    if (known) return known;
    const js = jobState(outer);
    if (!js) return undefined;
    // (a process ckrun holds is traced by ckrun-hold: it has an entry above)
    if (js.tracer !== 0) {
      this.trouble ??= new BarrierError(
        `process ${x?.proc.pid ?? outer} (${describeProcess(outer).comm}) is traced by ${describeTracer(js.tracer)}: ` +
          `ckrun cannot checkpoint a process under a debugger or tracer; detach it (or end the tracer) and checkpoint again; the program runs on`,
      );
      for (const y of this.parts.values()) this.host.cancel(y.proc);
      return undefined;
    }
    if (js.state !== 'T' || !this.host.hold) return undefined;
    const what = `process ${x?.proc.pid ?? outer}`;
    const h = this.host.hold(outer, what).then(
      (hold) => {
        if (hold.stopSignal === 0) {
          void hold.release(); // it was continued meanwhile
          this.holds.delete(outer);
          return undefined;
        }
        this.host.verbose(`${what} is stopped (signal ${hold.stopSignal}): ckrun runs its shim while it stays stopped`);
        const part = x ?? this.live().find((y) => y.outer === outer);
        if (part) this.noteStopped(part, hold.stopSignal);
        return hold;
      },
      (e: unknown) => {
        this.trouble ??= new BarrierError(errorMessage(e));
        for (const y of this.parts.values()) this.host.cancel(y.proc);
        return undefined;
      },
    );
    this.holds.set(outer, h);
    return h;
  }

  /** Its shim records in the image that it was stopped, if its state is still to be saved. */
  private noteStopped(x: Part<P>, signal: number): void {
    if (x.stopSignal !== undefined) return;
    x.stopSignal = signal;
    if (!x.saveSent && !x.proc.gone) this.host.send(x.proc, `held ${signal}`);
  }

  /**
   * Before `save`: every stopped process is held (its shim knows it was
   * stopped), and the parent of each knows it (the parent's image says
   * whether the stop was still to be reported to it by wait()).
   */
  private async settleStops(): Promise<void> {
    for (const x of this.live()) if (x.outer !== undefined) this.lookAt(x.outer, x);
    await Promise.all([...this.holds.values()]);
    if (this.trouble) throw this.trouble;
    for (const [outer, h] of this.holds) {
      const hold = await h;
      const x = this.live().find((y) => y.outer === outer);
      if (!hold || !x) continue;
      this.noteStopped(x, hold.stopSignal);
      const parent = this.live().find((y) => y.proc.pid === x.ids?.ppid && !y.proc.gone);
      if (parent) this.host.send(parent.proc, `child-stopped ${x.proc.pid}`);
    }
  }

  private async releaseHolds(): Promise<void> {
    const holds = await Promise.all([...this.holds.values()]);
    await Promise.all(holds.map((h) => h?.release()));
  }

  private live(): Part<P>[] {
    return [...this.parts.values()].filter((x) => !x.dropped);
  }

  // ---- stop ----------------------------------------------------------

  private async stopAll(procs: P[]): Promise<void> {
    // the running ones first: holding a stopped process traces it and lets
    // its shim run, which a process still running would see (a parent that
    // checks its stopped child's state)
    const isStopped = (p: P): boolean => {
      const outer = this.outerOf.get(p.pid);
      return outer !== undefined && jobState(outer)?.state === 'T';
    };
    const later = procs.filter(isStopped);
    const results = await Promise.allSettled(procs.filter((p) => !later.includes(p)).map((p) => this.stop(p)));
    if (later.length > 0) results.push(...(await Promise.allSettled(later.map((p) => this.stop(p)))));
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [errorMessage(r.reason)] : []));
    if (failures.length > 0) throw new BarrierError(failures.join('; '));
  }

  private async stop(p: P): Promise<void> {
    const part: Part<P> = { proc: p, stopped: false, dropped: false };
    this.parts.set(p, part);
    const outer = this.outerOf.get(p.pid);
    if (outer !== undefined) this.lookAt(outer, part);
    const parent = this.host.parentImage(p);
    if (parent) this.host.send(p, `parent ${parent}`);
    this.host.send(p, `stop ${join(this.opts.genPath, imageName(p.pid))}`);
    try {
      await this.host.expect(p, ['stopped'], this.stepMs, 'stop');
      part.stopped = true;
    } catch (e) {
      if (!(e instanceof ProcessGoneError)) throw e;
      part.dropped = true;
      this.host.verbose(`process ${p.pid} left before it stopped: not in this checkpoint`);
    }
  }

  /**
   * Until every live process below ckrun is stopped: stops the ones that
   * joined meanwhile, waits a little for ones that have not said hello yet,
   * and fails for one that never does.
   */
  private async sweep(): Promise<void> {
    let lastWalk = '';
    for (;;) {
      const fresh = this.host.connected().filter((p) => !p.gone && !this.parts.has(p));
      if (fresh.length > 0) {
        await this.stopAll(fresh);
        continue;
      }
      const stoppedByPid = new Map<number, Part<P>>();
      for (const x of this.live()) if (x.stopped && !x.proc.gone) stoppedByPid.set(x.proc.pid, x);
      const unknown: TreeProcess[] = [];
      const walk = sessionProcesses(this.opts.self);
      // a process that exits while /proc is walked hands its children to
      // ckrun between two reads, and they can be missed in both: once one
      // has left, a walk counts only when the next one finds the same
      const walkKey = walk
        .map((d) => `${d.outer}${d.state}`)
        .sort()
        .join();
      const unsettled = walk.some((d) => !isLive(d)) || [...this.parts.values()].some((x) => x.proc.gone);
      const settled = !unsettled || walkKey === lastWalk;
      lastWalk = walkKey;
      for (const d of walk) {
        if (!isLive(d)) continue;
        const ids = innerIds(d.outer);
        if (!ids) continue; // gone meanwhile
        const x = stoppedByPid.get(ids.pid);
        if (x) {
          x.outer = d.outer;
          x.ids = ids;
          continue;
        }
        unknown.push(d);
      }
      for (const x of this.live()) {
        if (x.proc.gone) {
          // it exited while stopped (killed): nothing of it to save
          x.dropped = true;
          this.host.verbose(`process ${x.proc.pid} left during the checkpoint: not in this checkpoint`);
        }
      }
      if (unknown.length === 0 && settled) return;
      if (this.trouble) throw this.trouble;
      // ckrun's signal would kill one in seccomp strict mode (its handler makes calls strict mode forbids)
      const strict = unknown.find((u) => inStrictSeccomp(u.outer));
      if (strict) {
        const { comm, exe } = describeProcess(strict.outer);
        throw new BarrierError(
          `process ${nsPids(strict.outer).pop() ?? strict.outer} (${comm}, ${exe}) is in seccomp strict mode (SECCOMP_MODE_STRICT): it may make no system call but read, write, _exit and sigreturn, so it cannot save itself, and ckrun cannot checkpoint it; the program runs on`,
        );
      }
      // a stopped one is held, so that it can join
      for (const u of unknown) this.lookAt(u.outer);
      const now = Date.now();
      for (const u of unknown) {
        if (!this.firstSeen.has(u.outer)) this.firstSeen.set(u.outer, now);
        const last = this.asked.get(u.outer);
        if ((last === undefined || now - last >= JOIN_RETRY_MS) && this.host.askToJoin(u.outer)) {
          this.asked.set(u.outer, now);
          if (!this.firstAsked.has(u.outer)) this.firstAsked.set(u.outer, now);
        }
      }
      // a process asked to join has as long as a stop request; one with no shim to ask, the grace
      const late = unknown.find((u) => {
        const asked = this.firstAsked.get(u.outer);
        return asked === undefined ? now - this.firstSeen.get(u.outer)! >= this.graceMs : now - asked >= this.stepMs;
      });
      if (late) {
        const { comm, exe } = describeProcess(late.outer);
        const shown = nsPids(late.outer).pop() ?? late.outer;
        if (this.asked.has(late.outer)) {
          const why =
            late.state === 'T' || late.state === 't'
              ? 'it is stopped (SIGSTOP or a debugger)'
              : 'it shares its memory with another process without being its thread (clone with CLONE_VM), or it is stuck in the kernel';
          throw new BarrierError(
            `process ${shown} (${comm}, ${exe}) did not answer ckrun's request to join the checkpoint within ${+(this.stepMs / 1000).toFixed(1)} s (${why}); the program runs on`,
          );
        }
        throw new BarrierError(
          `process ${shown} (${comm}, ${exe}) is not under ckrun's shim (statically linked, or started without LD_PRELOAD); it cannot be checkpointed`,
        );
      }
      await sleep(unknown.length === 0 ? 5 : 50);
    }
  }

  // ---- while everyone is stopped -----------------------------------------

  private examine(): { sharedFiles: FdRef[][]; owners: [number, number, number][]; skip: Map<number, ShmObject[]>; members: Member[] } {
    let own: OwnDescriptor | undefined;
    for (let attempt = 0; ; attempt++) {
      const members: Member[] = [];
      for (const x of this.live()) {
        if (x.outer === undefined) {
          // connected, but not below ckrun: seen through its own PID if /proc has it
          const ns = nsPids(x.proc.pid);
          if (ns.length === 1 && ns[0] === x.proc.pid) {
            x.outer = x.proc.pid;
            x.ids = innerIds(x.proc.pid);
          }
        }
        if (x.outer === undefined || !x.ids) {
          this.host.verbose(`process ${x.proc.pid} is not below ckrun: its shared files and memory are not examined`);
          continue;
        }
        members.push({ pid: x.proc.pid, outer: x.outer });
      }
      try {
        // one process shares nothing with another
        if (members.length > 1) own ??= shimDescriptors(this.host.ownSockets());
        const shared = own && members.length > 1 ? sharedFiles(members, own) : [];
        const maps = new Map<number, ShmObject[]>();
        for (const m of members) maps.set(m.pid, shmObjectsOf(m));
        const plan = shmPlan(maps);
        return { sharedFiles: shared, owners: plan.owners, skip: plan.skip, members };
      } catch (e) {
        if (!(e instanceof ProcessGoneError) || attempt >= 3) throw e;
        for (const x of this.live()) if (x.proc.pid === e.pid) x.dropped = true;
        this.host.verbose(`process ${e.pid} left during the checkpoint: not in this checkpoint`);
      }
    }
  }

  // ---- save and resume ---------------------------------------------------

  private async save(skip: Map<number, ShmObject[]>, socks: number[] | undefined): Promise<void> {
    await this.settleStops();
    const parts = this.live();
    const results = await Promise.allSettled(
      parts.map(async (x) => {
        x.saveSent = true;
        this.host.send(x.proc, saveLine(skip.get(x.proc.pid), socks));
        try {
          // "saved <pid> [<writer pid>]"
          const writer = Number(splitWords(await this.host.expect(x.proc, ['saved'], this.stepMs, 'save'))[2]);
          if (Number.isSafeInteger(writer) && writer > 0) x.writer = writer;
        } catch (e) {
          if (e instanceof ProcessGoneError) throw new BarrierError(`process ${x.proc.pid} exited while it was being saved`);
          throw e;
        }
      }),
    );
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [errorMessage(r.reason)] : []));
    if (failures.length > 0) throw new BarrierError(failures.join('; '));
  }

  /**
   * Watches every writer from before `resume`: until then it waits for the
   * pause, so it can only have ended by a signal, and its PID cannot have
   * gone to another process.
   */
  private watchWriters(): void {
    const watch = this.host.watchWriter?.bind(this.host);
    if (!watch) return;
    for (const x of this.live()) {
      const writer = x.writer;
      if (writer === undefined) continue;
      const depth = x.ids?.depth ?? 1;
      x.writerEnd = new Promise<never>((_, reject) => {
        x.writerWatch = watch(x.proc, writer, depth, (st) => {
          setTimeout(() => {
            if (x.answered) return;
            if (x.abandoned) reject(new Abandoned());
            else reject(new BarrierError(`the checkpoint writer of ${writerName(x, writer)} ${howItEnded(st)} before it finished the image`));
          }, WRITER_ANSWER_GRACE_MS).unref();
        });
      });
      x.writerEnd.catch(() => undefined); // awaited in resume(), or moot
      if (!x.writerWatch) {
        x.writerEnd = undefined;
        this.host.verbose(`the checkpoint writer ${writer} of process ${x.proc.pid} cannot be found below ckrun: only the answer timeout applies`);
      }
    }
  }

  /** The checkpoint failed: writers still at work are killed (their images would not be used). */
  private stopWriters(): void {
    for (const x of this.parts.values()) {
      if (!x.writerWatch) continue;
      if (x.answered) x.writerWatch.stop();
      else {
        x.abandoned = true;
        x.writerWatch.kill();
      }
    }
  }

  /** Every image complete while every process stays stopped; `release` lets them run on. */
  private async holdStopped(plan: { sharedFiles: FdRef[][]; owners: [number, number, number][] }): Promise<BarrierResult<P>> {
    const parts = this.live();
    const sayHold = (): void => {
      for (const x of parts) if (!x.proc.gone) this.host.send(x.proc, 'hold');
    };
    const processes = await this.resume('hold');
    // from here on only `release` lets them go: an error of the caller must call it
    this.resumed = true;
    const repeat = setInterval(sayHold, HOLD_REPEAT_MS);
    let released = false;
    const release = (resume = true): void => {
      if (released) return;
      released = true;
      clearInterval(repeat);
      if (resume) for (const x of parts) if (!x.proc.gone) this.host.send(x.proc, 'resume');
    };
    const freeze = async (): Promise<void> => {
      const live = parts.filter((x) => !x.proc.gone);
      // a job-stopped process went back to its stop (its shim no longer listens): its connections stay as they are
      const stopped = live.find((x) => x.outer !== undefined && this.holds.has(x.outer));
      if (stopped) throw new BarrierError(`process ${stopped.proc.pid} is stopped (job control) and cannot put its TCP connections in repair mode`);
      const answers = live.map((x) => this.host.expect(x.proc, ['frozen'], this.answerMs, 'freeze'));
      for (const x of live) this.host.send(x.proc, 'freeze');
      const results = await Promise.allSettled(answers);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (!failed) return;
      for (const x of live) if (!x.proc.gone) this.host.send(x.proc, 'thaw');
      throw failed.reason;
    };
    return { processes, sharedFiles: plan.sharedFiles, shmOwners: plan.owners, release, freeze };
  }

  private async resume(word: 'resume' | 'hold' = 'resume'): Promise<SavedProcess<P>[]> {
    const parts = this.live();
    // each answer is awaited before its process is told to resume (a held
    // process's writer may be done before the others are told)
    const answers = new Map(
      parts.map((x) => {
        const answer = this.host.expect(x.proc, ['ok'], this.answerMs, 'write');
        answer.catch(() => undefined); // moot once the writer's end decided
        return [x, answer] as const;
      }),
    );
    // a stopped process is let go first, and only then do the others run
    // on: none of them sees it in a tracer's hands
    const held = parts.filter((x) => x.outer !== undefined && this.holds.has(x.outer));
    for (const x of held) this.host.send(x.proc, 'resume');
    await Promise.all(held.map(async (x) => (await this.holds.get(x.outer!))?.release()));
    for (const x of parts) if (!held.includes(x)) this.host.send(x.proc, word);
    const results = await Promise.allSettled(
      parts.map(async (x): Promise<SavedProcess<P>> => {
        let line: string;
        try {
          const answer = answers.get(x)!;
          line = await (x.writerEnd ? Promise.race([answer, x.writerEnd]) : answer);
        } catch (e) {
          // the first failure ends the checkpoint: the other writers need not finish
          if (!(e instanceof Abandoned)) this.stopWriters();
          if (e instanceof ProcessGoneError) throw new BarrierError(`process ${x.proc.pid} exited before its image was complete`);
          throw e;
        } finally {
          x.answered = true;
          x.writerWatch?.stop();
          this.host.cancel(x.proc);
        }
        const [bytes, pauseNs, totalNs] = line.split(/\s+/).slice(1).map(Number);
        const ids = x.ids ?? { pid: x.proc.pid, ppid: 0, pgid: 0, sid: 0, depth: 1 };
        return {
          proc: x.proc,
          pid: x.proc.pid,
          ppid: ids.ppid,
          pgid: ids.pgid,
          sid: ids.sid,
          image: imageName(x.proc.pid),
          bytes: bytes || 0,
          pauseNs: pauseNs || 0,
          totalNs: totalNs || 0,
        };
      }),
    );
    const failures = results.flatMap((r) =>
      r.status === 'rejected' && !(r.reason instanceof Abandoned) ? [errorMessage(r.reason)] : [],
    );
    if (failures.length > 0) throw new BarrierError(failures.join('; '));
    return results.map((r) => (r as PromiseFulfilledResult<SavedProcess<P>>).value);
  }

  /** Every process that was asked to stop is released (its writer, if any, killed). */
  private abort(): void {
    for (const x of this.parts.values()) {
      this.host.cancel(x.proc);
      if (!x.proc.gone) this.host.send(x.proc, 'abort');
    }
  }
}
