// Driving the `ckrun` command line (bin/ckrun.js, bin/ckrun) as a user
// would: launch, restart, checkpoint, any other subcommand.
import { execa } from 'execa';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { socketNameFor } from '../../src/protocol.js';
import { generations } from './images.js';
import { CKRUN, CKRUN_SH, NODE, T_CKPT } from './paths.js';
import { Proc, sleep } from './proc.js';

/** Start `ckrun [--dir DIR] [--interval S] [--signal SIG] [EXTRA...] -- PROGRAM...`. */
export function launch(o: {
  program: string[];
  dir?: string;
  interval?: number;
  signal?: string;
  /** more options for ckrun (before `--`) */
  extra?: string[];
  cwd?: string;
  env?: Record<string, string>;
  input?: string;
  label?: string;
}): Proc {
  const args = [CKRUN];
  if (o.dir !== undefined) args.push('--dir', o.dir);
  if (o.interval !== undefined) args.push('--interval', String(o.interval));
  if (o.signal !== undefined) args.push('--signal', o.signal);
  args.push(...(o.extra ?? []), '--', ...o.program);
  return new Proc(NODE, args, { cwd: o.cwd, env: o.env, input: o.input, label: o.label ?? `ckrun ${path.basename(o.program[0])}` });
}

/** Start `ckrun restart [--dir DIR | IMAGE]`. */
export function restart(o: {
  dir?: string;
  image?: string;
  cwd?: string;
  label?: string;
  extra?: string[];
  /** through bin/ckrun, whose restore host restores before node starts */
  front?: boolean;
  env?: Record<string, string>;
}): Proc {
  const args = o.front ? ['restart'] : [CKRUN, 'restart'];
  if (o.dir !== undefined) args.push('--dir', o.dir);
  if (o.image !== undefined) args.push(o.image);
  args.push(...(o.extra ?? []));
  return new Proc(o.front ? CKRUN_SH : NODE, args, { cwd: o.cwd, env: o.env, label: o.label ?? 'ckrun restart' });
}

export interface CliResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  describe(): string;
}

/** Run `ckrun ARGS...` to completion (with front: through bin/ckrun, see restart()). */
export async function ckrun(
  args: string[],
  o: { cwd?: string; input?: string; timeout?: number; env?: Record<string, string>; front?: boolean } = {},
): Promise<CliResult> {
  const r = (await execa(o.front ? CKRUN_SH : NODE, o.front ? args : [CKRUN, ...args], {
    cwd: o.cwd,
    env: o.env,
    input: o.input ?? '',
    reject: false,
    timeout: o.timeout ?? T_CKPT,
    stripFinalNewline: false,
  })) as unknown as {
    exitCode?: number;
    signal?: string;
    stdout: string;
    stderr: string;
    timedOut: boolean;
  };
  const res: CliResult = {
    code: r.exitCode ?? null,
    signal: r.signal ?? null,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    timedOut: r.timedOut,
    describe() {
      return [
        `ckrun ${args.join(' ')}`,
        `  ${res.timedOut ? 'TIMED OUT' : res.signal ? `killed by ${res.signal}` : `exit status ${res.code}`}`,
        `  stdout: ${res.stdout.trimEnd() || '(empty)'}`,
        `  stderr: ${res.stderr.trimEnd() || '(empty)'}`,
      ].join('\n');
    },
  };
  return res;
}

/** Turn what `ckrun checkpoint` printed (a generation directory or an image in it) into the generation directory. */
function generationOf(printed: string, cwd: string): string {
  const p = path.resolve(cwd, printed);
  if (fs.existsSync(path.join(p, 'manifest.cbor'))) return p;
  if (fs.existsSync(p) && fs.statSync(p).isFile() && fs.existsSync(path.join(path.dirname(p), 'manifest.cbor')))
    return path.dirname(p);
  throw new Error(`ckrun checkpoint printed ${JSON.stringify(printed)}, which is no complete generation (no manifest.cbor)`);
}

/** `ckrun checkpoint --dir DIR`: must exit 0 and print the new generation; returns its directory. */
export async function checkpoint(dir: string | undefined, o: { cwd?: string } = {}): Promise<string> {
  const r = await ckrun(dir === undefined ? ['checkpoint'] : ['checkpoint', '--dir', dir], { cwd: o.cwd });
  if (r.code !== 0) throw new Error(`checkpoint failed:\n${r.describe()}`);
  const printed = r.stdout.trim().split('\n').filter(Boolean).pop() ?? '';
  if (!printed) throw new Error(`ckrun checkpoint printed no path:\n${r.describe()}`);
  return generationOf(printed, o.cwd ?? process.cwd());
}

/** Wait for a complete generation in DIR that is not in `before`; returns its directory. */
export async function waitForGeneration(dir: string, before: number[], proc?: Proc, timeoutMs = T_CKPT): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const fresh = generations(dir).filter((g) => !before.includes(g));
    if (fresh.length) return path.join(dir, String(fresh[fresh.length - 1]));
    if (Date.now() > end)
      throw new Error(
        `no new generation in ${dir} within ${timeoutMs / 1000} s (have: ${generations(dir).join(', ') || 'none'}; entries: ${safeList(dir)})` +
          (proc ? `\n${proc.describe()}` : ''),
      );
    if (proc && !proc.running) {
      await sleep(200);
      const again = generations(dir).filter((g) => !before.includes(g));
      if (again.length) return path.join(dir, String(again[again.length - 1]));
      throw new Error(`ckrun ended while waiting for a checkpoint in ${dir}\n${proc.describe()}`);
    }
    await sleep(50);
  }
}

function safeList(dir: string): string {
  try {
    return fs.readdirSync(dir).join(' ') || '(empty)';
  } catch (e) {
    return String(e);
  }
}

/** `kill -USR2 <ckrun>` (or another signal), then wait for the new generation. */
export async function checkpointBySignal(proc: Proc, dir: string, sig: NodeJS.Signals = 'SIGUSR2'): Promise<string> {
  const before = generations(dir);
  process.kill(proc.pid, sig);
  return waitForGeneration(dir, before, proc);
}

/** The name ckrun gives the session socket of DIR (ckrun's own function: a copy went stale once). */
export function sessionSocketName(dir: string): string {
  return socketNameFor(fs.realpathSync(dir));
}
