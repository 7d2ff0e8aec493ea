// `npm run bench`: measures ckrun on this machine (pause, checkpoint,
// restart, image size, overhead, start-up) and writes bench/results.json
// and bench/RESULTS.md. Progress goes to stderr, the tables to stdout.
//
//   npm run bench [-- --quick] [-- --keep] [-- --files-only]
//
// --quick       10 and 100 MiB only (--compress at 10 MiB), fewer repetitions: about a minute
// --keep        keep the checkpoint directories under bench/work/
// --files-only  only the written-files suite (100 MiB and 1 GiB), into bench/files-results.json
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { BENCH, buildPrograms, ckrunHasOption, ckrunStartupNs, dropCaches, RESTORE_HOST, SHIM, WORK } from './lib/ckrun.js';
import { cpuBusy, environment, resolvePython, type Environment } from './lib/environment.js';
import { errorText, log } from './lib/log.js';
import { Monitor } from './lib/monitor.js';
import { installCleanup, killAllTracked } from './lib/proc.js';
import { renderReport, type ReportInput } from './lib/report.js';
import { summarize } from './lib/stats.js';
import { summarizeCompress, summarizeImage, summarizeMemory, summarizeOverhead, summarizeStartup, targets } from './lib/summary.js';
import { compressCase, COMPRESS_VARIANTS, type CompressCase, type CompressPlan } from './suites/compress.js';
import { filesCase, renderFiles, type FilesCase } from './suites/files.js';
import { imageCase, imagePrograms, type ImageCase } from './suites/images.js';
import { memoryCase, type MemoryCase, type MemoryPlan } from './suites/memory.js';
import { overheadSuite, startupSuite, type OverheadResult, type StartupSuite } from './suites/overhead.js';

interface Options {
  quick: boolean;
  keep: boolean;
  filesOnly: boolean;
}

const USAGE = `Usage: npm run bench [-- --quick] [-- --keep] [-- --files-only]

Measures ckrun on this machine and writes bench/results.json and bench/RESULTS.md.
  --quick       only 10 and 100 MiB (--compress at 10 MiB), fewer repetitions: about a minute
  --keep        keep the checkpoint directories under bench/work/
  --files-only  only the written-files suite (--files=snapshot beside --files=size with a
                100 MiB and a 1 GiB file being written), into bench/files-results.json and
                bench/FILES.md
`;

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, keep: false, filesOnly: false };
  for (const a of argv) {
    if (a === '--quick') o.quick = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--files-only') o.filesOnly = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else {
      process.stderr.write(`bench: unknown argument '${a}'\n${USAGE}`);
      process.exit(2);
    }
  }
  return o;
}

interface Plan {
  memory: MemoryPlan[];
  compress: CompressPlan[];
  imageCheckpoints: number;
  overheadRuns: number;
  startupRounds: number;
  startupPerRound: number;
  wholeRuns: number;
  helpRuns: number;
  coldHelpRuns: number;
  /** Written files: sizes in MiB, checkpoints and restarts per size and policy. */
  files: { mib: number[]; checkpoints: number; restarts: number };
}

function plan(quick: boolean): Plan {
  if (quick)
    return {
      memory: [
        { mib: 10, checkpoints: 3, incremental: 2, warmRestarts: 3, coldRestarts: 2, chainRestarts: 2 },
        { mib: 100, checkpoints: 3, incremental: 2, warmRestarts: 3, coldRestarts: 2, chainRestarts: 2 },
      ],
      compress: [{ mib: 10, checkpoints: 2, restarts: 2 }],
      imageCheckpoints: 2,
      overheadRuns: 3,
      startupRounds: 3,
      startupPerRound: 10,
      wholeRuns: 3,
      helpRuns: 5,
      coldHelpRuns: 2,
      files: { mib: [100], checkpoints: 3, restarts: 1 },
    };
  return {
    memory: [
      { mib: 10, checkpoints: 9, incremental: 5, warmRestarts: 7, coldRestarts: 5, chainRestarts: 3 },
      { mib: 100, checkpoints: 9, incremental: 5, warmRestarts: 7, coldRestarts: 5, chainRestarts: 3 },
      { mib: 1024, checkpoints: 11, incremental: 5, warmRestarts: 5, coldRestarts: 3, chainRestarts: 3 },
    ],
    compress: [
      { mib: 100, checkpoints: 5, restarts: 3 },
      { mib: 1024, checkpoints: 3, restarts: 3 },
    ],
    imageCheckpoints: 3,
    overheadRuns: 11,
    startupRounds: 10,
    startupPerRound: 10,
    wholeRuns: 7,
    helpRuns: 9,
    coldHelpRuns: 3,
    files: { mib: [100, 1024], checkpoints: 4, restarts: 2 },
  };
}

/** Identical messages once, with their count. */
function collapse(lines: string[]): string[] {
  const counts = new Map<string, number>();
  for (const l of lines) counts.set(l, (counts.get(l) ?? 0) + 1);
  return [...counts].map(([l, n]) => (n > 1 ? `(${n}×) ${l}` : l));
}

/** Runs f; a throw becomes a failure line instead of ending the benchmark. */
async function guarded<T>(what: string, failures: string[], f: () => Promise<T>): Promise<T | null> {
  try {
    return await f();
  } catch (e) {
    failures.push(`${what}: ${errorText(e)}`);
    log(`${what} failed: ${errorText(e)}`);
    return null;
  }
}

async function ckrunStartup(p: Plan, canDrop: boolean): Promise<{ warm: number[]; cold: number[] }> {
  const warm: number[] = [];
  const cold: number[] = [];
  await ckrunStartupNs(); // warm-up
  for (let i = 0; i < p.helpRuns; i++) warm.push(await ckrunStartupNs());
  if (canDrop)
    for (let i = 0; i < p.coldHelpRuns; i++) {
      await dropCaches();
      cold.push(await ckrunStartupNs());
    }
  return { warm, cold };
}

/** Waits up to a minute for the CPUs to be less than 10% busy; the last share measured. */
async function waitForQuiet(): Promise<number> {
  let busy = await cpuBusy(1000);
  for (let i = 0; busy > 0.1 && i < 60; i++) {
    if (i === 0) log(`the CPUs are ${(busy * 100).toFixed(0)}% busy with something else: waiting up to a minute for quiet`);
    busy = await cpuBusy(1000);
  }
  if (busy > 0.1) log(`note: still ${(busy * 100).toFixed(0)}% busy: timings will be noisier`);
  return busy;
}

async function canDropCaches(failures: string[]): Promise<boolean> {
  try {
    await dropCaches();
    return true;
  } catch (e) {
    failures.push(`cannot drop caches (restarts "after dropping caches" are not measured): ${errorText(e)}`);
    return false;
  }
}

interface Raw {
  help: { warm: number[]; cold: number[] };
  startup: StartupSuite | null;
  overhead: OverheadResult | null;
  images: ImageCase[];
  memory: MemoryCase[];
  compress: CompressCase[];
  files: FilesCase[];
}

/** Every suite in turn; each one's failure is recorded and the next one runs. */
async function runSuites(
  p: Plan,
  opts: Options,
  python: string,
  canDrop: boolean,
  hasCompress: boolean,
  monitor: Monitor,
  failures: string[],
): Promise<Raw> {
  monitor.setPhase("ckrun's start-up");
  log("ckrun's own start-up (node bin/ckrun.js --help)");
  const help = (await guarded('ckrun start-up', failures, () => ckrunStartup(p, canDrop))) ?? { warm: [], cold: [] };

  monitor.setPhase('start-up');
  log('start-up of /bin/true and python3 -c pass');
  const startup = await guarded('start-up', failures, () => startupSuite(python, p.startupRounds, p.startupPerRound, p.wholeRuns));

  monitor.setPhase('overhead');
  log('overhead microbenchmark, native and under ckrun');
  const overhead = await guarded('overhead', failures, () => overheadSuite(p.overheadRuns));

  monitor.setPhase('image sizes');
  log('image sizes of small programs');
  const images: ImageCase[] = [];
  for (const prog of imagePrograms(python)) {
    const c = await guarded(`image ${prog.name}`, failures, () => imageCase(prog.name, prog.argv, p.imageCheckpoints, opts.keep));
    if (c) images.push(c);
  }

  const memory: MemoryCase[] = [];
  for (const mp of p.memory) {
    monitor.setPhase(`memory ${mp.mib} MiB`);
    const c = await guarded(`memory ${mp.mib} MiB`, failures, () => memoryCase(mp, opts.keep, canDrop));
    if (c) memory.push(c);
  }
  const compress: CompressCase[] = [];
  if (hasCompress)
    for (const cp of p.compress)
      for (const v of COMPRESS_VARIANTS) {
        monitor.setPhase(`compression ${cp.mib} MiB`);
        const c = await guarded(`compression ${cp.mib} MiB ${v.data}`, failures, () => compressCase(cp, v.data, v.compress, opts.keep));
        if (c) compress.push(c);
      }
  const files = await filesSuite(p, opts, monitor, failures);
  return { help, startup, overhead, images, memory, compress, files };
}

async function filesSuite(p: Plan, opts: Options, monitor: Monitor | undefined, failures: string[]): Promise<FilesCase[]> {
  const files: FilesCase[] = [];
  for (const mib of p.files.mib)
    for (const policy of ['size', 'snapshot'] as const) {
      monitor?.setPhase(`written files ${mib} MiB`);
      const c = await guarded(`written files ${mib} MiB ${policy}`, failures, () => filesCase(mib, policy, p.files.checkpoints, p.files.restarts, opts.keep));
      if (c) files.push(c);
    }
  return files;
}

/** The suites' own error lists, added to the failures. */
function collectFailures(raw: Raw, failures: string[]): string[] {
  for (const m of raw.memory) for (const e of m.errors) failures.push(`memory ${m.mib} MiB: ${e}`);
  for (const i of raw.images) for (const e of i.errors) failures.push(`image ${i.program}: ${e}`);
  for (const e of raw.overhead?.errors ?? []) failures.push(`overhead: ${e}`);
  for (const e of raw.startup?.errors ?? []) failures.push(`start-up: ${e}`);
  for (const c of raw.files) for (const e of c.errors) failures.push(`written files ${c.mib} MiB ${c.policy}: ${e}`);
  for (const c of raw.compress) for (const e of c.errors) failures.push(`compression ${c.mib} MiB ${c.data}${c.compress ? ` ${c.compress}` : ''}: ${e}`);
  return collapse(failures);
}

function summaries(raw: Raw, opts: Options, startedAt: Date, env: Environment, failures: string[], hasCompress: boolean): ReportInput {
  const memSum = raw.memory.map(summarizeMemory);
  const imgSum = raw.images.map(summarizeImage);
  const opSum = raw.overhead ? summarizeOverhead(raw.overhead) : [];
  const startSum = raw.startup ? summarizeStartup(raw.startup) : [];
  return {
    quick: opts.quick,
    startedAt: startedAt.toISOString(),
    durationS: (Date.now() - startedAt.getTime()) / 1000,
    environment: env,
    ckrunStartup: { warm: summarize(raw.help.warm), cold: summarize(raw.help.cold) },
    memory: memSum,
    images: imgSum,
    overhead: opSum,
    startup: startSum,
    targets: targets(memSum, imgSum, opSum, startSum, opts.quick),
    failures,
    hasCompress,
    compress: raw.compress.map(summarizeCompress),
  };
}

/** bench/results.json (summaries and raw numbers) and bench/RESULTS.md; the report's tables on stdout. */
function writeResults(input: ReportInput, raw: Raw): void {
  const results = {
    format: 'ckrun-bench',
    version: 2,
    units: 'ns and bytes unless a name says otherwise',
    ...input,
    raw: { ckrunStartup: raw.help, memory: raw.memory, images: raw.images, overhead: raw.overhead, startup: raw.startup, compress: raw.compress, files: raw.files },
  };
  writeFileSync(join(BENCH, 'results.json'), JSON.stringify(results, null, 1) + '\n');
  const report = renderReport(input) + '\n' + renderFiles(raw.files);
  writeFileSync(join(BENCH, 'RESULTS.md'), report);
  process.stdout.write(report.slice(0, report.indexOf('## How each number')));
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const p = plan(opts.quick);
  installCleanup(() => {
    if (!opts.keep) rmSync(WORK, { recursive: true, force: true });
  });
  const startedAt = new Date();
  const failures: string[] = [];
  for (const f of [SHIM, RESTORE_HOST])
    if (!existsSync(f)) throw new Error(`${f} is missing: build ckrun first (npm install)`);
  log(`building the test programs into ${WORK}`);
  buildPrograms();
  if (opts.filesOnly) {
    const files = await filesSuite(p, opts, undefined, failures);
    const env = environment(resolvePython());
    writeFileSync(join(BENCH, 'files-results.json'), JSON.stringify({ format: 'ckrun-bench-files', startedAt: startedAt.toISOString(), environment: env, failures, files }, null, 1) + '\n');
    const md = `# Written files, measured ${startedAt.toISOString()}\n\n${renderFiles(files)}`;
    writeFileSync(join(BENCH, 'FILES.md'), md);
    process.stdout.write(md);
    if (!opts.keep) rmSync(WORK, { recursive: true, force: true });
    return;
  }
  const python = resolvePython();
  const env = environment(python);
  env.cpuBusyAtStart = await waitForQuiet();
  if (env.buildStale) log('note: build/Release is older than preload/: run npm install to measure the current sources');
  const monitor = new Monitor();
  monitor.start();
  const canDrop = await canDropCaches(failures);
  const hasCompress = await ckrunHasOption('--compress');

  const raw = await runSuites(p, opts, python.path, canDrop, hasCompress, monitor, failures);

  env.loadAverageEnd = os.loadavg();
  env.foreignCpu = monitor.stop();
  const input = summaries(raw, opts, startedAt, env, collectFailures(raw, failures), hasCompress);
  if (!opts.keep) rmSync(WORK, { recursive: true, force: true });
  log(`writing bench/results.json and bench/RESULTS.md${opts.keep ? `; kept ${WORK}` : ''}`);
  writeResults(input, raw);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  killAllTracked();
  process.exitCode = 1;
});
