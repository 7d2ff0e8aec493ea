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
import { closeSync, fstatSync, fsyncSync, lstatSync, openSync, readFileSync, renameSync, rmSync, writeSync, constants as FS } from 'node:fs';
import { join } from 'node:path';
import { FILES_DIR, FilesError, parseFilesRecord, saveLateFile, type SavedFile } from './files.js';
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

/**
 * The files kept after the generation at genPath was taken ([] when none);
 * FilesError when the list is damaged or not the generation owner's.
 */
export function readLateFiles(genPath: string): SavedFile[] {
  const path = join(genPath, LATE_FILES);
  let fd: number;
  try {
    fd = openSync(path, FS.O_RDONLY | FS.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
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
  return r.saved;
}

function writeLateFiles(genPath: string, saved: readonly SavedFile[]): void {
  const text = JSON.stringify({ format: FORMAT, version: 1, saved }, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
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

  constructor(
    readonly genPath: string,
    saved: readonly SavedFile[],
  ) {
    this.have = new Set(saved.map((f) => `${f.dev}:${f.ino}`));
  }

  /**
   * Keeps f in the generation unless it holds it already (the first ask
   * decides how). The kept record, or undefined when nothing needed or
   * could be stored (see saveLateFile); FilesError when saving failed.
   */
  keep(f: WrittenFile, skipDirs: readonly string[]): SavedFile | undefined {
    const key = `${f.dev}:${f.ino}`;
    if (this.have.has(key)) return undefined;
    const list = readLateFiles(this.genPath);
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
    writeLateFiles(this.genPath, [...list, s]);
    return s;
  }
}
