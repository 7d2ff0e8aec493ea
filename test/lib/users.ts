// Running ckrun as another user (tests of what an ordinary user can do, and
// attacks as user nobody against a root session). The checkout may sit in a
// directory only root can enter (a clean clone under /root), so such tests
// run a copy of the built ckrun that every user can read and execute.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EXAMPLE_BIN, ROOT } from './paths.js';
import { buildExamples } from './examples.js';

export const NOBODY = 65534;
export const NOGROUP = 65534;

export interface UserRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** argv that runs `bash -c script` as uid/gid with no supplementary groups. */
export function asUserArgv(uid: number, gid: number, script: string): string[] {
  return ['setpriv', '--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--reset-env', 'bash', '-c', script];
}

/** Runs `bash -c script` as uid/gid and collects its output. Fails (throws) only when setpriv cannot run. */
export function asUser(uid: number, gid: number, script: string, timeoutMs = 60_000): Promise<UserRun> {
  if (process.geteuid?.() !== 0) throw new Error('this test runs commands as another user, which needs root: run npm test as root');
  const [cmd, ...args] = asUserArgv(uid, gid, script);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run setpriv (util-linux) to act as user ${uid}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function readableBy(uid: number, gid: number, dir: string): boolean {
  const probe = [
    path.join(dir, 'bin', 'ckrun.js'),
    path.join(dir, 'build', 'Release', 'ckrun_native.node'),
    path.join(dir, 'node_modules', 'cbor-x', 'package.json'),
  ];
  const [cmd, ...args] = asUserArgv(uid, gid, probe.map((p) => `test -r '${p}'`).join(' && '));
  return spawnSync(cmd!, args, { stdio: 'ignore' }).status === 0;
}

let shared: string | undefined;

/**
 * A ckrun checkout every user can run: the repository itself when user
 * nobody can read it, otherwise a copy of its runtime (bin, dist, the
 * build, node_modules, the built examples) in a fresh world-readable directory, made once per
 * test process and removed when it exits.
 */
export function sharedCkrun(): { root: string; ckrunJs: string; ckrunSh: string; examples: string } {
  if (!shared) {
    buildExamples();
    if (readableBy(NOBODY, NOGROUP, ROOT)) {
      shared = ROOT;
    } else {
      const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'ckrun-shared-'));
      for (const part of ['package.json', 'bin', 'dist', 'build', 'node_modules', path.relative(ROOT, EXAMPLE_BIN)])
        fs.cpSync(path.join(ROOT, part), path.join(copy, part), { recursive: true, verbatimSymlinks: true });
      spawnSync('chmod', ['-R', 'a+rX', copy]);
      process.on('exit', () => fs.rmSync(copy, { recursive: true, force: true }));
      shared = copy;
    }
  }
  return {
    root: shared,
    ckrunJs: path.join(shared, 'bin', 'ckrun.js'),
    ckrunSh: path.join(shared, 'bin', 'ckrun'),
    examples: path.join(shared, path.relative(ROOT, EXAMPLE_BIN)),
  };
}
