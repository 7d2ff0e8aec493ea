// Typed wrapper over the native addon (addon/native.c).
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { buildDir, packageRoot } from './paths.js';

export interface SpawnOptions {
  /** Path of the program to execve (no PATH search). */
  file: string;
  argv: string[];
  /** "KEY=VALUE" strings. */
  env: string[];
  cwd?: string;
  /** The child's descriptor i is the parent's fds[i] (-1: closed). Default [0, 1, 2]. */
  fds?: number[];
  /** Create the child with exactly this PID (clone3 set_tid). */
  setTid?: number;
  /** CLONE_NEWPID | CLONE_NEWNS: the child is PID 1 of a new PID namespace. */
  newPidNs?: boolean;
  /** With newPidNs: a new user namespace too, the caller's UID and GID mapped to themselves (for non-root restarts). */
  newUserNs?: boolean;
  /** With newPidNs: make mounts private and mount a fresh /proc (default true). */
  mountProc?: boolean;
  /** Signal the child gets when ckrun dies (default SIGKILL; 0 = none). */
  pdeathsig?: number;
}

export type ChildExitCallback = (pid: number, code: number | null, signal: number | null) => void;

export interface NativeAddon {
  spawn(opts: SpawnOptions): number;
  setChildSubreaper(): void;
  onChildExit(cb: ChildExitCallback): void;
  watchSignal(signal: number, cb: (signal: number) => void): number;
  unwatchSignal(id: number): void;
  crc32c(buf: Uint8Array, crc?: number): number;
  crc32cFile(path: string, offset: number, length: number): number;
  crc32cFileRanges(path: string, ranges: Float64Array): Uint32Array;
  /** A listening socket bound to the abstract name (exact length), close-on-exec. */
  unixListen(name: string, backlog?: number): number;
  /** A socket connected to the abstract name (exact length), close-on-exec. */
  unixConnect(name: string): number;
  /** kcmp(pid1, pid2, KCMP_FILE, fd1, fd2) == 0: the two descriptors share one open file description. */
  kcmpFile(pid1: number, fd1: number, pid2: number, fd2: number): boolean;
  /** pidfd_getfd: process pid's open file description at fd, as a close-on-exec descriptor of ckrun (opens nothing). */
  dupProcessFd(pid: number, fd: number): number;
  /** A TCP connection's whole send queue read in repair mode (CAP_NET_ADMIN): the sequence number after its last byte, how many of its last bytes were not sent, the bytes. */
  tcpSendQueue(fd: number): { end: number; unsent: number; data: Buffer };
  /** Inodes of the client sockets of every connection accepted on the abstract name (sock_diag). */
  unixPeers(name: string): number[];
  /** Queues the shim's join request (signal, tagged); false when pid is gone. */
  askToJoin(pid: number, signal: number): boolean;
  /** flock(fd, LOCK_EX|LOCK_NB): true when the lock was taken (it goes with the descriptor), false when another holds it. */
  tryLockExclusive(fd: number): boolean;
  /** Sends line on a connected socket in one sendmsg with fd attached (SCM_RIGHTS); the bytes sent. */
  sendWithFd(socket: number, line: string, fd: number): number;
  /** SO_PEERCRED of a connected Unix socket (pid 0: not visible in this PID namespace). */
  peerCred(fd: number): PeerCred;
  /** Whether the process that made the other end still runs (SO_PEERPIDFD; true when the kernel cannot tell). */
  peerAlive(fd: number): boolean;
  /** Calls cb once the process has exited and been reaped (both null: the kernel cannot say how). Throws ESRCH when it is gone. */
  watchExit(pid: number, cb: (code: number | null, signal: number | null) => void): number;
  unwatchExit(id: number): void;
  /** Signals a watched process through its pidfd; false when it has exited or is not watched. */
  signalWatched(id: number, signal: number): boolean;
  /** A written file's block table (addon/filesnap.c); its changed blocks appended to outFd (-1: none). */
  fileBlocks(fd: number, size: number, blockSize: number, prev: Buffer | null, outFd: number, outBase: number): { table: Buffer; written: number };
  /** The hash a block table holds for these bytes. */
  blockHash(buf: Buffer): bigint;
  /** fallocate(PUNCH_HOLE | KEEP_SIZE). */
  punchHole(fd: number, offset: number, length: number): void;
  /** lseek(fd, offset, SEEK_SET). */
  seek(fd: number, offset: number): void;
  /** futimens(fd, [atime, mtime]) in nanoseconds. */
  futimesNs(fd: number, atimeNs: bigint, mtimeNs: bigint): void;
  lutimesNs(path: string, atimeNs: bigint, mtimeNs: bigint): void;
  /** A connected pair of Unix stream sockets, both close-on-exec (addon/hold.c). */
  socketPair(): [number, number];
}

/** Who made the other end of a Unix socket, as the kernel recorded it at connect() or listen(). */
export interface PeerCred {
  /** In ckrun's PID namespace; 0 when the process is not visible in it. */
  pid: number;
  uid: number;
  gid: number;
}

/** Errors thrown by the addon carry the errno name in `code`. */
export interface NativeError extends Error {
  code: string;
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string';
}

/** The addon is not built (or not loadable). */
export class NativeLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NativeLoadError';
  }
}

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  type Bindings = (opts: { bindings: string; module_root: string }) => unknown;
  const bindings = require('bindings') as Bindings;
  try {
    addon = bindings({ bindings: 'ckrun_native', module_root: packageRoot() }) as NativeAddon;
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new NativeLoadError(
      `ckrun's native addon ${join(buildDir(), 'ckrun_native.node')} cannot be loaded (${why}); build it with npm install`,
    );
  }
  return addon;
}

export interface ExitStatus {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  /** Signal number that killed it, or null. */
  signal: number | null;
  /** Shell-style status: the code, or 128 + signal. */
  status: number;
}

export function exitStatus(code: number | null, signal: number | null): ExitStatus {
  return { code, signal, status: signal !== null ? 128 + signal : (code ?? 0) };
}

const exitWatchers = new Map<number, (st: ExitStatus) => void>();
let reaperStarted = false;
/** Exits of children nobody watched (checkpoint writers, orphans), newest last, for whoever asks soon after. */
const orphanExits = new Map<number, { st: ExitStatus; at: number }>();
const ORPHAN_EXITS_KEPT = 256;

function noteOrphanExit(pid: number, st: ExitStatus): void {
  orphanExits.delete(pid);
  orphanExits.set(pid, { st, at: Date.now() });
  if (orphanExits.size > ORPHAN_EXITS_KEPT) orphanExits.delete(orphanExits.keys().next().value!);
}

/**
 * How a child of ckrun that no spawnChild/adoptChild watched ended, if
 * ckrun reaped it within the last `withinMs` (older records may be of an
 * earlier process with the same PID).
 */
export function orphanExit(pid: number, withinMs = 5_000): ExitStatus | undefined {
  const e = orphanExits.get(pid);
  return e && Date.now() - e.at <= withinMs ? e.st : undefined;
}

function ensureReaper(): void {
  if (reaperStarted) return;
  const n = native();
  n.setChildSubreaper();
  n.onChildExit((pid, code, signal) => {
    const cb = exitWatchers.get(pid);
    if (!cb) {
      // an orphan of the session (a checkpoint writer), or a child whose exec failed
      noteOrphanExit(pid, exitStatus(code, signal));
      return;
    }
    exitWatchers.delete(pid);
    cb(exitStatus(code, signal));
  });
  reaperStarted = true;
}

/**
 * Spawns a child through clone3 and calls onExit when it is reaped.
 * Makes this process a child subreaper and starts the reaper thread on first
 * use; from then on every child of this process is reaped by that thread, so
 * do not mix with node:child_process in the same process.
 */
export function spawnChild(opts: SpawnOptions, onExit: (st: ExitStatus) => void): number {
  ensureReaper();
  const pid = native().spawn(opts);
  // The exit can only be delivered on a later turn of the event loop.
  exitWatchers.set(pid, onExit);
  return pid;
}

/**
 * Watches a child this process did not spawn but inherited through exec
 * (the program the restore host brought back before it started node:
 * preload/front.c) like one spawnChild made.
 */
export function adoptChild(pid: number, onExit: (st: ExitStatus) => void): void {
  ensureReaper();
  // the reaper may have run before the adoption (node starts slowly on a
  // loaded machine; the program ran meanwhile): an exit reaped already is
  // this child's, as no other child of this process had its PID since exec
  const early = orphanExits.get(pid);
  if (early) {
    orphanExits.delete(pid);
    setImmediate(() => onExit(early.st));
    return;
  }
  exitWatchers.set(pid, onExit);
}

/** Watches a signal (any number, real-time ones included); returns a function that stops it. */
export function watchSignal(signal: number, cb: (signal: number) => void): () => void {
  const n = native();
  const id = n.watchSignal(signal, cb);
  let active = true;
  return () => {
    if (active) n.unwatchSignal(id);
    active = false;
  };
}

export function crc32c(buf: Uint8Array, crc?: number): number {
  return native().crc32c(buf, crc);
}

export function crc32cFile(path: string, offset: number, length: number): number {
  return native().crc32cFile(path, offset, length);
}

/** CRC-32C of each [offset, length] range of one file (one open and one mapping for all). */
export function crc32cFileRanges(path: string, ranges: Float64Array): Uint32Array {
  return native().crc32cFileRanges(path, ranges);
}

/** True when fd1 of pid1 and fd2 of pid2 are one open file description (kcmp KCMP_FILE). */
export function kcmpFile(pid1: number, fd1: number, pid2: number, fd2: number): boolean {
  return native().kcmpFile(pid1, fd1, pid2, fd2);
}

/**
 * Asks a process of the session that has no connection to ckrun yet (the
 * shim connects forked children only when asked) to connect and say hello.
 * Only for a process whose shim catches `signal` (see catchesSignal): the
 * default action of a real-time signal ends the process.
 */
export function askToJoin(pid: number, signal: number): boolean {
  return native().askToJoin(pid, signal);
}

/**
 * Sends `line` on the connected socket `socket` with the descriptor `fd`
 * attached (SCM_RIGHTS), in one sendmsg; returns how many bytes went out
 * (the caller sends the rest). Throws a NativeError (EAGAIN...) when none did.
 */
export function sendWithFd(socket: number, line: string, fd: number): number {
  return native().sendWithFd(socket, line, fd);
}

/** Inodes of the client ends of the connections accepted on the abstract socket `name`. */
export function unixPeers(name: string): number[] {
  return native().unixPeers(name);
}

/**
 * Takes flock(LOCK_EX) on fd without waiting: false when another open file
 * holds a lock on it (a checkpoint writer still writing, see preload/image.c).
 */
export function tryLockExclusive(fd: number): boolean {
  return native().tryLockExclusive(fd);
}

/**
 * The descriptor of a connected net.Socket. Node keeps it on the socket's
 * libuv handle (`_handle.fd`), which its typings do not declare.
 */
export function socketFd(sock: Socket): number | undefined {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd; // libuv's handle: not in Node's typings
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Who made the other end of a Unix socket; undefined when the socket has no descriptor (closed). */
export function peerCredOf(sock: Socket): PeerCred | undefined {
  const fd = socketFd(sock);
  if (fd === undefined) return undefined;
  try {
    return native().peerCred(fd);
  } catch {
    return undefined;
  }
}

/** Whether the process that made the other end of sock still runs (see NativeAddon.peerAlive). */
export function peerAlive(sock: Socket): boolean {
  const fd = socketFd(sock);
  return fd !== undefined && native().peerAlive(fd);
}

/** A watch on a process's exit (any process: through its pidfd). */
export interface ExitWatch {
  /** Stops watching; the callback is not called any more. */
  stop(): void;
  /** Signals the watched process (never a later one with its PID); false when it has exited. */
  signal(sig: number): boolean;
}

/**
 * Calls onExit with how the process ended once it has exited and been
 * reaped (code and signal both null when the kernel cannot say). Undefined
 * when there is no such process any more.
 */
export function watchExit(pid: number, onExit: (st: ExitStatus | undefined) => void): ExitWatch | undefined {
  const n = native();
  let active = true;
  let id: number;
  try {
    id = n.watchExit(pid, (code, signal) => {
      active = false;
      onExit(code === null && signal === null ? undefined : exitStatus(code, signal));
    });
  } catch (e) {
    if (isNativeError(e) && e.code === 'ESRCH') return undefined;
    throw e;
  }
  return {
    stop: () => {
      if (active) n.unwatchExit(id);
      active = false;
    },
    signal: (sig) => active && n.signalWatched(id, sig),
  };
}
