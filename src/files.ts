// Written files come back as they were at the checkpoint (docs/design.md,
// "Written files"; docs/image-format.md, "Written files").
//
// While every process of the session is stopped (the barrier, after `save`
// and before `resume`), ckrun finds every regular file a process has open
// for writing or maps shared-writable and stores, in the generation's
// `files/` directory, a table of the file's blocks (a 64-bit hash per
// block, holes marked) and the blocks that changed since the previous
// generation (the rest are the previous generations' data files, hard-linked
// into this one). A file every writer opened with O_APPEND is a log: only
// its table is kept, and a restart only cuts it back, after checking that
// its content up to the checkpoint size is unchanged.
//
// At restart, before any process exists, every such file is compared with
// its table and the blocks that differ are written back (holes punched,
// size cut, times set); a file deleted since is made again with its mode,
// owner and times. Everything that can refuse is checked first; a failure
// while writing puts back what was written.
import {
  closeSync,
  constants as FS,
  existsSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  realpathSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { crc32c, kcmpFile, native } from './native.js';
import { formatBytes } from './output.js';
import { makeDev, ProcessGoneError, type Member } from './proctree.js';
import { checkSnapshots, parseDirSnapshots, type DirSnapshot } from './snapdir.js';
import type { WrittenFile, WrittenFiles } from './files-written.js';

export { DEFAULT_FILES_POLICY, FILES_POLICIES, parseSize, type FilesPolicy } from './files-policy.js';
import { FILES_POLICIES, type FilesPolicy } from './files-policy.js';

/** Files the program only reads are kept (to be made again if removed) up to this size. */
export const RECREATE_MAX = 8 << 20;

/** Bytes per block of a file's table. */
export const FILE_BLOCK = 4096;
const ENTRY = 16;
const HOLE = 0xffffffff;
/** The generation's subdirectory for tables and data. */
export const FILES_DIR = 'files';

/** One written file as a generation keeps it (the manifest's `files.saved`). */
export interface SavedFile {
  path: string;
  dev: number;
  ino: number;
  /** Its size at the checkpoint. */
  size: number;
  mode: number;
  uid: number;
  gid: number;
  atime_ns: bigint;
  mtime_ns: bigint;
  /**
   * 'content': its blocks are stored, restart puts it back; 'append': a log,
   * only its table (restart cuts it back); 'recreate': a small file the
   * program only reads, stored so that restart can make it again if it was
   * removed (a compiler's temporary file), else left alone.
   */
  how: 'content' | 'append' | 'recreate';
  block: number;
  /** `files/<k>.tab`, its CRC-32C. */
  table: string;
  table_crc: number;
  /** Data files in the generation the table's sources index (`files/<k>.dat`, `files/ref-<ino>.dat`). */
  sources: string[];
  /** Bytes this generation stored of it (changed blocks only). */
  stored: number;
}

/** A stdio of the session that is a regular file (`ckrun -- job > log`). */
export interface StdioFile {
  fd: number;
  path: string;
  /** The file's identity: a restart with --stdio=inherit gives the program's descriptors of it the restarting ckrun's stdio. */
  dev: number;
  ino: number;
  offset: number;
  /** The open file description's flags (fdinfo). */
  flags: number;
  /** The lower stdio it shares one description with (`2>&1`). */
  same_as?: number;
}

/**
 * A file the program made after the checkpoint (its shim's `made`,
 * src/files-late.ts): a restart from that checkpoint removes it while it
 * is still that file (dev, ino, birth time).
 */
export interface MadeFile {
  path: string;
  dev: number;
  ino: number;
  btime_ns: bigint;
}

/**
 * An entry that was at `from` at the checkpoint and that the program moved
 * to `to` after it (its shim's `moveq`, told before the rename): a restart
 * moves it back while `to` is still that entry and `from` is free. With
 * `link`, `to` is a new name the program gave it (`linkq`, before link()):
 * a restart removes that name while another still holds the entry. A
 * symbolic link keeps its `target`: one moved and gone since is made
 * again at `from`, and one a rename replaced (`replaced`, `from` = `to`:
 * the path it was at) is made again there.
 */
export interface MovedEntry {
  from: string;
  to: string;
  dev: number;
  ino: number;
  btime_ns: bigint;
  link?: true;
  replaced?: true;
  target?: string;
}

/** The manifest's `files`. */
export interface FilesRecord {
  policy: FilesPolicy;
  saved: SavedFile[];
  /** Not in the manifest: files made after the checkpoint, from files-late.jsonl. */
  made?: MadeFile[];
  /** Not in the manifest: entries moved after the checkpoint, from files-late.jsonl, in the order they were told. */
  moved?: MovedEntry[];
  stdio: StdioFile[];
  /** `--snapshot-dir`: the directory trees saved with the generation (src/snapdir.ts). */
  dirs?: DirSnapshot[];
}

export class FilesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FilesError';
  }
}

// ---- checkpoint: which files --------------------------------------------

interface Candidate {
  key: string;
  /** A path to read it by (a /proc link of a holder). */
  proc: string;
  path: string;
  append: boolean;
  /** No holder writes it. */
  readOnly: boolean;
  holders: string[];
  /** The members' descriptors of it: a file under a write lease is read through one of them (leaseSafeOpen). */
  fds: { outer: number; fd: number; readable: boolean }[];
  /** No process has it open or mapped: a file the program wrote and closed (its shim told ckrun), read by its path. */
  closed?: boolean;
  /** A closed file's lstat when it was found. */
  lstat?: BigIntStats;
}

function flagsOf(outer: number, fd: number): { flags: number; pos: number } | undefined {
  try {
    const t = readFileSync(`/proc/${outer}/fdinfo/${fd}`, 'utf8');
    const flags = /^flags:\s+([0-7]+)/m.exec(t);
    const pos = /^pos:\s+([0-9]+)/m.exec(t);
    return flags ? { flags: parseInt(flags[1]!, 8), pos: pos ? Number(pos[1]) : 0 } : undefined;
  } catch {
    return undefined;
  }
}

const O_ACCMODE = 3;

function isWritable(flags: number): boolean {
  return (flags & O_ACCMODE) !== FS.O_RDONLY;
}

/** Files of ckrun's own or the shim's that are not the program's: the checkpoint directory, shared memory. */
export function ignoredPath(path: string, skipDirs: readonly string[]): boolean {
  if (!path.startsWith('/') || path.endsWith(' (deleted)')) return true;
  if (path.startsWith('/dev/') || path.startsWith('/proc/') || path.startsWith('/sys/')) return true;
  return skipDirs.some((d) => path === d || path.startsWith(d + sep));
}

function addCandidate(found: Map<string, Candidate>, key: string, c: Omit<Candidate, 'key' | 'holders'>, holder: string): void {
  const had = found.get(key);
  if (had) {
    had.append &&= c.append;
    had.readOnly &&= c.readOnly;
    had.holders.push(holder);
    had.fds.push(...c.fds);
  } else found.set(key, { key, ...c, holders: [holder] });
}

function descriptorsOf(m: Member, found: Map<string, Candidate>, skipDirs: readonly string[]): void {
  let names: string[];
  try {
    names = readdirSync(`/proc/${m.outer}/fd`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ProcessGoneError(m.pid);
    throw e;
  }
  for (const n of names) {
    const proc = `/proc/${m.outer}/fd/${n}`;
    let link: string;
    let st;
    try {
      link = readlinkSync(proc);
      st = statSync(proc, { bigint: true });
    } catch {
      continue;
    }
    if (!st.isFile() || st.nlink === 0n || ignoredPath(link, skipDirs)) continue;
    const fi = flagsOf(m.outer, Number(n));
    if (!fi) continue;
    const readOnly = !isWritable(fi.flags);
    if (readOnly && st.size > BigInt(RECREATE_MAX)) continue;
    const fds = [{ outer: m.outer, fd: Number(n), readable: (fi.flags & O_ACCMODE) !== FS.O_WRONLY }];
    addCandidate(found, `${st.dev}:${st.ino}`, { proc, path: link, append: (fi.flags & FS.O_APPEND) !== 0, readOnly, fds }, `process ${m.pid} descriptor ${n}`);
  }
}

function sharedWritableMaps(m: Member, found: Map<string, Candidate>, skipDirs: readonly string[]): void {
  let text: string;
  try {
    text = readFileSync(`/proc/${m.outer}/maps`, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ESRCH') throw new ProcessGoneError(m.pid);
    throw e;
  }
  for (const line of text.split('\n')) {
    const r = /^([0-9a-f]+-[0-9a-f]+) (\S{4}) [0-9a-f]+ ([0-9a-f]+):([0-9a-f]+) ([0-9]+)\s+(.*)$/.exec(line);
    if (!r || r[2]![1] !== 'w' || r[2]![3] !== 's' || r[5] === '0') continue;
    const path = r[6]!;
    if (ignoredPath(path, skipDirs)) continue;
    const key = `${makeDev(parseInt(r[3]!, 16), parseInt(r[4]!, 16))}:${r[5]}`;
    addCandidate(found, key, { proc: `/proc/${m.outer}/map_files/${r[1]}`, path, append: false, readOnly: false, fds: [] }, `process ${m.pid} mapping ${r[1]}`);
  }
}

/** Every regular file a member has open for writing or maps shared-writable, by (dev, ino). */
export function writtenFiles(members: readonly Member[], skipDirs: readonly string[]): Candidate[] {
  const found = new Map<string, Candidate>();
  for (const m of members) {
    descriptorsOf(m, found, skipDirs);
    sharedWritableMaps(m, found, skipDirs);
  }
  return [...found.values()];
}

/**
 * Closed files only ever truncated kept at most (the newest told): a job
 * writing thousands of small results would otherwise make every pause
 * open them all.
 */
export const MAX_TRUNCATED_CLOSED = 1024;

/** Why a closed file is not saved: it is gone, or its path names another file now. */
class ClosedFileGone extends Error {}

/**
 * The files the program wrote and no process has open any more, still at
 * the path it opened them by. A file gone from there, or replaced by
 * another, is forgotten (not in a pre-copy, which runs beside the program).
 */
function closedWrittenFiles(written: WrittenFiles, open: ReadonlySet<string>, skipDirs: readonly string[], forget: boolean): Candidate[] {
  const out: Candidate[] = [];
  let truncated = 0;
  // newest first: of the files only ever truncated, the most recently written are kept
  for (const w of written.list().reverse()) {
    const key = `${w.dev}:${w.ino}`;
    if (open.has(key) || ignoredPath(w.path, skipDirs)) continue;
    let st;
    try {
      st = lstatSync(w.path, { bigint: true });
    } catch {
      st = undefined;
    }
    if (!st || !st.isFile() || `${st.dev}:${st.ino}` !== key || st.nlink === 0n) {
      if (forget) written.forget(key);
      continue;
    }
    // rewritten whole by the program each time (a result, a model's weights): a small one is kept for a program that reads it back
    if (w.how === 'truncate' && (st.size > BigInt(RECREATE_MAX) || ++truncated > MAX_TRUNCATED_CLOSED)) continue;
    out.push({ key, proc: w.path, path: w.path, append: w.how === 'append', readOnly: false, holders: ['written and closed by the program'], fds: [], closed: true, lstat: st });
  }
  return out;
}

/** A closed file by its path, never through a link, and only if it is still the file the program wrote. */
function openClosed(c: Candidate): number {
  let fd;
  try {
    fd = openSync(c.path, FS.O_RDONLY | FS.O_NOFOLLOW | FS.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') throw new ClosedFileGone();
    throw e;
  }
  const st = fstatSync(fd, { bigint: true });
  if (!st.isFile() || `${st.dev}:${st.ino}` !== c.key) {
    closeSync(fd);
    throw new ClosedFileGone();
  }
  return fd;
}

/** The session's stdio (ckrun's descriptors given to the program) that are regular files. */
export function stdioFiles(fds: readonly number[]): StdioFile[] {
  const out: StdioFile[] = [];
  fds.forEach((fd, k) => {
    const proc = `/proc/self/fd/${fd}`;
    let st;
    try {
      st = statSync(proc);
    } catch {
      return;
    }
    if (!st.isFile()) return;
    const fi = flagsOf(process.pid, fd);
    const path = readlinkSync(proc);
    if (!fi || ignoredPath(path, [])) return;
    const entry: StdioFile = { fd: k, path, dev: st.dev, ino: st.ino, offset: fi.pos, flags: fi.flags };
    for (const o of out)
      if (kcmpSafe(fds[o.fd]!, fd)) {
        entry.same_as = o.same_as ?? o.fd;
        break;
      }
    out.push(entry);
  });
  return out;
}

function kcmpSafe(a: number, b: number): boolean {
  try {
    return kcmpFile(process.pid, a, process.pid, b);
  } catch {
    return false;
  }
}

// ---- checkpoint: saving -------------------------------------------------

/** What a capture is incremental to: a generation (tables on disk), or this generation's pre-copy (tables in memory). */
export interface Previous {
  record: FilesRecord;
  path: string;
  tables?: Map<string, Buffer>;
  /** A pre-copy's fstat of each file before it was read (by table name): ctime, mtime, size. */
  stats?: Map<string, string>;
}

export interface CaptureOptions {
  policy: FilesPolicy;
  /** `--files-max`: the checkpoint fails beyond this many bytes of written files. */
  maxBytes?: number;
  /** The generation being written (`DIR/.N.partial`). */
  genPath: string;
  /** Directories whose files are never the program's (the checkpoint directory). */
  skipDirs: string[];
  /** The previous generation's record and where it is: unchanged blocks are taken from it. */
  previous?: Previous;
  /** The session's stdio descriptors in ckrun. */
  stdio: readonly number[];
  /** The files the program opened for writing (its shims told them): those it closed are saved too. */
  written?: WrittenFiles;
  /** A pre-copy: data files named `pre-<k>.dat`, tables kept here instead of written. */
  prefix?: string;
  tables?: Map<string, Buffer>;
  stats?: Map<string, string>;
}

export interface CaptureResult {
  record: FilesRecord;
  /** Bytes stored in this generation. */
  bytes: number;
  ms: number;
}

/** A file of the generation's files/: a regular file (never through a link) of the generation's owner. */
function openOwn(genPath: string, name: string, what: string): number {
  const path = join(genPath, name);
  const fd = openSync(path, FS.O_RDONLY | FS.O_NOFOLLOW);
  const st = fstatSync(fd);
  const owner = lstatSync(genPath).uid;
  if (!st.isFile() || st.uid !== owner) {
    closeSync(fd);
    throw new FilesError(`${path}, ${what}, is ${st.isFile() ? `owned by uid ${st.uid}, not by the generation's owner (uid ${owner})` : 'not a regular file'}: the generation was tampered with`);
  }
  return fd;
}

function readTable(genPath: string, f: SavedFile): Buffer {
  const fd = openOwn(genPath, f.table, `the table of ${f.path}`);
  let buf: Buffer;
  try {
    buf = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  const n = Math.ceil(f.size / f.block);
  if (buf.length !== n * ENTRY) throw new FilesError(`the table ${join(genPath, f.table)} of ${f.path} is ${buf.length} bytes, not ${n * ENTRY}`);
  if (crc32c(buf) !== f.table_crc) throw new FilesError(`the table ${join(genPath, f.table)} of ${f.path} fails its checksum`);
  return buf;
}

/** Links a previous generation's data file into this one (by its inode: once), and returns its name here. */
function linkSource(prevGen: string, name: string, genPath: string): string {
  const from = join(prevGen, name);
  const ino = statSync(from).ino;
  const here = `${FILES_DIR}/ref-${ino}.dat`;
  if (!existsSync(join(genPath, here))) linkSync(from, join(genPath, here));
  return here;
}

/** Only the sources the table uses, renumbered; the previous ones linked in. */
function compactSources(table: Buffer, own: string | undefined, prev: SavedFile | undefined, prevGen: string | undefined, genPath: string): string[] {
  const all = [own ?? '', ...(prev?.sources ?? [])];
  const used = new Map<number, number>();
  const names: string[] = [];
  for (let off = 0; off < table.length; off += ENTRY) {
    const src = table.readUInt32LE(off + 8);
    if (src === HOLE) continue;
    let to = used.get(src);
    if (to === undefined) {
      to = names.length;
      used.set(src, to);
      names.push(src === 0 ? all[0]! : linkSource(prevGen!, all[src]!, genPath));
    }
    table.writeUInt32LE(to, off + 8);
  }
  return names;
}

function howKept(c: Candidate): SavedFile['how'] {
  return c.readOnly ? 'recreate' : c.append ? 'append' : 'content';
}

/** Whether the file's blocks are stored (not only its table). */
function stores(how: SavedFile['how']): boolean {
  return how !== 'append';
}

/**
 * The file to read: through /proc (a magic link: not O_NOFOLLOW), the very
 * file the process has; a mapping's map_files entry needs privileges an
 * ordinary user lacks, so then its path, if it is still that file.
 */
function openCandidate(c: Candidate): number {
  // O_NONBLOCK: an open that would wait for a lease to be broken (the
  // kernel's lease-break-time, 45 s, with the program stopped) fails at once
  try {
    return openSync(c.proc, FS.O_RDONLY | FS.O_NONBLOCK);
  } catch (e) {
    if (!c.proc.includes('/map_files/')) throw e;
    const fd = openSync(c.path, FS.O_RDONLY | FS.O_NOFOLLOW | FS.O_NONBLOCK);
    const st = fstatSync(fd, { bigint: true });
    if (`${st.dev}:${st.ino}` !== c.key) {
      closeSync(fd);
      throw new FilesError(`${c.path} is no longer the file the program maps, and ckrun cannot read that one (${(e as Error).message})`);
    }
    return fd;
  }
}

/**
 * Files under a write lease (/proc/locks), by (dev, ino): any open of one
 * by another process breaks the lease, and the kernel signals the holder
 * (SIGIO by default: a program without a handler dies). A read lease is
 * broken only by an open for writing, which ckrun never does here.
 */
export function writeLeasedFiles(): Set<string> {
  const out = new Set<string>();
  let text: string;
  try {
    text = readFileSync('/proc/locks', 'utf8');
  } catch {
    return out;
  }
  // "1: LEASE  ACTIVE    WRITE 1234 fe:01:5678 0 EOF" (a breaking lease says BREAKING or BREAKER and its target)
  for (const line of text.split('\n')) {
    const r = /^\d+:\s+(?:->\s+)?LEASE\s+\S+\s+(\S+)\s+\S+\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (r && r[1] !== 'READ') out.add(`${makeDev(parseInt(r[2]!, 16), parseInt(r[3]!, 16))}:${r[4]}`);
  }
  return out;
}

/**
 * A file under a write lease, read without opening it: one of the
 * members' own descriptions of it, duplicated into ckrun (pidfd_getfd).
 * The program is stopped; the description's offset is kept (fileBlocks).
 * A file only mapped, or held only write-only and not empty, cannot be
 * read without breaking the lease: the checkpoint fails, saying so.
 */
function leaseSafeOpen(c: Candidate): number {
  const via = c.fds.find((d) => d.readable) ?? c.fds[0];
  if (!via)
    throw new FilesError(
      `the program holds a write lease on it and maps it without a descriptor: ckrun cannot read it without breaking the lease (the kernel would signal the program); ` +
        `checkpoint with --files=none, or after the program gives the lease up`,
    );
  const fd = native().dupProcessFd(via.outer, via.fd);
  if (!via.readable && fstatSync(fd).size > 0) {
    closeSync(fd);
    throw new FilesError(
      `the program holds a write lease on it through a write-only descriptor: ckrun cannot read it without opening it, which breaks the lease (the kernel would signal the program); ` +
        `checkpoint with --files=none, or after the program gives the lease up`,
    );
  }
  return fd;
}

function statKey(st: { ctimeNs: bigint; mtimeNs: bigint; size: bigint }): string {
  return `${st.ctimeNs}:${st.mtimeNs}:${st.size}`;
}

/**
 * A file the program only reads, unchanged since the pre-copy or the
 * previous capture read it (every write changes ctime after an fstat:
 * multigrain timestamps): that table, its sources one place up (this
 * generation's own is 0). Not a file open for writing: a write through a
 * shared mapping already writable changes no time. (A closed file takes
 * closedUnchanged before it is even opened.)
 */
function unchangedSinceRead(opts: CaptureOptions, prev: SavedFile | undefined, prevTable: Buffer | null, st: { ctimeNs: bigint; mtimeNs: bigint; size: bigint }): Buffer | undefined {
  if (!prev || !prevTable || prev.how !== 'recreate' || opts.previous?.stats?.get(prev.table) !== statKey(st)) return undefined;
  const t = Buffer.from(prevTable);
  for (let off = 0; off < t.length; off += ENTRY) {
    const src = t.readUInt32LE(off + 8);
    if (src !== HOLE) t.writeUInt32LE(src + 1, off + 8);
  }
  return t;
}

/** The previous capture's records by (dev, ino), looked up once per file. */
type PreviousIndex = Map<string, SavedFile[]>;

function indexPrevious(opts: CaptureOptions): PreviousIndex {
  const index: PreviousIndex = new Map();
  for (const p of opts.previous?.record.saved ?? []) {
    const key = `${p.dev}:${p.ino}`;
    const list = index.get(key);
    if (list) list.push(p);
    else index.set(key, [p]);
  }
  return index;
}

function previousRecord(index: PreviousIndex, c: Candidate, how: SavedFile['how']): SavedFile | undefined {
  return index.get(c.key)?.find((p) => p.path === c.path && p.how === how && p.block === FILE_BLOCK);
}

/**
 * A closed file whose lstat is what the previous capture saw: its table
 * and data are the previous ones, hard-linked without opening the file (a
 * link costs a fiftieth of a new file here). A pre-copy writes the tables
 * of closed files to disk too, so that the pause only links them.
 */
function closedUnchanged(c: Candidate, k: number, opts: CaptureOptions, prev: SavedFile | undefined): SavedFile | undefined {
  const st = c.lstat;
  const from = opts.previous;
  if (!c.closed || !st || !prev || !from || from.stats?.get(prev.table) !== statKey(st)) return undefined;
  const tab = `${FILES_DIR}/${opts.prefix ?? ''}${k}.tab`;
  const onDisk = join(from.path, prev.table);
  const inMemory = from.tables?.get(prev.table);
  if (existsSync(onDisk)) linkSync(onDisk, join(opts.genPath, tab));
  else if (inMemory) writeFileSync(join(opts.genPath, tab), inMemory, { mode: 0o600 });
  else return undefined;
  const sources = prev.sources.map((name) => linkSource(from.path, name, opts.genPath));
  opts.stats?.set(tab, statKey(st));
  return {
    ...prev,
    size: Number(st.size),
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    atime_ns: st.atimeNs,
    mtime_ns: st.mtimeNs,
    table: tab,
    sources,
    stored: from.tables ? prev.stored : 0,
  };
}

function saveOne(c: Candidate, k: number, opts: CaptureOptions, how: SavedFile['how'], leased: boolean, index: PreviousIndex): SavedFile {
  const prevRecord = previousRecord(index, c, how);
  const unchanged = closedUnchanged(c, k, opts, prevRecord);
  if (unchanged) return unchanged;
  const fd = c.closed ? openClosed(c) : leased ? leaseSafeOpen(c) : openCandidate(c);
  try {
    const st = fstatSync(fd, { bigint: true });
    const size = Number(st.size);
    let prevTable: Buffer | null = null;
    if (prevRecord && stores(how)) {
      try {
        prevTable = opts.previous!.tables?.get(prevRecord.table) ?? readTable(opts.previous!.path, prevRecord);
      } catch {
        prevTable = null; // the older generation is gone or damaged: a full copy
      }
    }
    const own = `${FILES_DIR}/${opts.prefix ?? ''}${k}.dat`;
    let out = -1;
    if (stores(how)) out = openSync(join(opts.genPath, own), FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o600);
    let r;
    try {
      const same = unchangedSinceRead(opts, prevRecord, prevTable, st);
      r = same ? { table: same, written: 0 } : native().fileBlocks(fd, size, FILE_BLOCK, prevTable, out, 0);
    } finally {
      if (out >= 0) closeSync(out);
    }
    const table = Buffer.from(r.table);
    let sources: string[] = [];
    if (stores(how)) {
      sources = compactSources(table, r.written > 0 ? own : undefined, prevTable ? prevRecord : undefined, opts.previous?.path, opts.genPath);
      if (r.written === 0) unlinkSync(join(opts.genPath, own));
    }
    const tab = `${FILES_DIR}/${opts.prefix ?? ''}${k}.tab`;
    opts.stats?.set(tab, statKey(st));
    if (opts.tables) opts.tables.set(tab, table);
    // a closed file's too, in a pre-copy: the pause links it if the file stays as it is (closedUnchanged)
    if (!opts.tables || c.closed) writeFileSync(join(opts.genPath, tab), table, { mode: 0o600 });
    return {
      path: c.path,
      dev: Number(st.dev),
      ino: Number(st.ino),
      size,
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      atime_ns: st.atimeNs,
      mtime_ns: st.mtimeNs,
      how,
      block: FILE_BLOCK,
      table: tab,
      table_crc: crc32c(table),
      sources,
      // with a pre-copy of this generation, what it stored counts too
      stored: Math.min(r.written * FILE_BLOCK, size) + (opts.previous?.tables && prevTable ? prevRecord!.stored : 0),
    };
  } finally {
    closeSync(fd);
  }
}

function sizeOf(c: Candidate): number {
  try {
    return statSync(c.proc).size;
  } catch {
    return 0;
  }
}

/**
 * Saves the written files of the stopped session into the generation
 * (FilesError: the checkpoint fails, naming the file and the reason).
 */
export function captureFiles(members: readonly Member[], opts: CaptureOptions): CaptureResult {
  const t0 = Date.now();
  const leased = writeLeasedFiles();
  // a pre-copy runs beside the program: its leased files wait for the pause, where their descriptions can be read at rest
  const found = writtenFiles(members, opts.skipDirs).filter((c) => !(opts.prefix && leased.has(c.key)));
  // the session's stdio files the program still has (a restarted session's own stdio need not be the program's)
  const held = new Set(found.map((c) => c.key));
  if (opts.written && opts.policy === 'snapshot') {
    const closed = closedWrittenFiles(opts.written, held, opts.skipDirs, !opts.prefix);
    // another process's write lease on one: reading it would break the lease (the pause reads it, and says so)
    found.push(...closed.filter((c) => !(opts.prefix && leased.has(c.key))));
  }
  const stdio = stdioFiles(opts.stdio).filter((s) => held.has(`${s.dev}:${s.ino}`));
  if (opts.policy !== 'snapshot') return { record: { policy: opts.policy, saved: [], stdio }, bytes: 0, ms: Date.now() - t0 };
  if (opts.maxBytes !== undefined) {
    const sized = found.map((c) => ({ c, size: sizeOf(c) })).filter((x) => stores(howKept(x.c)));
    const total = sized.reduce((a, x) => a + x.size, 0);
    if (total > opts.maxBytes) {
      const list = sized
        .sort((a, b) => b.size - a.size)
        .map((x) => `${x.c.path} (${formatBytes(x.size)})`)
        .join(', ');
      throw new FilesError(
        `the files the program writes hold ${formatBytes(total)}, more than --files-max ${formatBytes(opts.maxBytes)}: ${list}; ` +
          `raise --files-max, or choose --files=size (only cut back at restart) or --files=none`,
      );
    }
  }
  if (found.length > 0) mkdirSync(join(opts.genPath, FILES_DIR), { mode: 0o700, recursive: true });
  const saved: SavedFile[] = [];
  let bytes = 0;
  const index = indexPrevious(opts);
  found.forEach((c, k) => {
    let s: SavedFile;
    try {
      if (c.closed && leased.has(c.key))
        throw new FilesError(`another process holds a write lease on it: reading it would break the lease; checkpoint with --files=none, or after the lease is given up`);
      s = saveOne(c, k, opts, howKept(c), leased.has(c.key), index);
    } catch (e) {
      if (e instanceof ClosedFileGone) {
        if (!opts.prefix) opts.written?.forget(c.key);
        return;
      }
      throw new FilesError(`cannot save ${c.path} (${c.holders[0]}), a file the program writes: ${(e as Error).message}`);
    }
    bytes += s.stored;
    saved.push(s);
  });
  return { record: { policy: 'snapshot', saved, stdio }, bytes, ms: Date.now() - t0 };
}

/**
 * A file the program opens for writing for the first time since the
 * generation at genPath was taken (its shim asked first: src/files-late.ts),
 * saved into that generation as files/late-<k>.*, with the policy of a
 * closed file: a log's table, a file only ever rewritten whole up to
 * RECREATE_MAX, anything else whole. Undefined when nothing is kept (gone,
 * replaced, too large a result, or in the checkpoint directory).
 */
export function saveLateFile(genPath: string, f: WrittenFile, k: number, skipDirs: readonly string[]): SavedFile | undefined {
  if (ignoredPath(f.path, skipDirs)) return undefined;
  const key = `${f.dev}:${f.ino}`;
  let st;
  try {
    st = lstatSync(f.path, { bigint: true });
  } catch {
    return undefined;
  }
  if (!st.isFile() || `${st.dev}:${st.ino}` !== key || st.nlink === 0n) return undefined;
  if (f.how === 'truncate' && st.size > BigInt(RECREATE_MAX)) return undefined;
  const c: Candidate = { key, proc: f.path, path: f.path, append: f.how === 'append', readOnly: false, holders: ['first opened for writing after the checkpoint'], fds: [], closed: true, lstat: st };
  mkdirSync(join(genPath, FILES_DIR), { mode: 0o700, recursive: true });
  try {
    return saveOne(c, k, { policy: 'snapshot', genPath, skipDirs: [...skipDirs], stdio: [], prefix: 'late-' }, howKept(c), false, new Map());
  } catch (e) {
    if (e instanceof ClosedFileGone) return undefined;
    throw new FilesError(`cannot save ${f.path}, a file the program writes: ${(e as Error).message}`);
  }
}

/**
 * Copies the written files into the generation while the program still
 * runs (before the barrier), so that the capture in the pause reads and
 * hashes them but copies only the blocks changed meanwhile. Undefined when
 * there is nothing to copy or it failed (the capture then copies it all).
 */
export function precopyFiles(members: readonly Member[], opts: CaptureOptions): Previous | undefined {
  try {
    const tables = new Map<string, Buffer>();
    const stats = new Map<string, string>();
    const r = captureFiles(members, { ...opts, prefix: 'pre-', tables, stats });
    return r.record.saved.length > 0 ? { record: r.record, path: opts.genPath, tables, stats } : undefined;
  } catch {
    return undefined; // a process or file went away, or beyond --files-max: the capture in the pause does it all (or says why not)
  }
}

/** After the capture: the pre-copy's own names, and links no table uses, are removed. */
export function tidyFiles(genPath: string, record: FilesRecord): void {
  const dir = join(genPath, FILES_DIR);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const used = new Set(record.saved.flatMap((f) => [f.table, ...f.sources]));
  for (const n of names) if (!used.has(`${FILES_DIR}/${n}`)) rmSync(join(dir, n), { force: true });
}

// ---- restart --------------------------------------------------------------

interface Plan {
  f: SavedFile;
  table: Buffer;
  /** Absent: the file is gone and is made again. */
  current?: { fd: number; size: number; table: Buffer; mtimeNs: bigint };
  /** The file is gone: it is made again. */
  missing: boolean;
  /** Blocks to write from the image, and blocks to make holes. */
  write: number[];
  punch: number[];
}

function blockLen(f: SavedFile, i: number): number {
  return Math.min(f.block, f.size - i * f.block);
}

function entryOf(t: Buffer, i: number): { hash: bigint; src: number; pos: number } {
  return { hash: t.readBigUInt64LE(i * ENTRY), src: t.readUInt32LE(i * ENTRY + 8), pos: t.readUInt32LE(i * ENTRY + 12) };
}

function readAt(fd: number, len: number, pos: number): Buffer {
  const buf = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const n = readSync(fd, buf, done, len - done, pos + done);
    if (n === 0) break;
    done += n;
  }
  return done === len ? buf : buf.subarray(0, done);
}

function writeAt(fd: number, buf: Buffer, pos: number): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, pos + done);
}

/** Whether block i of the file as it is now equals the saved one. */
function sameBlock(p: Plan, i: number): boolean {
  const cur = p.current!;
  const want = entryOf(p.table, i);
  const len = blockLen(p.f, i);
  if (i * p.f.block + len > cur.size) return false;
  if (want.src === HOLE) return entryOf(cur.table, i).src === HOLE;
  if (entryOf(cur.table, i).src === HOLE) return false;
  if (len === Math.min(p.f.block, cur.size - i * p.f.block)) return entryOf(cur.table, i).hash === want.hash;
  // the checkpoint's last block, longer now: compare its first len bytes
  return native().blockHash(readAt(cur.fd, len, i * p.f.block)) === want.hash;
}

function sourceFds(genPath: string, f: SavedFile, fds: Map<string, number>): number[] {
  return f.sources.map((s) => {
    let fd = fds.get(s);
    if (fd === undefined) {
      try {
        fd = openOwn(genPath, s, `saved content of ${f.path}`);
      } catch (e) {
        if (e instanceof FilesError) throw e;
        throw new FilesError(`the saved content of ${f.path} (${join(genPath, s)}) cannot be read: ${(e as Error).message}`);
      }
      fds.set(s, fd);
    }
    return fd;
  });
}

/** The saved bytes of block i, checked against the table's hash. */
function savedBlock(genPath: string, p: Plan, i: number, srcFds: number[]): Buffer {
  const e = entryOf(p.table, i);
  const len = blockLen(p.f, i);
  const fd = srcFds[e.src];
  const buf = fd === undefined ? Buffer.alloc(0) : readAt(fd, len, e.pos * p.f.block);
  if (buf.length !== len || native().blockHash(buf) !== e.hash)
    throw new FilesError(
      `the saved content of ${p.f.path} in ${genPath} is damaged (block ${i} ${buf.length !== len ? 'is missing' : 'fails its checksum'}); restart from an older generation`,
    );
  return buf;
}

function describeWhy(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * A restart of another user's generation (`--trust-owner`, as root) writes
 * only files of that user: a file that is there must be theirs, a file made
 * again must be theirs in a directory of theirs.
 */
function checkWhose(f: SavedFile, st: { uid: number } | undefined, owner: number | undefined): void {
  if (owner === undefined || owner === (process.geteuid?.() ?? -1)) return;
  const dirUid = (() => {
    try {
      return lstatSync(dirname(f.path)).uid;
    } catch {
      return -1;
    }
  })();
  const whose = st ? st.uid : f.uid === owner && dirUid === owner ? owner : -1;
  if (whose !== owner)
    throw new FilesError(
      `${f.path} is not a file of uid ${owner}, whose generation this is${st ? '' : ' (or its directory is not theirs)'}: a restart of another user's checkpoint writes only that user's files`,
    );
}

function planFile(genPath: string, f: SavedFile, srcFds: Map<string, number>, owner: number | undefined): Plan {
  const table = readTable(genPath, f);
  const n = Math.ceil(f.size / f.block);
  let st;
  try {
    st = lstatSync(f.path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new FilesError(`cannot look at ${f.path}: ${describeWhy(e)}`);
  }
  // never through a link planted on the way: the kernel gave the path resolved
  const dir = dirname(f.path);
  let real: string | undefined;
  try {
    real = realpathSync(dir);
  } catch {
    real = undefined; // gone: said below
  }
  if (real !== undefined && real !== dir)
    throw new FilesError(`the directory of ${f.path}, a file the program wrote, now leads to ${real} (a symbolic link on the way): put the directory back`);
  if (st && st.uid !== f.uid && f.how !== 'recreate')
    throw new FilesError(`${f.path} now belongs to uid ${st.uid}, not to uid ${f.uid} as at the checkpoint: it is another file; put the program's file back`);
  if (f.how !== 'recreate' || !st) checkWhose(f, st, owner);
  const p: Plan = { f, table, missing: !st, write: [], punch: [] };
  if (!st) {
    // an empty log needs no bytes to be made again
    if (f.how === 'append' && f.size > 0)
      throw new FilesError(
        `${f.path}, a log the program appends to, was removed after the checkpoint; ckrun kept only its checksums: put the file back (its first ${f.size} bytes) or restart with --files=none`,
      );
    if (!existsSync(dirname(f.path))) throw new FilesError(`${f.path} was removed after the checkpoint, and so was its directory ${dirname(f.path)}: make the directory again`);
    for (let i = 0; i < n; i++) if (entryOf(table, i).src !== HOLE) p.write.push(i);
  } else if (f.how === 'recreate') {
    return p; // a file the program only reads: there, it is left as it is
  } else {
    if (!st.isFile()) throw new FilesError(`${f.path} is no longer a regular file (a file the program wrote): put the file back`);
    let fd: number;
    try {
      fd = openSync(f.path, FS.O_RDWR | FS.O_NOFOLLOW);
    } catch (e) {
      throw new FilesError(`cannot open ${f.path} to put it back as it was at the checkpoint: ${describeWhy(e)}`);
    }
    const cur = fstatSync(fd, { bigint: true });
    const size = Number(cur.size);
    p.current = { fd, size, table: native().fileBlocks(fd, size, f.block, null, -1, 0).table, mtimeNs: cur.mtimeNs };
    for (let i = 0; i < n; i++) {
      if (sameBlock(p, i)) continue;
      if (f.how === 'append')
        throw new FilesError(
          `${f.path}, a log the program appends to, was changed after the checkpoint within its first ${f.size} bytes (block ${i}); ckrun kept only its checksums: ` +
            `restart from a generation taken with --files=snapshot on a file not opened O_APPEND, or with --files=none`,
        );
      if (entryOf(table, i).src === HOLE) p.punch.push(i);
      else p.write.push(i);
    }
  }
  const fds = sourceFds(genPath, f, srcFds);
  for (const i of p.write) savedBlock(genPath, p, i, fds); // checked before anything changes
  return p;
}

/** What was there before a file was put back: enough to undo it. */
interface Undo {
  path: string;
  created: boolean;
  size: number;
  /** [offset, length, offset in the undo file]. */
  blocks: [number, number, number][];
}

function applyPlan(genPath: string, p: Plan, srcFds: Map<string, number>, undoFd: number, undoAt: { off: number }, undo: Undo[]): void {
  const f = p.f;
  const fds = sourceFds(genPath, f, srcFds);
  let fd: number;
  if (p.missing) {
    fd = openSync(f.path, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL | FS.O_NOFOLLOW, f.mode);
    undo.push({ path: f.path, created: true, size: 0, blocks: [] });
  } else {
    if (!p.current) throw new Error(`internal error: ${f.path} has no plan`);
    fd = p.current.fd;
    const u: Undo = { path: f.path, created: false, size: p.current.size, blocks: [] };
    undo.push(u);
    for (const i of [...p.write, ...p.punch]) {
      const off = i * f.block;
      if (off >= p.current.size) continue;
      const old = readAt(fd, Math.min(f.block, p.current.size - off), off);
      writeAt(undoFd, old, undoAt.off);
      u.blocks.push([off, old.length, undoAt.off]);
      undoAt.off += old.length;
    }
  }
  try {
    for (const i of p.write) writeAt(fd, savedBlock(genPath, p, i, fds), i * f.block);
    for (const i of p.punch) native().punchHole(fd, i * f.block, blockLen(f, i));
    if (fstatSync(fd).size !== f.size) ftruncateSync(fd, f.size);
    if (p.missing) {
      try {
        fchownSync(fd, f.uid, f.gid);
      } catch {
        // not root: the file is the restarting user's
      }
      fchmodSync(fd, f.mode); // after chown (which clears set-id bits), and whatever the umask
    }
    native().futimesNs(fd, f.atime_ns, f.mtime_ns);
  } finally {
    if (p.missing) closeSync(fd);
  }
}

function rollBack(undo: Undo[], undoFd: number): string[] {
  const failed: string[] = [];
  for (const u of undo.reverse()) {
    try {
      if (u.created) {
        unlinkSync(u.path);
        continue;
      }
      const fd = openSync(u.path, FS.O_RDWR | FS.O_NOFOLLOW);
      try {
        for (const [off, len, at] of u.blocks) writeAt(fd, readAt(undoFd, len, at), off);
        ftruncateSync(fd, u.size);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      failed.push(`${u.path}: ${describeWhy(e)}`);
    }
  }
  return failed;
}

/**
 * Puts every written file of the generation back as it was at its
 * checkpoint; returns the paths put back. `owner`: the generation's owner
 * (another user's generation: only their files are written). Throws FilesError before
 * changing anything when it cannot, and after undoing its changes when
 * writing fails.
 */
export function restoreFiles(genPath: string, record: FilesRecord, owner?: number): string[] {
  if (record.policy !== 'snapshot' || record.saved.length === 0) return [];
  const srcFds = new Map<string, number>();
  const plans: Plan[] = [];
  try {
    for (const f of record.saved) plans.push(planFile(genPath, f, srcFds, owner));
    // also a file whose content is as it was but whose times are not (written again with the same bytes)
    const todo = plans.filter(
      (p) => p.missing || p.write.length || p.punch.length || (p.current && (p.current.size !== p.f.size || p.current.mtimeNs !== BigInt(p.f.mtime_ns))),
    );
    if (todo.length === 0) return [];
    const undoDir = mkdtempSync(join(tmpdir(), 'ckrun-undo-'));
    const undoFd = openSync(join(undoDir, 'undo'), FS.O_RDWR | FS.O_CREAT | FS.O_EXCL, 0o600);
    const undo: Undo[] = [];
    try {
      for (const p of todo) applyPlan(genPath, p, srcFds, undoFd, { off: undoFdSize(undoFd) }, undo);
    } catch (e) {
      const failed = rollBack(undo, undoFd);
      throw new FilesError(
        `cannot put the written files back as they were at the checkpoint: ${describeWhy(e)}` +
          (failed.length ? `; and these could not be put back as they were before the restart: ${failed.join('; ')}` : '; every file is as it was before the restart'),
      );
    } finally {
      closeSync(undoFd);
      rmSync(undoDir, { recursive: true, force: true });
    }
    return todo.map((p) => p.f.path);
  } finally {
    for (const p of plans) if (p.current) closeSync(p.current.fd);
    for (const fd of srcFds.values()) closeSync(fd);
  }
}

function undoFdSize(fd: number): number {
  return fstatSync(fd).size;
}

/** CKRUN_STDIO_INHERIT for the restore host (preload/files.c): "k:dev:ino" of each stdio file. */
export function stdioInheritEnv(record: FilesRecord): string {
  return record.stdio.map((s) => `${s.fd}:${s.dev}:${s.ino}`).join(',');
}

/** CKRUN_FILES_SAVED for `ckrun verify`'s restore host check (preload/files.c): the files a restart puts back first. */
export function savedIdentities(record: FilesRecord): string {
  return record.policy === 'snapshot' ? record.saved.filter((f) => f.how !== 'append').map((f) => `${f.dev}:${f.ino}`).join(',') : '';
}

/**
 * What `ckrun verify` checks of a generation's saved files: every table
 * (owner, size, CRC), every data file it names, and with verifyData every
 * stored block against its hash. A problem as text, or undefined.
 */
export function checkSavedFiles(genPath: string, record: FilesRecord, verifyData: boolean): string | undefined {
  const fds = new Map<string, number>();
  try {
    const dirsProblem = record.dirs ? checkSnapshots(genPath, record.dirs, verifyData) : undefined;
    if (dirsProblem !== undefined) return dirsProblem;
    for (const f of record.saved) {
      const table = readTable(genPath, f);
      const src = sourceFds(genPath, f, fds);
      if (!verifyData) continue;
      const p: Plan = { f, table, missing: false, write: [], punch: [] };
      for (let i = 0; i < table.length / ENTRY; i++) if (entryOf(table, i).src !== HOLE && f.how !== 'append') savedBlock(genPath, p, i, src);
    }
    return undefined;
  } catch (e) {
    return describeWhy(e);
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}

// ---- the manifest's `files` -------------------------------------------------

function isUint(v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(`${FILES_DIR}/`) && !v.includes('..') && !v.slice(FILES_DIR.length + 1).includes('/');
}

/** A CBOR integer beyond 32 bits decodes as a bigint: a number again when it is safe. */
function small(v: unknown): unknown {
  return typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function asNs(v: unknown): bigint | undefined {
  if (typeof v === 'bigint' && v >= 0n) return v;
  if (isUint(v)) return BigInt(v);
  return undefined;
}

/** The manifest's `files` checked (a message naming what is malformed, or the record). */
export function parseFilesRecord(v: unknown): FilesRecord | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'files is not a map';
  const m = v as Record<string, unknown>;
  const policy = m['policy'];
  if (typeof policy !== 'string' || !(FILES_POLICIES as readonly string[]).includes(policy)) return 'files.policy is not snapshot, size or none';
  const saved: SavedFile[] = [];
  for (const e of Array.isArray(m['saved']) ? m['saved'] : []) {
    if (typeof e !== 'object' || e === null) return 'files.saved has a malformed entry';
    const f = e as Record<string, unknown>;
    const n = (k: string): unknown => small(f[k]);
    const atime = asNs(f['atime_ns']);
    const mtime = asNs(f['mtime_ns']);
    const sources = f['sources'];
    if (
      typeof f['path'] !== 'string' ||
      !f['path'].startsWith('/') ||
      !isUint(n('dev')) ||
      !isUint(n('ino')) ||
      !isUint(n('size')) ||
      !isUint(n('mode'), 0o7777) ||
      !isUint(n('uid'), 0xffffffff) ||
      !isUint(n('gid'), 0xffffffff) ||
      atime === undefined ||
      mtime === undefined ||
      (f['how'] !== 'content' && f['how'] !== 'append' && f['how'] !== 'recreate') ||
      !isUint(n('block'), 1 << 24) ||
      (n('block') as number) < 512 ||
      !isName(f['table']) ||
      !isUint(n('table_crc'), 0xffffffff) ||
      !Array.isArray(sources) ||
      !sources.every(isName) ||
      !isUint(n('stored'))
    )
      return `files.saved has a malformed entry${typeof f['path'] === 'string' ? ` (${f['path']})` : ''}`;
    saved.push({
      path: f['path'],
      dev: n('dev') as number,
      ino: n('ino') as number,
      size: n('size') as number,
      mode: n('mode') as number,
      uid: n('uid') as number,
      gid: n('gid') as number,
      atime_ns: atime,
      mtime_ns: mtime,
      how: f['how'],
      block: n('block') as number,
      table: f['table'],
      table_crc: n('table_crc') as number,
      sources: sources as string[],
      stored: n('stored') as number,
    });
  }
  const stdio: StdioFile[] = [];
  for (const e of Array.isArray(m['stdio']) ? m['stdio'] : []) {
    if (typeof e !== 'object' || e === null) return 'files.stdio has a malformed entry';
    const s = e as Record<string, unknown>;
    const [fd, dev, ino, offset, flags, same] = [s['fd'], s['dev'], s['ino'], s['offset'], s['flags'], s['same_as']].map(small);
    if (
      !isUint(fd, 2) ||
      typeof s['path'] !== 'string' ||
      !s['path'].startsWith('/') ||
      !isUint(dev) ||
      !isUint(ino) ||
      !isUint(offset) ||
      !isUint(flags, 0x7fffffff)
    )
      return 'files.stdio has a malformed entry';
    if (same !== undefined && !isUint(same, 2)) return 'files.stdio has a malformed same_as';
    stdio.push({ fd, path: s['path'], dev, ino, offset, flags, ...(same !== undefined ? { same_as: same as number } : {}) });
  }
  let dirs: DirSnapshot[] | undefined;
  if (m['dirs'] !== undefined) {
    const r = parseDirSnapshots(m['dirs']);
    if (typeof r === 'string') return r;
    dirs = r;
  }
  return { policy: policy as FilesPolicy, saved, stdio, ...(dirs ? { dirs } : {}) };
}

/** The checkpoint directory itself and what it resolves to: never the program's files. */
export function skipDirsFor(dir: string): string[] {
  const out = [resolve(dir)];
  try {
    out.push(realpathSync(dir));
  } catch {
    // not there yet
  }
  return [...new Set(out)];
}
