// Generation directories inside a checkpoint DIR, and the session manifest;
// and how a session writes them: each checkpoint one transaction
// (GenerationTransaction), which image each process's next one may be
// incremental to (ImageChains).
//
//   DIR/N/            a complete generation (manifest.cbor written last)
//   DIR/.N.partial/   a generation being written (or abandoned by a crash)
import { constants, existsSync } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { wellFormed } from './cbor-check.js';
import { checkRecord } from './image-schema.js';
import { errorMessage, SessionError } from './errors.js';
import { asArray, asMap, asNumber, asBigInt, asString, decodeCbor, imageIdentity, PID_MAX, type CborValue, type Image } from './image.js';
import { crc32c, tryLockExclusive } from './native.js';
import { formatBytes, formatDuration } from './output.js';
import { parseFilesRecord, type FilesRecord } from './files.js';
import { readLate } from './files-late.js';
import { parseContents, type ContentEntry } from './contents.js';

export const MANIFEST = 'manifest.cbor';
/** The manifest this ckrun writes: `[h'<manifest map>', crc32c]` (version 1 was the bare map, still read). */
export const MANIFEST_VERSION = 2;
/** Larger manifests are damage (preload/restore.h: CK_MANIFEST_MAX). */
export const MANIFEST_MAX = 4 << 20;

export interface ManifestProcess {
  pid: number;
  /** File name inside the generation directory: `<pid>.ckpt`, or `<pid>.ckpt.gz` when compressed. */
  image: string;
  /** The image's size (uncompressed). */
  bytes: number;
  pause_ns: number;
  /** Parent, process group and session as the process saw them at the checkpoint (absent in older manifests). */
  ppid?: number;
  pgid?: number;
  sid?: number;
  /** For a compressed image: its size on disk. */
  compressed_bytes?: number;
  /**
   * How many images the restart of this one reads in sequence: 1 for a full
   * image, one more than its parent's for an image ckrun asked to be
   * incremental (absent in older manifests). `--full-every` keeps it bounded.
   */
  chain?: number;
  /**
   * The CRC of the image's header block (of the uncompressed image): with
   * `bytes`, what the generation's image must be (version 2 manifests).
   */
  header_crc?: number;
}

export interface Manifest {
  format: 'ckrun-session';
  /** 2: framed with a checksum, every image named with its size and header CRC; 1: older. */
  version: 1 | 2;
  generation: number;
  created_ns: bigint;
  argv: string[];
  cwd: string;
  /** PID (as the program sees it) of the process ckrun started. */
  root: number;
  processes: ManifestProcess[];
  /**
   * Descriptors that share one open file description across processes:
   * each group lists `[pid, fd]` of two or more processes (absent in older manifests).
   */
  shared_files?: [number, number][][];
  /** `[dev, ino, pid]`: the image of pid stores the shared memory object (dev, ino); the others skip it. */
  shm_owners?: [number, number, number][];
  /** 'gzip' when the images are compressed (`<pid>.ckpt.gz`); absent otherwise. */
  compressed?: 'gzip';
  /** The files the program writes, as the checkpoint kept them (src/files.ts; absent in older manifests). */
  files?: FilesRecord;
  /** The files the images map privately, by content (src/contents.ts; absent in older manifests). */
  contents?: ContentEntry[];
  /** `--portable`: every file of `contents` has its copy in the generation's `carried/` (absent otherwise). */
  portable?: boolean;
}

/** A process's image name in a generation: `<pid>.ckpt`, or `<pid>.ckpt.gz` when compressed. */
export const IMAGE_NAME = /^[^/]+\.ckpt(\.gz)?$/;

export interface GenerationEntry {
  number: number;
  path: string;
  /** A `.N.partial` directory: never complete, ignored by restart. */
  partial: boolean;
}

export interface Generation {
  number: number;
  path: string;
  manifest: Manifest;
}

const COMPLETE = /^[1-9][0-9]{0,15}$/;
const PARTIAL = /^\.([1-9][0-9]{0,15})\.partial$/;

/** Every generation-like entry of DIR (complete and partial), by ascending number. */
export async function listGenerations(dir: string): Promise<GenerationEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: GenerationEntry[] = [];
  for (const name of names) {
    let m: RegExpExecArray | null;
    if (COMPLETE.test(name)) out.push({ number: Number(name), path: join(dir, name), partial: false });
    else if ((m = PARTIAL.exec(name))) out.push({ number: Number(m[1]), path: join(dir, name), partial: true });
  }
  out.sort((a, b) => a.number - b.number || Number(a.partial) - Number(b.partial));
  return out;
}

/** The number the next generation gets: one more than any existing one, partial ones included. */
export async function nextGenerationNumber(dir: string): Promise<number> {
  const all = await listGenerations(dir);
  return all.length === 0 ? 1 : all[all.length - 1]!.number + 1;
}

/** Complete generations (those with a readable manifest), newest first. */
export async function completeGenerations(dir: string): Promise<Generation[]> {
  const all = (await listGenerations(dir)).filter((g) => !g.partial).reverse();
  const out: Generation[] = [];
  for (const g of all) {
    try {
      out.push({ number: g.number, path: g.path, manifest: await readManifest(g.path) });
    } catch {
      // not complete (no manifest or an unreadable one)
    }
  }
  return out;
}

/** The newest complete generation in DIR, or undefined. */
export async function findNewestGeneration(dir: string): Promise<Generation | undefined> {
  const all = (await listGenerations(dir)).filter((g) => !g.partial).reverse();
  for (const g of all) {
    try {
      return { number: g.number, path: g.path, manifest: await readManifest(g.path) };
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** True when `path` is a directory holding a manifest. */
export async function isGenerationDir(path: string): Promise<boolean> {
  try {
    return (await stat(join(path, MANIFEST))).isFile();
  } catch {
    return false;
  }
}

export class ManifestError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`manifest ${path} ${detail}`);
    this.name = 'ManifestError';
  }
}

/** The manifest's map, unframed: version 2 is `[h'<map>', crc32c]`, version 1 the bare map. */
function unframe(path: string, bytes: Uint8Array): { map: CborMap; framed: boolean } {
  if (bytes.length === 0) throw new ManifestError(path, 'is empty');
  if (bytes.length > MANIFEST_MAX) throw new ManifestError(path, 'is damaged: it is implausibly large');
  if (!wellFormed(bytes)) throw new ManifestError(path, 'is damaged: it is not well-formed CBOR');
  let v = decodeCbor(bytes);
  let framed = false;
  if (Array.isArray(v)) {
    const crc = v.length === 2 && typeof v[1] !== 'bigint' ? asNumber(v[1]) : undefined;
    if (v.length !== 2 || !(v[0] instanceof Uint8Array) || crc === undefined || crc < 0 || crc > 0xffffffff)
      throw new ManifestError(path, 'is damaged: it is not a [manifest, checksum] pair');
    if (crc32c(v[0]) !== crc) throw new ManifestError(path, 'is damaged: its checksum does not match');
    if (!wellFormed(v[0])) throw new ManifestError(path, 'is damaged: it is not well-formed CBOR');
    v = decodeCbor(v[0]);
    framed = true;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array)
    throw new ManifestError(path, 'is damaged: it is not a map');
  return { map: v, framed };
}

type CborMap = { [key: string]: CborValue };

/** An unsigned integer of at most 64 bits no larger than max (Infinity beyond a safe integer), or undefined. */
function uintMax(v: CborValue, max: number = Infinity): number | undefined {
  const b = asBigInt(v);
  if (b === undefined || b < 0n || b >= 1n << 64n) return undefined;
  const n = b > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(b);
  return n <= max ? n : undefined;
}

/** A process's image name: `<something>.ckpt` or `.ckpt.gz`, no directory. */
function validImageName(s: string): boolean {
  return IMAGE_NAME.test(s) && !s.includes('\0');
}

/** One entry of `processes`, checked as the restore host checks it (preload/restore.c, manifest_proc). */
function processEntry(path: string, v: CborValue, version: number): ManifestProcess {
  const pm = asMap(v);
  const bad = (what: string): never => {
    throw new ManifestError(path, `is damaged: a process entry has ${what}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) bad('the wrong shape');
  const pid = uintMax(pm['pid'], PID_MAX);
  if (pid === undefined || pid < 1) bad('no valid pid');
  const image = pm['image'];
  if (typeof image !== 'string' || !validImageName(image)) bad('no valid image name');
  const out: ManifestProcess = { pid: pid!, image: image as string, bytes: 0, pause_ns: 0 };
  for (const k of ['bytes', 'pause_ns', 'compressed_bytes'] as const) {
    if (pm[k] === undefined) continue;
    const n = uintMax(pm[k]);
    if (n === undefined) bad(`a malformed ${k}`);
    out[k] = n!;
  }
  for (const k of ['ppid', 'pgid', 'sid'] as const) {
    if (pm[k] === undefined) continue;
    const n = uintMax(pm[k], PID_MAX);
    if (n === undefined) bad(`a malformed ${k}`);
    out[k] = n!;
  }
  if (pm['chain'] !== undefined) {
    const n = uintMax(pm['chain'], 0x7fffffff);
    if (n === undefined || n < 1) bad('a malformed chain');
    out.chain = n!;
  }
  if (pm['header_crc'] !== undefined) {
    const n = uintMax(pm['header_crc'], 0xffffffff);
    if (n === undefined) bad('a malformed header_crc');
    out.header_crc = n!;
  }
  if (version >= 2 && (pm['bytes'] === undefined || out.header_crc === undefined))
    throw new ManifestError(path, "is damaged: a process entry lacks the image's size or header checksum");
  return out;
}

/** Numbers of a CBOR array of arrays … of unsigned integers no larger than max[level], or undefined. */
function uintTree(v: CborValue, width: number, max: number[]): number[][] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out: number[][] = [];
  for (const x of v) {
    if (!Array.isArray(x) || x.length !== width) return undefined;
    const row = x.map((y, i) => uintMax(y, max[i]));
    if (row.some((y) => y === undefined)) return undefined;
    out.push(row as number[]);
  }
  return out;
}

/**
 * Reads and checks DIR/N/manifest.cbor: its frame and checksum (version
 * 2), and every field, as the restore host does (preload/restore.c,
 * ck_manifest_parse). Throws ManifestError naming the manifest and the
 * problem.
 */
export async function readManifest(genDir: string): Promise<Manifest> {
  const path = join(genDir, MANIFEST);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ManifestError(path, 'does not exist: the generation is incomplete or damaged');
    throw new ManifestError(path, `cannot be read: ${(e as Error).message}`);
  }
  return withLateFiles(genDir, parseManifest(path, bytes, basename(genDir)));
}

/** The files kept after the generation was taken (src/files-late.ts), with those of its manifest. */
function withLateFiles(genDir: string, m: Manifest): Manifest {
  let late;
  try {
    late = readLate(genDir);
  } catch (e) {
    throw new ManifestError(join(genDir, MANIFEST), `cannot be used: ${(e as Error).message}`);
  }
  if ((late.saved.length === 0 && late.made.length === 0 && late.moved.length === 0) || (m.files && m.files.policy !== 'snapshot')) return m;
  const have = new Set((m.files?.saved ?? []).map((f) => `${f.dev}:${f.ino}`));
  const files = m.files ?? { policy: 'snapshot', saved: [], stdio: [] };
  return {
    ...m,
    files: { ...files, saved: [...files.saved, ...late.saved.filter((f) => !have.has(`${f.dev}:${f.ino}`))], ...(late.made.length ? { made: late.made } : {}), ...(late.moved.length ? { moved: late.moved } : {}) },
  };
}

/** The checks of readManifest on bytes (path: for messages; dirName: the generation directory's name). */
export function parseManifest(path: string, bytes: Uint8Array, dirName?: string): Manifest {
  const { map: m, framed } = unframe(path, bytes);
  const malformed = (k: string): never => {
    throw new ManifestError(path, `is damaged: its "${k}" is malformed`);
  };
  if (m['format'] !== undefined && typeof m['format'] !== 'string') malformed('format');
  if (m['format'] !== 'ckrun-session') throw new ManifestError(path, "is not a ckrun session manifest (format is not 'ckrun-session')");
  const version = m['version'] === undefined ? 0 : uintMax(m['version'], 1000);
  if (version === undefined) malformed('version');
  if (version !== (framed ? 2 : 1))
    throw new ManifestError(
      path,
      `has version ${version}${framed ? ' in a version 2 frame' : ' without the version 2 frame'}; this ckrun reads versions 1 and 2`,
    );
  const unfit = checkRecord(m, 'manifest');
  if (unfit) throw new ManifestError(path, `is damaged: ${unfit}`);
  const generation = m['generation'] === undefined ? undefined : uintMax(m['generation'], Number.MAX_SAFE_INTEGER);
  if (m['generation'] !== undefined && (generation === undefined || generation < 1)) malformed('generation');
  const root = m['root'] === undefined ? undefined : uintMax(m['root'], PID_MAX);
  if (m['root'] !== undefined && (root === undefined || root < 1)) malformed('root');
  if (m['argv'] !== undefined && (!Array.isArray(m['argv']) || m['argv'].some((a) => typeof a !== 'string'))) malformed('argv');
  if (m['cwd'] !== undefined && typeof m['cwd'] !== 'string') malformed('cwd');
  if (m['created_ns'] !== undefined && uintMax(m['created_ns']) === undefined) malformed('created_ns');
  const compressed = m['compressed'];
  if (compressed !== undefined && compressed !== 'gzip')
    throw new ManifestError(path, `says its images are compressed with ${String(compressed)}; this ckrun reads gzip only`);
  if (m['processes'] !== undefined && !Array.isArray(m['processes'])) malformed('processes');
  const processes = asArray(m['processes']).map((p) => processEntry(path, p, version!));
  let shared_files: [number, number][][] | undefined;
  if (m['shared_files'] !== undefined) {
    const groups = Array.isArray(m['shared_files']) ? m['shared_files'].map((g) => uintTree(g, 2, [PID_MAX, 0x7fffffff])) : undefined;
    if (!groups || groups.some((g) => g === undefined))
      throw new ManifestError(path, 'has a malformed shared_files (expected [[[pid, fd], ...], ...])');
    shared_files = groups as [number, number][][];
  }
  let shm_owners: [number, number, number][] | undefined;
  if (m['shm_owners'] !== undefined) {
    const owners = uintTree(m['shm_owners'], 3, [Infinity, Infinity, Infinity]);
    if (!owners) throw new ManifestError(path, 'has a malformed shm_owners (expected [[dev, ino, pid], ...])');
    shm_owners = owners as [number, number, number][];
  }
  let files: FilesRecord | undefined;
  if (m['files'] !== undefined) {
    const r = parseFilesRecord(m['files']);
    if (typeof r === 'string') throw new ManifestError(path, `is damaged: its ${r}`);
    files = r;
  }
  let contents: ContentEntry[] | undefined;
  if (m['contents'] !== undefined) {
    const r = parseContents(m['contents']);
    if (typeof r === 'string') throw new ManifestError(path, `is damaged: its ${r}`);
    contents = r;
  }
  if (generation === undefined || root === undefined) throw new ManifestError(path, 'is damaged: it lacks generation or root');
  if (processes.length === 0) throw new ManifestError(path, 'is damaged: it lists no valid process image');
  if (dirName !== undefined && COMPLETE.test(dirName) && Number(dirName) !== generation)
    throw new ManifestError(path, `is that of generation ${generation}: the generation was replaced or mixed up with another one`);
  const pids = new Set(processes.map((p) => p.pid));
  const names = new Set(processes.map((p) => p.image));
  if (pids.size !== processes.length || names.size !== processes.length)
    throw new ManifestError(path, 'is damaged: it lists a process or an image twice');
  return {
    format: 'ckrun-session',
    version: version as 1 | 2,
    generation,
    created_ns: asBigInt(m['created_ns']) ?? 0n,
    argv: asArray(m['argv']).map((a) => asString(a) ?? ''),
    cwd: asString(m['cwd']) ?? '',
    root,
    processes,
    ...(shared_files ? { shared_files } : {}),
    ...(shm_owners ? { shm_owners } : {}),
    ...(compressed === 'gzip' ? { compressed } : {}),
    ...(files ? { files } : {}),
    ...(contents ? { contents } : {}),
    ...(m['portable'] === true ? { portable: true } : {}),
  };
}

// The encoder is only needed when a checkpoint completes: loaded then, so
// that restart and inspect start faster.
type EncoderLike = { encode(v: unknown): Buffer };
let encoder: EncoderLike | undefined;

async function manifestEncoder(): Promise<EncoderLike> {
  if (!encoder) {
    const { Encoder } = await import('cbor-x/encode');
    encoder = new Encoder({ useRecords: false, variableMapSize: true, tagUint8Array: false });
  }
  return encoder;
}

/**
 * Integers within 32 bits become numbers and larger ones bigints, so that every integer gets its shortest
 * encoding; keys whose value is undefined are left out (the manifest keeps
 * to the strict CBOR subset, which has no undefined).
 */
function shortest(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= -(2n ** 31n) && v < 2n ** 32n ? Number(v) : v;
  // cbor-x writes a number beyond 32 bits as a float: as a bigint it is an integer (a pause of 5 s, an image of 5 GiB)
  if (typeof v === 'number' && Number.isInteger(v) && (v < -(2 ** 31) || v >= 2 ** 32)) return BigInt(v);
  if (Array.isArray(v)) return v.map(shortest);
  if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = shortest(x);
    return o;
  }
  return v;
}

/** A CBOR head (major type, argument), shortest form. */
function cborHead(major: number, n: number): Buffer {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

/** The manifest as written: version 2, `[h'<map>', crc32c]` (docs/image-format.md). */
export async function encodeManifest(m: Manifest): Promise<Buffer> {
  const map = (await manifestEncoder()).encode(shortest({ ...m, version: MANIFEST_VERSION }));
  if (!wellFormed(map)) throw new Error('internal error: the manifest does not encode to the strict CBOR subset');
  return Buffer.concat([Buffer.from([0x82]), cborHead(2, map.length), map, cborHead(0, crc32c(map))]);
}

/** fsync a directory (after creating, renaming or removing entries in it). */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `name.tmp` (a new file: never one that was there, never through a
 * link), fsyncs it and renames it to `name`, then fsyncs the directory.
 */
export async function writeFileDurably(dir: string, name: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const tmp = join(dir, `${name}.tmp`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, name));
  await fsyncDir(dir);
}

/** Writes the manifest into a generation directory atomically. */
export async function writeManifest(genDir: string, m: Manifest): Promise<void> {
  await writeFileDurably(genDir, MANIFEST, await encodeManifest(m));
}

/**
 * Creates `DIR/.N.partial` for the next number N (never reusing one, even
 * when another writer races for it), at least `atLeast`: the numbers of
 * partial generations removed are not given out again.
 */
export async function createPartialGeneration(dir: string, atLeast = 1): Promise<{ number: number; path: string }> {
  let n = Math.max(atLeast, await nextGenerationNumber(dir));
  for (let tries = 0; tries < 1000; tries++, n++) {
    const path = join(dir, `.${n}.partial`);
    try {
      await stat(join(dir, String(n)));
      continue; // a complete one appeared meanwhile
    } catch {
      // free
    }
    try {
      await mkdir(path, { mode: 0o700 });
      return { number: n, path };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  throw new Error(`cannot find a free generation number in ${dir}`);
}

/** Turns `.N.partial` into `N` and makes that durable. */
export async function completeGeneration(dir: string, number: number, partialPath: string): Promise<string> {
  const final = join(dir, String(number));
  await fsyncDir(partialPath);
  await rename(partialPath, final);
  await fsyncDir(dir);
  return final;
}

export async function removePartialGeneration(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/**
 * The chain length of an image being restarted (see ManifestProcess.chain):
 * the manifest's, else 1 for a full image and unknown (Infinity: the next
 * checkpoint is full) for an incremental one.
 */
export function chainOf(image: Image, entry: ManifestProcess | undefined): number {
  if (entry?.chain !== undefined) return entry.chain;
  return asMap(image.meta['incremental'])['parent_used'] === true ? Infinity : 1;
}

// ---- disk hygiene ------------------------------------------------------

/**
 * A file of `dir` (searched recursively, links not followed) on which a
 * checkpoint writer still holds its lock: the shim locks an image from its
 * creation until it has its final name (preload/image.c). undefined: none.
 */
async function busyFile(dir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined; // gone meanwhile
  }
  for (const name of names) {
    const path = join(dir, name);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isDirectory()) {
      const busy = await busyFile(path);
      if (busy) return busy;
      continue;
    }
    if (!st?.isFile()) continue;
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY).catch(() => undefined);
    if (!fh) continue;
    try {
      if (!tryLockExclusive(fh.fd)) return path;
    } finally {
      await fh.close();
    }
  }
  return undefined;
}

export interface PartialCleanup {
  /** `.N.partial` directories removed. */
  removed: string[];
  /** Their numbers. */
  removedNumbers: number[];
  /** Those left alone: a writer still holds a lock on `busy`. */
  kept: { path: string; busy: string }[];
}

/**
 * Removes the `.N.partial` directories of DIR that no writer writes into
 * any more: left by a ckrun or a writer killed during a checkpoint, or by a
 * generation --keep was removing. Only for the session that owns DIR (no
 * other answers on its socket), never while one of its own checkpoints runs.
 */
export async function removeStalePartials(dir: string): Promise<PartialCleanup> {
  const out: PartialCleanup = { removed: [], removedNumbers: [], kept: [] };
  for (const g of await listGenerations(dir)) {
    if (!g.partial) continue;
    const busy = await busyFile(g.path);
    if (busy) {
      out.kept.push({ path: g.path, busy });
      continue;
    }
    await rm(g.path, { recursive: true, force: true });
    out.removed.push(g.path);
    out.removedNumbers.push(g.number);
  }
  return out;
}

/**
 * Keeps the newest `keep` complete generations of DIR and removes the
 * older complete ones (each first renamed to `.N.partial`, so that a crash
 * halfway leaves something the next session cleans up, never a generation
 * that looks complete and is not). Incremental chains stay whole: an image
 * refers to older ones through hard links in its own generation
 * (`ref-<inode>.ckpt`), so removing an older generation removes names, not
 * data a kept one needs. Numbered directories without a readable manifest
 * are left alone. Returns the numbers removed.
 */
export async function pruneGenerations(dir: string, keep: number): Promise<number[]> {
  const old = (await completeGenerations(dir)).slice(Math.max(1, keep));
  const moved: string[] = [];
  for (const g of old) {
    const to = join(dir, `.${g.number}.partial`);
    try {
      await stat(to);
      continue; // never over an existing name
    } catch {
      // free
    }
    await rename(g.path, to);
    moved.push(to);
  }
  if (moved.length === 0) return [];
  await fsyncDir(dir);
  for (const path of moved) await rm(path, { recursive: true, force: true });
  return old.map((g) => g.number).filter((n) => moved.includes(join(dir, `.${n}.partial`)));
}

// ---- a session's generations -------------------------------------------

/** Where a session's lines go: verbose() only with -v; log() always (failures that do not fail a checkpoint). */
export interface GenerationLog {
  log(line: string): void;
  verbose(line: string): void;
}

/**
 * The generations one session writes into its checkpoint DIR: a
 * transaction for each checkpoint (begin), the partial generations no
 * writer writes into any more removed before it, the newest --keep
 * generations kept after it.
 */
export class GenerationWriter {
  /** Above the numbers of the partial generations this session removed: they are not given out again. */
  private nextAtLeast = 1;

  constructor(
    readonly dir: string,
    private readonly out: GenerationLog,
    /** --keep: how many complete generations to keep (undefined: all). */
    private readonly keep: number | undefined,
  ) {}

  /** Removes the `.N.partial` directories no writer writes into any more (never the running checkpoint's: called before it starts). */
  async removeStalePartials(): Promise<void> {
    try {
      const r = await removeStalePartials(this.dir);
      for (const n of r.removedNumbers) this.nextAtLeast = Math.max(this.nextAtLeast, n + 1);
      for (const path of r.removed) this.out.verbose(`removed ${path}, left by an interrupted checkpoint`);
      for (const k of r.kept) this.out.verbose(`left ${k.path} alone: a checkpoint writer still writes ${k.busy}`);
    } catch (e) {
      this.out.log(`cannot remove the unfinished checkpoints in ${this.dir}: ${errorMessage(e)}`);
    }
  }

  /** The generation of one checkpoint, `DIR/.N.partial` until it completes; `root`: the program's root PID, listed first. */
  async begin(root: number): Promise<GenerationTransaction> {
    const gen = await createPartialGeneration(this.dir, this.nextAtLeast);
    return new GenerationTransaction(this.dir, gen.number, gen.path, root, this.out);
  }

  /** --keep N: the complete generations beyond the newest N go (the checkpoint itself is complete either way). */
  async keepNewest(): Promise<void> {
    const keep = this.keep;
    if (keep === undefined) return;
    try {
      const removed = await pruneGenerations(this.dir, keep);
      if (removed.length > 0) this.out.verbose(`removed generation${removed.length === 1 ? '' : 's'} ${removed.join(', ')} (--keep ${keep})`);
    } catch (e) {
      this.out.log(`cannot remove generations beyond the newest ${keep} in ${this.dir}: ${errorMessage(e)}`);
    }
  }
}

/** What the manifest says beyond its processes: how the session was started, and what its processes share. */
export interface GenerationSession {
  argv: string[];
  cwd: string;
  shared_files: [number, number][][];
  shm_owners: [number, number, number][];
  files?: FilesRecord;
  contents?: ContentEntry[];
  portable?: boolean;
}

/**
 * One checkpoint's generation, written as a transaction: the shims write
 * their images into `DIR/.N.partial`, which becomes `DIR/N` once its
 * manifest is written (complete), or is removed when the checkpoint fails
 * (remove).
 */
export class GenerationTransaction {
  private readonly processes: ManifestProcess[] = [];
  private compressed = false;

  constructor(
    readonly dir: string,
    readonly number: number,
    /** `DIR/.N.partial`. */
    readonly path: string,
    private readonly root: number,
    private readonly out: GenerationLog,
  ) {}

  /**
   * Lists a process's image, which its shim wrote into the generation:
   * the manifest names it by its size and header CRC, so that a restart
   * refuses any other file in its place.
   */
  async addImage(p: { pid: number; image: string; pause_ns: number; ppid: number; pgid: number; sid: number; chain: number }): Promise<void> {
    if (!existsSync(join(this.path, p.image)))
      throw new SessionError(`process ${p.pid} answered ok, but its image ${join(this.path, p.image)} is not there`);
    const id = await imageIdentity(join(this.path, p.image)).catch((e: Error) => {
      throw new SessionError(`process ${p.pid} answered ok, but its image is not sound: ${e.message}`);
    });
    this.processes.push({
      pid: p.pid,
      image: p.image,
      bytes: id.bytes,
      pause_ns: p.pause_ns,
      ppid: p.ppid,
      pgid: p.pgid,
      sid: p.sid,
      chain: p.chain,
      header_crc: id.headerCrc,
    });
  }

  /** The root first, then by PID: the manifest's order. */
  private sortProcesses(): void {
    this.processes.sort((a, b) => Number(b.pid === this.root) - Number(a.pid === this.root) || a.pid - b.pid);
  }

  /**
   * Replaces each complete `<pid>.ckpt` by `<pid>.ckpt.gz` (fsync'd; the
   * directory is fsync'd when the generation completes) and updates the
   * manifest entries.
   */
  async compress(level: number): Promise<void> {
    this.sortProcesses();
    this.compressed = true;
    const { compressImage } = await import('./flatten.js');
    const referred = new Set<string>();
    for (const p of this.processes) {
      const t0 = Date.now();
      let r;
      try {
        r = await compressImage(join(this.path, p.image), level);
      } catch (e) {
        throw new SessionError(`process ${p.pid}: ${errorMessage(e)}`);
      }
      for (const f of r.referred) referred.add(f);
      p.image = `${p.image}.gz`;
      p.bytes = r.imageBytes;
      p.compressed_bytes = r.bytes;
      p.header_crc = r.headerCrc;
      this.out.verbose(
        `process ${p.pid}: image compressed from ${formatBytes(r.imageBytes)} to ${formatBytes(r.bytes)} in ${formatDuration((Date.now() - t0) * 1e6)}` +
          (r.referred.length ? ` (made self-contained: it referred to ${r.referred.length} older image${r.referred.length === 1 ? '' : 's'})` : ''),
      );
    }
    // compressed images hold everything: the hard links to older images go
    for (const f of referred) await unlink(f);
  }

  /** Writes the manifest and renames the generation to `DIR/N`; returns its path and the manifest's processes. */
  async complete(session: GenerationSession): Promise<{ path: string; processes: ManifestProcess[] }> {
    this.sortProcesses();
    const manifest: Manifest = {
      format: 'ckrun-session',
      version: MANIFEST_VERSION,
      generation: this.number,
      created_ns: BigInt(Date.now()) * 1_000_000n,
      argv: session.argv,
      cwd: session.cwd,
      root: this.root,
      processes: this.processes,
      shared_files: session.shared_files,
      shm_owners: session.shm_owners,
      ...(this.compressed ? { compressed: 'gzip' as const } : {}),
      ...(session.files ? { files: session.files } : {}),
      ...(session.contents && session.contents.length > 0 ? { contents: session.contents } : {}),
      ...(session.portable ? { portable: true } : {}),
    };
    await writeManifest(this.path, manifest);
    const path = await completeGeneration(this.dir, this.number, this.path);
    return { path, processes: this.processes };
  }

  /** Removes the partial generation: the checkpoint failed. */
  async remove(): Promise<void> {
    await removePartialGeneration(this.path);
  }
}

/**
 * Which image each process's next one may be incremental to: its newest
 * complete image, until the chain of images a restart reads would reach
 * --full-every. Never a compressed image: the shim reads its parent as it
 * is.
 */
export class ImageChains {
  /** Each process's newest complete image: its next checkpoint may store only what changed since. */
  private readonly lastImages = new Map<number, string>();
  /** The chain length of each lastImages entry (1: a full image). */
  private readonly chains = new Map<number, number>();
  /** The parent each process of the running checkpoint was told (its image is incremental to it). */
  private readonly parentsSent = new Map<number, string>();

  constructor(
    private readonly fullEvery: number,
    /** The session compresses its images: none is ever a parent. */
    private readonly compressed: boolean,
  ) {}

  /** A restored process's image, which its next one may be incremental to. */
  setParent(pid: number, image: string): void {
    if (!this.compressed) this.lastImages.set(pid, image);
  }

  /** The chain length of a restored process's image (ManifestProcess.chain). */
  setChain(pid: number, chain: number): void {
    this.chains.set(pid, chain);
  }

  /** A checkpoint starts: no process has been told a parent yet. */
  startCheckpoint(): void {
    this.parentsSent.clear();
  }

  /** The parent image a process's next image may be incremental to: none once its chain reached --full-every. */
  parentFor(pid: number): string | undefined {
    // a compressed image cannot be a parent: the shim reads its parent as it is
    if (this.compressed) return undefined;
    const parent = this.lastImages.get(pid);
    if (parent === undefined || (this.chains.get(pid) ?? 1) >= this.fullEvery) return undefined;
    this.parentsSent.set(pid, parent);
    return parent;
  }

  /**
   * The chain length of the image a process just wrote: one more than its
   * parent's when it was told one (the shim may still have written a full
   * image: counted long, which only makes the next full one come sooner).
   */
  chainAfter(pid: number): number {
    return this.parentsSent.has(pid) ? (this.chains.get(pid) ?? 1) + 1 : 1;
  }

  /** A generation completed at `path`: its images are the parents of the next ones. */
  completed(path: string, processes: readonly ManifestProcess[]): void {
    // a compressed image cannot be a parent: the shim reads its parent as it is
    if (this.compressed) return;
    for (const p of processes) {
      this.lastImages.set(p.pid, join(path, p.image));
      this.chains.set(p.pid, p.chain ?? 1);
    }
  }
}
