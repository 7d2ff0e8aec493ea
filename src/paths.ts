// Where the built pieces live, relative to the package root.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The directory holding ckrun's package.json (works from src/ and dist/src/). */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        const parsed: unknown = JSON.parse(readFileSync(pkg, 'utf8'));
        if (typeof parsed === 'object' && parsed !== null && (parsed as { name?: unknown }).name === 'ckrun') {
          root = dir;
          return dir;
        }
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find ckrun's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** build/Release, where node-gyp puts the shim, the restore host and the addon. */
export function buildDir(): string {
  return join(packageRoot(), 'build', 'Release');
}

/**
 * The shim to preload into launched programs. `CKRUN_SHIM_PATH` overrides it
 * (an empty value launches without LD_PRELOAD: only useful for tests with a
 * program that speaks the protocol itself).
 */
export function shimPath(env: NodeJS.ProcessEnv = process.env): string | null {
  const o = env['CKRUN_SHIM_PATH'];
  if (o !== undefined) return o === '' ? null : resolve(o);
  return join(buildDir(), 'libckrun.so');
}

/** The restore host (`CKRUN_RESTORE_HOST` overrides it, for tests). */
export function restoreHostPath(env: NodeJS.ProcessEnv = process.env): string {
  const o = env['CKRUN_RESTORE_HOST'];
  if (o !== undefined && o !== '') return resolve(o);
  return join(buildDir(), 'ckrun-restore');
}
