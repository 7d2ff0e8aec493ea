// The machine and the ckrun build a run measured, recorded with the results.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { ROOT, SHIM, RESTORE_HOST, WORK } from './ckrun.js';
import type { ForeignUse } from './monitor.js';

export interface Environment {
  hostname: string;
  kernel: string;
  cpu: string;
  cores: number;
  memoryBytes: number;
  node: string;
  gcc: string;
  python: { path: string; version: string };
  transparentHugepages: string;
  /** DAMON (kernel memory monitoring) contexts and their schemes' actions, e.g. pageout of cold memory. */
  damon: string;
  filesystem: string;
  gitCommit: string;
  /** `git status --porcelain` of preload/, src/, addon/: the code measured may differ from the commit. */
  uncommittedChanges: string[];
  /** The shim or restore host is older than a file in preload/. */
  buildStale: boolean;
  buildTimes: Record<string, string>;
  loadAverageStart: number[];
  /** Share of both cores busy in the second before the run started (after waiting for quiet). */
  cpuBusyAtStart: number | null;
  loadAverageEnd: number[] | null;
  isRoot: boolean;
  /** The libc calls the shim wraps (the global symbols of preload/exports.map). */
  shimWraps: string[];
  /** CPU seconds used by processes other than the benchmark's, by phase (a lower bound: short-lived ones are missed). */
  foreignCpu: ForeignUse[];
}

function output(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], cwd: ROOT }).trim();
  } catch {
    return '';
  }
}

/** The real interpreter `python3` runs (pyenv and similar put a shell script first on PATH). */
export function resolvePython(): { path: string; version: string } {
  const out = output('python3', ['-c', 'import sys, platform; print(sys.executable); print(platform.python_version())']);
  const [path, version] = out.split('\n');
  if (!path || !existsSync(path)) throw new Error('cannot find python3 (python3 -c "import sys; print(sys.executable)" failed)');
  return { path, version: version ?? '?' };
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

/** "kdamond 0 on: paddr, pageout" for each DAMON daemon; "none" without any. */
function damonState(): string {
  const base = '/sys/kernel/mm/damon/admin/kdamonds';
  if (!existsSync(base)) return 'none';
  const out: string[] = [];
  for (const k of readdirSync(base).filter((d) => /^[0-9]+$/.test(d))) {
    const ctx = join(base, k, 'contexts', '0');
    const schemes = existsSync(join(ctx, 'schemes'))
      ? readdirSync(join(ctx, 'schemes'))
          .filter((d) => /^[0-9]+$/.test(d))
          .map((d) => readText(join(ctx, 'schemes', d, 'action')))
      : [];
    out.push(`kdamond ${k} ${readText(join(base, k, 'state'))}: ${readText(join(ctx, 'operations'))}${schemes.length ? `, ${schemes.join('/')}` : ''}`);
  }
  return out.length ? out.join('; ') : 'none';
}

/** The global symbols of preload/exports.map, without ckrun's own entry points. */
function shimWraps(): string[] {
  const text = readText(join(ROOT, 'preload', 'exports.map')).replace(/\/\*[\s\S]*?\*\//g, '');
  const m = /global:([\s\S]*?)local:/.exec(text);
  if (!m) return [];
  return m[1]!
    .split(/[\s;]+/)
    .filter((x) => /^[a-z_][a-z0-9_]*$/i.test(x) && !x.startsWith('ckrun_'));
}

function shorten(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, s.lastIndexOf(' ', n))} …`;
}

function newestMtime(dir: string): number {
  return Math.max(...readdirSync(dir).map((f) => statSync(join(dir, f)).mtimeMs));
}

export function environment(python: { path: string; version: string }): Environment {
  const thp = (() => {
    try {
      return readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').trim();
    } catch {
      return 'unknown';
    }
  })();
  const built = [SHIM, RESTORE_HOST].filter(existsSync);
  const sources = newestMtime(join(ROOT, 'preload'));
  return {
    hostname: os.hostname(),
    kernel: `${os.type()} ${os.release()} ${os.machine()}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    node: process.version,
    gcc: output('gcc', ['--version']).split('\n')[0] ?? '',
    python,
    transparentHugepages: thp,
    damon: damonState(),
    filesystem: output('findmnt', ['-n', '-o', 'SOURCE,FSTYPE,OPTIONS', '-T', existsSync(WORK) ? WORK : ROOT]),
    gitCommit: `${output('git', ['rev-parse', '--short', 'HEAD'])} (${shorten(output('git', ['log', '-1', '--format=%s']), 70)})`,
    uncommittedChanges: output('git', ['status', '--porcelain', '--', 'preload', 'src', 'addon']).split('\n').filter((l) => l !== ''),
    buildStale: built.length < 2 || built.some((f) => statSync(f).mtimeMs < sources),
    buildTimes: Object.fromEntries(built.map((f) => [f.slice(ROOT.length + 1), statSync(f).mtime.toISOString()])),
    loadAverageStart: os.loadavg(),
    cpuBusyAtStart: null,
    loadAverageEnd: null,
    isRoot: process.getuid?.() === 0,
    foreignCpu: [],
    shimWraps: shimWraps(),
  };
}

function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Share (0..1) of all CPUs busy over the next `ms` milliseconds. */
export async function cpuBusy(ms: number): Promise<number> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTimes();
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

/**
 * Waits until the CPUs were less than `threshold` busy over 300 ms (other
 * engineers' builds and tests share this machine's 2 cores), at most
 * `maxMs`; the last share measured.
 */
export async function waitQuietCpu(maxMs: number, threshold = 0.15): Promise<number> {
  const end = Date.now() + maxMs;
  let busy = await cpuBusy(300);
  while (busy > threshold && Date.now() < end) busy = await cpuBusy(300);
  return busy;
}
