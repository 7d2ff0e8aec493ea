// The restore host's own checks of a generation for `ckrun verify`
// (`ckrun-restore --check`): what a restart would refuse beyond the image
// reader's checks (a file the program mapped changed, another kernel's
// vdso, another shim ABI). The same code the restore runs.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { restoreHostPath } from './paths.js';

/** The restore host's refusal of the generation in `path` (its message), or undefined when it would go ahead. */
export function hostCheck(path: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const host = restoreHostPath(env);
  if (!existsSync(host)) return Promise.resolve(`the restore host ${host} is missing: build ckrun with npm install`);
  return new Promise((resolve) => {
    execFile(host, ['--check', '--no-verify-data', path], { env, timeout: 120_000 }, (err, _stdout, stderr) => {
      if (!err) {
        resolve(undefined);
        return;
      }
      const msg = stderr.trim().replace(/^ckrun restart: /gm, '').split('\n').filter(Boolean).join('; ');
      resolve(msg || `the restore host refuses it (${err.message})`);
    });
  });
}
