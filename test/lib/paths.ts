// Where the repository, the command and the examples are, and how long
// the tests wait for things.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'ckrun') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the ckrun repository root');
    dir = up;
  }
}

export const ROOT = findRoot();
export const CKRUN = path.join(ROOT, 'bin', 'ckrun.js');
export const EXAMPLES = path.join(ROOT, 'examples');
export const EXAMPLE_BIN = path.join(EXAMPLES, 'bin');
export const NODE = process.execPath;

/** Generous limits: the suite must not hang, but a slow machine must not fail it either. */
export const T_STEP = 60_000; // for a program to reach a given output line
export const T_EXIT = 90_000; // for a program to finish
export const T_CKPT = 60_000; // for a checkpoint to complete
export const T_GONE = 15_000; // for killed processes to be reaped

/** The command users run (bin/ckrun): its `restart` starts in the restore host (preload/front.c). */
export const CKRUN_SH = path.join(ROOT, 'bin', 'ckrun');
