// `ckrun restart` of a generation that holds a family (more than one
// process, or a daemon that outlived the program ckrun started): every
// image was verified with the generation (src/restart-source.ts), then the
// restore orchestrator `ckrun-restore --tree GENERATION` (as ckrun's child,
// or `--init --tree` as PID 1 of a fresh PID namespace when a PID of the
// family is taken) checks them all again and rebuilds the tree; the session
// is ready once every process said `restored`, and it ends when the
// orchestrator, which outlives the family, exits.
import { join } from 'node:path';
import { sessionEnv, stdioIdentity } from './environment.js';
import { asNumber, imageIds } from './image.js';
import { exitStatus, isNativeError, spawnChild, type ExitStatus } from './native.js';
import { displayPath } from './output.js';
import { shimPath } from './paths.js';
import { DEFAULT_DIR } from './protocol.js';
import { chainOf } from './generations.js';
import { CARRIED } from './contents.js';
import { pidState, withTrust, type RestartedSession, type RestartOptions } from './restart-host.js';
import { RestartError, type Prepared } from './restart-source.js';
import { Coordinator, DEFAULT_INTERNAL_SIGNAL, openSession } from './session.js';

/** ckrun-restore's exit status when a PID or TID of the family is in use (preload/restore.h). */
export const EXIT_PIDS_TAKEN = 75;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
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
    ...(m.files ? { files: { record: m.files, path: generation.path } } : {}),
    ...(m.portable ? { carried: join(generation.path, CARRIED) } : {}),
  });
  return Object.defineProperties(session, {
    image: { value: rootImage, enumerable: true },
    generation: { value: generation, enumerable: true },
    pidNamespace: { get: () => state.pidNamespace, enumerable: true },
  }) as Coordinator & RestartedSession;
}
