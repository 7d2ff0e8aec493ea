// `ckrun restart`: pick and verify an image, then spawn the restore host
// with the image's PID (or as PID 1 of a new PID namespace when that PID is
// taken) and coordinate the restarted session like a launched one.
import { existsSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { sessionEnv, stdioIdentity } from './environment.js';
import {
  chainOf,
  completeGenerations,
  findNewestGeneration,
  isGenerationDir,
  readManifest,
  type Generation,
} from './generations.js';
import { isCompressedImage } from './compress.js';
import { asArray, asNumber, asString, decompressImage, ImageError, imagePid, imageTids, readImage, type Image } from './image.js';
import { adoptChild, isNativeError, spawnChild } from './native.js';
import { displayPath, trace } from './output.js';
import { restoreHostPath, shimPath } from './paths.js';
import { DEFAULT_DIR } from './protocol.js';
import {
  checkpointDirFor,
  Coordinator,
  DEFAULT_INTERNAL_SIGNAL,
  openSession,
  SessionError,
  type Session,
  type SessionOptions,
} from './session.js';
import { checkCredentials, checkOwners, imageFiles, TrustError, type Owned } from './trust.js';

export interface RestartOptions extends SessionOptions {
  /**
   * IMAGE: a `.ckpt` or `.ckpt.gz` file, a generation directory, or a checkpoint DIR
   * (its newest complete generation). Default: the newest complete
   * generation in `dir` (./ckpt).
   */
  image?: string;
  /** Check every data chunk's CRC before restoring (default true). */
  verifyData?: boolean;
  /** The restore host (default build/Release/ckrun-restore, or CKRUN_RESTORE_HOST). */
  restoreHost?: string;
  /** How long to wait for the image's PID to be freed by a dying process (default 3000 ms). */
  pidWaitMs?: number;
  /** Restore as PID 1 of a new PID namespace even when the PID is free. */
  newPidNamespace?: boolean;
  /**
   * Restart a checkpoint (directory, generation, image) that another user
   * owns: its program then runs with the credentials its image records.
   * Without it such a restart is refused (default false).
   */
  trustOwner?: boolean;
  /**
   * The restore host already restored `image` as this process's child
   * `pid`, and listens on the session's socket at descriptor `fd` (the fast
   * start of `bin/ckrun restart`: preload/front.c): coordinate it.
   */
  adopt?: { pid: number; fd: number };
}

export interface RestartedSession extends Session {
  /** The verified image being restored. */
  readonly image: Image;
  /** The generation it belongs to, if any. */
  readonly generation: Generation | undefined;
  /** True when the restore runs in a new PID namespace (`ckrun-restore --init`). */
  readonly pidNamespace: boolean;
}

/** The restart could not happen; the message names the image, the reason and the way out. */
export class RestartError extends SessionError {
  constructor(message: string, exitCode = 1) {
    super(message, exitCode);
    this.name = 'RestartError';
  }
}

/** A refusal of trust.ts as a RestartError. */
export function asRestartError(e: unknown): unknown {
  return e instanceof TrustError ? new RestartError(e.message) : e;
}

/**
 * The files a restart of this generation or image reads: each must be the
 * restarter's own (unless trusted). The checkpoint directory too: its
 * owner could swap what is in it.
 */
export function ownedPaths(o: { sourceDir?: string; generation?: Generation; images: string[] }): Owned[] {
  const paths: Owned[] = [];
  if (o.sourceDir) paths.push({ what: 'checkpoint directory', path: o.sourceDir });
  if (o.generation) {
    paths.push({ what: 'generation', path: o.generation.path });
    paths.push({ what: 'manifest', path: join(o.generation.path, 'manifest.cbor') });
  }
  for (const i of o.images) paths.push({ what: 'image', path: i });
  return paths;
}

/**
 * The restore host's environment: CKRUN_TRUST_OWNER=1 only when the user
 * said --trust-owner (never inherited from ckrun's own environment).
 */
export function withTrust(env: string[], trustOwner: boolean | undefined): string[] {
  const out = env.filter((e) => !e.startsWith('CKRUN_TRUST_OWNER='));
  if (trustOwner) out.push('CKRUN_TRUST_OWNER=1');
  return out;
}

export interface RestartSource {
  image: Image;
  generation: Generation | undefined;
  /** The checkpoint DIR the image came from, when it came from one. */
  sourceDir: string | undefined;
}

async function kindOf(path: string): Promise<'file' | 'dir' | 'missing'> {
  try {
    const st = await stat(path);
    return st.isDirectory() ? 'dir' : 'file';
  } catch {
    return 'missing';
  }
}

/** The image of a single-process generation (a family is restarted as a whole, by restart-tree.ts). */
function rootImagePath(g: Generation): string {
  const procs = g.manifest.processes;
  if (procs.length > 1)
    throw new RestartError(
      `generation ${displayPath(g.path)} holds a family of ${procs.length} processes, which is restarted as a whole (ckrun restart ${displayPath(g.path)})`,
    );
  const root = procs.find((p) => p.pid === g.manifest.root) ?? procs[0]!;
  return join(g.path, root.image);
}

/** Newest complete generation older than `before` whose root image verifies. */
async function newestGoodOlder(dir: string, before: number, verifyData: boolean): Promise<Generation | undefined> {
  for (const g of await completeGenerations(dir)) {
    if (g.number >= before) continue;
    try {
      await readImage(rootImagePath(g), { verifyData });
      return g;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

async function newestIn(dir: string): Promise<Generation> {
  if ((await kindOf(dir)) !== 'dir')
    throw new RestartError(`${displayPath(dir)} does not exist: no checkpoint was ever written there (use --dir or name an image)`);
  const g = await findNewestGeneration(dir);
  if (!g)
    throw new RestartError(
      `${displayPath(dir)} holds no complete checkpoint (take one with ckrun checkpoint --dir ${displayPath(dir)} while the program runs)`,
    );
  return g;
}

interface Located {
  imagePath: string;
  generation: Generation | undefined;
  sourceDir: string | undefined;
}

/** Which image a restart would use (not yet read). */
async function locateImage(opts: { image?: string; dir?: string }): Promise<Located> {
  let generation: Generation | undefined;
  let sourceDir: string | undefined;
  let imagePath: string;
  if (opts.image === undefined) {
    sourceDir = resolve(opts.dir ?? DEFAULT_DIR);
    generation = await newestIn(sourceDir);
    imagePath = rootImagePath(generation);
  } else {
    const target = resolve(opts.image);
    const kind = await kindOf(target);
    if (kind === 'missing') throw new RestartError(`${displayPath(target)} does not exist`);
    if (kind === 'file') {
      imagePath = target;
      const genDir = dirname(target);
      if (/^[1-9][0-9]*$/.test(basename(genDir)) && (await isGenerationDir(genDir))) {
        generation = { number: Number(basename(genDir)), path: genDir, manifest: await readManifest(genDir) };
        sourceDir = dirname(genDir);
      }
    } else if (await isGenerationDir(target)) {
      const manifest = await readManifest(target).catch((e: Error) => {
        throw new RestartError(e.message);
      });
      generation = { number: manifest.generation, path: target, manifest };
      sourceDir = dirname(target);
      imagePath = rootImagePath(generation);
    } else if (/^\.[0-9]+\.partial$/.test(basename(target))) {
      throw new RestartError(
        `${displayPath(target)} is an unfinished checkpoint (it has no manifest); restart from a complete generation instead`,
      );
    } else {
      sourceDir = target;
      generation = await newestIn(target);
      imagePath = rootImagePath(generation);
    }
  }
  return { imagePath, generation, sourceDir };
}

/** A bad image as a RestartError that names the newest older generation that verifies. */
async function refusal(e: ImageError, loc: Located, verifyData: boolean): Promise<RestartError> {
  let hint = '';
  if (e.problem === 'unwritable') return new RestartError(e.message); // the image may well be fine
  if (loc.sourceDir && loc.generation) {
    const older = await newestGoodOlder(loc.sourceDir, loc.generation.number, verifyData);
    hint = older
      ? `; the newest complete image is ${displayPath(older.path)} (ckrun restart ${displayPath(older.path)})`
      : `; no older checkpoint in ${displayPath(loc.sourceDir)} verifies either`;
  }
  return new RestartError(`${e.message}${hint}`);
}

/** Reads and verifies the located image (a .ckpt.gz from `decompressed` when given). */
async function verifyLocated(loc: Located, verifyData: boolean, decompressed?: string): Promise<Image> {
  try {
    return await readImage(loc.imagePath, { verifyData, decompressed });
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    throw await refusal(e, loc, verifyData);
  }
}

/**
 * Finds the image a restart would use and verifies it (header, metadata and,
 * unless verifyData is false, every data chunk; a `.ckpt.gz` is decompressed
 * into a temporary file for this and that file removed). A damaged image
 * gives a RestartError that names the newest older generation that verifies.
 */
export async function pickImage(opts: { image?: string; dir?: string; verifyData?: boolean }): Promise<RestartSource> {
  const loc = await locateImage(opts);
  const image = await verifyLocated(loc, opts.verifyData ?? true);
  return { image, generation: loc.generation, sourceDir: loc.sourceDir };
}

/**
 * For a compressed image: decompresses it beside itself, into the file the
 * restore host will map (`.restore-<pid>-<random>.ckpt`). undefined for an
 * uncompressed image.
 */
async function decompressLocated(loc: Located, verifyData: boolean): Promise<string | undefined> {
  if (!isCompressedImage(loc.imagePath)) return undefined;
  const entry = loc.generation?.manifest.processes.find((p) => resolve(loc.generation!.path, p.image) === loc.imagePath);
  const named = /^([0-9]+)\.ckpt\.gz$/.exec(basename(loc.imagePath));
  const pid = entry?.pid ?? (named ? Number(named[1]) : undefined);
  try {
    try {
      return await decompressImage(loc.imagePath, { pid });
    } catch (e) {
      // a directory we cannot write to (read-only media): a compressed
      // image refers to no other file, so any directory will do
      if (!(e instanceof ImageError) || e.problem !== 'unwritable') throw e;
      return await decompressImage(loc.imagePath, { pid, dir: tmpdir() }).catch(() => {
        throw e;
      });
    }
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    throw await refusal(e, loc, verifyData);
  }
}

type PidState = 'free' | 'dying' | 'live';

/** Whether a PID/TID is free, held by a zombie or a process being killed, or by a live task. */
export async function pidState(pid: number): Promise<PidState> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 'free';
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  if (state === 'Z' || state === 'X' || state === 'x') return 'dying';
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    for (const field of ['SigPnd', 'ShdPnd']) {
      const m = new RegExp(`^${field}:\\s*([0-9a-f]+)`, 'm').exec(status);
      if (m && (BigInt('0x' + m[1]) >> 8n) & 1n) return 'dying'; // SIGKILL pending
    }
  } catch {
    return 'free';
  }
  return 'live';
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function describePid(pid: number): Promise<string> {
  try {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    return `PID ${pid} (${comm})`;
  } catch {
    return `PID ${pid}`;
  }
}

/**
 * Restarts a program from an image and returns at once; await
 * `session.ready` (rejects if the restore fails) and `session.exited`.
 */
export async function restart(opts: RestartOptions = {}): Promise<RestartedSession> {
  trace('restart started');
  if (opts.adopt) return adoptRestored(opts, opts.adopt);
  const baseEnv = opts.env ?? process.env;
  const host = opts.restoreHost ?? restoreHostPath(baseEnv);
  // A family (a generation of more than one process) is rebuilt by the restore orchestrator.
  const { familyGeneration, restartFamily } = await import('./restart-tree.js');
  const family = await familyGeneration({ image: opts.image, dir: opts.image === undefined ? opts.dir : undefined });
  trace('generation read');
  if (family) {
    if (!existsSync(host))
      throw new RestartError(`the restore host ${host} is missing: build ckrun with npm install (or set CKRUN_RESTORE_HOST)`);
    return restartFamily(opts, host, family);
  }
  if (!existsSync(host))
    throw new RestartError(`the restore host ${host} is missing: build ckrun with npm install (or set CKRUN_RESTORE_HOST)`);
  const verifyData = opts.verifyData ?? true;
  const loc = await locateImage({ image: opts.image, dir: opts.image === undefined ? opts.dir : undefined });
  const trust = opts.trustOwner === true;
  const owners = await checkOwners(ownedPaths({ ...loc, images: [loc.imagePath] }), trust).catch((e: unknown) => {
    throw asRestartError(e);
  });
  // where further checkpoints go must be trustworthy before anything is written
  await checkpointDirFor(opts.dir ?? loc.sourceDir ?? DEFAULT_DIR);
  // A compressed image is restored from a temporary file beside it,
  // removed once the program runs again (its memory stays mapped) or the
  // restart fails.
  const temporary = await decompressLocated(loc, verifyData);
  const removeTemporary = (): Promise<void> => (temporary ? rm(temporary, { force: true }).catch(() => undefined) : Promise.resolve());
  try {
    const session = await restartFrom(opts, host, loc, verifyData, temporary, owners);
    session.ready.then(removeTemporary, removeTemporary);
    return session;
  } catch (e) {
    await removeTemporary();
    throw e;
  }
}

/** The session of a program the restore host restored before node started (it verified the image). */
async function adoptRestored(opts: RestartOptions, adopt: { pid: number; fd: number }): Promise<RestartedSession> {
  const loc = await locateImage({ image: opts.image });
  const image = await verifyLocated(loc, false);
  const pid = imagePid(image);
  const internalSignal = asNumber(image.meta['signal']) ?? DEFAULT_INTERNAL_SIGNAL;
  let session: Coordinator;
  try {
    session = await openSession({ ...opts, dir: opts.dir ?? loc.sourceDir ?? DEFAULT_DIR }, internalSignal, adopt.fd);
  } catch (e) {
    // refused (the directory, most likely): the program must not run on without its session
    try {
      process.kill(adopt.pid, 'SIGKILL');
    } catch {
      // gone already
    }
    throw e;
  }
  adoptChild(adopt.pid, (st) => void session.onChildExit(st));
  startRestored(session, image, loc.generation, pid, adopt.pid, undefined);
  trace('session adopted');
  return Object.assign(session, { image, generation: loc.generation, pidNamespace: false }) as Coordinator & RestartedSession;
}

/** Attaches a restored process (child, in ckrun's namespace; programPid, as it sees itself) to its session. */
function startRestored(
  session: Coordinator,
  image: Image,
  generation: Generation | undefined,
  programPid: number,
  child: number,
  temporary: string | undefined,
): void {
  session.ready.then(
    () => trace('restored'),
    () => undefined,
  );
  const manifest = generation?.manifest;
  const entry = manifest?.processes.find((p) => p.pid === programPid);
  session.start({
    pid: child,
    programPid,
    joinBy: 'restored',
    argv: manifest?.argv ?? asArray(image.meta['cmdline']).map((a) => asString(a) ?? ''),
    cwd: manifest?.cwd ?? asString(image.meta['cwd']) ?? '',
    restoredFrom: image.path,
    // the temporary file is gone by the next checkpoint: nothing to be incremental to
    parentImage: temporary ? null : undefined,
    chains: [[programPid, chainOf(image, entry)]],
  });
}

async function restartFrom(
  opts: RestartOptions,
  host: string,
  loc: Located,
  verifyData: boolean,
  temporary: string | undefined,
  owners: Map<string, number>,
): Promise<RestartedSession> {
  const baseEnv = opts.env ?? process.env;
  trace('image located');
  const image = await verifyLocated(loc, verifyData, temporary);
  trace(verifyData ? 'image verified (data too)' : 'image verified (header and metadata)');
  // who the program will run as: before any process exists
  try {
    const refs = imageFiles(image).filter((f) => !owners.has(f.path));
    for (const [path, uid] of await checkOwners(refs, opts.trustOwner === true)) owners.set(path, uid);
    checkCredentials(image, owners);
  } catch (e) {
    throw asRestartError(e);
  }
  const { generation } = loc;
  const imageName = displayPath(image.path);
  const pid = imagePid(image);
  if (generation) {
    const entry = generation.manifest.processes.find((p) => resolve(generation.path, p.image) === image.path);
    if (entry && entry.pid !== pid)
      throw new RestartError(`image ${imageName} holds PID ${pid} but the manifest says ${entry.pid}; the generation is inconsistent`);
  }
  const internalSignal = asNumber(image.meta['signal']) ?? DEFAULT_INTERNAL_SIGNAL;
  const checkpointDir = opts.dir ?? loc.sourceDir ?? DEFAULT_DIR;
  const session = await openSession({ ...opts, dir: checkpointDir }, internalSignal);
  trace('session open');
  const stdio = opts.stdio ?? [0, 1, 2];
  const env = withTrust(
    sessionEnv(baseEnv, {
      sock: session.socketName,
      stdio: stdioIdentity(stdio),
      signal: internalSignal,
      preload: null,
      stripPreload: shimPath(baseEnv),
    }),
    opts.trustOwner,
  );
  const onExit = (st: Parameters<Coordinator['onChildExit']>[0]): void => void session.onChildExit(st);
  const tids = [...new Set([pid, ...imageTids(image)])];
  // ckrun has verified the data already (or was told not to): one read is enough.
  const hostArgs = ['--no-verify-data', temporary ?? image.path];

  let child: number | undefined;
  // Choosing a PID in ckrun's own namespace takes root; anyone can in a
  // user and PID namespace of their own.
  const root = process.geteuid?.() === 0;
  let pidNamespace = opts.newPidNamespace === true || !root;
  try {
    if (!pidNamespace) {
      const deadline = Date.now() + (opts.pidWaitMs ?? 3000);
      for (;;) {
        const states = await Promise.all(tids.map(async (t) => [t, await pidState(t)] as const));
        const live = states.find(([, s]) => s === 'live');
        if (live) {
          session.verboseLog(`${await describePid(live[0])} is in use: restoring in a new PID namespace`);
          pidNamespace = true;
          break;
        }
        if (states.every(([, s]) => s === 'free')) {
          try {
            child = spawnChild({ file: host, argv: [host, ...hostArgs], env, fds: [...stdio], setTid: pid }, onExit);
            break;
          } catch (e) {
            if (!isNativeError(e) || e.code !== 'EEXIST') throw e;
            // taken meanwhile: look again
          }
        }
        if (Date.now() >= deadline) {
          session.verboseLog(`PID ${pid} did not become free within ${opts.pidWaitMs ?? 3000} ms: restoring in a new PID namespace`);
          pidNamespace = true;
          break;
        }
        await sleep(50);
      }
    }
    if (child === undefined) {
      child = spawnChild(
        { file: host, argv: [host, '--init', ...hostArgs], env, fds: [...stdio], newPidNs: true, newUserNs: !root },
        onExit,
      );
    }
  } catch (e) {
    await session.close();
    if (isNativeError(e)) {
      if (e.code === 'EPERM')
        throw new RestartError(
          root
            ? `cannot restore ${imageName}: ${pidNamespace ? 'a new PID namespace' : `creating PID ${pid}`} was refused: ${e.message}`
            : `cannot restore ${imageName}: this system does not let ordinary users create user namespaces ` +
                `(${e.message}); run ckrun restart as root, or allow unprivileged user namespaces`,
        );
      throw new RestartError(`cannot start the restore host for ${imageName}: ${e.message}`, e.code === 'ENOENT' ? 127 : 126);
    }
    throw e;
  }
  trace('restore host started');
  startRestored(session, image, generation, pid, child, temporary);
  return Object.assign(session, { image, generation, pidNamespace }) as Coordinator & RestartedSession;
}
