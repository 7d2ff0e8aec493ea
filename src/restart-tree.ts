// `ckrun restart` of a generation that holds a family (more than one
// process, or a daemon that outlived the program ckrun started): every image is verified, then the restore orchestrator
// `ckrun-restore --tree GENERATION` (as ckrun's child, or `--init --tree` as
// PID 1 of a fresh PID namespace when a PID of the family is taken) rebuilds
// the tree; the session is ready once every process said `restored`, and it
// ends when the orchestrator, which outlives the family, exits.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { sessionEnv, stdioIdentity } from './environment.js';
import {
  chainOf,
  completeGenerations,
  encodeManifest,
  findNewestGeneration,
  isGenerationDir,
  MANIFEST,
  readManifest,
  type Generation,
} from './generations.js';
import { asArray, asMap, asNumber, decompressImage, ImageError, imagePid, imageTids, readImage, type Image } from './image.js';
import { exitStatus, isNativeError, spawnChild, type ExitStatus } from './native.js';
import { displayPath } from './output.js';
import { shimPath } from './paths.js';
import { DEFAULT_DIR } from './protocol.js';
import { asRestartError, ownedPaths, pidState, RestartError, withTrust, type RestartedSession, type RestartOptions } from './restart.js';
import { checkpointDirFor, Coordinator, DEFAULT_INTERNAL_SIGNAL, openSession } from './session.js';
import { checkCredentials, checkOwners, imageFiles } from './trust.js';

/** ckrun-restore's exit status when a PID or TID of the family is in use (preload/restore.h). */
export const EXIT_PIDS_TAKEN = 75;

export interface FamilySource {
  generation: Generation;
  /** The checkpoint DIR it came from. */
  sourceDir: string;
}

/**
 * Restored by the orchestrator: a generation of more than one process, or
 * whose only process is not the one ckrun started (a daemon whose parents
 * have exited: its session and process group need a stand-in leader).
 */
function isFamily(g: Generation): boolean {
  const procs = g.manifest.processes;
  return procs.length > 1 || procs[0]!.pid !== g.manifest.root;
}

/**
 * The generation a restart names, when the orchestrator restores it (see
 * isFamily); undefined otherwise (or when it names nothing valid: the
 * single-process path explains). A single image of a family is refused: its parent,
 * children and shared objects are in the others.
 */
export async function familyGeneration(opts: { image?: string; dir?: string }): Promise<FamilySource | undefined> {
  if (opts.image === undefined) {
    const dir = resolve(opts.dir ?? DEFAULT_DIR);
    const g = await findNewestGeneration(dir).catch(() => undefined);
    return g && isFamily(g) ? { generation: g, sourceDir: dir } : undefined;
  }
  const target = resolve(opts.image);
  let isDir: boolean;
  try {
    isDir = (await stat(target)).isDirectory();
  } catch {
    return undefined;
  }
  if (!isDir) {
    const genDir = dirname(target);
    if (!/^[1-9][0-9]*$/.test(basename(genDir)) || !(await isGenerationDir(genDir))) return undefined;
    const manifest = await readManifest(genDir).catch(() => undefined);
    if (manifest && manifest.processes.length > 1 && manifest.processes.some((p) => join(genDir, p.image) === target))
      throw new RestartError(
        `${displayPath(target)} is one process of a family of ${manifest.processes.length} saved together; ` +
          `restart the whole generation: ckrun restart ${displayPath(genDir)}`,
      );
    return undefined;
  }
  if (await isGenerationDir(target)) {
    const manifest = await readManifest(target).catch(() => undefined);
    if (!manifest) return undefined;
    const g: Generation = { number: manifest.generation, path: target, manifest };
    return isFamily(g) ? { generation: g, sourceDir: dirname(target) } : undefined;
  }
  if (/^\.[0-9]+\.partial$/.test(basename(target))) return undefined;
  const g = await findNewestGeneration(target).catch(() => undefined);
  return g && isFamily(g) ? { generation: g, sourceDir: target } : undefined;
}

/**
 * Reads and verifies every image of a generation, in manifest order
 * (compressed ones from `staged`, where stageCompressed put them).
 */
async function verifyFamily(g: Generation, verifyData: boolean, staged?: string): Promise<Image[]> {
  const images: Image[] = [];
  for (const p of g.manifest.processes) {
    const decompressed = staged !== undefined ? join(staged, stagedName(p.pid)) : undefined;
    const img = await readImage(join(g.path, p.image), { verifyData, decompressed });
    if (imagePid(img) !== p.pid)
      throw new ImageError(
        img.path,
        'corrupt',
        `holds PID ${imagePid(img)} but the manifest of ${displayPath(g.path)} says ${p.pid}; the generation is inconsistent`,
      );
    images.push(img);
  }
  return images;
}

function stagedName(pid: number): string {
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
    const manifest = { ...g.manifest, processes: g.manifest.processes.map((p) => ({ ...p, image: stagedName(p.pid) })) };
    delete manifest.compressed;
    await writeFile(join(dir, MANIFEST), await encodeManifest(manifest), { mode: 0o600 });
    return dir;
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    if (e instanceof ImageError && e.problem === 'unwritable') throw new RestartError(e.message);
    throw e;
  }
}

/** The newest generation older than g whose images all verify, as a hint for a refusal. */
async function olderHint(src: FamilySource, verifyData: boolean): Promise<string> {
  for (const g of await completeGenerations(src.sourceDir)) {
    if (g.number >= src.generation.number) continue;
    try {
      await verifyFamily(g, verifyData);
      return `; the newest complete checkpoint is ${displayPath(g.path)} (ckrun restart ${displayPath(g.path)})`;
    } catch {
      // keep looking
    }
  }
  return `; no older checkpoint in ${displayPath(src.sourceDir)} verifies either`;
}

/** Every PID and TID the family needs: processes, threads, and zombies their parents had not reaped. */
export function familyIds(images: Image[]): number[] {
  const ids = new Set<number>();
  for (const img of images) {
    ids.add(imagePid(img));
    for (const t of imageTids(img)) ids.add(t);
    for (const c of asArray(img.meta['children'])) {
      const cm = asMap(c);
      const pid = asNumber(cm['pid']);
      if (pid !== undefined && cm['zombie'] === true) ids.add(pid);
    }
  }
  return [...ids].sort((a, b) => a - b);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Restarts a family and returns at once; await `session.ready` and `session.exited`. */
export async function restartFamily(opts: RestartOptions, host: string, src: FamilySource): Promise<RestartedSession> {
  const { generation } = src;
  const m = generation.manifest;
  const verifyData = opts.verifyData ?? true;
  const trust = opts.trustOwner === true;
  const owners = await checkOwners(
    ownedPaths({ sourceDir: src.sourceDir, generation, images: m.processes.map((p) => join(generation.path, p.image)) }),
    trust,
  ).catch((e: unknown) => {
    throw asRestartError(e);
  });
  // compressed images: restored from a hidden directory of decompressed
  // copies, removed once every process runs again or the restart fails
  let staged: string | undefined;
  const removeStaged = (): Promise<void> => (staged ? rm(staged, { recursive: true, force: true }).catch(() => undefined) : Promise.resolve());
  let images: Image[];
  // where further checkpoints go must be trustworthy before anything is written
  await checkpointDirFor(opts.dir ?? src.sourceDir);
  try {
    if (m.compressed !== undefined) staged = await stageCompressed(generation);
    images = await verifyFamily(generation, verifyData, staged);
  } catch (e) {
    await removeStaged();
    if (!(e instanceof ImageError)) throw e;
    throw new RestartError(`${e.message}${await olderHint(src, verifyData)}`);
  }
  // who every process will run as: before any process exists
  try {
    for (const img of images) {
      const refs = imageFiles(img).filter((f) => !owners.has(f.path) && !(staged && f.path.startsWith(staged)));
      for (const [path, uid] of await checkOwners(refs, trust)) owners.set(path, uid);
      checkCredentials(img, owners);
    }
  } catch (e) {
    await removeStaged();
    throw asRestartError(e);
  }
  try {
    const session = await restartStaged(opts, host, src, images, staged);
    session.ready.then(removeStaged, removeStaged);
    return session;
  } catch (e) {
    await removeStaged();
    throw e;
  }
}

async function restartStaged(
  opts: RestartOptions,
  host: string,
  src: FamilySource,
  images: Image[],
  staged: string | undefined,
): Promise<RestartedSession> {
  const { generation } = src;
  const m = generation.manifest;
  const where = displayPath(generation.path);
  const rootIndex = Math.max(
    0,
    m.processes.findIndex((p) => p.pid === m.root),
  );
  const rootImage = images[rootIndex]!;
  const internalSignal = asNumber(rootImage.meta['signal']) ?? DEFAULT_INTERNAL_SIGNAL;
  const session = await openSession({ ...opts, dir: opts.dir ?? src.sourceDir }, internalSignal);
  const baseEnv = opts.env ?? process.env;
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
  // ckrun has verified the data already (or was told not to): one read is enough.
  const hostArgs = ['--no-verify-data', '--tree', staged ?? generation.path];
  const ids = familyIds(images);
  const root = process.geteuid?.() === 0;
  const state = { pidNamespace: opts.newPidNamespace === true || !root, ready: false };
  session.ready.then(
    () => {
      state.ready = true;
    },
    () => undefined,
  );

  const spawnInit = (): number =>
    spawnChild({ file: host, argv: [host, '--init', ...hostArgs], env, fds: [...stdio], newPidNs: true, newUserNs: !root }, onExit);
  // The orchestrator checks the PIDs itself, just before it forks: one taken
  // meanwhile makes it exit with EXIT_PIDS_TAKEN, and the family is
  // restored in a fresh PID namespace instead.
  function onExit(st: ExitStatus): void {
    if (!state.pidNamespace && !state.ready && st.code === EXIT_PIDS_TAKEN) {
      session.verboseLog('a PID of the family was taken meanwhile: restoring in a new PID namespace');
      state.pidNamespace = true;
      try {
        session.pid = spawnInit();
        return;
      } catch (e) {
        session.verboseLog(`cannot restore in a new PID namespace: ${e instanceof Error ? e.message : String(e)}`);
        void session.onChildExit(exitStatus(1, null));
        return;
      }
    }
    void session.onChildExit(st);
  }

  let child: number | undefined;
  try {
    if (!state.pidNamespace) {
      const deadline = Date.now() + (opts.pidWaitMs ?? 3000);
      for (;;) {
        const states = await Promise.all(ids.map(async (t) => [t, await pidState(t)] as const));
        const live = states.find(([, s]) => s === 'live');
        if (live) {
          session.verboseLog(`PID ${live[0]} is in use: restoring the family in a new PID namespace`);
          state.pidNamespace = true;
          break;
        }
        if (states.every(([, s]) => s === 'free')) {
          child = spawnChild({ file: host, argv: [host, ...hostArgs], env, fds: [...stdio] }, onExit);
          break;
        }
        if (Date.now() >= deadline) {
          session.verboseLog(`the family's PIDs did not become free within ${opts.pidWaitMs ?? 3000} ms: restoring in a new PID namespace`);
          state.pidNamespace = true;
          break;
        }
        await sleep(50);
      }
    }
    if (child === undefined) child = spawnInit();
  } catch (e) {
    await session.close();
    if (isNativeError(e)) {
      if (e.code === 'EPERM')
        throw new RestartError(
          root
            ? `cannot restore ${where}: a new PID namespace was refused: ${e.message}`
            : `cannot restore ${where}: this system does not let ordinary users create user namespaces ` +
                `(${e.message}); run ckrun restart as root, or allow unprivileged user namespaces`,
        );
      throw new RestartError(`cannot start the restore orchestrator for ${where}: ${e.message}`, e.code === 'ENOENT' ? 127 : 126);
    }
    throw e;
  }
  session.start({
    pid: child,
    programPid: m.root,
    joinBy: 'restored',
    argv: m.argv,
    cwd: m.cwd,
    restoredFrom: generation.path,
    parentImage: null,
    // a compressed image cannot be a parent (the shim reads its parent as it is)
    parentImages: staged ? [] : m.processes.map((p) => [p.pid, join(generation.path, p.image)]),
    chains: m.processes.map((p, i) => [p.pid, chainOf(images[i]!, p)]),
    expectRestored: m.processes.map((p) => p.pid),
    endsWithChild: true,
  });
  return Object.defineProperties(session, {
    image: { value: rootImage, enumerable: true },
    generation: { value: generation, enumerable: true },
    pidNamespace: { get: () => state.pidNamespace, enumerable: true },
  }) as Coordinator & RestartedSession;
}
