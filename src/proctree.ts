// The session's processes as /proc shows them: every descendant of ckrun
// (ckrun is a child subreaper, so daemons stay below it), their IDs in the
// session's PID namespace, the open file descriptions they share, and the
// shared memory objects they map. Used by the checkpoint barrier while
// every process is stopped, and to know when a session has ended.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { kcmpFile } from './native.js';

/** Checkpoint writers (forked by the shims, children of ckrun): not session processes. */
export const WRITER_COMM = 'ckrun-writer';
/** ckrun's tracer of a stopped process during a checkpoint (src/hold.ts): not a session process. */
export const HOLD_COMM = 'ckrun-hold';
/** The restore orchestrator / restore host before it becomes the program. */
export const RESTORE_COMM = 'ckrun-restore';

export interface TreeProcess {
  /** PID in ckrun's (and /proc's) PID namespace. */
  outer: number;
  /** Parent's PID in ckrun's namespace. */
  outerPpid: number;
  /** Process state letter of /proc/PID/stat (R, S, D, Z, …). */
  state: string;
  comm: string;
}

interface StatLine {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
}

function parseStat(pid: number, text: string): StatLine | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const rest = text.slice(close + 2).split(' ');
  return { pid, comm: text.slice(open + 1, close), state: rest[0] ?? '?', ppid: Number(rest[1]) };
}

function readStat(pid: number): StatLine | undefined {
  try {
    return parseStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The children of every thread of a process (/proc/PID/task/TID/children). */
function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ')) if (c) out.push(Number(c));
    } catch {
      // the thread exited
    }
  }
  return out;
}

let childrenFiles: boolean | undefined;

/** Whether the kernel has /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN). */
function haveChildrenFiles(): boolean {
  if (childrenFiles === undefined) {
    try {
      statSync(`/proc/self/task/${process.pid}/children`);
      childrenFiles = true;
    } catch {
      childrenFiles = false;
    }
  }
  return childrenFiles;
}

/** Parent links of every process (the slow way: every /proc/PID/stat). */
function allChildren(): Map<number, StatLine[]> {
  const kids = new Map<number, StatLine[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return kids;
  }
  for (const e of entries) {
    if (!/^[0-9]+$/.test(e)) continue;
    const s = readStat(Number(e));
    if (!s) continue;
    let list = kids.get(s.ppid);
    if (!list) kids.set(s.ppid, (list = []));
    list.push(s);
  }
  return kids;
}

/**
 * Every process below `root` (by parent links), without checkpoint writers
 * and their descendants and without restore orchestrators themselves (their
 * descendants are included). Zombies are included; callers filter on state.
 * Reads only the tree's own /proc entries where the kernel lists children.
 */
export function sessionProcesses(root: number = process.pid): TreeProcess[] {
  const all = haveChildrenFiles() ? undefined : allChildren();
  const kidsOf = (pid: number): StatLine[] =>
    all ? (all.get(pid) ?? []) : childrenOf(pid).flatMap((c) => readStat(c) ?? []);
  const out: TreeProcess[] = [];
  const queue = [root];
  const seen = new Set<number>([root]);
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const c of kidsOf(p)) {
      if (seen.has(c.pid)) continue;
      seen.add(c.pid);
      if (c.comm === WRITER_COMM || c.comm === HOLD_COMM) continue;
      queue.push(c.pid);
      if (c.comm === RESTORE_COMM) continue;
      out.push({ outer: c.pid, outerPpid: c.ppid, state: c.state, comm: c.comm });
    }
  }
  return out;
}

/** Whether a process has a handler for `signal` (SigCgt of /proc/PID/status): its shim is up. */
export function catchesSignal(pid: number, signal: number): boolean {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m !== null && ((BigInt('0x' + m[1]) >> BigInt(signal - 1)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/**
 * True for a process in seccomp strict mode (SECCOMP_MODE_STRICT): it may
 * make no system call but read, write, _exit and sigreturn, so its shim
 * cannot save it (any other call kills it).
 */
export function inStrictSeccomp(pid: number): boolean {
  try {
    return /^Seccomp:\s*1$/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** True for a process that runs (not a zombie, not being torn down). */
export function isLive(p: TreeProcess): boolean {
  return p.state !== 'Z' && p.state !== 'X' && p.state !== 'x';
}

function statusField(text: string, field: string): number[] {
  const m = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(text);
  return m ? m[1]!.trim().split(/\s+/).filter(Boolean).map(Number) : [];
}

/** The process's IDs as it sees them (its innermost PID namespace). */
export interface InnerIds {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** How many PID namespaces deep the process is, seen from /proc's (1: the same as ckrun's). */
  depth: number;
}

/** NSpid of a process: its PID in every namespace from /proc's down. */
export function nsPids(outer: number): number[] {
  try {
    return statusField(readFileSync(`/proc/${outer}/status`, 'utf8'), 'NSpid');
  } catch {
    return [];
  }
}

/**
 * A process's PID, parent, process group and session as it sees them. IDs
 * of processes outside its namespace are 0, as getppid() would say.
 * Undefined when the process is gone.
 */
export function innerIds(outer: number): InnerIds | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${outer}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const pids = statusField(status, 'NSpid');
  const depth = pids.length;
  if (depth === 0) return undefined;
  const last = (xs: number[]): number => (xs.length === depth ? xs[depth - 1]! : 0);
  const outerPpid = statusField(status, 'PPid')[0] ?? 0;
  let ppid = 0;
  if (outerPpid > 0) {
    const pp = nsPids(outerPpid);
    ppid = pp.length >= depth ? pp[depth - 1]! : 0;
  }
  return { pid: pids[depth - 1]!, ppid, pgid: last(statusField(status, 'NSpgid')), sid: last(statusField(status, 'NSsid')), depth };
}

/**
 * Every live process of the session: the PID it sees itself under (the
 * last of its NSpid) mapped to its PID in ckrun's namespace.
 */
export function sessionPidMap(root: number = process.pid): Map<number, number> {
  const map = new Map<number, number>();
  for (const p of sessionProcesses(root)) {
    if (!isLive(p)) continue;
    const ns = nsPids(p.outer);
    if (ns.length > 0) map.set(ns[ns.length - 1]!, p.outer);
  }
  return map;
}

/** Command name and executable of a process, for messages. */
export function describeProcess(outer: number): { comm: string; exe: string } {
  let comm = '?';
  let exe = '?';
  try {
    comm = readFileSync(`/proc/${outer}/comm`, 'utf8').trim();
  } catch {
    // gone
  }
  try {
    exe = readlinkSync(`/proc/${outer}/exe`);
  } catch {
    // gone, or not ours to read
  }
  return { comm, exe };
}

// ---------------------------------------------------------------------------
// Namespaces

/** The namespace a process is in (`/proc/PID/ns/KIND` reads `net:[4026531840]`), or undefined when it cannot be read. */
function namespaceOf(pid: number | 'self', kind: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined; // gone, not ours to read, or a kernel without that kind
  }
}

/** Namespaces a restart makes no new one of: the family must be in ckrun's. */
const CKRUNS_NAMESPACES = ['net', 'uts', 'cgroup', 'time'];
/** Namespaces a restart may make anew (a fresh PID namespace comes with a user, mount and IPC namespace of its own): the family must share one. */
const FAMILY_NAMESPACES = ['pid', 'user', 'mnt', 'ipc'];

/**
 * A process of the family that entered a namespace of its own (unshare,
 * clone with CLONE_NEW*, setns: a sandbox, a container runtime) cannot be
 * restored there: ckrun makes no mount, network or other namespace again.
 * The message naming the first such process and namespace, or undefined.
 */
export function foreignNamespace(members: readonly Member[]): string | undefined {
  const first = members[0];
  if (!first) return undefined;
  for (const kind of [...CKRUNS_NAMESPACES, ...FAMILY_NAMESPACES]) {
    const want = CKRUNS_NAMESPACES.includes(kind) ? namespaceOf('self', kind) : namespaceOf(first.outer, kind);
    if (want === undefined) continue;
    for (const m of members) {
      const has = namespaceOf(m.outer, kind);
      if (has !== undefined && has !== want)
        return (
          `process ${m.pid} (${describeProcess(m.outer).comm}) is in a ${kind} namespace of its own (${has}, not ${want}): ` +
          `ckrun cannot make that namespace again at a restart, so it cannot checkpoint the process (a sandbox or container runtime ` +
          `inside the program does this); the program runs on`
        );
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Shared open file descriptions

/** A process of the checkpoint: its PID as it sees it and in ckrun's namespace. */
export interface Member {
  pid: number;
  outer: number;
}

/** One descriptor: [pid as the program sees it, fd]. */
export type FdRef = [number, number];

/** A process vanished while it was being examined. */
/** A /proc file of a process of the checkpoint ckrun may not read: EACCES
 * for a process of the same user means it is not dumpable (ptrace access
 * mode); the message says so and what to do. */
export function unreadableProcError(pid: number, file: string): Error {
  return new Error(
    `cannot read /proc/${pid}/${file} of process ${pid}: it is not dumpable (it called prctl(PR_SET_DUMPABLE, 0), or changed its user or group IDs or capabilities) ` +
      `and ckrun has no CAP_SYS_PTRACE, so the kernel lets it read none of that process's memory maps or descriptors; ` +
      `run ckrun as root to checkpoint such a program, or keep the program dumpable`,
  );
}

export class ProcessGoneError extends Error {
  constructor(
    readonly pid: number,
    message = `process ${pid} exited during the checkpoint`,
  ) {
    super(message);
    this.name = 'ProcessGoneError';
  }
}

interface FdEntry {
  member: Member;
  fd: number;
}

/** Is this descriptor one of the shim's own (its connection to ckrun, its userfaultfd)? */
export type OwnDescriptor = (link: string) => boolean;

/**
 * The shim's descriptors: the session connection (a socket whose peer is a
 * connection ckrun accepted: `ownSockets` holds their client inodes) and
 * the userfaultfd it tracks changed pages with.
 */
export function shimDescriptors(ownSockets: Iterable<number>): OwnDescriptor {
  const socks = new Set<number>(ownSockets);
  return (link) => {
    if (link === 'anon_inode:[userfaultfd]') return true;
    const m = /^socket:\[([0-9]+)\]$/.exec(link);
    return m !== null && socks.has(Number(m[1]));
  };
}

function listFds(m: Member, own: OwnDescriptor): { fd: number; key: string }[] {
  let names: string[];
  try {
    names = readdirSync(`/proc/${m.outer}/fd`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ProcessGoneError(m.pid);
    if ((e as NodeJS.ErrnoException).code === 'EACCES') throw unreadableProcError(m.pid, 'fd');
    throw e;
  }
  const out: { fd: number; key: string }[] = [];
  for (const n of names) {
    const fd = Number(n);
    const path = `/proc/${m.outer}/fd/${n}`;
    let link: string;
    try {
      link = readlinkSync(path);
    } catch {
      continue; // closed meanwhile (it cannot be: the process is stopped) or unreadable
    }
    if (own(link)) continue;
    try {
      const st = statSync(path, { bigint: true });
      out.push({ fd, key: `${st.dev}:${st.ino}` });
    } catch {
      // a descriptor whose file cannot be stat'ed cannot be compared either
    }
  }
  return out;
}

/**
 * Groups of descriptors, in different processes, that share one open file
 * description (one offset, one set of status flags): candidates are
 * descriptors referring to the same (dev, ino); the kernel decides with
 * kcmp(KCMP_FILE). Only groups spanning two or more processes, each sorted
 * by pid and fd; groups sorted by their first member.
 */
export function sharedFiles(members: Member[], own: OwnDescriptor): FdRef[][] {
  const byKey = new Map<string, FdEntry[]>();
  for (const m of members) {
    for (const { fd, key } of listFds(m, own)) {
      let list = byKey.get(key);
      if (!list) byKey.set(key, (list = []));
      list.push({ member: m, fd });
    }
  }
  const groups: FdRef[][] = [];
  for (const list of byKey.values()) {
    if (new Set(list.map((e) => e.member)).size < 2) continue;
    // union-find by comparing each descriptor with one representative of every class so far
    const classes: FdEntry[][] = [];
    for (const e of list) {
      const home = classes.find((c) => same(c[0]!, e));
      if (home) home.push(e);
      else classes.push([e]);
    }
    for (const c of classes) {
      if (new Set(c.map((e) => e.member)).size < 2) continue;
      const refs: FdRef[] = c.map((e) => [e.member.pid, e.fd]);
      refs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      groups.push(refs);
    }
  }
  groups.sort((a, b) => a[0]![0] - b[0]![0] || a[0]![1] - b[0]![1]);
  return groups;
}

function same(a: FdEntry, b: FdEntry): boolean {
  try {
    return kcmpFile(a.member.outer, a.fd, b.member.outer, b.fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') throw new ProcessGoneError(goneOf(a, b));
    if (code === 'EBADF') return false; // closed meanwhile
    throw new Error(
      `cannot tell whether processes ${a.member.pid} and ${b.member.pid} share an open file (kcmp: ${(e as Error).message})`,
    );
  }
}

/** Which of the two vanished. */
function goneOf(a: FdEntry, b: FdEntry): number {
  return existsProc(a.member.outer) ? b.member.pid : a.member.pid;
}

function existsProc(outer: number): boolean {
  try {
    statSync(`/proc/${outer}`);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Shared memory

/** The kernel's dev_t encoding (new_encode_dev, as stat's st_dev gives it). */
export function makeDev(major: number, minor: number): number {
  return ((major & 0xfff) << 8) + (minor & 0xff) + (minor - (minor & 0xff)) * 4096 + (major - (major & 0xfff)) * 2 ** 32;
}

/** A shared memory object: tmpfs/shmem identity. */
export interface ShmObject {
  dev: number;
  ino: number;
  /** The byte ranges [from, to) of the object this process maps (merged, ascending). */
  ranges?: [number, number][];
}

/** Whether a shared mapping's name is a shared memory object (not a file mapped from a disk). */
export function isShmName(name: string): boolean {
  return (
    name === '/dev/zero (deleted)' ||
    name === '/anon_hugepage (deleted)' ||
    (name.startsWith('/memfd:') && name.endsWith(' (deleted)')) ||
    name.startsWith('/SYSV') ||
    name.startsWith('/dev/shm/')
  );
}

/** The shared memory objects a process maps (MAP_SHARED anonymous, memfd, SysV, /dev/shm). */
export function shmObjectsOf(m: Member): ShmObject[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${m.outer}/maps`, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ESRCH')
      throw new ProcessGoneError(m.pid);
    if ((e as NodeJS.ErrnoException).code === 'EACCES') throw unreadableProcError(m.pid, 'maps');
    throw e;
  }
  return parseShmMaps(text);
}

/** Shared memory objects named in a maps text, each once, with the ranges of it mapped. */
export function parseShmMaps(text: string): ShmObject[] {
  const byKey = new Map<string, ShmObject>();
  for (const line of text.split('\n')) {
    // start-end perms offset major:minor inode name
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) ([0-9]+)\s+(.*)$/.exec(line);
    if (!m || m[3]![3] !== 's') continue;
    if (!isShmName(m[8]!)) continue;
    const dev = makeDev(parseInt(m[5]!, 16), parseInt(m[6]!, 16));
    const ino = Number(m[7]);
    const key = `${dev}:${ino}`;
    let o = byKey.get(key);
    if (!o) byKey.set(key, (o = { dev, ino, ranges: [] }));
    const from = parseInt(m[4]!, 16);
    o.ranges!.push([from, from + parseInt(m[2]!, 16) - parseInt(m[1]!, 16)]);
  }
  const out = [...byKey.values()];
  for (const o of out) o.ranges = mergeRanges(o.ranges!);
  return out;
}

function mergeRanges(ranges: [number, number][]): [number, number][] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Whether the merged ranges `outer` cover every range of `inner`. */
function covers(outer: [number, number][], inner: [number, number][]): boolean {
  return inner.every(([a, b]) => outer.some(([c, d]) => c <= a && b <= d));
}

export interface ShmPlan {
  /** [dev, ino, pid of the process whose image stores it]: the lowest PID mapping all of it that is mapped. */
  owners: [number, number, number][];
  /** For every pid: the objects it must not store (`save skip=`). */
  skip: Map<number, ShmObject[]>;
}

/**
 * Chooses, for every shared memory object, the one process whose image
 * stores it: the lowest PID among those whose mappings cover every part of
 * it any process maps. A process maps only its part of an object (the
 * parent unmapped a piece its child still maps): a process whose part the
 * owner does not cover stores its own part too (the restore fills the
 * object from every image that holds pages of it), so no page is lost.
 */
export function shmPlan(maps: Map<number, ShmObject[]>): ShmPlan {
  const holders = new Map<string, { obj: ShmObject; maps: { pid: number; ranges: [number, number][] }[] }>();
  for (const [pid, objs] of maps) {
    for (const o of objs) {
      const key = `${o.dev}:${o.ino}`;
      let h = holders.get(key);
      if (!h) holders.set(key, (h = { obj: o, maps: [] }));
      h.maps.push({ pid, ranges: o.ranges ?? [] });
    }
  }
  const owners: [number, number, number][] = [];
  const skip = new Map<number, ShmObject[]>();
  for (const { obj, maps: mappers } of holders.values()) {
    const byPid = [...mappers].sort((a, b) => a.pid - b.pid);
    const all = mergeRanges(byPid.flatMap((h) => h.ranges));
    const owner = (byPid.find((h) => covers(h.ranges, all)) ?? byPid[0]!).pid;
    const ownerRanges = byPid.find((h) => h.pid === owner)!.ranges;
    owners.push([obj.dev, obj.ino, owner]);
    for (const h of byPid) {
      if (h.pid === owner || !covers(ownerRanges, h.ranges)) continue;
      let list = skip.get(h.pid);
      if (!list) skip.set(h.pid, (list = []));
      list.push({ dev: obj.dev, ino: obj.ino });
    }
  }
  owners.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return { owners, skip };
}

/** The `save` line for a process: `save` or `save skip=<dev>:<ino>,...`. */
/** The longest "save" line the shim reads (preload/checkpoint.c: 2048 bytes with its end). */
const SAVE_LINE_MAX = 2000;

/**
 * "save [skip=DEV:INO,...] [socks=INO,...]": the shared memory another
 * process stores, and the socket inodes the session's processes hold (by
 * which a listener tells a client of the session from one outside). Too
 * many sockets for the line: none are named, and the shim takes every
 * client for one of the session's (the safe side).
 */
export function saveLine(skip: ShmObject[] | undefined, socks?: readonly number[]): string {
  let line = skip && skip.length > 0 ? `save skip=${skip.map((o) => `${o.dev}:${o.ino}`).join(',')}` : 'save';
  const withSocks = socks ? `${line} socks=${socks.join(',')}` : line;
  if (socks && socks.length <= SESSION_SOCKS_MAX && withSocks.length <= SAVE_LINE_MAX) line = withSocks;
  return line;
}

/** As CK_MAX_SESSION_SOCKS in preload/ckrun.h. */
const SESSION_SOCKS_MAX = 160;

/**
 * The inodes of the sockets the processes hold (their descriptors as /proc
 * shows them now); undefined when some process's descriptors cannot be read.
 */
export function socketInodes(outerPids: readonly number[]): number[] | undefined {
  const out = new Set<number>();
  for (const pid of outerPids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // gone: it has no socket to name
      return undefined;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) out.add(Number(m[1]));
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return [...out].sort((a, b) => a - b);
}
