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
// (`files-late.json`, rewritten whole, atomically, with every addition). A
// restart from that generation puts it back with the others.
import { closeSync, fstatSync, fsyncSync, lstatSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeSync, constants as FS } from 'node:fs';
import { join } from 'node:path';
import { FILES_DIR, FilesError, ignoredPath, parseFilesRecord, saveLateFile, type MadeFile, type SavedFile } from './files.js';
import type { WrittenFile } from './files-written.js';

/** The generation's list of files kept after it was taken. */
export const LATE_FILES = 'files-late.json';
const FORMAT = 'ckrun-late-files';

function syncPath(path: string, flags = FS.O_RDONLY): void {
  const fd = openSync(path, flags | FS.O_NOFOLLOW);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** What a generation learnt after it was taken: files kept, and files made. */
export interface LateRecord {
  saved: SavedFile[];
  made: MadeFile[];
}

function parseMade(v: unknown): MadeFile[] | undefined {
  if (v === undefined) return [];
  if (!Array.isArray(v)) return undefined;
  const out: MadeFile[] = [];
  for (const e of v) {
    const m = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
    const uint = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    const bt = m['btime_ns'];
    if (typeof m['path'] !== 'string' || !m['path'].startsWith('/') || !uint(m['dev']) || !uint(m['ino']) || typeof bt !== 'string' || !/^[0-9]{1,20}$/.test(bt))
      return undefined;
    out.push({ path: m['path'], dev: m['dev'], ino: m['ino'], btime_ns: BigInt(bt) });
  }
  return out;
}

/** The files kept after the generation at genPath was taken ([] when none): see readLate. */
export function readLateFiles(genPath: string): SavedFile[] {
  return readLate(genPath).saved;
}

/**
 * The files kept and made after the generation at genPath was taken;
 * FilesError when the list is damaged or not the generation owner's.
 */
export function readLate(genPath: string): LateRecord {
  const path = join(genPath, LATE_FILES);
  let fd: number;
  try {
    fd = openSync(path, FS.O_RDONLY | FS.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { saved: [], made: [] };
    throw new FilesError(`${path}, the files kept after the checkpoint, cannot be read: ${(e as Error).message}`);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== lstatSync(genPath).uid)
      throw new FilesError(`${path}, the files kept after the checkpoint, is not a file of the generation's owner: the generation was tampered with`);
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  const m = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const saved = Array.isArray(m['saved']) ? m['saved'] : undefined;
  if (m['format'] !== FORMAT || m['version'] !== 1 || !saved) throw new FilesError(`${path}, the files kept after the checkpoint, is damaged`);
  // times are decimal strings in the text (beyond a double's precision)
  const ns = (x: unknown): unknown => (typeof x === 'string' && /^[0-9]{1,20}$/.test(x) ? BigInt(x) : x);
  const r = parseFilesRecord({
    policy: 'snapshot',
    saved: saved.map((e) => (typeof e === 'object' && e !== null ? { ...e, atime_ns: ns((e as Record<string, unknown>)['atime_ns']), mtime_ns: ns((e as Record<string, unknown>)['mtime_ns']) } : e)),
    stdio: [],
  });
  if (typeof r === 'string') throw new FilesError(`${path}, the files kept after the checkpoint, is damaged: its ${r}`);
  if (r.saved.some((f) => !f.table.startsWith(`${FILES_DIR}/late-`))) throw new FilesError(`${path}, the files kept after the checkpoint, names a table not its own`);
  const made = parseMade(m['made']);
  if (!made) throw new FilesError(`${path}, the files kept after the checkpoint, is damaged: its made list is malformed`);
  return { saved: r.saved, made };
}

function writeLateFiles(genPath: string, late: LateRecord): void {
  const text = JSON.stringify({ format: FORMAT, version: 1, ...late }, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
  const tmp = join(genPath, `${LATE_FILES}.tmp`);
  const fd = openSync(tmp, FS.O_WRONLY | FS.O_CREAT | FS.O_TRUNC | FS.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(genPath, LATE_FILES));
  syncPath(genPath, FS.O_DIRECTORY);
}

/** The newest generation of a session, and the files it holds (by dev:ino): what a `keep` adds to. */
export class LateFiles {
  private readonly have: Set<string>;

  /**
   * genPath's generation, its files, and when it was complete (ns since the
   * epoch): a file born after that was made after its checkpoint.
   */
  constructor(
    readonly genPath: string,
    saved: readonly SavedFile[],
    readonly sinceNs: bigint,
  ) {
    this.have = new Set(saved.map((f) => `${f.dev}:${f.ino}`));
  }

  /**
   * Notes a file the program made (its shim's `made`) if it was born after
   * the generation was complete, and returns it; a file born before (the
   * line came late, after a newer checkpoint that has the file) is left
   * alone: it is never removed by mistake.
   */
  made(f: { path: string; dev: number; ino: number }, skipDirs: readonly string[]): MadeFile | undefined {
    if (ignoredPath(f.path, skipDirs)) return undefined;
    let st;
    try {
      st = lstatSync(f.path, { bigint: true });
    } catch {
      return undefined;
    }
    if (!st.isFile() || st.dev !== BigInt(f.dev) || st.ino !== BigInt(f.ino) || st.birthtimeNs <= this.sinceNs) return undefined;
    const late = readLate(this.genPath);
    if (late.made.some((m) => m.dev === f.dev && m.ino === f.ino && m.btime_ns === st.birthtimeNs)) return undefined;
    const m: MadeFile = { path: f.path, dev: f.dev, ino: f.ino, btime_ns: st.birthtimeNs };
    writeLateFiles(this.genPath, { saved: late.saved, made: [...late.made, m] });
    return m;
  }

  /**
   * Keeps f in the generation unless it holds it already (the first ask
   * decides how). The kept record, or undefined when nothing needed or
   * could be stored (see saveLateFile); FilesError when saving failed.
   */
  keep(f: WrittenFile, skipDirs: readonly string[]): SavedFile | undefined {
    const key = `${f.dev}:${f.ino}`;
    if (this.have.has(key)) return undefined;
    const late = readLate(this.genPath);
    const list = late.saved;
    if (list.some((s) => `${s.dev}:${s.ino}` === key)) {
      this.have.add(key);
      return undefined;
    }
    // what an earlier try left before it could list them
    for (const ext of ['tab', 'dat']) rmSync(join(this.genPath, FILES_DIR, `late-${list.length}.${ext}`), { force: true });
    const s = saveLateFile(this.genPath, f, list.length, skipDirs);
    this.have.add(key);
    if (!s) return undefined;
    for (const name of [s.table, ...s.sources]) syncPath(join(this.genPath, name));
    syncPath(join(this.genPath, FILES_DIR), FS.O_DIRECTORY);
    writeLateFiles(this.genPath, { saved: [...list, s], made: late.made });
    return s;
  }
}

/**
 * At restart, before any process exists: the files the program made after
 * the checkpoint are removed, each only while its path still names that
 * very file (dev, inode and birth time; never through a link) and, in a
 * restart of another user's generation, only that user's. The paths
 * removed; what could not be removed is told through warn (the restarted
 * program then finds it there).
 */
export function removeMadeFiles(made: readonly MadeFile[], owner: number | undefined, warn: (line: string) => void): string[] {
  const out: string[] = [];
  const me = process.geteuid?.() ?? -1;
  for (const m of made) {
    let st;
    try {
      st = lstatSync(m.path, { bigint: true });
    } catch {
      continue; /* gone already */
    }
    if (!st.isFile() || st.dev !== BigInt(m.dev) || st.ino !== BigInt(m.ino) || st.birthtimeNs !== m.btime_ns) continue;
    if (owner !== undefined && owner !== me && st.uid !== BigInt(owner)) continue;
    try {
      unlinkSync(m.path);
      out.push(m.path);
    } catch (e) {
      warn(`${m.path}, made by the program after the checkpoint, cannot be removed (${(e as Error).message}): the restarted program finds it there`);
    }
  }
  return out;
}
