// What running under the shim costs: bench/programs/overhead.c natively and
// under a real ckrun session, interleaved; and the start-up of /bin/true and
// python3 -c pass natively, with the shim preloaded but no session, and with
// the shim in a live session.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bin, CKRUN, ckrunStartupNs, cleanEnv, environOf, NODE, programPid, startSession, WORK } from '../lib/ckrun.js';
import { waitQuietCpu } from '../lib/environment.js';
import { errorText, log } from '../lib/log.js';
import { run, runOk } from '../lib/proc.js';

export interface OverheadRun {
  mode: 'native' | 'ckrun';
  /** ns per operation, by operation name. */
  ops: Record<string, number>;
}

export interface OverheadResult {
  runs: OverheadRun[];
  errors: string[];
}

function parseOps(stdout: string): Record<string, number> {
  const ops: Record<string, number> = {};
  for (const m of stdout.matchAll(/^op (\S+) ([0-9.]+) \d+$/gm)) ops[m[1]!] = Number(m[2]);
  if (!/^done$/m.test(stdout)) throw new Error(`overhead did not finish; it printed:\n${stdout}`);
  return ops;
}

async function overheadOnce(mode: 'native' | 'ckrun', file: string, dir: string): Promise<OverheadRun> {
  const argv = [bin('overhead'), file];
  const r =
    mode === 'native'
      ? await runOk(argv[0]!, argv.slice(1), 300_000, { env: cleanEnv() })
      : await runOk(NODE, [CKRUN, '--dir', dir, '--', ...argv], 300_000, { env: cleanEnv() });
  return { mode, ops: parseOps(r.stdout) };
}

/** `runs` native and `runs` ckrun runs, alternating which goes first. */
export async function overheadSuite(runs: number): Promise<OverheadResult> {
  const out: OverheadResult = { runs: [], errors: [] };
  const file = join(WORK, 'overhead.dat');
  const dir = join(WORK, 'overhead-ckpt');
  writeFileSync(file, Buffer.alloc(4 << 20, 0x5a));
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < runs; i++) {
    const modes: ('native' | 'ckrun')[] = i % 2 === 0 ? ['native', 'ckrun'] : ['ckrun', 'native'];
    for (const mode of modes) {
      try {
        await waitQuietCpu(10_000);
        out.runs.push(await overheadOnce(mode, file, dir));
      } catch (e) {
        out.errors.push(`${mode}: ${errorText(e)}`);
        log(`  overhead ${mode} failed: ${errorText(e)}`);
      }
    }
    log(`  overhead round ${i + 1}/${runs} done`);
  }
  rmSync(file, { force: true });
  rmSync(dir, { recursive: true, force: true });
  return out;
}

export type StartupVariant = 'native' | 'shim, no session' | 'shim, live session';

export interface StartupResult {
  program: string;
  argv: string[];
  /** ns per start, by variant. */
  samples: Record<StartupVariant, number[]>;
  /** `ckrun --dir D -- PROGRAM` from spawn to exit, ns. */
  ckrunWhole: number[];
}

export interface StartupSuite {
  programs: StartupResult[];
  /** `ckrun --help` from spawn to exit, ns: ckrun's own start-up. */
  ckrunHelp: number[];
  /** The session environment the children got (LD_PRELOAD, CKRUN_*). */
  sessionEnv: Record<string, string>;
  errors: string[];
}

/** LD_PRELOAD and CKRUN_* of a live session's program. */
async function liveSessionEnv(dir: string): Promise<{ session: ReturnType<typeof startSession>; env: Record<string, string> }> {
  const session = startSession(dir, [bin('sleeper')], false);
  await session.waitLine((l) => l === 'ready', 30_000, 'sleeper ready');
  const pid = await programPid(session, 10_000);
  const env: Record<string, string> = {};
  for (const [k, v] of environOf(pid)) if (k === 'LD_PRELOAD' || k.startsWith('CKRUN_')) env[k] = v;
  if (!env['CKRUN_SOCK'] || !env['LD_PRELOAD']) throw new Error(`the session's program has no CKRUN_SOCK/LD_PRELOAD: ${JSON.stringify(env)}`);
  return { session, env };
}

function spawntimeArgs(variant: StartupVariant, env: Record<string, string>): string[] {
  const unset = ['-u', 'LD_PRELOAD', '-u', 'CKRUN_SOCK', '-u', 'CKRUN_STDIO', '-u', 'CKRUN_SIGNAL'];
  if (variant === 'native') return unset;
  if (variant === 'shim, no session') return [...unset, '-e', `LD_PRELOAD=${env['LD_PRELOAD']}`];
  return [...unset, ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`])];
}

async function spawnBatch(n: number, variant: StartupVariant, env: Record<string, string>, argv: string[]): Promise<number[]> {
  const r = await runOk(bin('spawntime'), [String(n), ...spawntimeArgs(variant, env), '--', ...argv], 300_000, { env: cleanEnv() });
  return [...r.stdout.matchAll(/^run (\d+)$/gm)].map((m) => Number(m[1]));
}

const VARIANTS: StartupVariant[] = ['native', 'shim, no session', 'shim, live session'];

/**
 * Start-up of each program: `rounds` rounds of `perRound` starts per
 * variant (variants interleaved, order rotating), then `wholeRuns` runs of
 * the whole `ckrun -- PROGRAM` beside `ckrun --help`.
 */
export async function startupSuite(python: string, rounds: number, perRound: number, wholeRuns: number): Promise<StartupSuite> {
  const out: StartupSuite = { programs: [], ckrunHelp: [], sessionEnv: {}, errors: [] };
  const dir = join(WORK, 'startup-session');
  const wholeDir = join(WORK, 'startup-whole');
  mkdirSync(dir, { recursive: true });
  let live: Awaited<ReturnType<typeof liveSessionEnv>> | undefined;
  try {
    live = await liveSessionEnv(dir);
    out.sessionEnv = live.env;
  } catch (e) {
    out.errors.push(`live session: ${errorText(e)}`);
  }
  const programs = [
    { program: '/bin/true', argv: ['/bin/true'] },
    { program: 'python3 -c pass', argv: [python, '-c', 'pass'] },
  ];
  for (const p of programs) {
    const res: StartupResult = { ...p, samples: { native: [], 'shim, no session': [], 'shim, live session': [] }, ckrunWhole: [] };
    try {
      for (let r = 0; r < rounds; r++)
        for (let k = 0; k < VARIANTS.length; k++) {
          const variant = VARIANTS[(r + k) % VARIANTS.length]!;
          if (variant !== 'native' && !live) continue;
          res.samples[variant].push(...(await spawnBatch(perRound, variant, live?.env ?? {}, p.argv)));
        }
    } catch (e) {
      out.errors.push(`${p.program}: ${errorText(e)}`);
    }
    out.programs.push(res);
  }
  if (live) await live.session.kill();
  rmSync(dir, { recursive: true, force: true });
  for (let i = 0; i < wholeRuns; i++) {
    try {
      out.ckrunHelp.push(await ckrunStartupNs());
      for (const res of out.programs) {
        const r = await run(NODE, [CKRUN, '--dir', wholeDir, '--', ...res.argv], 60_000, { env: cleanEnv() });
        if (r.code !== 0) throw new Error(`ckrun -- ${res.program} exited ${r.signal ?? r.code}: ${r.stderr.trim()}`);
        res.ckrunWhole.push(r.ns);
      }
    } catch (e) {
      out.errors.push(errorText(e));
    }
  }
  rmSync(wholeDir, { recursive: true, force: true });
  return out;
}
