// What a session's program gets: its environment, its resolved path, and the
// identities of ckrun's stdio.
import { accessSync, constants, fstatSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/** `<dev>:<ino>` of each descriptor (decimal; `0:0` for a closed one). */
export function stdioIdentity(fds: readonly number[] = [0, 1, 2]): string {
  return fds
    .slice(0, 3)
    .map((fd) => {
      try {
        const st = fstatSync(fd, { bigint: true });
        return `${st.dev}:${st.ino}`;
      } catch {
        return '0:0';
      }
    })
    .join(',');
}

export interface SessionEnvAdditions {
  /** Socket name without the leading NUL. */
  sock: string;
  /** Value of CKRUN_STDIO. */
  stdio: string;
  /** The shim's internal signal. */
  signal: number;
  /** Shim to prepend to LD_PRELOAD, or null for none. */
  preload: string | null;
  /** Shim to remove from an inherited LD_PRELOAD (the restore host links it itself). */
  stripPreload?: string | null;
}

function splitPreload(v: string | undefined): string[] {
  return (v ?? '').split(/[: ]+/).filter((s) => s !== '');
}

/** The program's environment as "K=V" strings: base plus the session's additions. */
export function sessionEnv(base: NodeJS.ProcessEnv, add: SessionEnvAdditions): string[] {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.includes('=')) env[k] = v;
  let preload = splitPreload(env['LD_PRELOAD']);
  if (add.stripPreload) preload = preload.filter((p) => p !== add.stripPreload);
  if (add.preload !== null) preload = [add.preload, ...preload.filter((p) => p !== add.preload)];
  if (preload.length > 0) env['LD_PRELOAD'] = preload.join(':');
  else delete env['LD_PRELOAD'];
  env['CKRUN_SOCK'] = add.sock;
  env['CKRUN_STDIO'] = add.stdio;
  env['CKRUN_SIGNAL'] = String(add.signal);
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

export class ProgramNotFoundError extends Error {
  readonly code = 'ENOENT';
  constructor(readonly program: string) {
    super(`${program}: command not found`);
    this.name = 'ProgramNotFoundError';
  }
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The path to execve for PROGRAM: as given (relative to cwd) when it holds a
 * slash, else the first executable match on PATH, like a shell.
 */
export function resolveProgram(program: string, path: string | undefined, cwd: string): string {
  if (program.includes('/')) return isAbsolute(program) ? program : resolve(cwd, program);
  for (const dir of (path ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const candidate = resolve(cwd, join(dir === '' ? '.' : dir, program));
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new ProgramNotFoundError(program);
}
