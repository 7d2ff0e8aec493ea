// Directory snapshots (`--snapshot-dir DIR`, docs/design.md "Directory
// snapshots"; docs/image-format.md, `files.dirs`).
//
// While every process of the session is stopped (the same instant as the
// written files of src/files.ts), the tree under DIR is walked without
// following any link: each entry's type, mode, owner, size and times go to a
// listing (`dirs/<k>/list`, JSON, its CRC-32C in the manifest), and each
// regular file's bytes to `dirs/<k>/<n>`. A file unchanged since the
// previous generation (same dev, inode, size, mtime and ctime) is a hard
// link to that generation's copy: an unchanged tree costs a walk.
//
// At restart, before any process exists, the tree is made equal to the
// listing: entries made after the checkpoint are removed, changed or removed
// files are written again (a new file renamed over the name), links and
// directories made again, modes, owners and times set. A file the program
// had open for writing that is still there is left to src/files.ts, which
// puts it back in place (its inode kept). Every check that can refuse runs
// before anything changes. Nobody but the user (or root) may write any
// directory of the tree, so names resolved under DIR stay where they point.
import {
  closeSync,
  constants as FS,
  fchmodSync,
  fchownSync,
  fstatSync,
  linkSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { join } from 'node:path';
import { DirectoryTrustError, trustCheckpointDir } from './dirtrust.js';
import { crc32c, crc32cFile, native } from './native.js';
import { formatBytes } from './output.js';

/** The generation's subdirectory for directory snapshots. */
export const DIRS_DIR = 'dirs';

/** One directory snapshot as the manifest keeps it (`files.dirs`). */
export interface DirSnapshot {
  /** DIR, absolute and resolved. */
  path: string;
  /** `dirs/<k>/list`: the listing. */
  list: string;
  list_crc: number;
  /** Entries in the listing (the directory itself included). */
  entries: number;
  /** Bytes of its regular files. */
  bytes: number;
  /** Bytes this generation copied (the rest are links to earlier copies). */
  stored: number;
}

/** One entry of a listing: a path relative to DIR ('' is DIR itself). */
export interface DirEntry {
  p: string;
  /** d: directory, f: regular file, l: symbolic link, o: other (socket, FIFO, device: left alone). */
  t: 'd' | 'f' | 'l' | 'o';
  m: number;
  u: number;
  g: number;
  s: number;
  dev: number;
  ino: number;
  /** Times in nanoseconds (decimal text: beyond 2^53). */
  at: string;
  mt: string;
  ct: string;
  /** A file: its copy's name in the snapshot's directory, and the copy's CRC-32C. */
  n?: string;
  c?: number;
  /** A link: its target. */
  l?: string;
}

export class SnapshotDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotDirError';
  }
}

// ---- which directories ----------------------------------------------------

/**
 * DIR resolved and vetted like a checkpoint directory (src/dirtrust.ts):
 * every directory on its way owned by root or the user and not writable by
 * others, DIR the user's and writable by nobody else. Not created.
 */
export function vetSnapshotDir(dir: string, uid?: number): string {
  try {
    return trustCheckpointDir(dir, { create: false, ...(uid !== undefined ? { uid } : {}), label: 'snapshot directory', flag: '--snapshot-dir' });
  } catch (e) {
    if (e instanceof DirectoryTrustError) throw new SnapshotDirError(e.message);
    throw e;
  }
}

// ---- checkpoint -------------------------------------------------------------

export interface DirCaptureOptions {
  /** The generation being written (`DIR/.N.partial`). */
  genPath: string;
  /** Directories never walked (the checkpoint directory). */
  skipDirs: readonly string[];
  /** `--files-max`: a snapshot directory holding more bytes fails the checkpoint. */
  maxBytes?: number;
  /** The previous generation's snapshots and where it is: unchanged files are linked from it. */
  previous?: { dirs: readonly DirSnapshot[]; path: string; precopy?: boolean };
  /** Where in the generation the copies go (default `dirs`; the pre-copy's `dirs-pre`). */
  sub?: string;
  /**
   * Links to unchanged files' earlier copies are made here later, once the
   * program runs again (those copies never change): the pause only walks
   * the tree and copies what changed. Without it they are made at once.
   */
  defer?: DeferredLink[];
}

/** A hard link the capture left for after the pause (`linkDeferred`). */
export interface DeferredLink {
  from: string;
  to: string;
  /** Which snapshot, and the file's size: a pre-copy's own copy counts as stored by this generation. */
  k: number;
  size: number;
}

/** Where the pre-copy (while the program runs) puts its copies; removed once the capture in the pause linked them. */
export const PRECOPY_DIR = 'dirs-pre';

function nsText(v: bigint): string {
  return v.toString();
}

function otherWritable(st: BigIntStats): boolean {
  return (Number(st.mode) & 0o022) !== 0;
}

function entryOf(rel: string, st: BigIntStats, t: DirEntry['t']): DirEntry {
  return {
    p: rel,
    t,
    m: Number(st.mode) & 0o7777,
    u: Number(st.uid),
    g: Number(st.gid),
    s: t === 'f' ? Number(st.size) : 0,
    dev: Number(st.dev),
    ino: Number(st.ino),
    at: nsText(st.atimeNs),
    mt: nsText(st.mtimeNs),
    ct: nsText(st.ctimeNs),
  };
}

function typeOf(st: { isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean }): DirEntry['t'] {
  return st.isDirectory() ? 'd' : st.isFile() ? 'f' : st.isSymbolicLink() ? 'l' : 'o';
}

/** A subdirectory another user could plant a link in: the snapshot refuses it. */
function checkSubdir(root: string, abs: string, st: BigIntStats, uid: number): void {
  const owner = Number(st.uid);
  if (owner !== uid && owner !== 0)
    throw new SnapshotDirError(`snapshot directory ${root}: its subdirectory ${abs} belongs to uid ${owner}, not to you (uid ${uid}) or root; remove it or give it to yourself`);
  if (otherWritable(st))
    throw new SnapshotDirError(
      `snapshot directory ${root}: its subdirectory ${abs} is writable by its group or others (mode ${(Number(st.mode) & 0o7777).toString(8)}), who could plant links there; chmod go-w it`,
    );
}

/** The whole tree, parents before children, without following links. */
function walkTree(root: string, skip: readonly string[], uid: number, onEntry?: (abs: string, e: DirEntry) => void): DirEntry[] {
  const out: DirEntry[] = [];
  const rootSt = lstatSync(root, { bigint: true });
  if (!rootSt.isDirectory()) throw new SnapshotDirError(`snapshot directory ${root} is no longer a directory`);
  out.push(entryOf('', rootSt, 'd'));
  const visit = (abs: string, rel: string): void => {
    for (const name of readdirSync(abs).sort()) {
      const childAbs = join(abs, name);
      if (skip.includes(childAbs)) continue; // the checkpoint directory
      const childRel = rel === '' ? name : `${rel}/${name}`;
      let st: BigIntStats;
      try {
        st = lstatSync(childAbs, { bigint: true });
      } catch {
        continue; // gone meanwhile (a process outside the session)
      }
      const e = entryOf(childRel, st, typeOf(st));
      if (e.t === 'd') checkSubdir(root, childAbs, st, uid);
      if (e.t === 'l') e.l = readlinkSync(childAbs);
      onEntry?.(childAbs, e);
      out.push(e);
      if (e.t === 'd') visit(childAbs, childRel);
    }
  };
  visit(root, '');
  return out;
}

const CHUNK = 1 << 20;

/** Copies a regular file (never through a link) into `to`; its CRC-32C. Throws when it is not the file the walk saw. */
function copyFile(abs: string, e: DirEntry, to: string, buf: Buffer): number {
  const fd = openSync(abs, FS.O_RDONLY | FS.O_NOFOLLOW | FS.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.ino !== e.ino || st.dev !== e.dev) throw new SnapshotDirError(`${abs} changed while it was saved`);
    const out = openSync(to, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o600);
    try {
      let pos = 0;
      let crc = 0;
      for (;;) {
        const n = readSync(fd, buf, 0, CHUNK, pos);
        if (n === 0) break;
        let done = 0;
        while (done < n) done += writeSync(out, buf, done, n - done, pos + done);
        crc = crc32c(buf.subarray(0, n), crc);
        pos += n;
      }
      if (pos !== e.s) throw new SnapshotDirError(`${abs} is ${pos} bytes, not ${e.s} as a moment before: it changed while it was saved`);
      return crc;
    } finally {
      closeSync(out);
    }
  } finally {
    closeSync(fd);
  }
}

function sameFile(a: DirEntry, b: DirEntry): boolean {
  return a.t === 'f' && b.t === 'f' && a.dev === b.dev && a.ino === b.ino && a.s === b.s && a.mt === b.mt && a.ct === b.ct;
}

/** The previous generation's listing of the same directory, by path (empty when it cannot be read). */
function previousEntries(opts: DirCaptureOptions, root: string): { byPath: Map<string, DirEntry>; dir: string } | undefined {
  const prev = opts.previous?.dirs.find((d) => d.path === root);
  if (!prev) return undefined;
  try {
    const entries = readListing(opts.previous!.path, prev);
    return { byPath: new Map(entries.map((e) => [e.p, e])), dir: join(opts.previous!.path, prev.list, '..') };
  } catch {
    return undefined; // the older generation is gone or damaged: a full copy
  }
}

/** Saves one directory tree into `dirs/<k>/` of the generation. */
function captureOne(root: string, k: number, opts: DirCaptureOptions, uid: number): DirSnapshot {
  const sub = opts.sub ?? DIRS_DIR;
  const dir = join(opts.genPath, sub, String(k));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const prev = previousEntries(opts, root);
  const buf = Buffer.allocUnsafe(CHUNK);
  let bytes = 0;
  let stored = 0;
  let count = 0;
  const entries = walkTree(root, opts.skipDirs, uid, (abs, e) => {
    if (e.t !== 'f') return;
    bytes += e.s;
    if (opts.maxBytes !== undefined && bytes > opts.maxBytes)
      throw new SnapshotDirError(
        `snapshot directory ${root} holds more than --files-max ${formatBytes(opts.maxBytes)} (at least ${formatBytes(bytes)}); raise --files-max or snapshot a smaller directory`,
      );
    e.n = String(count++);
    const to = join(dir, e.n);
    const was = prev?.byPath.get(e.p);
    if (was?.n !== undefined && was.c !== undefined && sameFile(was, e)) {
      const from = join(prev!.dir, was.n);
      e.c = was.c;
      if (opts.defer) {
        opts.defer.push({ from, to, k, size: opts.previous?.precopy ? e.s : 0 });
        return;
      }
      try {
        // a copy the pre-copy made (not itself a link to an older generation's) is this generation's bytes
        if (opts.previous?.precopy && lstatSync(from).nlink === 1) stored += e.s;
        linkSync(from, to);
        return;
      } catch {
        // the earlier copy is gone: copy again
      }
    }
    e.c = copyFile(abs, e, to, buf);
    stored += e.s;
  });
  const text = Buffer.from(JSON.stringify(entries));
  const list = `${sub}/${k}/list`;
  writeFileSync(join(opts.genPath, list), text, { mode: 0o600 });
  return { path: root, list, list_crc: crc32c(text), entries: entries.length, bytes, stored };
}

/**
 * Saves every snapshot directory of the stopped session into the generation
 * (SnapshotDirError: the checkpoint fails, naming the directory and why).
 */
export function captureDirs(dirs: readonly string[], opts: DirCaptureOptions): { dirs: DirSnapshot[]; stored: number; ms: number } {
  const t0 = Date.now();
  const uid = process.geteuid?.() ?? 0;
  const out: DirSnapshot[] = [];
  dirs.forEach((d, k) => {
    const root = vetSnapshotDir(d, uid);
    try {
      out.push(captureOne(root, k, opts, uid));
    } catch (e) {
      if (e instanceof SnapshotDirError) throw e;
      throw new SnapshotDirError(`cannot save snapshot directory ${root}: ${(e as Error).message}`);
    }
  });
  return { dirs: out, stored: out.reduce((a, d) => a + d.stored, 0), ms: Date.now() - t0 };
}

/**
 * Makes the links the capture in the pause left (the program runs again);
 * a pre-copy's own copy of a file counts as bytes this generation stored.
 */
export function linkDeferred(links: readonly DeferredLink[], dirs: DirSnapshot[]): void {
  for (const l of links) {
    try {
      if (l.size > 0 && lstatSync(l.from).nlink === 1) dirs[l.k]!.stored += l.size;
      linkSync(l.from, l.to);
    } catch (e) {
      throw new SnapshotDirError(`cannot link ${l.to} to the earlier copy ${l.from} (snapshot directory ${dirs[l.k]?.path}): ${(e as Error).message}`);
    }
  }
}

/**
 * Copies the snapshot directories into the generation's `dirs-pre/` while
 * the program still runs, so that the capture in the pause links every
 * file unchanged since (same identity, size, mtime and ctime: every write
 * after a stat changes ctime, multigrain timestamps) and copies only the
 * others. Undefined when it failed (the capture then does it all, or says
 * why not).
 */
export function precopyDirs(dirs: readonly string[], opts: DirCaptureOptions): DirSnapshot[] | undefined {
  try {
    return captureDirs(dirs, { ...opts, sub: PRECOPY_DIR }).dirs;
  } catch {
    rmSync(join(opts.genPath, PRECOPY_DIR), { recursive: true, force: true });
    return undefined;
  }
}

// ---- the listing --------------------------------------------------------------

const NS = /^[0-9]{1,20}$/;

function isUint(v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

/** A relative path of plain names ('' for DIR): never absolute, never `..`. */
function isRel(p: unknown): p is string {
  return typeof p === 'string' && (p === '' || p.split('/').every((c) => c !== '' && c !== '.' && c !== '..' && !c.includes('\0')));
}

function checkEntry(v: unknown, index: number): DirEntry | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return `entry ${index} is not a map`;
  const e = v as Record<string, unknown>;
  if (!isRel(e['p'])) return `entry ${index} has a malformed path`;
  const t = e['t'];
  if (t !== 'd' && t !== 'f' && t !== 'l' && t !== 'o') return `entry ${e['p']} has a malformed type`;
  if (!isUint(e['m'], 0o7777) || !isUint(e['u'], 0xffffffff) || !isUint(e['g'], 0xffffffff) || !isUint(e['s']) || !isUint(e['dev']) || !isUint(e['ino']))
    return `entry ${e['p']} is malformed`;
  for (const k of ['at', 'mt', 'ct']) if (typeof e[k] !== 'string' || !NS.test(e[k] as string)) return `entry ${e['p']} has malformed times`;
  if (t === 'f' && (typeof e['n'] !== 'string' || !/^[0-9]{1,10}$/.test(e['n']) || !isUint(e['c'], 0xffffffff))) return `entry ${e['p']} names no copy`;
  if (t === 'l' && (typeof e['l'] !== 'string' || e['l'] === '' || e['l'].includes('\0'))) return `entry ${e['p']} has no link target`;
  if ((index === 0) !== (e['p'] === '') || (index === 0 && t !== 'd')) return `entry ${index} is out of place`;
  return e as unknown as DirEntry;
}

/** A listing read and checked: owner, CRC, every entry, parents before children. */
export function readListing(genPath: string, d: DirSnapshot): DirEntry[] {
  const path = join(genPath, d.list);
  let fd: number;
  try {
    fd = openSync(path, FS.O_RDONLY | FS.O_NOFOLLOW);
  } catch (e) {
    throw new SnapshotDirError(`${path}, the listing of snapshot directory ${d.path}, cannot be read (${(e as Error).message}); restart from an older generation`);
  }
  let text: Buffer;
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== lstatSync(genPath).uid) throw new SnapshotDirError(`${path}, the listing of ${d.path}, is not a file of the generation's owner: the generation was tampered with`);
    text = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  if (crc32c(text) !== d.list_crc) throw new SnapshotDirError(`${path}, the listing of snapshot directory ${d.path}, fails its checksum; restart from an older generation`);
  let raw: unknown;
  try {
    raw = JSON.parse(text.toString('utf8'));
  } catch {
    raw = undefined;
  }
  if (!Array.isArray(raw) || raw.length !== d.entries) throw new SnapshotDirError(`${path}, the listing of ${d.path}, is malformed`);
  const seen = new Map<string, DirEntry['t']>();
  return raw.map((v, i) => {
    const e = checkEntry(v, i);
    if (typeof e === 'string') throw new SnapshotDirError(`${path}, the listing of ${d.path}, is malformed: ${e}`);
    const parent = e.p.includes('/') ? e.p.slice(0, e.p.lastIndexOf('/')) : '';
    if (i > 0 && seen.get(parent) !== 'd') throw new SnapshotDirError(`${path}, the listing of ${d.path}, is malformed: ${e.p} comes before its directory`);
    if (seen.has(e.p)) throw new SnapshotDirError(`${path}, the listing of ${d.path}, is malformed: ${e.p} twice`);
    seen.set(e.p, e.t);
    return e;
  });
}

/** Each copy of the listing's files: a file of the generation's owner, of the size listed. */
function checkCopies(genPath: string, d: DirSnapshot, entries: readonly DirEntry[]): void {
  const owner = lstatSync(genPath).uid;
  const dir = join(genPath, d.list, '..');
  for (const e of entries) {
    if (e.t !== 'f') continue;
    const at = join(dir, e.n!);
    let st;
    try {
      st = lstatSync(at);
    } catch {
      throw new SnapshotDirError(`the saved copy of ${join(d.path, e.p)} (${at}) is missing; restart from an older generation`);
    }
    if (!st.isFile() || st.uid !== owner) throw new SnapshotDirError(`${at}, the saved copy of ${join(d.path, e.p)}, is not a file of the generation's owner: the generation was tampered with`);
    if (st.size !== e.s)
      throw new SnapshotDirError(`the saved copy of ${join(d.path, e.p)} (${at}) is truncated (expected ${e.s} bytes, found ${st.size}); restart from an older generation`);
  }
}

/** A copy's bytes against the listing's CRC-32C. */
function checkCopyCrc(copies: string, d: DirSnapshot, e: DirEntry): void {
  const at = join(copies, e.n!);
  if (crc32cFile(at, 0, e.s) !== e.c)
    throw new SnapshotDirError(`the saved copy of ${join(d.path, e.p)} (${at}) fails its checksum; restart from an older generation`);
}

/** What `ckrun verify` checks of the snapshots: listings and copies (with verifyData, every copy's CRC). A problem as text, or undefined. */
export function checkSnapshots(genPath: string, dirs: readonly DirSnapshot[], verifyData = true): string | undefined {
  try {
    for (const d of dirs) {
      const entries = readListing(genPath, d);
      checkCopies(genPath, d, entries);
      if (verifyData) for (const e of entries) if (e.t === 'f') checkCopyCrc(join(genPath, d.list, '..'), d, e);
    }
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** "dev:ino" of every regular file the snapshots list (a restart makes each again if it is gone). */
export function listedIdentities(genPath: string, dirs: readonly DirSnapshot[]): Set<string> {
  const out = new Set<string>();
  for (const d of dirs) for (const e of readListing(genPath, d)) if (e.t === 'f') out.add(`${e.dev}:${e.ino}`);
  return out;
}

// ---- restart ------------------------------------------------------------------

interface Now {
  st: BigIntStats;
  t: DirEntry['t'];
}

/**
 * The tree as it is now, by relative path (lstat only). A subdirectory
 * another user could write (made so after the checkpoint) is refused: they
 * could swap what it holds while the restart removes or writes there.
 */
function currentTree(root: string, skip: readonly string[], uid: number): Map<string, Now> {
  const out = new Map<string, Now>();
  const visit = (abs: string, rel: string): void => {
    for (const name of readdirSync(abs)) {
      const childAbs = join(abs, name);
      if (skip.includes(childAbs)) continue; // the checkpoint directory
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(childAbs, { bigint: true });
      const t = typeOf(st);
      if (t === 'd') checkSubdir(root, childAbs, st, uid);
      out.set(childRel, { st, t });
      if (t === 'd') visit(childAbs, childRel);
    }
  };
  visit(root, '');
  return out;
}

function unchanged(e: DirEntry, now: Now | undefined): boolean {
  if (!now || now.t !== e.t) return false;
  const st = now.st;
  const same = (Number(st.mode) & 0o7777) === e.m && Number(st.uid) === e.u && Number(st.gid) === e.g;
  if (e.t === 'f') return same && Number(st.ino) === e.ino && Number(st.dev) === e.dev && Number(st.size) === e.s && nsText(st.mtimeNs) === e.mt && nsText(st.ctimeNs) === e.ct;
  return same;
}

interface DirPlan {
  d: DirSnapshot;
  entries: DirEntry[];
  copies: string;
  /** Relative paths removed (deepest first). */
  remove: string[];
  /** Entries written again (files, links) or made (directories). */
  put: DirEntry[];
}

/**
 * What a restart does to one snapshot directory, every refusal made here.
 * `keep`: files src/files.ts puts back in place (open for writing at the
 * checkpoint and there now).
 */
function planDir(genPath: string, d: DirSnapshot, owner: number, keep: ReadonlySet<string>, skip: readonly string[]): DirPlan {
  const entries = readListing(genPath, d);
  checkCopies(genPath, d, entries);
  let exists = true;
  try {
    lstatSync(d.path);
  } catch {
    exists = false;
  }
  const uid = owner === 0 ? process.geteuid?.() ?? 0 : owner;
  if (exists) {
    const real = vetSnapshotDir(d.path, uid);
    if (real !== d.path) throw new SnapshotDirError(`snapshot directory ${d.path} now leads to ${real} (a symbolic link on the way): put the directory back`);
  } else {
    const parent = join(d.path, '..');
    if (realpathSync(parent) !== parent) throw new SnapshotDirError(`snapshot directory ${d.path} was removed, and its parent ${parent} now leads elsewhere: put the directory back`);
  }
  const now = exists ? currentTree(d.path, skip, uid) : new Map<string, Now>();
  const want = new Map(entries.map((e) => [e.p, e]));
  const remove: string[] = [];
  for (const [rel, n] of now) {
    const w = want.get(rel);
    if (keep.has(join(d.path, rel)) && n.t === 'f' && w?.t === 'f') continue;
    if (!w || w.t !== n.t || w.t === 'o') {
      if (w?.t === 'o' && n.t === 'o') continue; // sockets, FIFOs, devices: left alone
      // a name inside a directory removed already goes with it
      if (!remove.some((r) => rel.startsWith(r + '/'))) remove.push(rel);
    }
  }
  const removed = (rel: string): boolean => remove.some((r) => rel === r || rel.startsWith(r + '/'));
  const put = entries.filter((e) => {
    if (e.t === 'o') return false;
    if (e.t === 'f' && keep.has(join(d.path, e.p)) && now.get(e.p)?.t === 'f') return false;
    if (e.p === '' && !exists) return true;
    const n = removed(e.p) ? undefined : e.p === '' ? { st: lstatSync(d.path, { bigint: true }), t: 'd' as const } : now.get(e.p);
    if (e.t === 'd') return true; // mode, owner and times set again (after their contents)
    if (e.t === 'l') return !(n?.t === 'l' && unchanged(e, n) && nsText(n.st.mtimeNs) === e.mt && readlinkSync(join(d.path, e.p)) === e.l);
    return !unchanged(e, n);
  });
  const copies = join(genPath, d.list, '..');
  for (const e of put) if (e.t === 'f') checkCopyCrc(copies, d, e);
  return { d, entries, copies, remove: remove.reverse(), put };
}

function setOwner(fd: number, e: DirEntry): void {
  try {
    fchownSync(fd, e.u, e.g);
  } catch {
    // not root: the file is the restarting user's
  }
  fchmodSync(fd, e.m); // after chown (which clears set-id bits), whatever the umask
}

/** A file written again: a new file in its directory, renamed over the name. */
function putFile(root: string, copies: string, e: DirEntry, k: number): void {
  const target = join(root, e.p);
  const tmp = join(target, '..', `.ckrun-put-${process.pid}-${k}`);
  const src = openSync(join(copies, e.n!), FS.O_RDONLY | FS.O_NOFOLLOW);
  try {
    const out = openSync(tmp, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.allocUnsafe(CHUNK);
      let pos = 0;
      for (;;) {
        const n = readSync(src, buf, 0, CHUNK, pos);
        if (n === 0) break;
        let done = 0;
        while (done < n) done += writeSync(out, buf, done, n - done, pos + done);
        pos += n;
      }
      setOwner(out, e);
      native().futimesNs(out, BigInt(e.at), BigInt(e.mt));
    } finally {
      closeSync(out);
    }
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    closeSync(src);
  }
}

function putLink(root: string, e: DirEntry, k: number): void {
  const target = join(root, e.p);
  const tmp = join(target, '..', `.ckrun-put-${process.pid}-${k}`);
  symlinkSync(e.l!, tmp);
  try {
    try {
      lchownSync(tmp, e.u, e.g);
    } catch {
      // not root
    }
    native().lutimesNs(tmp, BigInt(e.at), BigInt(e.mt));
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** A directory's mode, owner and times (once what it holds is back). */
function setDir(root: string, e: DirEntry): void {
  const fd = openSync(join(root, e.p), FS.O_RDONLY | FS.O_DIRECTORY | FS.O_NOFOLLOW);
  try {
    setOwner(fd, e);
    native().futimesNs(fd, BigInt(e.at), BigInt(e.mt));
  } finally {
    closeSync(fd);
  }
}

function applyDir(p: DirPlan): void {
  const root = p.d.path;
  for (const rel of p.remove) rmSync(join(root, rel), { recursive: true, force: true });
  p.put.forEach((e, k) => {
    if (e.t === 'd') {
      try {
        mkdirSync(join(root, e.p), { mode: 0o700 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    } else if (e.t === 'f') putFile(root, p.copies, e, k);
    else putLink(root, e, k);
  });
}

/**
 * Puts every snapshot directory back as it was at the checkpoint (before
 * src/files.ts puts the written files back); returns what to call once
 * those are back too: it sets the directories' modes, owners and times,
 * which making files in them changes. Throws SnapshotDirError before
 * changing anything when it cannot.
 */
export function restoreDirs(
  genPath: string,
  dirs: readonly DirSnapshot[],
  opts: { owner: number; keep: ReadonlySet<string>; skipDirs: readonly string[] },
): { changed: string[]; finish: () => void } {
  const plans = dirs.map((d) => {
    try {
      return planDir(genPath, d, opts.owner, opts.keep, opts.skipDirs);
    } catch (e) {
      if (e instanceof SnapshotDirError) throw e;
      throw new SnapshotDirError(`cannot put snapshot directory ${d.path} back as it was at the checkpoint: ${(e as Error).message}; nothing was changed`);
    }
  });
  const changed: string[] = [];
  for (const p of plans) {
    try {
      applyDir(p);
    } catch (e) {
      throw new SnapshotDirError(
        `cannot put snapshot directory ${p.d.path} back as it was at the checkpoint: ${(e as Error).message}; it is partly put back: run the restart again once the cause is fixed`,
      );
    }
    if (p.remove.length || p.put.some((e) => e.t !== 'd')) changed.push(p.d.path);
  }
  const finish = (): void => {
    for (const p of plans)
      for (const e of [...p.entries].reverse())
        if (e.t === 'd') {
          try {
            setDir(p.d.path, e);
          } catch (err) {
            throw new SnapshotDirError(`cannot set ${join(p.d.path, e.p)} as it was at the checkpoint: ${(err as Error).message}`);
          }
        }
  };
  return { changed, finish };
}

// ---- the manifest's `files.dirs` --------------------------------------------------

/** `files.dirs` checked (a message naming what is malformed, or the snapshots). */
export function parseDirSnapshots(v: unknown): DirSnapshot[] | string {
  if (!Array.isArray(v)) return 'files.dirs is not an array';
  const out: DirSnapshot[] = [];
  for (const x of v) {
    if (typeof x !== 'object' || x === null) return 'files.dirs has a malformed entry';
    const d = x as Record<string, unknown>;
    const small = (k: string): unknown => (typeof d[k] === 'bigint' && (d[k] as bigint) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(d[k]) : d[k]);
    const list = d['list'];
    if (
      typeof d['path'] !== 'string' ||
      !d['path'].startsWith('/') ||
      typeof list !== 'string' ||
      !new RegExp(`^${DIRS_DIR}/[0-9]{1,6}/list$`).test(list) ||
      !isUint(small('list_crc'), 0xffffffff) ||
      !isUint(small('entries')) ||
      (small('entries') as number) < 1 ||
      !isUint(small('bytes')) ||
      !isUint(small('stored'))
    )
      return `files.dirs has a malformed entry${typeof d['path'] === 'string' ? ` (${d['path']})` : ''}`;
    out.push({
      path: d['path'],
      list,
      list_crc: small('list_crc') as number,
      entries: small('entries') as number,
      bytes: small('bytes') as number,
      stored: small('stored') as number,
    });
  }
  if (new Set(out.map((d) => d.list)).size !== out.length) return 'files.dirs names one listing twice';
  return out;
}
