// `ckrun restart`: pick and verify a generation (src/restart-source.ts),
// then spawn the restore host with the image's PID (or as PID 1 of a new PID
// namespace when that PID is taken) and coordinate the restarted session
// like a launched one.
import { existsSync, lstatSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { sessionEnv, stdioIdentity } from './environment.js';
import { chainOf, type Generation } from './generations.js';
import { asArray, asNumber, asString, imageIds, imagePid, type Image } from './image.js';
import { removeMadeFiles } from './files-late.js';
import { FilesError, restoreFiles, skipDirsFor, stdioInheritEnv, type FilesRecord } from './files.js';
import { restoreDirs, SnapshotDirError } from './snapdir.js';
import { acceptedCopies, CARRIED } from './contents.js';
import { adoptChild, isNativeError, spawnChild } from './native.js';
import { displayPath, trace, writeErr } from './output.js';
import { restoreHostPath, shimPath } from './paths.js';
import { DEFAULT_DIR } from './protocol.js';
import { fallbackLines, locateTarget, prepareTarget, RestartError, type Prepared, type Target } from './restart-source.js';
import { HostPlacement, pidState, withTrust, type RestartedSession, type RestartOptions } from './restart-host.js';
import { checkpointDirFor, Coordinator, DEFAULT_INTERNAL_SIGNAL, openSession } from './session.js';
import { checkCredentials, checkOwners, imageFiles, TrustError, type Owned } from './trust.js';
import { isIntegrityError, readGeneration, verifyProcess, type Skipped } from './verify.js';

export { RestartError } from './restart-source.js';
export type { RestartedSession, RestartOptions } from './restart-host.js';

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

/** What a restart names, as far as it is known before anything is read: its owners are checked first. */
function targetPaths(t: Target): Owned[] {
  if (t.kind === 'dir') return [{ what: 'checkpoint directory', path: t.dir }];
  if (t.kind === 'generation')
    return [
      { what: 'checkpoint directory', path: t.sourceDir },
      { what: 'generation', path: t.path },
    ];
  const paths: Owned[] = [];
  if (t.sourceDir) paths.push({ what: 'checkpoint directory', path: t.sourceDir });
  if (t.genDir) paths.push({ what: 'generation', path: t.genDir });
  paths.push({ what: 'image', path: t.path });
  return paths;
}

/**
 * Who every process of the prepared generation will run as, before any
 * process exists: its generation, manifest and images (compressed ones as
 * stored, and every image one refers to) belong to the restarter (unless
 * trusted), and each image's credentials are ones this restart may give.
 */
async function checkWhoRuns(target: Target, prepared: Prepared, owners: Map<string, number>, trust: boolean): Promise<void> {
  const g = prepared.generation;
  // the images as stored (a compressed one was decompressed into a file of the restarter's)
  const stored = target.kind === 'image' ? [target.path] : g!.manifest.processes.map((p) => join(g!.path, p.image));
  const decompressed = (path: string): boolean =>
    path === prepared.temporary || (prepared.staged !== undefined && path.startsWith(prepared.staged + '/'));
  const paths = [
    ...ownedPaths({ sourceDir: prepared.sourceDir, generation: g, images: stored }),
    ...prepared.images.flatMap((img) => imageFiles(img)).filter((f) => !decompressed(f.path)),
  ].filter((p) => !owners.has(p.path));
  try {
    for (const [path, uid] of await checkOwners(paths, trust)) owners.set(path, uid);
    prepared.images.forEach((img, i) => {
      // a decompressed copy is the restarter's: what counts is the stored image's owner
      if (decompressed(img.path)) owners.set(img.path, owners.get(stored[i]!) ?? -1);
      checkCredentials(img, owners);
    });
  } catch (e) {
    throw asRestartError(e);
  }
}

export interface RestartSource {
  image: Image;
  generation: Generation | undefined;
  /** The checkpoint DIR the image came from, when it came from one. */
  sourceDir: string | undefined;
  /** Newer generations of that DIR that could not be used, and why. */
  skipped: Skipped[];
}

/**
 * Finds the image a restart would use and verifies it with its generation
 * (manifest, every image against it, header, metadata and, unless
 * verifyData is false, every data chunk; a `.ckpt.gz` is decompressed into
 * a temporary file for this and that file removed). For a checkpoint DIR
 * that is the newest generation that verifies (`skipped` lists the newer
 * ones). A refusal is a RestartError naming the problem and the way out.
 */
export async function pickImage(opts: { image?: string; dir?: string; verifyData?: boolean }): Promise<RestartSource> {
  const p = await prepareTarget(await locateTarget(opts), opts.verifyData ?? true);
  await p.release();
  if (p.family)
    throw new RestartError(
      `generation ${displayPath(p.generation!.path)} holds a family of ${p.images.length} processes, which is restarted as a whole (ckrun restart ${displayPath(p.generation!.path)})`,
    );
  return { image: p.images[0]!, generation: p.generation, sourceDir: p.sourceDir, skipped: p.skipped };
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
/**
 * The generation's written files put back as they were at its checkpoint
 * (src/files.ts), before any process exists; the options the restart goes
 * on with: the restore host told when files are left as they are
 * (`--files=none`) and, with `--stdio=inherit`, which files were the
 * session's stdio (the program's stdio files are otherwise opened again
 * by path at their offsets, like any file).
 */
function putFilesBack(opts: RestartOptions, prepared: Prepared, warn: (line: string) => void): RestartOptions {
  const gen = prepared.generation;
  const record = gen?.manifest.files;
  if (!gen || !record) return opts;
  let done: string[];
  try {
    const owner = lstatSync(gen.path).uid;
    const dirs = record.dirs?.length ? restoreDirs(gen.path, record.dirs, { owner, keep: keptInPlace(record), skipDirs: snapshotSkips(opts, prepared) }) : undefined;
    // first: a file made at the path of one the checkpoint had (removed, then made again) gives way to it
    const removed = removeMadeFiles(record.made ?? [], owner, warn, record.moved ?? []);
    done = [...(dirs?.changed ?? []), ...restoreFiles(gen.path, record, owner), ...removed];
    dirs?.finish();
  } catch (e) {
    if (e instanceof FilesError || e instanceof SnapshotDirError) throw new RestartError(e.message);
    throw e;
  }
  if (done.length > 0 && opts.verbose) warn(`put back as at the checkpoint: ${done.join(', ')}`);
  const env: NodeJS.ProcessEnv = { ...(opts.env ?? process.env) };
  delete env['CKRUN_FILES'];
  delete env['CKRUN_STDIO_INHERIT'];
  if (record.policy === 'none') env['CKRUN_FILES'] = 'none';
  if (opts.stdioInherit && record.stdio.length > 0) env['CKRUN_STDIO_INHERIT'] = stdioInheritEnv(record);
  return { ...opts, files: opts.files ?? record.policy, env };
}

/** Files the written files' restore puts back in place (their inode kept): a snapshot directory leaves them to it. */
function keptInPlace(record: FilesRecord): Set<string> {
  return new Set(record.policy === 'snapshot' ? record.saved.filter((f) => f.how !== 'recreate').map((f) => f.path) : []);
}

/** The checkpoint directories (the generation's and where the restarted session writes): never part of a snapshot directory. */
function snapshotSkips(opts: RestartOptions, prepared: Prepared): string[] {
  const gen = prepared.generation!;
  return [...new Set([...skipDirsFor(dirname(gen.path)), ...skipDirsFor(opts.dir ?? prepared.sourceDir ?? DEFAULT_DIR)])];
}

/**
 * The files the images map that are copies of the checkpoint's (another
 * inode or time, the same bytes), which the restore host then takes
 * (CKRUN_FILES_SAME, src/contents.ts); never one inherited from ckrun's own
 * environment.
 */
async function withSameContent(opts: RestartOptions, prepared: Prepared): Promise<RestartOptions> {
  const env: NodeJS.ProcessEnv = { ...(opts.env ?? process.env) };
  for (const k of ['CKRUN_FILES_SAME', 'CKRUN_FILES_CARRIED', 'CKRUN_CARRIED_DIR']) delete env[k];
  const gen = prepared.generation;
  const carried = gen?.manifest.portable ? join(gen.path, CARRIED) : undefined;
  const r = await acceptedCopies(prepared.images, gen?.manifest.contents, carried);
  if (r.same) env['CKRUN_FILES_SAME'] = r.same;
  if (r.carried && carried) {
    env['CKRUN_FILES_CARRIED'] = r.carried;
    env['CKRUN_CARRIED_DIR'] = carried;
  }
  return { ...opts, env };
}

export async function restart(opts: RestartOptions = {}): Promise<RestartedSession> {
  trace('restart started');
  if (opts.adopt) return adoptRestored(opts, opts.adopt);
  const baseEnv = opts.env ?? process.env;
  const host = opts.restoreHost ?? restoreHostPath(baseEnv);
  if (!existsSync(host))
    throw new RestartError(`the restore host ${host} is missing: build ckrun with npm install (or set CKRUN_RESTORE_HOST)`);
  const verifyData = opts.verifyData ?? true;
  // Everything that can refuse runs here, before any process exists.
  const target = await locateTarget({ image: opts.image, dir: opts.image === undefined ? opts.dir : undefined });
  const trust = opts.trustOwner === true;
  const owners = await checkOwners(targetPaths(target), trust).catch((e: unknown) => {
    throw asRestartError(e);
  });
  const prepared = await prepareTarget(target, verifyData, opts.verifyCache);
  trace(verifyData ? 'image verified (data too)' : 'image verified (header and metadata)');
  const warn = opts.warn ?? ((line: string) => writeErr(`ckrun restart: ${line}\n`));
  for (const line of fallbackLines(prepared)) warn(line);
  try {
    await checkWhoRuns(target, prepared, owners, trust);
    // where further checkpoints go must be trustworthy before anything is written
    await checkpointDirFor(opts.dir ?? prepared.sourceDir ?? DEFAULT_DIR);
    opts = putFilesBack(opts, prepared, warn);
    opts = await withSameContent(opts, prepared);
    let session: RestartedSession;
    if (prepared.family) {
      // A family (a generation of more than one process) is rebuilt by the restore orchestrator.
      const { restartFamily } = await import('./restart-tree.js');
      session = await restartFamily(opts, host, prepared);
    } else session = await restartFrom(opts, host, prepared);
    session.ready.then(prepared.release, prepared.release);
    return session;
  } catch (e) {
    await prepared.release();
    throw e;
  }
}

/**
 * The session of a program the restore host restored before node started
 * (preload/front.c). The restore host made every check this reader makes
 * (and more) before it created the process; should this reader still
 * refuse the image, the program is ended, not left running unverified.
 */
async function adoptRestored(opts: RestartOptions, adopt: { pid: number; fd: number }): Promise<RestartedSession> {
  const path = resolve(opts.image ?? '');
  const genDir = join(path, '..');
  let image: Image;
  let generation: Generation | undefined;
  try {
    generation = await readGeneration(genDir);
    const entry = generation.manifest.processes.find((p) => join(genDir, p.image) === path);
    if (!entry) throw new RestartError(`the manifest of ${displayPath(genDir)} does not name ${displayPath(path)}`);
    image = await verifyProcess(generation, entry, { verifyData: false });
  } catch (e) {
    try {
      process.kill(adopt.pid, 'SIGKILL');
    } catch {
      // gone already
    }
    if (!isIntegrityError(e) && !(e instanceof RestartError)) throw e;
    throw new RestartError(
      `internal error: the restore host restored ${displayPath(path)} although ckrun's reader refuses it (${e.message}); ` +
        `the restarted program (PID ${adopt.pid}) was ended. Please report this; node bin/ckrun.js restart gives the full refusal`,
      70,
    );
  }
  const pid = imagePid(image);
  const internalSignal = asNumber(image.meta['signal']) ?? DEFAULT_INTERNAL_SIGNAL;
  let session: Coordinator;
  try {
    session = await openSession({ ...opts, dir: opts.dir ?? join(genDir, '..') }, internalSignal, adopt.fd);
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
  startRestored(session, image, generation, pid, adopt.pid, undefined);
  trace('session adopted');
  return Object.assign(session, { image, generation, pidNamespace: false }) as Coordinator & RestartedSession;
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
    ...(manifest?.files && generation ? { files: { record: manifest.files, path: generation.path } } : {}),
    ...(generation ? { generationPath: generation.path, generationNs: generation.manifest.created_ns } : {}),
    ...(manifest?.portable && generation ? { carried: join(generation.path, CARRIED) } : {}),
  });
}

async function restartFrom(opts: RestartOptions, host: string, prepared: Prepared): Promise<RestartedSession> {
  const baseEnv = opts.env ?? process.env;
  const image = prepared.images[0]!;
  const { generation, temporary } = prepared;
  const imageName = displayPath(image.path);
  const pid = imagePid(image);
  const internalSignal = asNumber(image.meta['signal']) ?? DEFAULT_INTERNAL_SIGNAL;
  const checkpointDir = opts.dir ?? prepared.sourceDir ?? DEFAULT_DIR;
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
  // its zombies are forked again with their PIDs too
  const tids = imageIds([image]);
  // ckrun has verified the data already (or was told not to): one read is enough.
  const hostArgs = ['--no-verify-data', temporary ?? image.path];

  let child: number | undefined;
  // Choosing a PID in ckrun's own namespace takes root; anyone can in a
  // user and PID namespace of their own.
  const root = process.geteuid?.() === 0;
  const place = new HostPlacement(session, opts.newPidNamespace === true || !root, 'an ID the process needs', (onExit) =>
    spawnChild({ file: host, argv: [host, '--init', ...hostArgs], env, fds: [...stdio], newPidNs: true, newUserNs: !root }, onExit),
  );
  try {
    if (!place.pidNamespace) {
      const deadline = Date.now() + (opts.pidWaitMs ?? 3000);
      for (;;) {
        const states = await Promise.all(tids.map(async (t) => [t, await pidState(t)] as const));
        const live = states.find(([, s]) => s === 'live');
        if (live) {
          session.verboseLog(`${await describePid(live[0])} is in use: restoring in a new PID namespace`);
          place.pidNamespace = true;
          break;
        }
        if (states.every(([, s]) => s === 'free')) {
          try {
            child = spawnChild({ file: host, argv: [host, ...hostArgs], env, fds: [...stdio], setTid: pid }, place.onExit);
            break;
          } catch (e) {
            if (!isNativeError(e) || e.code !== 'EEXIST') throw e;
            // taken meanwhile: look again
          }
        }
        if (Date.now() >= deadline) {
          session.verboseLog(`PID ${pid} did not become free within ${opts.pidWaitMs ?? 3000} ms: restoring in a new PID namespace`);
          place.pidNamespace = true;
          break;
        }
        await sleep(50);
      }
    }
    if (child === undefined) child = place.startInFreshNamespace();
  } catch (e) {
    await session.close();
    if (isNativeError(e)) {
      if (e.code === 'EPERM')
        throw new RestartError(
          root
            ? `cannot restore ${imageName}: ${place.pidNamespace ? 'a new PID namespace' : `creating PID ${pid}`} was refused: ${e.message}`
            : `cannot restore ${imageName}: this system does not let ordinary users create user namespaces ` +
                `(${e.message}); run ckrun restart as root, or allow unprivileged user namespaces`,
        );
      throw new RestartError(`cannot start the restore host for ${imageName}: ${e.message}`, e.code === 'ENOENT' ? 127 : 126);
    }
    throw e;
  }
  trace('restore host started');
  startRestored(session, image, generation, pid, child, temporary);
  return Object.defineProperties(session, {
    image: { value: image, enumerable: true },
    generation: { value: generation, enumerable: true },
    pidNamespace: { get: () => place.pidNamespace, enumerable: true },
  }) as Coordinator & RestartedSession;
}
