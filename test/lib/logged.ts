// ckrun run through a shell with its stdout and stderr in a file, as a
// batch job runs it (`ckrun … > log 2>&1`), and reading such files.
import * as fs from 'node:fs';
import { CKRUN, NODE } from './paths.js';
import { Proc } from './proc.js';
import type { Scope } from './scope.js';

/** `s` quoted for /bin/sh. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `ckrun ARGS > out 2>&1`: the shell execs ckrun, so the Proc's PID is ckrun's. */
export function logged(scope: Scope, args: string[], out: string, cwd: string, label: string): Proc {
  const line = `exec ${[NODE, CKRUN, ...args].map(shQuote).join(' ')} > ${shQuote(out)} 2>&1`;
  return scope.track(new Proc('/bin/sh', ['-c', line], { cwd, label }));
}

/** A file's text, or '' while it does not exist. */
export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
