// Generation directories inside a checkpoint DIR, and the session manifest.
//
//   DIR/N/            a complete generation (manifest.cbor written last)
//   DIR/.N.partial/   a generation being written (or abandoned by a crash)
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { asArray, asMap, asNumber, asBigInt, asString, decodeCbor, type CborValue, type Image } from './image.js';
import { tryLockExclusive } from './native.js';

export const MANIFEST = 'manifest.cbor';

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
}

export interface Manifest {
  format: 'ckrun-session';
  version: 1;
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

/** ppid, pgid and sid of a manifest's process entry, those present. */
function relations(pm: Record<string, CborValue>): Pick<ManifestProcess, 'ppid' | 'pgid' | 'sid'> {
  const out: Pick<ManifestProcess, 'ppid' | 'pgid' | 'sid'> = {};
  for (const k of ['ppid', 'pgid', 'sid'] as const) {
    const v = asNumber(pm[k]);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** Numbers of a CBOR array of arrays … of integers, or undefined when it is not one of `depth` levels. */
function intTree(v: CborValue, depth: number): unknown {
  if (!Array.isArray(v)) return undefined;
  const out: unknown[] = [];
  for (const x of v) {
    const y = depth === 1 ? asNumber(x) : intTree(x, depth - 1);
    if (y === undefined) return undefined;
    out.push(y);
  }
  return out;
}

/** Reads and checks DIR/N/manifest.cbor. */
export async function readManifest(genDir: string): Promise<Manifest> {
  const path = join(genDir, MANIFEST);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ManifestError(path, `cannot be read: ${(e as Error).message}`);
  }
  let v: CborValue;
  try {
    v = decodeCbor(bytes);
  } catch (e) {
    throw new ManifestError(path, `is not valid CBOR: ${(e as Error).message}`);
  }
  const m = asMap(v);
  if (m['format'] !== 'ckrun-session') throw new ManifestError(path, "is not a ckrun session manifest (format is not 'ckrun-session')");
  if (asNumber(m['version']) !== 1) throw new ManifestError(path, `has version ${String(m['version'])}; this ckrun reads version 1`);
  const generation = asNumber(m['generation']);
  const root = asNumber(m['root']);
  if (generation === undefined || root === undefined) throw new ManifestError(path, 'lacks generation or root');
  const processes: ManifestProcess[] = asArray(m['processes']).map((p) => {
    const pm = asMap(p);
    const compressedBytes = asNumber(pm['compressed_bytes']);
    const chain = asNumber(pm['chain']);
    return {
      pid: asNumber(pm['pid']) ?? -1,
      image: asString(pm['image']) ?? '',
      bytes: asNumber(pm['bytes']) ?? 0,
      pause_ns: asNumber(pm['pause_ns']) ?? 0,
      ...relations(pm),
      ...(compressedBytes !== undefined ? { compressed_bytes: compressedBytes } : {}),
      ...(chain !== undefined && chain >= 1 ? { chain } : {}),
    };
  });
  if (processes.length === 0 || processes.some((p) => p.pid <= 0 || !IMAGE_NAME.test(p.image)))
    throw new ManifestError(path, 'lists no valid process image');
  const compressed = m['compressed'];
  if (compressed !== undefined && compressed !== 'gzip')
    throw new ManifestError(path, `says its images are compressed with ${String(compressed)}; this ckrun reads gzip only`);
  return {
    format: 'ckrun-session',
    version: 1,
    generation,
    created_ns: asBigInt(m['created_ns']) ?? 0n,
    argv: asArray(m['argv']).map((a) => asString(a) ?? ''),
    cwd: asString(m['cwd']) ?? '',
    root,
    processes,
    ...sharedObjects(path, m),
    ...(compressed === 'gzip' ? { compressed } : {}),
  };
}

/** shared_files and shm_owners, checked, those present. */
function sharedObjects(path: string, m: Record<string, CborValue>): Pick<Manifest, 'shared_files' | 'shm_owners'> {
  const out: Pick<Manifest, 'shared_files' | 'shm_owners'> = {};
  if (m['shared_files'] !== undefined) {
    const groups = intTree(m['shared_files'], 3) as number[][][] | undefined;
    if (!groups || groups.some((g) => g.some((r) => r.length !== 2)))
      throw new ManifestError(path, 'has a malformed shared_files (expected [[[pid, fd], ...], ...])');
    out.shared_files = groups as [number, number][][];
  }
  if (m['shm_owners'] !== undefined) {
    const owners = intTree(m['shm_owners'], 2) as number[][] | undefined;
    if (!owners || owners.some((o) => o.length !== 3))
      throw new ManifestError(path, 'has a malformed shm_owners (expected [[dev, ino, pid], ...])');
    out.shm_owners = owners as [number, number, number][];
  }
  return out;
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

/** Safe bigints become numbers so that every integer gets its shortest encoding. */
function shortest(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : v;
  if (Array.isArray(v)) return v.map(shortest);
  if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = shortest(x);
    return o;
  }
  return v;
}

export async function encodeManifest(m: Manifest): Promise<Buffer> {
  return (await manifestEncoder()).encode(shortest(m));
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
