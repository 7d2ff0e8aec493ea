// A generation is one verified unit: its manifest (framing and checksum),
// and every image it names, each the very image the generation was made
// with (size and header CRC), intact (header, metadata, data), and every
// older image an incremental one refers to, by its identity. Restart uses
// these checks before it creates any process; `ckrun verify` reports them
// for every generation of a directory.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { listGenerations, ManifestError, readManifest, type Generation, type ManifestProcess } from './generations.js';
import { asArray, asMap, asNumber, ImageError, imagePid, readImage, VerifyCache, type Image } from './image.js';
import { displayPath } from './output.js';
import { checkSavedFiles, savedIdentities } from './files.js';
import { listedIdentities } from './snapdir.js';
import { acceptedCopies, CARRIED } from './contents.js';

export { VerifyCache } from './image.js';

export interface VerifyOptions {
  /** Also check every data chunk's CRC (default true). */
  verifyData?: boolean;
  /** Images already read, by inode (one shared by several generations is read once). */
  cache?: VerifyCache;
  /** For a compressed image: where it was decompressed to (restart stages them); else readImage decompresses it itself. */
  decompressed?: (p: ManifestProcess) => string | undefined;
}

/**
 * The image of entry p of generation g must be the one the generation was
 * made with: its PID, and (version 2 manifests) its size and header CRC.
 */
export function checkAgainstManifest(img: Image, p: ManifestProcess, g: Generation): void {
  const where = displayPath(g.path);
  if (imagePid(img) !== p.pid)
    throw new ImageError(img.path, 'corrupt', `holds PID ${imagePid(img)} but the manifest of ${where} says ${p.pid}; the generation is inconsistent`);
  if (g.manifest.version < 2) return;
  const mismatch =
    img.header.file_length !== p.bytes ||
    img.headerCrc !== p.header_crc ||
    (img.compressed !== undefined && p.compressed_bytes !== undefined && img.size !== p.compressed_bytes);
  if (mismatch)
    throw new ImageError(
      img.path,
      'corrupt',
      `is not the image generation ${where} was made with (its manifest records ${p.bytes} bytes with header checksum ` +
        `${hex8(p.header_crc ?? 0)}; the file has ${img.header.file_length} bytes with ${hex8(img.headerCrc)}): ` +
        `it was replaced or mixed up with another generation's`,
    );
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** Reads and verifies the image of one manifest entry. */
export async function verifyProcess(g: Generation, p: ManifestProcess, opts: VerifyOptions = {}): Promise<Image> {
  const img = await readImage(join(g.path, p.image), {
    verifyData: opts.verifyData ?? true,
    decompressed: opts.decompressed?.(p),
    cache: opts.cache,
  });
  checkAgainstManifest(img, p, g);
  return img;
}

/** Every image of a generation whose manifest was read, in manifest order. Throws ImageError. */
export async function verifyImages(g: Generation, opts: VerifyOptions = {}): Promise<Image[]> {
  const images: Image[] = [];
  for (const p of g.manifest.processes) images.push(await verifyProcess(g, p, opts));
  return images;
}

/** A generation directory as a Generation (its manifest read and checked). Throws ManifestError. */
export async function readGeneration(path: string): Promise<Generation> {
  const manifest = await readManifest(path);
  return { number: manifest.generation, path, manifest };
}

/**
 * "dev:ino" of the files the images hold open that a snapshot directory
 * of the generation lists: a restart puts them back before the restore
 * host runs, so one gone since does not count against the generation.
 */
function snapshotIdentities(genPath: string, dirs: Parameters<typeof listedIdentities>[1], images: Image[]): string {
  let listed: Set<string>;
  try {
    listed = listedIdentities(genPath, dirs);
  } catch {
    return ''; // a damaged listing: checkSavedFiles says so
  }
  const out = new Set<string>();
  for (const img of images)
    for (const x of asArray(img.meta['files'])) {
      const m = asMap(x);
      const id = `${asNumber(m['dev']) ?? -1}:${asNumber(m['ino']) ?? -1}`;
      if (listed.has(id)) out.add(id);
    }
  return [...out].join(',');
}

/** Manifest and images of the generation in `path`. Throws ManifestError or ImageError. */
export async function verifyGeneration(path: string, opts: VerifyOptions = {}): Promise<{ generation: Generation; images: Image[] }> {
  const generation = await readGeneration(path);
  return { generation, images: await verifyImages(generation, opts) };
}

/** A damaged, missing or foreign image or manifest (not: a compressed image that could not be decompressed for want of space). */
export function isIntegrityError(e: unknown): e is ImageError | ManifestError {
  return (e instanceof ImageError && e.problem !== 'unwritable') || e instanceof ManifestError;
}

/**
 * The numbered generations of DIR, newest first. Partial ones (`.N.partial`)
 * are not among them; a numbered one without a manifest is (the number
 * appears only once the manifest is written: without it, it is damaged).
 */
export async function numberedGenerations(dir: string): Promise<{ number: number; path: string }[]> {
  return (await listGenerations(dir)).filter((g) => !g.partial).reverse();
}

/** A generation that could not be used, and why. */
export interface Skipped {
  path: string;
  reason: ImageError | ManifestError;
}

/**
 * The newest generation of DIR that `use` accepts: use(path) reads and
 * verifies it (and may prepare it: a restart decompresses it), throwing
 * ImageError or ManifestError when it cannot be used. Returns use's result
 * and the newer generations it skipped; throws the newest one's error when
 * none can be used (with `none` set), or undefined when DIR has no
 * generation at all.
 */
export async function newestUsable<T>(
  dir: string,
  use: (path: string) => Promise<T>,
): Promise<{ result: T; path: string; skipped: Skipped[] } | undefined> {
  const skipped: Skipped[] = [];
  for (const g of await numberedGenerations(dir)) {
    try {
      return { result: await use(g.path), path: g.path, skipped };
    } catch (e) {
      if (!isIntegrityError(e)) throw e;
      skipped.push({ path: g.path, reason: e });
    }
  }
  if (skipped.length === 0) return undefined;
  throw new NoUsableGeneration(dir, skipped);
}

/** No generation of a directory can be used; `skipped` says why, newest first. */
export class NoUsableGeneration extends Error {
  constructor(
    readonly dir: string,
    readonly skipped: Skipped[],
  ) {
    super(`${skipped[0]!.reason.message}; no older checkpoint in ${displayPath(dir)} verifies either`);
    this.name = 'NoUsableGeneration';
  }
}

/** The line that says a generation cannot be used (for `restart --dir`). */
export function skippedLine(s: Skipped): string {
  return `cannot use generation ${displayPath(s.path)}: ${s.reason.message}`;
}

// ---------------------------------------------------------------------------
// `ckrun verify`

export interface GenerationReport {
  number: number;
  path: string;
  restorable: boolean;
  /** Why not (the first problem found), when not restorable. */
  problem?: string;
  /** The damaged file, when it is a file (an image, or an image several generations share). */
  file?: string;
}

export interface DamagedFile {
  /** The file as the first generation that needs it names it. */
  file: string;
  /** Every name it has in the generations (hard links). */
  names: string[];
  problem: string;
  /** Every generation it makes unrestorable. */
  generations: number[];
}

export interface VerifyReport {
  dir: string;
  generations: GenerationReport[];
  /** Damaged image files, each once, with every generation that needs them. */
  damaged: DamagedFile[];
}

export interface VerifyDirOptions {
  verifyData?: boolean;
  /**
   * The restore host's own checks of a generation whose images verify
   * (`ckrun-restore --check`): the files it maps, the kernel's vdso, the
   * shim ABI; the reason when it refuses, undefined when it would go ahead.
   */
  /** The restore host's own check (env: what it must know besides, e.g. the files a restart puts back first). */
  hostCheck?: (path: string, env?: Record<string, string>) => Promise<string | undefined>;
}

/**
 * Verifies every numbered generation of DIR (or the one generation DIR
 * is) with the checks a restart makes, reading each image file once
 * however many generations share it.
 */
export async function verifyDirectory(target: string, opts: VerifyDirOptions = {}): Promise<VerifyReport> {
  const verifyData = opts.verifyData ?? true;
  let candidates: { number: number; path: string }[];
  let isGeneration = false;
  try {
    isGeneration = (await stat(join(target, 'manifest.cbor'))).isFile();
  } catch {
    // not a generation
  }
  if (isGeneration) {
    const n = Number(/([1-9][0-9]*)\/*$/.exec(target)?.[1] ?? 0);
    candidates = [{ number: n, path: target }];
  } else candidates = (await numberedGenerations(target)).reverse();
  const cache = new VerifyCache();
  const reports: GenerationReport[] = [];
  const byInode = new Map<string, DamagedFile>();
  for (const c of candidates) {
    const report: GenerationReport = { number: c.number, path: c.path, restorable: true };
    try {
      const { generation, images } = await verifyGeneration(c.path, { verifyData, cache });
      // (the restore host reads uncompressed images: a compressed generation was verified whole above)
      const files = generation.manifest.files;
      const saved = [files ? savedIdentities(files) : '', files?.dirs ? snapshotIdentities(c.path, files.dirs, images) : ''].filter((x) => x).join(',');
      const carried = generation.manifest.portable ? join(c.path, CARRIED) : undefined;
      const copies = opts.hostCheck ? await acceptedCopies(images, generation.manifest.contents, carried) : { same: '', carried: '' };
      const hostEnv = {
        ...(saved ? { CKRUN_FILES_SAVED: saved } : {}),
        ...(copies.same ? { CKRUN_FILES_SAME: copies.same } : {}),
        ...(copies.carried && carried ? { CKRUN_FILES_CARRIED: copies.carried, CKRUN_CARRIED_DIR: carried } : {}),
      };
      const filesProblem = files ? checkSavedFiles(c.path, files, verifyData) : undefined;
      const refusal =
        filesProblem ??
        (generation.manifest.compressed === undefined ? await opts.hostCheck?.(c.path, Object.keys(hostEnv).length ? hostEnv : undefined) : undefined);
      if (refusal !== undefined) {
        report.restorable = false;
        report.problem = refusal;
      }
    } catch (e) {
      if (!isIntegrityError(e)) throw e;
      report.restorable = false;
      report.problem = e.message;
      if (e instanceof ImageError) {
        report.file = e.file;
        const key = await inodeKey(e.file);
        const d = byInode.get(key) ?? { file: e.file, names: [], problem: shortProblem(e), generations: [] };
        if (!d.names.includes(e.file)) d.names.push(e.file);
        d.generations.push(c.number);
        byInode.set(key, d);
      }
    }
    reports.push(report);
  }
  return { dir: target, generations: reports, damaged: [...byInode.values()] };
}

async function inodeKey(file: string): Promise<string> {
  try {
    const st = await stat(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return `missing:${file}`;
  }
}

/** What is wrong with the damaged file itself (without the image that refers to it). */
function shortProblem(e: ImageError): string {
  const m = /for unchanged pages, which (.*)$/.exec(e.detail);
  return m ? m[1]! : e.detail;
}

/** The report for people: one line per generation, then each damaged file with what it breaks. */
export function formatVerifyReport(r: VerifyReport): string {
  const lines: string[] = [];
  if (r.generations.length === 0) lines.push(`${displayPath(r.dir)} holds no generation`);
  for (const g of r.generations)
    lines.push(g.restorable ? `${displayPath(g.path)}: restorable` : `${displayPath(g.path)}: NOT restorable: ${g.problem}`);
  for (const d of r.damaged) {
    if (d.generations.length < 2 && d.names.length < 2) continue;
    const also = d.names.length > 1 ? ` (also ${d.names.slice(1).map((n) => displayPath(n)).join(', ')})` : '';
    lines.push(
      `damaged: ${displayPath(d.file)}${also} ${d.problem}; it makes ${d.generations.length} generation${d.generations.length === 1 ? '' : 's'} ` +
        `unrestorable: ${d.generations.join(', ')}`,
    );
  }
  const good = r.generations.filter((g) => g.restorable).length;
  lines.push(`${good} of ${r.generations.length} generation${r.generations.length === 1 ? '' : 's'} restorable`);
  return lines.join('\n') + '\n';
}
