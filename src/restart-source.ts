// Which generation (or image) a restart uses, verified as one unit before
// any process exists (src/verify.ts), and made ready for the restore host:
// compressed images decompressed beside them. `restart --dir` (and a
// checkpoint DIR named as IMAGE) uses the newest generation that verifies
// and says on stderr which newer ones it could not use and why (its images,
// or the files saved with it: written files and snapshot directories); a
// generation or image named explicitly is used or refused, never replaced.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { isCompressedImage } from './compress.js';
import { encodeManifest, isGenerationDir, MANIFEST, ManifestError, type Generation, type ManifestProcess } from './generations.js';
import { checkSavedFiles } from './files.js';
import { decompressImage, ImageError, readImage, type Image } from './image.js';
import { displayPath } from './output.js';
import { DEFAULT_DIR } from './protocol.js';
import { SessionError } from './errors.js';
import {
  checkAgainstManifest,
  isIntegrityError,
  newestUsable,
  NoUsableGeneration,
  numberedGenerations,
  readGeneration,
  verifyImages,
  verifyProcess,
  type Skipped,
} from './verify.js';
import type { VerifyCache } from './image.js';

/** The restart could not happen; the message names the image, the reason and the way out. */
export class RestartError extends SessionError {
  constructor(message: string, exitCode = 1) {
    super(message, exitCode);
    this.name = 'RestartError';
  }
}

/** What a restart names. */
export type Target =
  /** a checkpoint DIR: its newest generation that verifies */
  | { kind: 'dir'; dir: string }
  /** one generation, named */
  | { kind: 'generation'; path: string; sourceDir: string }
  /** one image file, perhaps of a generation */
  | { kind: 'image'; path: string; genDir: string | undefined; sourceDir: string | undefined };

async function kindOf(path: string): Promise<'file' | 'dir' | 'missing'> {
  try {
    const st = await stat(path);
    return st.isDirectory() ? 'dir' : 'file';
  } catch {
    return 'missing';
  }
}

const NUMBER = /^[1-9][0-9]*$/;

/** What `ckrun restart [--dir DIR | IMAGE]` names (nothing read yet). */
export async function locateTarget(opts: { image?: string; dir?: string }): Promise<Target> {
  if (opts.image === undefined) {
    const dir = resolve(opts.dir ?? DEFAULT_DIR);
    if ((await kindOf(dir)) !== 'dir')
      throw new RestartError(`${displayPath(dir)} does not exist: no checkpoint was ever written there (use --dir or name an image)`);
    return { kind: 'dir', dir };
  }
  const target = resolve(opts.image);
  const kind = await kindOf(target);
  if (kind === 'missing') throw new RestartError(`${displayPath(target)} does not exist`);
  if (kind === 'file') {
    const genDir = dirname(target);
    const inGeneration = NUMBER.test(basename(genDir)) && (await isGenerationDir(genDir));
    return { kind: 'image', path: target, genDir: inGeneration ? genDir : undefined, sourceDir: inGeneration ? dirname(genDir) : undefined };
  }
  if (/^\.[0-9]+\.partial$/.test(basename(target)))
    throw new RestartError(
      `${displayPath(target)} is an unfinished checkpoint (it has no manifest); restart from a complete generation instead`,
    );
  // a generation: it has a manifest, or a number (then one without a manifest is damaged, and refused as such)
  if ((await isGenerationDir(target)) || (NUMBER.test(basename(target)) && (await numberedGenerations(target)).length === 0))
    return { kind: 'generation', path: target, sourceDir: dirname(target) };
  return { kind: 'dir', dir: target };
}

/**
 * Restored by the orchestrator: a generation of more than one process, or
 * whose only process is not the one ckrun started (a daemon whose parents
 * have exited: its session and process group need a stand-in leader).
 */
export function isFamily(g: Generation): boolean {
  const procs = g.manifest.processes;
  return procs.length > 1 || procs[0]!.pid !== g.manifest.root;
}

/** The one process of a single-process generation. */
function rootEntry(g: Generation): ManifestProcess {
  return g.manifest.processes.find((p) => p.pid === g.manifest.root) ?? g.manifest.processes[0]!;
}

/** A generation verified and ready for the restore host. */
export interface Prepared {
  generation: Generation | undefined;
  /** In manifest order (one for a single process). */
  images: Image[];
  family: boolean;
  /** The checkpoint DIR it came from, when it came from one. */
  sourceDir: string | undefined;
  /** A family of compressed images: the hidden directory of their decompressed copies and a manifest naming them. */
  staged?: string;
  /** A single compressed image: the file it was decompressed to. */
  temporary?: string;
  /** Newer generations that could not be used (`restart --dir`). */
  skipped: Skipped[];
  /** Removes the decompressed copies (once the program runs again, or the restart failed). */
  release(): Promise<void>;
}

export function stagedName(pid: number): string {
  return `${pid}.ckpt`;
}

/**
 * A generation of compressed images is restored from a hidden directory
 * beside them, `.restore-<random>/`, holding every image decompressed
 * (`<pid>.ckpt`) and the manifest naming them: what the orchestrator reads.
 * Compressed images refer to no other file, so nothing else is needed.
 * The caller removes the directory (once the family is restored).
 */
async function stageCompressed(g: Generation): Promise<string> {
  const name = `.restore-${randomBytes(6).toString('hex')}`;
  let dir = join(g.path, name);
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (e) {
    // a directory we cannot write to (read-only media): any other will do
    dir = join(tmpdir(), name);
    await mkdir(dir, { mode: 0o700 }).catch(() => {
      throw new RestartError(`cannot decompress the images of ${displayPath(g.path)} beside them: ${(e as Error).message}`);
    });
  }
  try {
    for (const p of g.manifest.processes) {
      const tmp = await decompressImage(join(g.path, p.image), { pid: p.pid, dir });
      await rename(tmp, join(dir, stagedName(p.pid)));
    }
    // the same identities: the decompressed images are the images
    const manifest = { ...g.manifest, processes: g.manifest.processes.map((p) => ({ ...p, image: stagedName(p.pid) })) };
    delete manifest.compressed;
    for (const p of manifest.processes) delete p.compressed_bytes;
    await writeFile(join(dir, MANIFEST), await encodeManifest(manifest), { mode: 0o600 });
    return dir;
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    if (e instanceof ImageError && e.problem === 'unwritable') throw new RestartError(e.message);
    throw e;
  }
}

/**
 * For a compressed image: decompresses it beside itself, into the file the
 * restore host will map (`.restore-<pid>-<random>.ckpt`).
 */
async function decompressForRestore(path: string, pid: number | undefined): Promise<string> {
  try {
    return await decompressImage(path, { pid });
  } catch (e) {
    // a directory we cannot write to (read-only media): a compressed
    // image refers to no other file, so any directory will do
    if (!(e instanceof ImageError) || e.problem !== 'unwritable') throw e;
    return await decompressImage(path, { pid, dir: tmpdir() }).catch(() => {
      throw new RestartError(e.message);
    });
  }
}

/**
 * The files saved with a generation (written files' blocks, snapshot
 * directories' copies) are damaged or missing: the generation cannot be
 * put back as it was, so `restart --dir` falls back past it like past a
 * damaged image, before anything is written.
 */
export class SavedFilesError extends ManifestError {
  constructor(genPath: string, problem: string) {
    super(join(genPath, MANIFEST), '');
    this.message = `the files saved with ${displayPath(genPath)} are damaged: ${problem}`;
    this.name = 'SavedFilesError';
  }
}

function checkFilesOf(g: Generation, verifyData: boolean): void {
  const record = g.manifest.files;
  const problem = record ? checkSavedFiles(g.path, record, verifyData) : undefined;
  if (problem !== undefined) throw new SavedFilesError(g.path, problem);
}

/** Reads, verifies and prepares the generation in `path`. Throws ManifestError/ImageError when it cannot be used. */
export async function prepareGeneration(path: string, verifyData: boolean, sourceDir: string | undefined, cache?: VerifyCache): Promise<Prepared> {
  const generation = await readGeneration(path);
  const family = isFamily(generation);
  const compressed = generation.manifest.compressed !== undefined;
  let staged: string | undefined;
  let temporary: string | undefined;
  const release = async (): Promise<void> => {
    if (staged) await rm(staged, { recursive: true, force: true }).catch(() => undefined);
    if (temporary) await rm(temporary, { force: true }).catch(() => undefined);
  };
  try {
    let images: Image[];
    if (family) {
      if (compressed) staged = await stageCompressed(generation);
      const s = staged;
      images = await verifyImages(generation, { verifyData, cache, decompressed: s ? (p) => join(s, stagedName(p.pid)) : undefined });
    } else {
      const p = rootEntry(generation);
      if (isCompressedImage(p.image)) temporary = await decompressForRestore(join(path, p.image), p.pid);
      const t = temporary;
      images = [await verifyProcess(generation, p, { verifyData, cache, decompressed: () => t })];
    }
    checkFilesOf(generation, verifyData);
    return { generation, images, family, sourceDir, staged, temporary, skipped: [], release };
  } catch (e) {
    await release();
    if (e instanceof ImageError && e.problem === 'unwritable') throw new RestartError(e.message); // the image may well be fine
    throw e;
  }
}

/** One image file, named: verified, and against its generation's manifest when it is in one. */
async function prepareImage(t: Extract<Target, { kind: 'image' }>, verifyData: boolean): Promise<Prepared> {
  let generation: Generation | undefined;
  if (t.genDir) {
    generation = await readGeneration(t.genDir);
    const m = generation.manifest;
    if (m.processes.length > 1 && m.processes.some((p) => join(t.genDir!, p.image) === t.path))
      throw new RestartError(
        `${displayPath(t.path)} is one process of a family of ${m.processes.length} saved together; ` +
          `restart the whole generation: ckrun restart ${displayPath(t.genDir)}`,
      );
  }
  const entry = generation?.manifest.processes.find((p) => join(generation!.path, p.image) === t.path);
  const named = /^([0-9]+)\.ckpt\.gz$/.exec(basename(t.path));
  const temporary = isCompressedImage(t.path) ? await decompressForRestore(t.path, entry?.pid ?? (named ? Number(named[1]) : undefined)) : undefined;
  const release = async (): Promise<void> => {
    if (temporary) await rm(temporary, { force: true }).catch(() => undefined);
  };
  try {
    const img = await readImage(t.path, { verifyData, decompressed: temporary });
    if (entry && generation) checkAgainstManifest(img, entry, generation);
    return { generation, images: [img], family: false, sourceDir: t.sourceDir, temporary, skipped: [], release };
  } catch (e) {
    await release();
    if (e instanceof ImageError && e.problem === 'unwritable') throw new RestartError(e.message);
    throw e;
  }
}

/** The newest generation older than `before` in dir that verifies, as a hint for a refusal. */
async function olderHint(dir: string, before: number, verifyData: boolean): Promise<string> {
  for (const g of await numberedGenerations(dir)) {
    if (g.number >= before) continue;
    try {
      await verifyImages(await readGeneration(g.path), { verifyData });
      return `; the newest complete checkpoint is ${displayPath(g.path)} (ckrun restart ${displayPath(g.path)})`;
    } catch (e) {
      if (!isIntegrityError(e)) throw e;
    }
  }
  return `; no older checkpoint in ${displayPath(dir)} verifies either`;
}

/** A refusal that names the newest older generation that verifies. */
async function refusal(e: Error, sourceDir: string | undefined, number: number | undefined, verifyData: boolean): Promise<RestartError> {
  const hint = sourceDir && number !== undefined ? await olderHint(sourceDir, number, verifyData) : '';
  return new RestartError(`${e.message}${hint}`);
}

/**
 * The target verified and prepared. For a checkpoint DIR, the newest
 * generation that verifies; every newer one that does not is in
 * `skipped` (the caller says so). A refusal is a RestartError naming the
 * problem and the way out.
 */
export async function prepareTarget(target: Target, verifyData: boolean, cache?: VerifyCache): Promise<Prepared> {
  if (target.kind === 'dir') {
    let found;
    try {
      found = await newestUsable(target.dir, (path) => prepareGeneration(path, verifyData, target.dir));
    } catch (e) {
      if (e instanceof NoUsableGeneration) throw new RestartError(e.message);
      throw e;
    }
    if (!found)
      throw new RestartError(
        `${displayPath(target.dir)} holds no complete checkpoint (take one with ckrun checkpoint --dir ${displayPath(target.dir)} while the program runs)`,
      );
    return { ...found.result, skipped: found.skipped };
  }
  const number = target.kind === 'generation' ? Number(basename(target.path)) : target.genDir ? Number(basename(target.genDir)) : undefined;
  try {
    return target.kind === 'generation' ? await prepareGeneration(target.path, verifyData, target.sourceDir, cache) : await prepareImage(target, verifyData);
  } catch (e) {
    if (!isIntegrityError(e)) throw e;
    throw await refusal(e, target.sourceDir, Number.isInteger(number) ? number : undefined, verifyData);
  }
}

/** The lines that say which newer generations could not be used and which one is used instead. */
export function fallbackLines(p: Prepared): string[] {
  if (p.skipped.length === 0 || !p.generation) return [];
  return [
    ...p.skipped.map((s) => `cannot use generation ${displayPath(s.path)}: ${s.reason.message}`),
    `restarting from ${displayPath(p.generation.path)} instead (the newest generation that verifies)`,
  ];
}
