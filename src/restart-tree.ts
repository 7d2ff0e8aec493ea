// `ckrun restart` of a generation that holds a family (more than one
// process, or a daemon that outlived the program ckrun started): every
// image was verified with the generation (src/restart-source.ts), then the
// restore orchestrator `ckrun-restore --tree GENERATION` (as ckrun's child,
// or `--init --tree` as PID 1 of a fresh PID namespace when a PID of the
// family is taken) checks them all again and rebuilds the tree; the session
// is ready once every process said `restored`, and it ends when the
// orchestrator, which outlives the family, exits.
import { closeSync, constants, openSync } from 'node:fs';
import { join } from 'node:path';
import { sessionEnv, stdioIdentity } from './environment.js';
import { asArray, asMap, asNumber, imageIds, type CborValue, type Image } from './image.js';
import { isNativeError, spawnChild } from './native.js';
import { displayPath } from './output.js';
import { shimPath } from './paths.js';
import { DEFAULT_DIR } from './protocol.js';
import { chainOf } from './generations.js';
import { CARRIED } from './contents.js';
import { HostPlacement, pidState, withTrust, type RestartedSession, type RestartOptions } from './restart-host.js';
import { RestartError, type Prepared } from './restart-source.js';
import { Coordinator, DEFAULT_INTERNAL_SIGNAL, openSession } from './session.js';


function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Whether this process has a controlling terminal (a new session would lose it). */
function hasControllingTerminal(): boolean {
  try {
    closeSync(openSync('/dev/tty', constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK));
    return true;
  } catch {
    return false;
  }
}

/**
 * The orchestrator takes the PID of the ckrun (or orchestrator) the family
 * ran under, when it is free: the processes that had become ckrun's (the
 * root, daemons, orphans of a session) find the same parent PID again.
 * When ckrun led the session and group the root stayed in (`setsid ckrun`,
 * a service, a terminal window), the orchestrator opens that session again
 * itself (preload/restore.c), unless this restart has a controlling
 * terminal to keep; any other group or session that bears the PID is made
 * again by a stand-in with it.
 */
async function parentPid(root: Image, ids: number[], groups: ReadonlySet<number>): Promise<{ setTid?: number; dying?: boolean }> {
  const pid = asNumber(root.meta['ppid']);
  const ledByCkrun = pid !== undefined && asNumber(root.meta['sid']) === pid && asNumber(root.meta['pgid']) === pid;
  if (pid === undefined || pid <= 1 || ids.includes(pid)) return {};
  if (groups.has(pid) && !(ledByCkrun && !hasControllingTerminal())) return {};
  const state = await pidState(pid);
  return state === 'free' ? { setTid: pid } : { dying: state === 'dying' };
}

/** Every process group and session ID of the family, its zombies' too. */
function groupAndSessionIds(images: readonly Image[]): Set<number> {
  const out = new Set<number>();
  const add = (v: CborValue | undefined): void => {
    const n = asNumber(v);
    // 0: a leader outside the PID namespace ckrun ran in
    if (n !== undefined && n > 0) out.add(n);
  };
  for (const img of images) {
    add(img.meta['pgid']);
    add(img.meta['sid']);
    for (const cm of asArray(img.meta['children']).map(asMap)) {
      add(cm['pgid']);
      add(cm['sid']);
    }
  }
  return out;
}

/** Restarts a verified family and returns at once; await `session.ready` and `session.exited`. */
export async function restartFamily(opts: RestartOptions, host: string, prepared: Prepared): Promise<RestartedSession> {
  const generation = prepared.generation!;
  const { images, staged } = prepared;
  const m = generation.manifest;
  const where = displayPath(generation.path);
  const rootIndex = Math.max(
    0,
    m.processes.findIndex((p) => p.pid === m.root),
  );
  const rootImage = images[rootIndex]!;
  const internalSignal = asNumber(rootImage.meta['signal']) ?? DEFAULT_INTERNAL_SIGNAL;
  const session = await openSession({ ...opts, dir: opts.dir ?? prepared.sourceDir ?? DEFAULT_DIR }, internalSignal);
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
  const ids = imageIds(images);
  const groups = groupAndSessionIds(images);
  const root = process.geteuid?.() === 0;
  const place = new HostPlacement(session, opts.newPidNamespace === true || !root, 'a PID of the family', (onExit) =>
    spawnChild({ file: host, argv: [host, '--init', ...hostArgs], env, fds: [...stdio], newPidNs: true, newUserNs: !root }, onExit),
  );

  let child: number | undefined;
  try {
    if (!place.pidNamespace) {
      const deadline = Date.now() + (opts.pidWaitMs ?? 3000);
      const parentDeadline = Date.now() + 1000; // at most 1 s for a dying ckrun's PID, never holding up a restart long
      for (;;) {
        const states = await Promise.all(ids.map(async (t) => [t, await pidState(t)] as const));
        const live = states.find(([, s]) => s === 'live');
        if (live) {
          session.verboseLog(`PID ${live[0]} is in use: restoring the family in a new PID namespace`);
          place.pidNamespace = true;
          break;
        }
        // the PID of the ckrun the family ran under, for the orchestrator: one killed with the family is waited for
        const parent = await parentPid(rootImage, ids, groups);
        if (states.every(([, s]) => s === 'free') && (parent.dying !== true || Date.now() >= parentDeadline)) {
          const spawn = (extra: { setTid?: number }): number => spawnChild({ file: host, argv: [host, ...hostArgs], env, fds: [...stdio], ...extra }, place.onExit);
          try {
            child = spawn(parent.setTid === undefined ? {} : { setTid: parent.setTid });
          } catch (e) {
            // that PID was taken meanwhile: the parent PID then differs, as documented
            if (parent.setTid === undefined || !isNativeError(e) || e.code !== 'EEXIST') throw e;
            child = spawn({});
          }
          break;
        }
        if (Date.now() >= deadline) {
          session.verboseLog(`the family's PIDs did not become free within ${opts.pidWaitMs ?? 3000} ms: restoring in a new PID namespace`);
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
    ...(m.files ? { files: { record: m.files, path: generation.path } } : {}),
    generationPath: generation.path,
    generationNs: m.created_ns,
    ...(m.portable ? { carried: join(generation.path, CARRIED) } : {}),
  });
  return Object.defineProperties(session, {
    image: { value: rootImage, enumerable: true },
    generation: { value: generation, enumerable: true },
    pidNamespace: { get: () => place.pidNamespace, enumerable: true },
  }) as Coordinator & RestartedSession;
}
