// The session: ckrun's coordinator. It serves the session socket
// (src/session-server.ts: connections, peers, the program's processes),
// takes checkpoints when they are asked for (src/scheduler.ts: trigger
// signal, --interval, `ckrun checkpoint`) through the checkpoint barrier
// (src/barrier.ts) into a generation (src/generations.ts), and ends with the
// program's exit status.
import { closeSync, constants as fsConstants, existsSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { access, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { compressLevel } from './compress.js';
import { ProgramNotFoundError, resolveProgram, sessionEnv, stdioIdentity, whyNotUnderShim } from './environment.js';
import { errorMessage, SessionError } from './errors.js';
import { DirectoryTrustError, trustCheckpointDir } from './dirtrust.js';
import { GenerationWriter, ImageChains, type ManifestProcess } from './generations.js';
import { captureDirs, linkDeferred, precopyDirs, PRECOPY_DIR, type DeferredLink, type DirSnapshot } from './snapdir.js';
import { LateFiles } from './files-late.js';
import { mayHaveMade, mayHaveWritten, WrittenFiles, type WrittenFile } from './files-written.js';
import { captureFiles, DEFAULT_FILES_POLICY, precopyFiles, skipDirsFor, tidyFiles, type CaptureResult, type FilesPolicy, type FilesRecord } from './files.js';
import { BarrierError, checkpointBarrier, imageName, STEP_TIMEOUT_MS, type BarrierHost } from './barrier.js';
import {
  askToJoin,
  isNativeError,
  native,
  NativeLoadError,
  spawnChild,
  unixPeers,
  watchSignal,
  type ExitStatus,
  type PeerCred,
  type SpawnOptions,
} from './native.js';
import { formatBytes, formatDuration, trace, writeErr } from './output.js';
import { shimPath } from './paths.js';
import { catchesSignal, innerIds, isLive, sessionProcesses } from './proctree.js';
import {
  DEFAULT_DIR,
  querySession,
  RefusedError,
  socketNameFor,
  UntrustedSessionError,
  type SessionStatus,
} from './protocol.js';
import { signalName } from './signals.js';
import { CheckpointScheduler } from './scheduler.js';
import { SessionServer, type JoinKind, type Proc } from './session-server.js';
import { watchWriter } from './writer.js';
import { checkUnaccepted } from './unaccepted.js';
import { holdStopped } from './hold.js';
import { readImage, VerifyCache } from './image.js';
import { CARRIED, carryFiles, mappedCount, recordContents } from './contents.js';

export { SessionError } from './errors.js';
export type { JoinKind } from './session-server.js';

export const DEFAULT_INTERNAL_SIGNAL = 63;
export const DEFAULT_TRIGGER_SIGNAL = osConstants.signals.SIGUSR2;
export const CHECKPOINT_TIMEOUT_MS = 60_000;
/** How long a launched program has to say hello before a checkpoint gives up on it. */
export const HELLO_TIMEOUT_MS = 5_000;
/**
 * Every this many checkpoints of a process one is full (a full image, then
 * at most this many minus one incremental ones): a damaged image then makes
 * at most this many generations unrestorable, and a restart reads at most
 * this many images.
 */
export const DEFAULT_FULL_EVERY = 10;

export interface SessionOptions {
  /** Checkpoint directory (default ./ckpt), created when missing. */
  dir?: string;
  /** Take a checkpoint every this many seconds. */
  interval?: number;
  /** Signal to ckrun that triggers a checkpoint (default SIGUSR2); null: none. */
  triggerSignal?: number | null;
  /**
   * `--checkpoint-on`: signals to ckrun that take a checkpoint and then end
   * the program (every process of the session, by SIGKILL: it never sees
   * the signal). When that checkpoint fails, the signal is passed on to the
   * program instead, as it would have been without ckrun.
   */
  checkpointOn?: number[];
  /**
   * Handle ckrun's signals like the command does: ignore SIGINT, forward
   * SIGTERM, SIGHUP and SIGQUIT to the program (default true).
   */
  handleSignals?: boolean;
  /** The shim's internal signal (CKRUN_SIGNAL, default 63). */
  internalSignal?: number;
  /** Log every checkpoint and every process joining or leaving. */
  verbose?: boolean;
  /** Where log lines go (default: ckrun's stderr); null: nowhere. Failures are always logged. */
  log?: ((line: string) => void) | null;
  /** The program's base environment (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Working directory for the program (default: ckrun's). */
  cwd?: string;
  /** The program's descriptors 0, 1, 2 (default ckrun's own [0, 1, 2]). */
  stdio?: [number, number, number];
  /** Per-process checkpoint answer timeout (default 60 s). */
  checkpointTimeoutMs?: number;
  /**
   * gzip every image once it is complete (`<pid>.ckpt.gz`): true for level 1
   * (fastest), or a level from 1 to 9. Compressed images are always full:
   * the shim is never asked for an incremental one.
   */
  compress?: boolean | number;
  /**
   * After each checkpoint, keep only the newest this many complete
   * generations of the directory (default: all).
   */
  keep?: number;
  /** Make every this many-th image of a process a full one (default DEFAULT_FULL_EVERY; 1: always full). */
  fullEvery?: number;
  /** `--files`: what checkpoints keep of the files the program writes (default 'snapshot'; src/files.ts). */
  files?: FilesPolicy;
  /** `--files-max`: a checkpoint fails when the files the program writes hold more bytes than this. */
  filesMax?: number;
  /** `--portable`: each generation keeps a copy of every file the program maps privately (src/contents.ts). */
  portable?: boolean;
  /** `--snapshot-dir`: directory trees each generation saves (src/snapdir.ts), besides those the restarted generation lists. */
  snapshotDirs?: string[];
}

export interface LaunchOptions extends SessionOptions {
  /** PROGRAM: a path, or a name looked up on PATH. */
  program: string;
  /** ARGS (argv[1..]). */
  args?: string[];
  /** The shim to preload (default build/Release/libckrun.so, or CKRUN_SHIM_PATH); null: none. */
  shim?: string | null;
}

export interface CheckpointResult {
  generation: number;
  /** Absolute path of the generation directory. */
  path: string;
  processes: ManifestProcess[];
  /** Wall time of the whole checkpoint, in ms. */
  ms: number;
  /** The files the program writes: bytes this generation stored of them, and the time it took (in the pause). */
  files?: { count: number; bytes: number; ms: number };
}

/** A checkpoint whose processes stay stopped until released (Coordinator.checkpointHeld). */
export interface HeldCheckpoint extends CheckpointResult {
  release(how: 'resume' | 'kill'): void;
}

/**
 * The mark in a generation directory that its stop froze every
 * established TCP connection in repair mode before ckrun's SIGKILL
 * (docs/design.md, "Connections to peers outside the session"): only
 * then does a restart continue them with their peers.
 */
export const REPAIR_FROZEN = 'repair_frozen';

export interface SessionExit extends ExitStatus {
  /** Whether the root process ever joined (said hello, or restored for a restart). */
  joined: boolean;
  /** The session was ended by a `checkpointOn` signal, after this checkpoint. */
  stopped?: { signal: number; generation: number; path: string };
}

/**
 * ckrun's exit status when a `--checkpoint-on` signal took a checkpoint and
 * ended the program (sysexits' EX_TEMPFAIL: "try again later" — with
 * `ckrun --resume` or `ckrun restart`).
 */
export const STOPPED_AFTER_CHECKPOINT = 75;

export interface Session {
  /** Canonical checkpoint directory. */
  readonly dir: string;
  /** Abstract socket name (without the NUL). */
  readonly socketName: string;
  /** The child ckrun started, in ckrun's PID namespace. */
  readonly pid: number;
  /** The program's root PID as the program sees it (the image's PID after a restart). */
  readonly programPid: number;
  /** Resolves when the root process joined (hello / restored); rejects if it exits first. */
  readonly ready: Promise<void>;
  /**
   * Resolves when the session is over, with the root process's status: the
   * root has exited and no other process of the session is left (after a
   * restart of a family: when the restore orchestrator, which outlives it, exits).
   */
  readonly exited: Promise<SessionExit>;
  /**
   * Takes a checkpoint now (joins one already running). `portable`: this
   * one keeps the files the program maps, as with --portable (a request
   * that comes while one runs is the next one's).
   */
  checkpoint(o?: { portable?: boolean }): Promise<CheckpointResult>;
  /** Sends a signal to the child (once it has exited: to every process of the session left). */
  kill(signal?: number): void;
  /**
   * What a `checkpointOn` signal does: a checkpoint (once the program is
   * ready), then every process of the session killed; `exited` then
   * carries `stopped`. For a signal that came before the session existed.
   */
  checkpointAndStop(signal: number): Promise<void>;
  /** Stops the coordinator; kills the program and every process of the session (SIGKILL), and waits for the end. */
  close(): Promise<void>;
}

/** How long after the root's exit the session looks again for processes left (daemons). */
const SESSION_END_POLL_MS = 100;

/**
 * Checkpoint failures the program itself ends in a moment, worth another
 * try (the reasons the shim gives: preload/sk-unix.c save_pending,
 * preload/sk-inet.c save_tcp_queues, preload/files.c file_save, preload/sk-netlink.c
 * nothing_pending), and how long the program runs on
 * before each new try.
 */
const PASSING_STATES = [
  /a connection not yet accepted holds bytes ckrun cannot read/,
  /a connection with bytes its own server has not accepted yet/,
  /a \/proc list of mappings is read part way/,
  /a TCP connection has ended and the program has not closed it yet/,
  /a netlink socket holds messages the program has not read yet/,
  /a TCP connection with bytes its peer has not acknowledged yet/,
];
const RETRY_WAITS_MS = [100, 200, 400, 800, 1600];

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: Error): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve: (v) => {
      if (!d.settled) (d.settled = true), resolve(v);
    },
    reject: (e) => {
      if (!d.settled) (d.settled = true), reject(e);
    },
  };
  return d;
}

export interface StartInfo {
  /** Child PID in ckrun's namespace. */
  pid: number;
  /** Root PID as the program sees it. */
  programPid: number;
  joinBy: JoinKind;
  /** For the manifest: how the session was started. */
  argv: string[];
  cwd: string;
  /** Shown by status. */
  restoredFrom?: string;
  /**
   * The image the restored process's memory came from, which its next
   * checkpoint may be incremental to (default: restoredFrom); null when
   * there is none to offer (a compressed image restored from a temporary file).
   */
  parentImage?: string | null;
  /** A restored family: the session is ready once every one of these PIDs said restored. */
  expectRestored?: number[];
  /** The child is the restore orchestrator of a family: its exit, not the root's, ends the session. */
  endsWithChild?: boolean;
  /** A restored family: [pid, image] for every process, which its next checkpoint may be incremental to. */
  parentImages?: [number, string][];
  /**
   * [pid, chain length] of the images restored (ManifestProcess.chain): an
   * image's next checkpoint is incremental only while its chain is shorter
   * than --full-every. A restored image not listed is taken as a full one.
   */
  chains?: [number, number][];
  /** The restored generation's written files, which the next checkpoint's are incremental to. */
  files?: { record: FilesRecord; path: string };
  /** The generation restored from: files first opened for writing before the next checkpoint are kept there. */
  generationPath?: string;
  /** When that generation was complete (its manifest's created_ns). */
  generationNs?: bigint;
  /** A restored portable generation's copies of the mapped files, which the next portable one links. */
  carried?: string;
}

/**
 * The coordinator. Created by openSession (socket listening, nothing
 * spawned yet); start() attaches the spawned child. Whether the program is
 * ready, how it ends, and what one checkpoint does are here; the protocol
 * server, the scheduler and the generation transaction are its parts.
 */
export class Coordinator implements Session {
  readonly dir: string;
  readonly socketName: string;
  pid = -1;
  programPid = -1;
  /** The session socket's connections and the program's processes among them. */
  private readonly server: SessionServer;
  private readonly opts: SessionOptions;
  private readonly log: (line: string) => void;
  private readonly internalSignal: number;
  /** gzip level for images, or undefined: not compressed. */
  private readonly compressLevel: number | undefined;
  /** Joins of processes that exited before they could be checked, heard before start(). */
  private readonly goneJoins: [JoinKind, number][] = [];
  private readonly readyD = deferred<void>();
  private readonly exitedD = deferred<SessionExit>();
  private readonly startedD = deferred<void>();
  /** When checkpoints are taken. */
  private readonly scheduler: CheckpointScheduler<CheckpointResult>;
  /** The watchers of the signals ckrun passes on to the program. */
  private stopSignals: (() => void)[] = [];
  private startedAt = 0;
  private joinBy: JoinKind = 'hello';
  private joined = false;
  private exiting = false;
  /** A `checkpointOn` signal arrived: its checkpoint is running, or done and the program being ended. */
  private stopping: { signal: number; done?: { generation: number; path: string } } | undefined;
  /** The root's status, once it (or, for a restored family, the orchestrator) has exited. */
  private rootExit: ExitStatus | undefined;
  private endsWithChild = false;
  private expectRestored: Set<number> | undefined;
  private readonly restoredPids = new Set<number>();
  /** The images read after recent checkpoints (immutable once complete): an incremental image's older ones are read once, not every round. */
  private readonly imageCache = new VerifyCache();
  private argv: string[] = [];
  private cwd = '';
  private restoredFrom: string | null = null;
  private lastGeneration: number | null = null;
  /** The generations this session writes into dir. */
  private readonly generations: GenerationWriter;
  /** Which image each process's next one may be incremental to. */
  private readonly chains: ImageChains;
  /** The files of the newest generation: the next one stores only the blocks that changed since. */
  private lastFiles: { record: FilesRecord; path: string; stats?: Map<string, string> } | undefined;
  /** The files the program opened for writing (its shims said `wrote`): saved at each checkpoint while they exist. */
  private readonly written = new WrittenFiles();
  /** The newest generation, where files first opened for writing after it are kept. */
  private late: LateFiles | undefined;
  /** The one before: a file made before the newest checkpoint but told after it is noted there. */
  private previousLate: LateFiles | undefined;
  /** Settles when the checkpoint under way ends. */
  private checkpointSettled: Promise<void> | undefined;
  /** The previous generation's copies of the mapped files (`--portable`), which the next one links. */
  private lastCarried: string | undefined;
  /** `ckrun checkpoint --portable` asked: the next checkpoint to start is portable. */
  private portableAsked = false;

  constructor(dir: string, server: Server, opts: SessionOptions, internalSignal: number) {
    this.dir = dir;
    this.socketName = socketNameFor(dir);
    this.opts = opts;
    this.internalSignal = internalSignal;
    this.compressLevel = compressLevel(opts.compress);
    const sink = opts.log === undefined ? (l: string) => writeErr(`ckrun: ${l}\n`) : opts.log;
    this.log = sink ?? (() => undefined);
    this.generations = new GenerationWriter(dir, { log: (l) => this.log(l), verbose: (l) => this.verbose(l) }, opts.keep);
    this.chains = new ImageChains(opts.fullEvery ?? DEFAULT_FULL_EVERY, this.compressLevel !== undefined);
    this.scheduler = new CheckpointScheduler(() => this.takeCheckpoint(), (l) => this.verbose(l));
    // Nobody has to observe these; callers that await them still see rejections.
    this.readyD.promise.catch(() => undefined);
    this.startedD.promise.catch(() => undefined);
    this.server = new SessionServer(
      server,
      internalSignal,
      {
        joined: (word, pid) => this.noteJoined(word, pid),
        joinedUnchecked: (word, pid) => this.noteUncheckedJoin(word, pid),
        checkpoint: (o) => this.checkpoint(o),
        checkpointHeld: () => this.checkpointHeld(),
        status: () => this.status(),
        keep: (f, by) => this.keepLate(f, by),
        sendQueue: (pid, fd) => this.sendQueueFor(pid, fd),
        made: (f, by) => this.noteMade(f, by),
        moved: (m, by) => this.noteMoved(m, by),
        wrote: (f, by) => {
          if (this.claimedFile(f, by, 'said it wrote', 'not saved') !== undefined) this.written.note(f);
        },
      },
      this.log,
      (l) => this.verbose(l),
    );
  }

  get ready(): Promise<void> {
    return this.readyD.promise;
  }

  get exited(): Promise<SessionExit> {
    return this.exitedD.promise;
  }

  /**
   * f's path for the log (another process's text: no control characters
   * reach the terminal), or undefined when the process that named it could
   * not write it (`-v` says so: the file is never saved, kept or noted).
   */
  private claimedFile(f: WrittenFile, by: PeerCred | undefined, said: string, outcome: string, may = mayHaveWritten): string | undefined {
    const shown = f.path.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
    if (may(f, by)) return shown;
    this.verbose(`a process (${by ? `PID ${by.pid}, user ${by.uid}` : 'unknown'}) ${said} ${shown}, which it could not write: ${outcome}`);
    return undefined;
  }

  /**
   * A process is about to open an existing file for writing, its first time
   * since the newest generation: the file is kept in it as it is (as it was
   * then), before the process is told to go on.
   */
  private async keepLate(f: WrittenFile, by: PeerCred | undefined): Promise<'kept' | 'kept none'> {
    while (this.checkpointSettled) await this.checkpointSettled;
    const late = this.late;
    // nothing to keep (no checkpoint yet, or files are not rolled back): the shim asks no more until its next checkpoint
    if (!late || (this.opts.files ?? DEFAULT_FILES_POLICY) !== 'snapshot') return 'kept none';
    const shown = this.claimedFile(f, by, 'asked to keep', 'not kept');
    if (shown === undefined) return 'kept';
    try {
      const s = late.keep(f, skipDirsFor(this.dir));
      if (s) this.verbose(`${shown}, first opened for writing since the checkpoint, is kept in ${late.genPath} (${formatBytes(s.stored)} stored)`);
    } catch (e) {
      this.log(`cannot keep ${shown} as it was at the checkpoint (${errorMessage(e)}): a restart from ${late.genPath} will not put it back`);
    }
    return 'kept';
  }

  /**
   * A TCP send queue of a process standing stopped for a checkpoint, which
   * it cannot read itself (repair mode takes CAP_NET_ADMIN; a program that
   * gave up root has it no more): read through a duplicate of its socket,
   * only while a checkpoint is under way.
   */
  private sendQueueFor(pid: number, fd: number): { end: number; unsent: number; data: Buffer } | string {
    if (!this.checkpointSettled) return 'no checkpoint is under way';
    let dup: number;
    try {
      dup = native().dupProcessFd(pid, fd);
    } catch (e) {
      return errorMessage(e);
    }
    try {
      const q = native().tcpSendQueue(dup);
      this.verbose(`read the send queue of process ${pid}'s TCP connection at descriptor ${fd} for it (${q.data.length} bytes, ${q.unsent} not sent)`);
      return q;
    } catch (e) {
      return errorMessage(e);
    } finally {
      closeSync(dup);
    }
  }

  /** A process made a file since the newest generation: a restart from it removes the file. */
  private async noteMade(f: WrittenFile, by: PeerCred | undefined): Promise<void> {
    while (this.checkpointSettled) await this.checkpointSettled;
    const late = this.late;
    if (!late || (this.opts.files ?? DEFAULT_FILES_POLICY) !== 'snapshot') return;
    const shown = this.claimedFile(f, by, 'said it made', 'not noted', mayHaveMade);
    if (shown === undefined) return;
    try {
      // every generation taken before it was born (the newest, and the one before when its line came late)
      for (const l of [late, this.previousLate])
        if (l && l.made(f, skipDirsFor(this.dir))) this.verbose(`${shown} was made since checkpoint ${l.genPath}: a restart from it removes the file`);
    } catch (e) {
      this.log(`cannot note ${shown} as made since the checkpoint (${errorMessage(e)}): a restart from ${late.genPath} leaves it there`);
    }
  }

  /** A process is about to move an entry to a new name: a restart from the newest generation (or the one before) moves it back. */
  private async noteMoved(m: { dev: number; ino: number; from: string; to: string; link?: true }, by: PeerCred | undefined): Promise<void> {
    while (this.checkpointSettled) await this.checkpointSettled;
    const late = this.late;
    if (!late || (this.opts.files ?? DEFAULT_FILES_POLICY) !== 'snapshot') return;
    const shown = this.claimedFile({ path: m.from, dev: m.dev, ino: m.ino, how: 'inplace' }, by, 'said it moves', 'not noted', mayHaveMade);
    if (shown === undefined) return;
    try {
      for (const l of [late, this.previousLate])
        if (l && l.moved(m, skipDirsFor(this.dir), by && by.uid !== 0 ? by.uid : undefined)) this.verbose(m.link ? `${shown} has a new name since checkpoint ${l.genPath}: a restart from it removes that name` : `${shown} is moved since checkpoint ${l.genPath}: a restart from it moves it back`);
    } catch (e) {
      this.log(`cannot note that ${shown} is moved since the checkpoint (${errorMessage(e)}): a restart from ${late.genPath} leaves it at its new name`);
    }
  }

  private verbose(line: string): void {
    if (this.opts.verbose) this.log(line);
  }

  /** Logs a line when the session is verbose. */
  verboseLog(line: string): void {
    this.verbose(line);
  }

  /** Attaches the spawned child and installs signals and the interval timer. */
  start(info: StartInfo): void {
    this.pid = info.pid;
    this.programPid = info.programPid;
    this.joinBy = info.joinBy;
    this.argv = info.argv;
    this.cwd = info.cwd;
    this.restoredFrom = info.restoredFrom ?? null;
    const parent = info.parentImage === undefined ? info.restoredFrom : info.parentImage;
    if (info.files) {
      this.lastFiles = info.files;
      // the restarted program wrote these before the checkpoint: they stay rolled back while they exist
      for (const f of info.files.record.saved) if (f.how !== 'recreate') this.written.note({ path: f.path, dev: f.dev, ino: f.ino, how: f.how === 'append' ? 'append' : 'inplace' });
    }
    if (info.generationPath) this.late = new LateFiles(info.generationPath, info.files?.record.saved ?? [], info.generationNs ?? BigInt(Date.now()) * 1_000_000n);
    if (info.carried) this.lastCarried = info.carried;
    if (parent) this.chains.setParent(info.programPid, parent);
    for (const [pid, image] of info.parentImages ?? []) this.chains.setParent(pid, image);
    for (const [pid, chain] of info.chains ?? []) this.chains.setChain(pid, chain);
    this.endsWithChild = info.endsWithChild === true;
    if (info.expectRestored) this.expectRestored = new Set(info.expectRestored);
    this.startedAt = Date.now();
    // the restore host may have connected before the session knew whom to expect
    if (!this.expectRestored && this.server.processes().some((p) => p.pid === info.programPid && p.restored === (info.joinBy === 'restored'))) {
      this.joined = true;
      this.readyD.resolve();
    }
    for (const [word, pid] of this.goneJoins.splice(0)) this.noteJoined(word, pid);
    this.installSignals();
    this.scheduler.every(this.opts.interval);
    this.startedD.resolve();
  }

  private installSignals(): void {
    const trigger = this.opts.triggerSignal === undefined ? DEFAULT_TRIGGER_SIGNAL : this.opts.triggerSignal;
    if (trigger !== null) this.scheduler.onSignal(trigger);
    const stopOn = this.opts.checkpointOn ?? [];
    for (const sig of stopOn) this.stopSignals.push(watchSignal(sig, () => void this.checkpointAndStop(sig)));
    if (this.opts.handleSignals === false) return;
    const s = osConstants.signals;
    if (trigger !== s.SIGINT && !stopOn.includes(s.SIGINT)) this.stopSignals.push(watchSignal(s.SIGINT, () => undefined));
    for (const sig of [s.SIGTERM, s.SIGHUP, s.SIGQUIT]) {
      if (sig === trigger || stopOn.includes(sig)) continue;
      this.stopSignals.push(watchSignal(sig, () => this.kill(sig)));
    }
  }

  kill(signal: number = osConstants.signals.SIGTERM): void {
    if (this.pid <= 0 || this.exitedD.settled || this.exiting) return;
    // once the root has gone, what is left of the session (daemons) gets it
    const targets = this.rootExit ? sessionProcesses(process.pid).filter(isLive).map((p) => p.outer) : [this.pid];
    for (const pid of targets) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }

  /**
   * A `checkpointOn` signal: one checkpoint (after the running one, if
   * any), then every process of the session is killed — the program never
   * sees the signal, and the checkpoint is the state a resume continues
   * from (the files it writes are put back as they were then). When the
   * checkpoint fails, the signal goes to the program as it would have
   * without ckrun: it may save its own work, and ckrun's status is then
   * the program's, not STOPPED_AFTER_CHECKPOINT, so a job script can tell.
   */
  async checkpointAndStop(sig: number): Promise<void> {
    if (this.stopping || this.exiting || this.exitedD.settled) return;
    const stopping: NonNullable<Coordinator['stopping']> = { signal: sig };
    this.stopping = stopping;
    this.scheduler.stopInterval();
    this.log(`${signalName(sig)} received: taking a checkpoint, then ending the program`);
    let held: Awaited<ReturnType<Coordinator['checkpointToStop']>>;
    try {
      held = await this.checkpointToStop();
      stopping.done = { generation: held.generation, path: held.path };
    } catch {
      // take() logged why
      this.log(`no checkpoint was taken on ${signalName(sig)}: passing ${signalName(sig)} on to the program`);
      this.stopping = undefined;
      this.scheduler.every(this.opts.interval); // a program that outlives the signal is checkpointed on
      this.kill(sig);
      return;
    }
    this.log(`checkpoint ${stopping.done.generation} written to ${stopping.done.path}; ending the program (ckrun --resume or ckrun restart continues it)`);
    await this.freezeConnections(held.path, held.freeze);
    this.killEveryone();
    held.release(false);
  }

  /** One checkpoint (retried as any) whose processes stay stopped: the stop of a `checkpointOn` signal. */
  private checkpointToStop(): Promise<CheckpointResult & { release: (resume?: boolean) => void; freeze?: () => Promise<void> }> {
    return this.scheduler.exclusive(async () => {
      const r = await this.runCheckpoint(true).catch((e: unknown) => {
        this.log(`checkpoint failed: ${errorMessage(e)}`);
        throw e;
      });
      this.lastGeneration = r.generation;
      let done!: () => void;
      const busyUntil = new Promise<void>((res) => (done = res));
      const release = (resume?: boolean): void => {
        r.release?.(resume);
        done();
      };
      return { value: { ...r, release }, busyUntil };
    });
  }

  /**
   * Just before ckrun kills the held processes: their TCP connections go
   * into repair mode, so the kill neither closes nor resets them for the
   * peer, and the generation is marked so (a restart as root continues
   * them). Written only once every process froze them; otherwise (no
   * CAP_NET_ADMIN) they are thawed, and reset as always.
   */
  private async freezeConnections(path: string, freeze: (() => Promise<void>) | undefined): Promise<void> {
    if (!freeze) return;
    try {
      await freeze();
      const fd = openSync(join(path, REPAIR_FROZEN), 'wx', 0o600);
      try {
        writeSync(fd, 'the TCP connections of this generation were left in repair mode when ckrun ended the program\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      this.verbose(`the program's TCP connections are frozen in repair mode: a restart as root continues them with their peers`);
    } catch (e) {
      this.verbose(`the program's TCP connections could not be frozen (${errorMessage(e)}): their peers see them closed, and a restart brings them back reset`);
    }
  }

  /** SIGKILL to the child and every process of the session. */
  private killEveryone(): void {
    for (const pid of [this.pid, ...sessionProcesses(process.pid).map((p) => p.outer)]) {
      try {
        process.kill(pid, osConstants.signals.SIGKILL);
      } catch {
        // gone
      }
    }
  }

  /** A process said hello or restored and exited before it could be checked: it counts all the same. */
  private noteUncheckedJoin(word: JoinKind, pid: number): void {
    if (this.pid < 0) this.goneJoins.push([word, pid]); // start() counts it
    else this.noteJoined(word, pid);
  }

  /** The root (or, after the restart of a family, every process) has joined: the session is ready. */
  private noteJoined(word: JoinKind, pid: number): void {
    if (this.expectRestored) {
      if (word === 'restored') this.restoredPids.add(pid);
      if (!this.joined && [...this.expectRestored].every((p) => this.restoredPids.has(p))) {
        this.joined = true;
        this.readyD.resolve();
      }
    } else if (pid === this.programPid && (word === this.joinBy || this.joined)) {
      this.joined = true;
      this.readyD.resolve();
    }
  }

  /** Every live process of the session, by the PID it sees itself under, in ascending order. */
  private livePids(): number[] {
    const pids = new Set<number>(this.server.processes().map((p) => p.pid));
    for (const d of sessionProcesses(process.pid)) {
      if (!isLive(d)) continue;
      const ids = innerIds(d.outer);
      if (ids) pids.add(ids.pid);
    }
    return [...pids].sort((a, b) => a - b);
  }

  status(): SessionStatus {
    return {
      pid: process.pid,
      dir: this.dir,
      argv: this.argv,
      root: this.programPid > 0 ? this.programPid : null,
      // forked children join only when a checkpoint asks them: /proc knows them all
      processes: this.livePids(),
      checkpointing: this.scheduler.busy,
      lastGeneration: this.lastGeneration,
      restoredFrom: this.restoredFrom,
    };
  }

  // ---- checkpoints ---------------------------------------------------

  checkpoint(o: { portable?: boolean } = {}): Promise<CheckpointResult> {
    if (o.portable) this.portableAsked = true;
    return this.scheduler.checkpoint();
  }

  /**
   * A checkpoint after which every process stays stopped (the last round
   * of `ckrun migrate`) until `release('resume')` lets it run on or
   * `release('kill')` ends the session's processes (the program moved).
   * No other checkpoint runs meanwhile.
   */
  checkpointHeld(): Promise<HeldCheckpoint> {
    return this.scheduler.exclusive(async () => {
      // a migration's target gets the files the program maps through the stream when the session is portable
      const r = await this.checkpointOnce(this.opts.portable === true, true);
      const release = r.release!;
      let done!: () => void;
      const busyUntil = new Promise<void>((res) => (done = res));
      this.lastGeneration = r.generation;
      this.verbose(`checkpoint ${r.generation} written to ${r.path}; the program is held stopped (migration)`);
      return {
        value: {
          ...r,
          // not frozen: the target restored them (reset) before this kill
          release: (how: 'resume' | 'kill') => {
            if (how === 'kill') this.endMoved();
            release(how === 'resume');
            done();
          },
        },
        busyUntil,
      };
    });
  }

  /** The program runs elsewhere now: every process of the session is killed (they are stopped in the shim). */
  private endMoved(): void {
    this.log('the program moved (ckrun migrate): its processes here are ended');
    for (const p of sessionProcesses(process.pid).filter(isLive)) {
      try {
        process.kill(p.outer, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }

  /** One checkpoint, as the scheduler takes it: its outcome logged. */
  private takeCheckpoint(): Promise<CheckpointResult> {
    return this.runCheckpoint().then(
      (r) => {
        this.lastGeneration = r.generation;
        const bytes = r.processes.reduce((a, p) => a + p.bytes, 0);
        const gz = r.processes.reduce((a, p) => a + (p.compressed_bytes ?? 0), 0);
        const pause = r.processes.reduce((a, p) => Math.max(a, p.pause_ns), 0);
        this.verbose(
          `checkpoint ${r.generation} written to ${r.path}: ${r.processes.length} process${r.processes.length === 1 ? '' : 'es'}, ` +
            `${formatBytes(bytes)}${this.compressLevel !== undefined ? ` (compressed to ${formatBytes(gz)})` : ''}, program paused ${formatDuration(pause)}, took ${formatDuration(r.ms * 1e6)}` +
            (r.files && r.files.count > 0 ? `; ${r.files.count} written file${r.files.count === 1 ? '' : 's'}: ${formatBytes(r.files.bytes)} stored in ${formatDuration(r.files.ms * 1e6)} of the pause` : ''),
        );
        return r;
      },
      (e: unknown) => {
        this.log(`checkpoint failed: ${errorMessage(e)}`);
        throw e;
      },
    );
  }

  private async waitReady(): Promise<void> {
    if (this.joined) return;
    // A request can arrive while restart still waits for the image's PID.
    await this.startedD.promise.catch(() => {
      throw new SessionError('the session is shutting down');
    });
    if (this.exiting || this.exitedD.settled) throw new SessionError('the program has exited');
    if (this.joinBy === 'restored') {
      await this.readyD.promise.catch(() => {
        throw new SessionError('the program exited before it was restored');
      });
      return;
    }
    const left = this.startedAt + HELLO_TIMEOUT_MS - Date.now();
    if (left > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((res) => {
        timer = setTimeout(res, left);
      });
      await Promise.race([this.readyD.promise.catch(() => undefined), timeout]);
      if (timer) clearTimeout(timer);
    }
    if (!this.joined) {
      if (this.exiting || this.exitedD.settled) throw new SessionError('the program has exited');
      throw new SessionError(
        `the program (pid ${this.programPid}) never connected to ckrun: it is statically linked, ` +
          `or LD_PRELOAD was removed from its environment, so the shim is not in it and it cannot be checkpointed ` +
          `(ckrun checkpoints dynamically linked programs that keep LD_PRELOAD)`,
      );
    }
  }

  /**
   * A checkpoint that meets a state the program leaves by itself in a
   * moment (a connection not yet accepted that holds bytes) is tried again
   * after letting the program run a little: a few times, waiting longer
   * each time, each said in -v; the last failure says how long it waited.
   */
  private async runCheckpoint(hold = false): Promise<CheckpointResult & { release?: (resume?: boolean) => void; freeze?: () => Promise<void> }> {
    // read before anything is awaited: a request that comes later is the next checkpoint's
    const portable = this.opts.portable === true || this.portableAsked;
    this.portableAsked = false;
    let waited = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.checkpointing(() => this.checkpointOnce(portable, hold));
      } catch (e) {
        const passing = errorMessage(e);
        if (!PASSING_STATES.some((r) => r.test(passing))) throw e;
        if (attempt > RETRY_WAITS_MS.length)
          throw new SessionError(`${passing} (tried ${attempt} times while the program ran on for ${formatDuration(waited * 1e6)})`);
        const ms = RETRY_WAITS_MS[attempt - 1];
        this.verbose(`checkpoint try ${attempt} met a passing state (${passing}); the program runs on for ${ms} ms, then try ${attempt + 1} of ${RETRY_WAITS_MS.length + 1}`);
        await new Promise((r) => setTimeout(r, ms));
        waited += ms;
      }
    }
  }

  /**
   * Runs one try of a checkpoint; meanwhile `keep` and `made` requests wait
   * (src/files-late.ts): between the stop and the generation's completion a
   * file one of them names may be written already, so it is the new
   * generation they are for, once there is one.
   */
  private async checkpointing<T>(run: () => Promise<T>): Promise<T> {
    let settle!: () => void;
    const settled = new Promise<void>((r) => (settle = r));
    this.checkpointSettled = settled;
    try {
      return await run();
    } finally {
      if (this.checkpointSettled === settled) this.checkpointSettled = undefined;
      settle();
    }
  }

  private async checkpointOnce(portable: boolean, hold = false): Promise<CheckpointResult & { release?: (resume?: boolean) => void; freeze?: () => Promise<void> }> {
    const t0 = Date.now();
    // when every process stood stopped, rounded up: a file born after it was made after the checkpoint
    let stoppedNs = 0n;
    await this.waitReady();
    this.vetDirAgain();
    await this.removeStalePartials();
    const gen = await this.generations.begin(this.programPid);
    this.chains.startCheckpoint();
    let release: ((resume?: boolean) => void) | undefined;
    try {
      const answerMs = this.opts.checkpointTimeoutMs ?? CHECKPOINT_TIMEOUT_MS;
      let files: CaptureResult | undefined;
      const policy = this.opts.files ?? DEFAULT_FILES_POLICY;
      const filesOpts = {
        policy,
        maxBytes: this.opts.filesMax,
        genPath: gen.path,
        skipDirs: skipDirsFor(this.dir),
        stdio: this.opts.stdio ?? [0, 1, 2],
        written: this.written,
      };
      const snapDirs = this.snapshotDirs();
      // each file's ctime, mtime and size as the capture read it: a closed file unchanged since is not read again
      const captureStats = new Map<string, string>();
      // the bulk of the copy while the program runs; the pause copies what changed since
      const pre = policy === 'snapshot' ? precopyFiles(this.membersNow(), { ...filesOpts, previous: this.lastFiles }) : undefined;
      const deferred: DeferredLink[] = [];
      const preDirs = snapDirs.length ? precopyDirs(snapDirs, { genPath: gen.path, skipDirs: filesOpts.skipDirs, ...(this.opts.filesMax !== undefined ? { maxBytes: this.opts.filesMax } : {}), ...this.lastDirs() }) : undefined;
      const r = await checkpointBarrier(this.barrierHost(gen.path), {
        genPath: gen.path,
        self: process.pid,
        stepTimeoutMs: Math.min(STEP_TIMEOUT_MS, answerMs),
        answerTimeoutMs: answerMs,
        hold,
        whileStopped: (members) => {
          stoppedNs = BigInt(Date.now() + 1) * 1_000_000n;
          // the trees first: a file the program writes under one is saved by both, at one instant
          const dirs = snapDirs.length ? this.captureSnapshotDirs(snapDirs, gen.path, filesOpts.skipDirs, preDirs, deferred) : undefined;
          files = captureFiles(members, { ...filesOpts, previous: pre ?? this.lastFiles, stats: captureStats });
          if (pre) tidyFiles(gen.path, files.record);
          if (dirs) files.record.dirs = dirs;
        },
      }).catch(async (e: unknown) => {
        if (e instanceof BarrierError && e.everyoneLeft) throw new SessionError(`${e.message}${await this.howRootEnded()}`);
        throw new SessionError(errorMessage(e));
      });
      // first: a held program must run on when anything below fails
      release = r.release;
      trace('checkpoint: images written');
      // each image's metadata read once (an incremental one's runs are many): for these checks and the contents
      const metas = await Promise.all(r.processes.map(async (p) => (await readImage(join(gen.path, p.image), { cache: this.imageCache })).meta));
      trimCache(this.imageCache);
      const unaccepted = checkUnaccepted(metas);
      if (unaccepted.failure) throw new SessionError(unaccepted.failure);
      for (const o of unaccepted.outside)
        this.verbose(`process ${o.pid}: a connection not yet accepted on descriptor ${o.fd} holds bytes from a client outside the session (socket inode ${o.client}); like every connection to the outside it is lost at restart`);
      if (files?.record.dirs) linkDeferred(deferred, files.record.dirs);
      if (preDirs) await rm(join(gen.path, PRECOPY_DIR), { recursive: true, force: true }); // its copies are linked in dirs/
      for (const p of r.processes)
        await gen.addImage({ pid: p.pid, image: p.image, pause_ns: p.pauseNs, ppid: p.ppid, pgid: p.pgid, sid: p.sid, chain: this.chains.chainAfter(p.pid) });
      // the program runs on meanwhile: each file is hashed once while it stays the same
      trace('checkpoint: images added, metadata read');
      const contents = await recordContents(metas);
      trace('checkpoint: mapped files by content');
      this.verbose(
        `mapped files by content: ${contents.entries.length} files, ${formatBytes(Number(contents.hashed))} hashed in ${formatDuration(contents.ms * 1e6)}`,
      );
      const carried = portable ? await carryFiles(gen.path, contents.entries, mappedCount(metas), this.lastCarried) : undefined;
      if (carried)
        this.verbose(
          carried.portable
            ? `portable: the ${contents.entries.length} mapped files are in the generation (${formatBytes(Number(carried.copied))} copied, the rest linked)`
            : `not portable: a file the program maps changed while it was checkpointed or is larger than 1 GiB; a restart needs it`,
        );
      if (this.compressLevel !== undefined) await gen.compress(this.compressLevel);
      const { path, processes } = await gen.complete({
        contents: contents.entries,
        portable: carried?.portable === true,
        argv: this.argv,
        cwd: this.cwd,
        shared_files: r.sharedFiles,
        shm_owners: r.shmOwners,
        // only when a restart has something to do (the fast start leaves such generations to node)
        ...(files && (files.record.saved.length > 0 || files.record.stdio.length > 0 || files.record.policy === 'none' || files.record.dirs) ? { files: files.record } : {}),
      });
      this.chains.completed(path, processes);
      trace('checkpoint: generation complete');
      if (files) this.lastFiles = { record: files.record, path, stats: captureStats };
      this.previousLate = this.late;
      this.late = new LateFiles(path, files?.record.saved ?? [], stoppedNs || BigInt(Date.now()) * 1_000_000n);
      if (carried) this.lastCarried = join(path, CARRIED);
      await this.generations.keepNewest();
      const filesInfo = files ? { count: files.record.saved.length, bytes: files.bytes, ms: files.ms } : undefined;
      return { generation: gen.number, path, processes, ms: Date.now() - t0, ...(filesInfo ? { files: filesInfo } : {}), ...(release ? { release } : {}), ...(r.freeze ? { freeze: r.freeze } : {}) };
    } catch (e) {
      release?.(); // a held program runs on: the checkpoint failed
      await gen.remove().catch(() => undefined);
      throw e;
    }
  }

  /** The previous generation's snapshot directories: unchanged files are linked from them. */
  private lastDirs(): { previous?: { dirs: DirSnapshot[]; path: string } } {
    return this.lastFiles?.record.dirs ? { previous: { dirs: this.lastFiles.record.dirs, path: this.lastFiles.path } } : {};
  }

  /** `--snapshot-dir`s of this session and those its restarted generation saved, each once. */
  private snapshotDirs(): string[] {
    return [...new Set([...(this.opts.snapshotDirs ?? []), ...(this.lastFiles?.record.dirs ?? []).map((d) => d.path)])];
  }

  /** The snapshot directories saved into the generation (in the pause), the time said in -v. */
  private captureSnapshotDirs(dirs: string[], genPath: string, skipDirs: string[], pre: DirSnapshot[] | undefined, defer: DeferredLink[]): DirSnapshot[] {
    const from = pre ? { previous: { dirs: pre, path: genPath, precopy: true } } : this.lastDirs();
    const r = captureDirs(dirs, { genPath, skipDirs, defer, ...(this.opts.filesMax !== undefined ? { maxBytes: this.opts.filesMax } : {}), ...from });
    this.verbose(
      `snapshot directories: ${r.dirs.map((d) => `${d.path} (${d.entries} entries, ${formatBytes(d.bytes)})`).join(', ')}; ${formatBytes(r.stored)} copied in the pause, which it took ${formatDuration(r.ms * 1e6)} of`,
    );
    return r.dirs;
  }

  /** The session's processes as they are now (not stopped): whose files a pre-copy reads. */
  private membersNow(): { pid: number; outer: number }[] {
    return sessionProcesses(process.pid)
      .filter((p) => p.state !== 'Z')
      .map((p) => ({ pid: p.outer, outer: p.outer }));
  }

  /** Removes the `.N.partial` directories no writer writes into any more (never the running checkpoint's: called before it starts). */
  async removeStalePartials(): Promise<void> {
    await this.generations.removeStalePartials();
  }

  /**
   * The directory is checked again before each checkpoint (its owner may
   * have changed its mode meanwhile) and created again if it was removed.
   */
  private vetDirAgain(): void {
    let now: string;
    try {
      now = trustCheckpointDir(this.dir);
    } catch (e) {
      if (e instanceof DirectoryTrustError) throw new SessionError(e.message);
      throw e;
    }
    if (now !== this.dir)
      throw new SessionError(`refusing checkpoint directory ${this.dir}: it now resolves to ${now}; start a new session there if that is meant`);
  }

  /**
   * How the program ended, for a checkpoint whose every process left: its
   * status arrives from the reaper shortly after its connection closed.
   */
  private async howRootEnded(): Promise<string> {
    for (let i = 0; i < 25 && !this.rootExit; i++) await new Promise((r) => setTimeout(r, 20));
    const st = this.rootExit;
    if (!st) return '';
    const how = st.signal !== null ? `was killed by ${signalName(st.signal)}` : `exited with status ${st.code}`;
    return ` (the program, PID ${this.programPid}, ${how})`;
  }

  /** What the checkpoint barrier needs of the coordinator (images go to genPath). */
  private barrierHost(genPath: string): BarrierHost<Proc> {
    return {
      connected: () => this.server.processes(),
      send: (p, line) =>
        /^save( |$)/.test(line) ? this.server.sendWithImage(p.sock, line, join(genPath, imageName(p.pid))) : this.server.send(p.sock, line),
      expect: (p, words, timeoutMs, what) => this.server.expect(p, words, timeoutMs, what),
      cancel: (p) => this.server.cancel(p),
      parentImage: (p) => this.chains.parentFor(p.pid),
      ownSockets: () => unixPeers(this.socketName),
      askToJoin: (outer) => catchesSignal(outer, this.internalSignal) && askToJoin(outer, this.internalSignal),
      watchWriter: (_p, writer, depth, onEnd) => watchWriter(process.pid, writer, depth, onEnd),
      hold: (outer, what) => holdStopped(outer, this.internalSignal, what),
      verbose: (line) => this.verbose(line),
    };
  }

  // ---- the end ---------------------------------------------------------

  /**
   * Called with the child's status when it has been reaped. The session
   * ends when no other process of it is left (daemons keep it going), or
   * at once when the child was a family's restore orchestrator.
   */
  async onChildExit(st: ExitStatus): Promise<void> {
    if (this.exiting || this.rootExit) return;
    this.rootExit = st;
    this.readyD.reject(new SessionError(`the program exited (status ${st.status}) before it ${this.joinBy === 'restored' ? 'was restored' : 'connected to ckrun'}`));
    if (!this.endsWithChild) await this.sessionGone();
    if (this.exiting) return;
    this.exiting = true;
    this.stopTimersAndSignals();
    await this.scheduler.idle();
    await this.shutdownServer();
    const stopped = this.stopping?.done ? { signal: this.stopping.signal, ...this.stopping.done } : undefined;
    this.exitedD.resolve({ ...st, joined: this.joined, ...(stopped ? { stopped } : {}) });
  }

  /** Resolves when no process of the session is left below ckrun (writers of a checkpoint aside). */
  private async sessionGone(): Promise<void> {
    for (;;) {
      if (this.server.closed) return;
      const left = sessionProcesses(process.pid).filter(isLive);
      if (left.length === 0) return;
      await new Promise((r) => setTimeout(r, SESSION_END_POLL_MS));
    }
  }

  private stopTimersAndSignals(): void {
    this.scheduler.stop();
    for (const stop of this.stopSignals) stop();
    this.stopSignals = [];
  }

  private async shutdownServer(): Promise<void> {
    if (this.server.closed) return;
    this.startedD.reject(new SessionError('the session is shutting down'));
    await this.server.shutdown();
  }

  async close(): Promise<void> {
    if (this.pid > 0 && !this.exitedD.settled) {
      this.killEveryone();
      await this.exitedD.promise;
    }
    this.stopTimersAndSignals();
    await this.shutdownServer();
  }
}

/** The newest images a session keeps read (a chain of incremental images longer than this reads its oldest again). */
const IMAGE_CACHE_MAX = 32;

function trimCache(cache: VerifyCache): void {
  for (const key of cache.results.keys()) {
    if (cache.results.size <= IMAGE_CACHE_MAX) break;
    cache.results.delete(key);
  }
}

/** Fails when another session answers on DIR's socket, or another user holds it. */
async function refuseIfRunning(dir: string): Promise<void> {
  let other: SessionStatus | undefined;
  try {
    other = await querySession(dir, 2000);
  } catch (e) {
    if (e instanceof NativeLoadError) throw e;
    if (e instanceof UntrustedSessionError)
      throw new SessionError(`cannot start a session on ${dir}: ${e.message}; choose another --dir`);
    if (e instanceof RefusedError)
      throw new SessionError(
        `another user's ckrun session is already writing to ${dir} (it refused to tell which: ${e.why}); choose another --dir`,
      );
    throw new SessionError(
      `something already listens on the session socket of ${dir} (${socketNameFor(dir)}) but does not answer like ckrun: ${errorMessage(e)}`,
    );
  }
  if (other) {
    const what = other.argv.length > 0 ? `, running ${other.argv.join(' ')}` : '';
    throw new SessionError(
      `another ckrun session (pid ${other.pid}${what}) is already writing to ${dir}; stop it first or choose another --dir`,
    );
  }
}

/** Listens on the abstract name (made by the addon: see connectAbstract for why). */
function listen(server: Server, name: string, dir: string): Promise<void> {
  let fd: number;
  try {
    fd = native().unixListen(name);
  } catch (e) {
    if (isNativeError(e) && e.code === 'EADDRINUSE')
      throw new SessionError(`another ckrun session is already writing to ${dir}; stop it first or choose another --dir`);
    throw new SessionError(`cannot listen on the session socket @${name}: ${errorMessage(e)}`);
  }
  return listenOn(server, fd, name);
}

/** Serves connections on fd, a socket already listening on @name. */
function listenOn(server: Server, fd: number, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => {
      server.off('listening', onListening);
      try {
        closeSync(fd);
      } catch {
        // already closed by the server
      }
      reject(new SessionError(`cannot listen on the session socket @${name}: ${e.message}`));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ fd });
  });
}

/**
 * The canonical path of the checkpoint directory ckrun may write to:
 * vetted component by component (src/dirtrust.ts), created 0700 when
 * missing. Throws a SessionError naming the directory, why it is refused
 * and the way out.
 */
export async function checkpointDirFor(requested: string): Promise<string> {
  let dir: string;
  try {
    dir = trustCheckpointDir(requested);
  } catch (e) {
    if (e instanceof DirectoryTrustError) throw new SessionError(e.message);
    throw e;
  }
  try {
    await access(dir, fsConstants.W_OK | fsConstants.X_OK);
  } catch {
    throw new SessionError(`cannot write checkpoints to ${dir}: permission denied; choose another --dir`);
  }
  return dir;
}

/** A whole number of at least 1, or a usage error (exit status 2). */
function checkCount(what: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) throw new SessionError(`${what} must be a whole number of at least 1 (got ${v})`, 2);
}

/**
 * Prepares a session on DIR: vets (and creates) DIR, refuses if another
 * session answers on its socket, listens, and removes what interrupted
 * checkpoints left there. The caller spawns the child and calls start();
 * on failure it must close() the coordinator.
 */
export async function openSession(opts: SessionOptions, internalSignal: number, listenFd?: number): Promise<Coordinator> {
  if (opts.interval !== undefined && !(opts.interval > 0 && Number.isFinite(opts.interval)))
    throw new SessionError(`the interval must be a positive number of seconds (got ${opts.interval})`, 2);
  checkCount('--keep', opts.keep);
  checkCount('--full-every', opts.fullEvery);
  try {
    compressLevel(opts.compress);
  } catch (e) {
    throw new SessionError(errorMessage(e), 2);
  }
  const dir = await checkpointDirFor(opts.dir ?? DEFAULT_DIR);
  const server = createServer();
  if (listenFd === undefined) {
    await refuseIfRunning(dir);
    await listen(server, socketNameFor(dir), dir);
  } else {
    await listenOn(server, listenFd, socketNameFor(dir));
  }
  const session = new Coordinator(dir, server, opts, internalSignal);
  // the directory is this session's now: no other can start on its socket
  await session.removeStalePartials();
  return session;
}

/** Exit status a shell would give for a program that could not be started. */
function spawnFailureStatus(code: string | undefined): number {
  return code === 'ENOENT' ? 127 : 126;
}

/**
 * Starts PROGRAM under the shim in a new session and returns at once; await
 * `session.exited` for its end.
 */
export async function launch(opts: LaunchOptions): Promise<Session> {
  const internalSignal = opts.internalSignal ?? DEFAULT_INTERNAL_SIGNAL;
  const baseEnv = opts.env ?? process.env;
  const shim = opts.shim === undefined ? shimPath(baseEnv) : opts.shim;
  if (shim !== null && !existsSync(shim))
    throw new SessionError(
      `the shim ${shim} is missing: build ckrun with npm install (or point CKRUN_SHIM_PATH at libckrun.so)`,
    );
  const cwd = opts.cwd ?? process.cwd();
  let file: string;
  try {
    file = resolveProgram(opts.program, baseEnv['PATH'], cwd);
  } catch (e) {
    if (e instanceof ProgramNotFoundError) throw new SessionError(e.message, 127);
    throw e;
  }
  // what a checkpoint would find only later (see waitReady), said before the program runs
  const why = shim === null ? null : whyNotUnderShim(file, cwd);
  if (why)
    throw new SessionError(
      `the program ${opts.program}: ${why}, so the shim is not in it and it cannot be checkpointed ` +
        `(ckrun checkpoints dynamically linked programs that keep LD_PRELOAD); ckrun does not run it`,
      126,
    );
  const session = await openSession(opts, internalSignal);
  const stdio = opts.stdio ?? [0, 1, 2];
  const argv = [opts.program, ...(opts.args ?? [])];
  const spawnOpts: SpawnOptions = {
    file,
    argv,
    env: sessionEnv(baseEnv, {
      sock: session.socketName,
      stdio: stdioIdentity(stdio),
      signal: internalSignal,
      preload: shim,
      hold: opts.checkpointOn,
    }),
    cwd,
    fds: [...stdio],
    // When ckrun dies, the program's shim is told by this signal and by its
    // connection's end, and takes with it the children that never joined
    // (a SIGKILL would leave them behind); without an active shim the
    // signal's default action ends the program all the same.
    pdeathsig: internalSignal,
  };
  let pid: number;
  try {
    pid = spawnChild(spawnOpts, (st) => void session.onChildExit(st));
  } catch (e) {
    await session.close();
    if (isNativeError(e)) throw new SessionError(e.message, spawnFailureStatus(e.code));
    throw e;
  }
  session.start({ pid, programPid: pid, joinBy: 'hello', argv, cwd });
  return session;
}
