// Output helpers. ckrun writes with fs.writeSync instead of process.stdout /
// process.stderr: those streams put pipes into O_NONBLOCK mode, and the
// program shares ckrun's stdio descriptions, so it would see EAGAIN.
import { writeSync } from 'node:fs';
import { relative, isAbsolute, sep } from 'node:path';

function writeAll(fd: number, text: string): void {
  let buf = Buffer.from(text, 'utf8');
  let spins = 0;
  while (buf.length > 0) {
    try {
      const n = writeSync(fd, buf);
      buf = buf.subarray(n);
      spins = 0;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' && spins++ < 1000) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        continue;
      }
      if (code === 'EPIPE' || code === 'EBADF' || code === 'EAGAIN') return;
      throw e;
    }
  }
}

export function writeOut(text: string): void {
  writeAll(1, text);
}

export function writeErr(text: string): void {
  writeAll(2, text);
}

/** 41 MiB, 12.3 MiB, 512 KiB, 100 bytes */
export function formatBytes(n: number | bigint): string {
  const v = Number(n);
  if (v < 1024) return `${v} byte${v === 1 ? '' : 's'}`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let x = v / 1024;
  let u = 0;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  const s = x < 10 ? x.toFixed(1) : Math.round(x).toString();
  return `${s.replace(/\.0$/, '')} ${units[u]}`;
}

/** 12 ms, 1.5 s, 850 µs */
export function formatDuration(ns: number | bigint): string {
  const v = Number(ns);
  if (v < 1e3) return `${v} ns`;
  if (v < 1e6) return `${(v / 1e3).toFixed(v < 1e4 ? 1 : 0)} µs`;
  if (v < 1e9) return `${(v / 1e6).toFixed(v < 1e7 ? 1 : 0)} ms`;
  return `${(v / 1e9).toFixed(v < 1e10 ? 2 : 1)} s`;
}

/** A path as the user would like to read it: relative when under cwd. */
export function displayPath(p: string, cwd: string = process.cwd()): string {
  if (!isAbsolute(p)) return p;
  const r = relative(cwd, p);
  if (r === '') return '.';
  if (r.startsWith('..' + sep) || r === '..' || isAbsolute(r)) return p;
  return r;
}

export function hex(n: number | bigint, width = 0): string {
  return '0x' + BigInt(n).toString(16).padStart(width, '0');
}

const tracing = ((): boolean => {
  const v = process.env['CKRUN_TRACE'];
  return v !== undefined && v !== '' && v !== '0';
})();

/**
 * CKRUN_TRACE=1: a phase of ckrun's own work and when it ended, in ms since
 * node started (performance.now()), on stderr (the shim traces its phases
 * the same way).
 */
export function trace(phase: string): void {
  if (tracing) writeErr(`ckrun[${process.pid}]: ${phase} at ${performance.now().toFixed(1)} ms\n`);
}
