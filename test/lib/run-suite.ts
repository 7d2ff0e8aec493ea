// `npm test` runs uvu through this: uvu is the child of a child subreaper
// that reaps every other process reparented to it at once, as a
// container's init does. A family the suite kills with its ckrun is
// reparented here, and its PIDs are free again the moment its processes
// are gone: the restarts that follow take their PIDs back without waiting
// for the machine's init, which here reaps orphans only every 2 s or so
// (a restart would wait for that, or restore in a fresh PID namespace).
// ckrun itself is unchanged; its own waits are tested where they matter.
import * as path from 'node:path';
import { spawnChild } from '../../src/native.js';
import { ROOT } from './paths.js';

const uvu = path.join(ROOT, 'node_modules', 'uvu', 'bin.js');
const env = Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
// the reaper's thread does not keep node's loop alive
const alive = setInterval(() => undefined, 1 << 30);
spawnChild({ file: process.execPath, argv: [process.execPath, uvu, ...process.argv.slice(2)], env }, (st) => {
  clearInterval(alive);
  process.exit(st.status);
});
