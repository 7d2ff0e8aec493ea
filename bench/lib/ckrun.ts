// Driving ckrun for the benchmark: where things are, building the test
// programs, sessions (the real command line, `node bin/ckrun.js`),
// checkpoint requests (the library call `ckrun checkpoint` makes, without
// its node start-up), images read back with `ckrun inspect --json`.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requestCheckpoint } from '../../src/index.js';
import { LineProc, run, runOk } from './proc.js';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ckrun') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the ckrun repository root');
    dir = up;
  }
}

export const ROOT = findRoot();
export const CKRUN = join(ROOT, 'bin', 'ckrun.js');
/** The command users run: `restart` starts in the restore host (preload/front.c). */
export const CKRUN_SH = join(ROOT, 'bin', 'ckrun');
export const NODE = process.execPath;
export const BENCH = join(ROOT, 'bench');
export const PROGRAMS = join(BENCH, 'programs');
export const WORK = join(BENCH, 'work');
export const SHIM = join(ROOT, 'build', 'Release', 'libckrun.so');
export const RESTORE_HOST = join(ROOT, 'build', 'Release', 'ckrun-restore');

export const C_PROGRAMS = ['memloop', 'sleeper', 'writelimit', 'overhead', 'spawntime', 'filewriter'] as const;
export type CProgram = (typeof C_PROGRAMS)[number];

/** Path of a compiled test program in bench/work. */
export function bin(name: CProgram): string {
  return join(WORK, name);
}

/** Compiles bench/programs/*.c into bench/work with gcc -O2. */
export function buildPrograms(): void {
  mkdirSync(WORK, { recursive: true });
  for (const name of C_PROGRAMS) {
    const src = join(PROGRAMS, `${name}.c`);
    const out = bin(name);
    if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) continue;
    const tmp = `${out}.tmp${process.pid}`;
    try {
      execFileSync('gcc', ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`building ${name} failed:\n${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
    }
    renameSync(tmp, out);
  }
}

/** The environment for ckrun and native runs: the bench's own, without CKRUN_* and LD_PRELOAD. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CKRUN_') && k !== 'LD_PRELOAD') env[k] = v;
  return { ...env, ...extra };
}

/** `ckrun [-v] --dir DIR -- ARGV...`, its stdout read line by line. */
export function startSession(dir: string, argv: string[], verbose = true, options: string[] = []): LineProc {
  return new LineProc(NODE, [CKRUN, ...(verbose ? ['-v'] : []), '--dir', dir, ...options, '--', ...argv], { env: cleanEnv(), label: 'ckrun' });
}

/** `ckrun restart -v [OPTIONS] IMAGE` (IMAGE: a generation directory). */
/** How a restart is run: the command users type (bin/ckrun), or node's restart itself. */
export type RestartVia = 'bin/ckrun' | 'node';

export function startRestart(image: string, options: string[] = [], via: RestartVia = 'bin/ckrun'): LineProc {
  const args = ['restart', '-v', ...options, image];
  const env = cleanEnv({ CKRUN_TRACE: '1' });
  return via === 'node'
    ? new LineProc(NODE, [CKRUN, ...args], { env, label: 'node bin/ckrun.js restart' })
    : new LineProc(CKRUN_SH, args, { env, label: 'bin/ckrun restart' });
}

/**
 * ckrun's CKRUN_TRACE lines → phase → ns; the first of each. Node's
 * ("ckrun[PID]: PHASE at X ms") count from node's start; the restore
 * host's fast start ("ckrun-restore[PID]: PHASE at X ms") from its own,
 * and are keyed "front: PHASE".
 */
export function tracePhases(stderr: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of stderr.matchAll(/^ckrun(-restore)?\[\d+\]: (.+) at ([0-9.]+) ms$/gm)) {
    const key = m[1] ? `front: ${m[2]!}` : m[2]!;
    if (!(key in out)) out[key] = Number(m[3]) * 1e6;
  }
  return out;
}

/** The program a session runs: ckrun's only child. */
export async function programPid(session: LineProc, timeoutMs: number): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const kids = childrenOf(session.pid);
    if (kids.length === 1) return kids[0]!;
    if (session.exitInfo) throw new Error(`ckrun exited before its program started: ${session.stderrTail()}`);
    if (Date.now() > end) throw new Error(`ckrun ${session.pid} has ${kids.length} children after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** PPid from /proc/PID/status, or undefined when PID is gone. */
export function parentOf(pid: number): number | undefined {
  try {
    const m = /^PPid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** A field of /proc/PID/status in bytes (VmRSS, RssAnon, ...). */
export function statusBytes(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** AnonHugePages of /proc/PID/smaps_rollup in bytes. */
export function anonHugeBytes(pid: number): number | undefined {
  try {
    const m = /^AnonHugePages:\s*(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The environment of a running process (/proc/PID/environ). */
export function environOf(pid: number): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')) {
    const i = entry.indexOf('=');
    if (i > 0) env.set(entry.slice(0, i), entry.slice(i + 1));
  }
  return env;
}

/**
 * Asks the session writing to DIR for a checkpoint (what `ckrun checkpoint`
 * does) and resolves with the generation directory once it is on disk.
 */
export async function checkpoint(dir: string, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the checkpoint did not complete within ${timeoutMs} ms`)), timeoutMs);
  });
  const req = requestCheckpoint(dir);
  req.catch(() => undefined); // a late rejection after a timeout is not unhandled
  try {
    return await Promise.race([req, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the benchmark reads from an image (via `ckrun inspect --json --no-verify-data`). */
export interface ImageInfo {
  /** Size of the generation's own image file(s) (the manifest's; not the hard-linked older images). */
  fileBytes: number;
  /** Sizes of the older images the root image refers to (hard links in the generation). */
  refBytes: number;
  /** The root image stores only what changed and refers to older images for the rest. */
  incremental: boolean;
  /** How changes are tracked, or why they are not (meta.incremental.tracking). */
  tracking: string;
  /** Bytes of pages the root image refers to in older images. */
  referredBytes: number;
  /** manifest processes[].pause_ns (max over processes). */
  manifestPauseNs: number;
  /** meta.stats of the root image. */
  statsPauseNs: number;
  storedBytes: number;
  storedPages: number;
  /** meta.created_ns: CLOCK_REALTIME at the stop. */
  createdNs: bigint;
  pid: number;
  /** Bytes stored per region kind (anon, heap, stack, file, ...). */
  byKind: Record<string, number>;
  /** The largest stored regions: [name or kind, bytes]. */
  largest: [string, number][];
}

interface InspectRegion {
  kind?: string;
  name?: string;
  bytes?: number;
  runs?: unknown[][];
}

interface InspectImage {
  path: string;
  size: number;
  meta: {
    pid: number;
    created_ns: string | number;
    stats?: { pause_ns?: number; pages?: number; bytes?: number };
    memory?: InspectRegion[];
    images?: string[];
    incremental?: { parent_used?: boolean; tracking?: string };
  };
}

interface InspectOutput {
  manifest?: { root?: number; processes?: { pid: number; image: string; pause_ns?: number }[] };
  images: InspectImage[];
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export async function inspect(generation: string): Promise<ImageInfo> {
  const r = await runOk(NODE, [CKRUN, 'inspect', generation, '--json', '--no-verify-data'], 60_000, { env: cleanEnv() });
  const j = JSON.parse(r.stdout) as InspectOutput;
  const procs = j.manifest?.processes ?? [];
  const rootName = (procs.find((p) => p.pid === j.manifest?.root) ?? procs[0])?.image;
  const img = j.images.find((i) => basename(i.path) === rootName) ?? j.images[0];
  if (!img) throw new Error(`ckrun inspect ${generation}: no image`);
  const byKind: Record<string, number> = {};
  const regions: [string, number][] = [];
  let referredBytes = 0;
  for (const reg of img.meta.memory ?? []) {
    const kind = reg.kind ?? '?';
    byKind[kind] = (byKind[kind] ?? 0) + (reg.bytes ?? 0);
    if ((reg.bytes ?? 0) > 0) regions.push([reg.name ? `${kind} ${reg.name}` : kind, reg.bytes ?? 0]);
    for (const run of reg.runs ?? []) if (run.length >= 5) referredBytes += Number(run[1]) * 4096;
  }
  regions.sort((a, b) => b[1] - a[1]);
  return {
    fileBytes: procs.reduce((a, p) => a + fileSize(join(generation, p.image)), 0),
    refBytes: (img.meta.images ?? []).reduce((a, f) => a + fileSize(join(generation, f)), 0),
    incremental: img.meta.incremental?.parent_used === true,
    tracking: img.meta.incremental?.tracking ?? '',
    referredBytes,
    manifestPauseNs: Math.max(0, ...procs.map((p) => p.pause_ns ?? 0)),
    statsPauseNs: img.meta.stats?.pause_ns ?? NaN,
    storedBytes: img.meta.stats?.bytes ?? NaN,
    storedPages: img.meta.stats?.pages ?? NaN,
    createdNs: BigInt(img.meta.created_ns),
    pid: img.meta.pid,
    byKind,
    largest: regions.slice(0, 4),
  };
}

/** Every file of a generation directory (its images and the older images it links). */
export function generationFiles(generation: string): string[] {
  return readdirSync(generation).map((f) => join(generation, f));
}

/** Whether `ckrun --help` mentions an option. */
export async function ckrunHasOption(option: string): Promise<boolean> {
  const r = await run(NODE, [CKRUN, '--help'], 30_000, { env: cleanEnv() });
  return r.stdout.includes(option);
}

/**
 * ckrun's verbose line for a checkpoint: "checkpoint N written to ...:
 * ..., program paused X, took Y" → [paused, took] in ns.
 */
export function verboseCheckpoint(stderr: string, generation: number): { pausedNs: number; tookNs: number } | undefined {
  const re = new RegExp(`checkpoint ${generation} written to .*program paused ([0-9.]+) (ns|µs|ms|s), took ([0-9.]+) (ns|µs|ms|s)`);
  const m = re.exec(stderr);
  if (!m) return undefined;
  const unit = (u: string): number => ({ ns: 1, µs: 1e3, ms: 1e6, s: 1e9 })[u] ?? NaN;
  return { pausedNs: Number(m[1]) * unit(m[2]!), tookNs: Number(m[3]) * unit(m[4]!) };
}

/** `ckrun --help`: ckrun's own start-up (node, loading the CLI) until exit, ns. */
export async function ckrunStartupNs(): Promise<number> {
  const r = await run(NODE, [CKRUN, '--help'], 30_000, { env: cleanEnv() });
  if (r.code !== 0) throw new Error(`ckrun --help failed: ${r.stderr}`);
  return r.ns;
}

/** sync; echo 3 > /proc/sys/vm/drop_caches (needs root). */
export async function dropCaches(): Promise<void> {
  await runOk('sync', [], 120_000);
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}
