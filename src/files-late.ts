// Files first opened for writing after a checkpoint ("keep", preload/written.c).
//
// A generation saves the files the program has open for writing, or wrote
// and closed, at the checkpoint (src/files.ts). A file the program had never
// opened for writing until after the checkpoint is in none of them, yet a
// restart would find what the program wrote to it since, and the program
// would write it again (a job that starts appending to a log in its second
// phase, rewrites a database in place). So before such an open the shim
// asks ckrun to keep the file: as no process of the session has written it
// since the checkpoint (each would have asked first), it is still as it was
// then, and ckrun adds it to the newest generation, beside the manifest
// (`files-late.jsonl`, a line appended for each). A restart from that
// generation puts it back with the others, and removes the files the
// program made after the checkpoint (`made`), and the directories, links,
// FIFOs and device nodes it made, and what it moved to a new name.
import { closeSync, fstatSync, lchownSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, rmdirSync, rmSync, symlinkSync, unlinkSync, writeSync, constants as FS, type BigIntStats } from 'node:fs';
import { dirname, join } from 'node:path';
import { FILES_DIR, FilesError, ignoredPath, parseFilesRecord, saveLateFile, type MadeFile, type MovedEntry, type SavedFile } from './files.js';
import type { WrittenFile } from './files-written.js';

/**
 * The generation's log of what it learnt after it was taken: one JSON
 * object per line, `{"saved": SavedFile}`, `{"made": MadeFile}` or `{"moved": MovedEntry}` (times
 * as decimal strings), appended (never rewritten) as it is learnt. A last
 * line without its line end (ckrun died while writing it) is ignored.
 */
export const LATE_FILES = 'files-late.jsonl';

/** What a generation learnt after it was taken: files kept, and files made. */
export interface LateRecord {
  saved: SavedFile[];
  made: MadeFile[];
  moved: MovedEntry[];
}

const uint = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const decimal = (x: unknown): x is string => typeof x === 'string' && /^[0-9]{1,20}$/.test(x);

function parseMade(v: unknown): MadeFile | undefined {
  const m = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const bt = m['btime_ns'];
  if (typeof m['path'] !== 'string' || !m['path'].startsWith('/') || !uint(m['dev']) || !uint(m['ino']) || !decimal(bt)) return undefined;
  return { path: m['path'], dev: m['dev'], ino: m['ino'], btime_ns: BigInt(bt) };
}

function parseMoved(v: unknown): MovedEntry | undefined {
  const m = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const bt = m['btime_ns'];
  const abs = (x: unknown): x is string => typeof x === 'string' && x.startsWith('/');
  if (!abs(m['from']) || !abs(m['to']) || !uint(m['dev']) || !uint(m['ino']) || !decimal(bt)) return undefined;
  if ((m['link'] !== undefined && m['link'] !== true) || (m['replaced'] !== undefined && m['replaced'] !== true)) return undefined;
  if (m['target'] !== undefined && (typeof m['target'] !== 'string' || m['target'] === '' || m['target'].includes('\0'))) return undefined;
  if (m['replaced'] && (m['target'] === undefined || m['from'] !== m['to'])) return undefined;
  return {
    from: m['from'],
    to: m['to'],
    dev: m['dev'],
    ino: m['ino'],
    btime_ns: BigInt(bt),
    ...(m['link'] ? { link: true as const } : {}),
    ...(m['replaced'] ? { replaced: true as const } : {}),
    ...(typeof m['target'] === 'string' ? { target: m['target'] } : {}),
  };
}

function parseSaved(v: unknown): SavedFile | string {
  const e = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const ns = (x: unknown): unknown => (decimal(x) ? BigInt(x) : x);
  const r = parseFilesRecord({ policy: 'snapshot', saved: [{ ...e, atime_ns: ns(e['atime_ns']), mtime_ns: ns(e['mtime_ns']) }], stdio: [] });
  if (typeof r === 'string') return r;
  const f = r.saved[0];
  if (!f) return 'a malformed entry';
  if (!f.table.startsWith(`${FILES_DIR}/late-`)) return `an entry (${f.path}) whose table is not one of its own`;
  return f;
}

/** The files kept after the generation at genPath was taken ([] when none): see readLate. */
export function readLateFiles(genPath: string): SavedFile[] {
  return readLate(genPath).saved;
}

/**
 * The files kept and made after the generation at genPath was taken;
 * FilesError when the log is damaged or not the generation owner's.
 */
export function readLate(genPath: string): LateRecord {
  const path = join(genPath, LATE_FILES);
  const what = `${path}, what the generation learnt after its checkpoint,`;
  let fd: number;
  try {
    fd = openSync(path, FS.O_RDONLY | FS.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { saved: [], made: [], moved: [] };
    throw new FilesError(`${what} cannot be read: ${(e as Error).message}`);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== lstatSync(genPath).uid) throw new FilesError(`${what} is not a file of the generation's owner: the generation was tampered with`);
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const out: LateRecord = { saved: [], made: [], moved: [] };
  const lines = text.split('\n');
  lines.pop(); // after the last line end: empty, or a line ckrun did not finish
  lines.forEach((line, i) => {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new FilesError(`${what} is damaged at line ${i + 1}`);
    }
    const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
    if (o['saved'] !== undefined) {
      const f = parseSaved(o['saved']);
      if (typeof f === 'string') throw new FilesError(`${what} is damaged at line ${i + 1}: ${f}`);
      out.saved.push(f);
    } else if (o['made'] !== undefined) {
      const m = parseMade(o['made']);
      if (!m) throw new FilesError(`${what} is damaged at line ${i + 1}: a malformed made entry`);
      out.made.push(m);
    } else if (o['moved'] !== undefined) {
      const m = parseMoved(o['moved']);
      if (!m) throw new FilesError(`${what} is damaged at line ${i + 1}: a malformed moved entry`);
      out.moved.push(m);
    } else throw new FilesError(`${what} is damaged at line ${i + 1}`);
  });
  return out;
}

/**
 * One line appended (one write, O_APPEND). Not fsynced: a kept file's
 * blocks are checked against their hashes at restart, so after a power
 * failure a line or file lost is a file not put back, never a wrong one.
 */
function appendLate(genPath: string, entry: { saved: SavedFile } | { made: MadeFile } | { moved: MovedEntry }): void {
  const line = JSON.stringify(entry, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) + '\n';
  const fd = openSync(join(genPath, LATE_FILES), FS.O_WRONLY | FS.O_APPEND | FS.O_CREAT | FS.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, line);
  } finally {
    closeSync(fd);
  }
}

const movedKey = (e: MovedEntry): string => `${e.dev}:${e.ino}:${e.btime_ns}:${e.link ? 'l' : e.replaced ? 'r' : 'm'}:${e.from}\0${e.to}`;

/** The newest generation of a session, and the files it holds (by dev:ino): what a `keep` adds to. */
export class LateFiles {
  private readonly have: Set<string>;
  private readonly madeHere: Set<string>;
  private readonly movedHere: Set<string>;
  /** The next files/late-<k> name. */
  private nextK: number;

  /**
   * genPath's generation, its files (with those kept after it), and the
   * instant every process stood stopped for it (ns since the epoch, or
   * later): a file born after that was made after its checkpoint.
   */
  constructor(
    readonly genPath: string,
    saved: readonly SavedFile[],
    readonly sinceNs: bigint,
  ) {
    let late: LateRecord = { saved: [], made: [], moved: [] };
    try {
      late = readLate(genPath);
    } catch {
      // damaged: the restart says so; what is learnt now is added after it
    }
    this.have = new Set([...saved, ...late.saved].map((f) => `${f.dev}:${f.ino}`));
    this.movedHere = new Set(late.moved.map(movedKey));
    this.madeHere = new Set(late.made.map((m) => `${m.dev}:${m.ino}:${m.btime_ns}:${m.path}`));
    this.nextK = 1 + Math.max(-1, ...late.saved.map((f) => Number(/late-(\d+)\.tab$/.exec(f.table)?.[1] ?? -1)));
  }

  /**
   * Notes an entry the program made (its shim's `made`: a file, directory,
   * link, FIFO or device node, or one it moved to this name) if it was born
   * after the generation's checkpoint, and returns it; one born before (the
   * line came late, after a newer checkpoint that has it; an old file moved
   * or linked to a new name) is left alone: it is never removed by mistake.
   */
  made(f: { path: string; dev: number; ino: number }, skipDirs: readonly string[]): MadeFile | undefined {
    if (ignoredPath(f.path, skipDirs)) return undefined;
    let st;
    try {
      st = lstatSync(f.path, { bigint: true });
    } catch {
      return undefined;
    }
    if (st.dev !== BigInt(f.dev) || st.ino !== BigInt(f.ino) || st.birthtimeNs <= this.sinceNs) return undefined;
    const key = `${f.dev}:${f.ino}:${st.birthtimeNs}:${f.path}`;
    if (this.madeHere.has(key)) return undefined;
    const m: MadeFile = { path: f.path, dev: f.dev, ino: f.ino, btime_ns: st.birthtimeNs };
    appendLate(this.genPath, { made: m });
    this.madeHere.add(key);
    return m;
  }

  /**
   * Notes that the program is about to move the entry at m.from to m.to (its
   * shim's `moveq`, answered before the rename) if it was born before the
   * generation's checkpoint, and returns the note; one born after is told
   * as made at its new name once moved. A symbolic link at m.to is kept
   * only when it is replacerUid's (undefined: root's request, any link):
   * another user's link is not the requester's to bring back.
   */
  moved(m: { dev: number; ino: number; from: string; to: string; link?: true }, skipDirs: readonly string[], replacerUid?: number): MovedEntry | undefined {
    if (ignoredPath(m.from, skipDirs) || ignoredPath(m.to, skipDirs)) return undefined;
    // first: undone last, once the entry moved there has gone back
    if (!m.link) this.keepReplacedLink(m.to, replacerUid);
    let st;
    try {
      st = lstatSync(m.from, { bigint: true });
    } catch {
      return undefined;
    }
    if (st.dev !== BigInt(m.dev) || st.ino !== BigInt(m.ino) || st.birthtimeNs > this.sinceNs) return undefined;
    const target = !m.link && st.isSymbolicLink() ? readlinkSync(m.from) : undefined;
    const e: MovedEntry = { from: m.from, to: m.to, dev: m.dev, ino: m.ino, btime_ns: st.birthtimeNs, ...(m.link ? { link: true as const } : {}), ...(target ? { target } : {}) };
    return this.noteMoved(e);
  }

  /** Told again after a checkpoint during the request: noted once. */
  private noteMoved(e: MovedEntry): MovedEntry | undefined {
    if (this.movedHere.has(movedKey(e))) return undefined;
    appendLate(this.genPath, { moved: e });
    this.movedHere.add(movedKey(e));
    return e;
  }

  /**
   * A symbolic link a rename is about to replace, there at the checkpoint
   * (the `latest` link a job points at its newest output): its target, for
   * a restart to make it again. A regular file replaced is kept by `keep`.
   */
  private keepReplacedLink(path: string, replacerUid: number | undefined): void {
    let st;
    try {
      st = lstatSync(path, { bigint: true });
    } catch {
      return;
    }
    if (!st.isSymbolicLink() || st.birthtimeNs > this.sinceNs || (replacerUid !== undefined && st.uid !== BigInt(replacerUid))) return;
    const target = readlinkSync(path);
    if (target === '') return;
    this.noteMoved({ from: path, to: path, dev: Number(st.dev), ino: Number(st.ino), btime_ns: st.birthtimeNs, replaced: true, target });
  }

  /**
   * Whether f was born after the generation's checkpoint: it was not there
   * then, so there is nothing to keep (a restart removes it if it was
   * `made`; a temporary file renamed over the real one was).
   */
  private bornSince(f: { path: string; dev: number; ino: number }): boolean {
    try {
      const st = lstatSync(f.path, { bigint: true });
      return st.dev === BigInt(f.dev) && st.ino === BigInt(f.ino) && st.birthtimeNs > this.sinceNs;
    } catch {
      return false;
    }
  }

  /**
   * Keeps f in the generation unless it holds it already (the first ask
   * decides how). The kept record, or undefined when nothing needed or
   * could be stored (see saveLateFile); FilesError when saving failed.
   */
  keep(f: WrittenFile, skipDirs: readonly string[]): SavedFile | undefined {
    const key = `${f.dev}:${f.ino}`;
    if (this.have.has(key) || this.bornSince(f)) return undefined;
    const k = this.nextK++;
    // what a ckrun that died before it could list them left
    for (const ext of ['tab', 'dat']) rmSync(join(this.genPath, FILES_DIR, `late-${k}.${ext}`), { force: true });
    const s = saveLateFile(this.genPath, f, k, skipDirs);
    this.have.add(key);
    if (s) appendLate(this.genPath, { saved: s });
    return s;
  }
}

/**
 * At restart, before any process exists: the entries the program made after
 * the checkpoint are removed, and those it moved are moved back, each only
 * while its path still names that very entry (dev, inode and birth time;
 * never through a link) and, in a restart of another user's generation,
 * only that user's. Files, links and the like are removed first, then the
 * moves undone, newest first, each only onto a free name, then directories
 * removed, deepest first, with what they hold that was born after them (so
 * after the checkpoint: a tree made elsewhere and moved in, whose entries
 * were told under their old names); a directory that still holds something
 * older stays. What was done, one line each; what could not be done is
 * told through warn (the restarted program then finds it so).
 */
export function removeMadeFiles(made: readonly MadeFile[], owner: number | undefined, warn: (line: string) => void, moved: readonly MovedEntry[] = []): string[] {
  const out: string[] = [];
  const me = process.geteuid?.() ?? -1;
  const dirs: MadeFile[] = [];
  // never through a link planted on the way: the paths are as the kernel resolved them
  const direct = (p: string): boolean => {
    try {
      return realpathSync(dirname(p)) === dirname(p);
    } catch {
      return false;
    }
  };
  const stillThere = (m: { path: string; dev: number; ino: number; btime_ns: bigint }): BigIntStats | undefined => {
    if (!direct(m.path)) return undefined;
    let st;
    try {
      st = lstatSync(m.path, { bigint: true });
    } catch {
      return undefined; /* gone already */
    }
    if (st.dev !== BigInt(m.dev) || st.ino !== BigInt(m.ino) || st.birthtimeNs !== m.btime_ns) return undefined;
    if (owner !== undefined && owner !== me && st.uid !== BigInt(owner)) return undefined;
    return st;
  };
  const remove = (m: MadeFile, how: (p: string) => void): void => {
    try {
      how(m.path);
      out.push(`${m.path} (removed: made after the checkpoint)`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOTEMPTY' ? 'it is not empty' : (e as Error).message;
      warn(`${m.path}, made by the program after the checkpoint, cannot be removed (${why}): the restarted program finds it there`);
    }
  };
  for (const m of made) {
    const st = stillThere(m);
    if (!st) continue;
    if (st.isDirectory()) dirs.push(m);
    else remove(m, unlinkSync);
  }
  const free = (p: string): boolean => {
    if (!direct(p)) return false;
    try {
      lstatSync(p);
      return false;
    } catch {
      return true;
    }
  };
  // a symbolic link gone since: made again with its target (the restart's user's, or the generation's owner's when root restarts it)
  const makeLink = (m: MovedEntry & { target: string }, why: string): void => {
    try {
      symlinkSync(m.target, m.from);
      if (owner !== undefined && owner !== me && me === 0) lchownSync(m.from, owner, -1);
      out.push(`${m.from} (made again: a symbolic link to ${m.target} ${why} after the checkpoint)`);
    } catch (e) {
      warn(`${m.from}, a symbolic link to ${m.target} ${why} after the checkpoint, cannot be made again (${(e as Error).message}): the restarted program does not find it`);
    }
  };
  for (const m of [...moved].reverse()) {
    if (m.replaced) {
      if (m.target !== undefined && free(m.from)) makeLink({ ...m, target: m.target }, 'a rename replaced');
      continue;
    }
    const st = stillThere({ ...m, path: m.to });
    if (!st) {
      if (m.target !== undefined && !m.link && free(m.from)) makeLink({ ...m, target: m.target }, 'moved away and gone');
      continue;
    }
    // a new name whose old one is gone since (link, then unlink: a move that replaces nothing) is moved back like a move
    if (m.link && (st.nlink >= 2n || !free(m.from))) {
      // only while another name holds it: never the entry's last name
      if (st.nlink < 2n) continue;
      try {
        unlinkSync(m.to);
        out.push(`${m.to} (removed: a name of ${m.from} made after the checkpoint)`);
      } catch (e) {
        warn(`${m.to}, a name of ${m.from} made after the checkpoint, cannot be removed (${(e as Error).message}): the restarted program finds it there`);
      }
      continue;
    }
    if (!free(m.from)) {
      warn(`${m.to} was moved there from ${m.from} after the checkpoint, and ${m.from} is taken now (or a symbolic link leads to it): the restarted program finds it at ${m.to}`);
      continue;
    }
    try {
      renameSync(m.to, m.from);
      out.push(`${m.from} (moved back from ${m.to})`);
    } catch (e) {
      warn(`${m.to} was moved there from ${m.from} after the checkpoint and cannot be moved back (${(e as Error).message}): the restarted program finds it at ${m.to}`);
    }
  }
  const depth = (p: string): number => p.split('/').length;
  for (const m of dirs.sort((a, b) => depth(b.path) - depth(a.path))) {
    const st = stillThere(m);
    if (st) remove(m, (p) => removeBornSince(p, st.dev, m.btime_ns, owner ?? me));
  }
  return out;
}

/**
 * Removes the directory dir (on device dev) with every entry in it born at
 * or after bound (ns) and owned by owner (the session's user: what another
 * user put there is not the program's); never through a link or into
 * another file system. ENOTEMPTY when something older or another user's
 * stays.
 */
function removeBornSince(dir: string, dev: bigint, bound: bigint, owner: number): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p, { bigint: true });
    if (st.dev !== dev || st.birthtimeNs < bound || st.uid !== BigInt(owner)) continue;
    try {
      if (st.isDirectory()) removeBornSince(p, dev, bound, owner);
      else unlinkSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw e;
    }
  }
  rmdirSync(dir);
}
