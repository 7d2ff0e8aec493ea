// From raw measurements to medians, ratios and the targets.
import type { CompressCase, DataKind } from '../suites/compress.js';
import type { ImageCase } from '../suites/images.js';
import type { MemoryCase, RestartRep } from '../suites/memory.js';
import type { OverheadResult, StartupSuite, StartupVariant } from '../suites/overhead.js';
import { pairedRatios, ratioOfMedians, summarize, type Summary } from './stats.js';

export interface MemorySummary {
  mib: number;
  rssBytes: number | null;
  anonHugeBytes: number | null;
  imageBytes: number | null;
  storedBytes: number | null;
  pauseAtStop: Summary | null;
  maxGap: Summary | null;
  backgroundMaxGap: Summary | null;
  shimPause: Summary | null;
  checkpoint: Summary | null;
  limit: Summary | null;
  limitFsync: Summary | null;
  /** checkpoint / plain write, per rep. */
  ratio: Summary | null;
  /** Coordinator's "took" from the verbose log. */
  logTook: Summary | null;
  /** bin/ckrun restart (the restore host starts, node adopts), page cache, data verified. */
  restartWarm: Summary | null;
  /** Page cache, with --no-verify-data. */
  restartWarmNoVerify: Summary | null;
  /** node bin/ckrun.js restart (node's restart from the start), page cache, data verified. */
  restartWarmNode: Summary | null;
  restartCold: Summary | null;
  /**
   * Where a page-cache restart's time goes (CKRUN_TRACE): span → ns; the
   * restore host's fast start with data verified / not, and node's restart.
   */
  restartPhases: { verified: RestartPhases; notVerified: RestartPhases; node: RestartPhases };
  touchWarm: Summary | null;
  touchCold: Summary | null;
  /** Restarts that went into a new PID namespace (their PID was taken). */
  pidNamespaceRestarts: number;
  /** Bytes stored per region kind (last checkpoint). */
  byKind: Record<string, number>;
  /** Full checkpoints that came out incremental anyway (their parent should have been gone). */
  fullCheckpointsThatWereIncremental: number;
  incremental: IncrementalSummary;
  /** Restarts of the newest incremental image (page cache). */
  restartChain: Summary | null;
  errors: string[];
}

export type RestartPhases = Record<string, Summary | null>;

/** The spans between node's CKRUN_TRACE marks (ms since node started), in the order they happen. */
export const RESTART_SPANS: [string, string | null, string][] = [
  ['node start-up, loading the CLI', null, 'restart started'],
  ['finding the generation', 'restart started', 'image located'],
  ['checking the image', 'image located', 'image verified'],
  ['session, restore host spawned', 'image verified', 'restore host started'],
  ['restore: host started → program restored', 'restore host started', 'restored'],
];

/** The same for the restore host's fast start (ms since it started; `bin/ckrun restart`). */
export const FRONT_SPANS: [string, string | null, string][] = [
  ['finding the generation', null, 'front: generation found'],
  ['checking header, metadata, files', 'front: generation found', 'front: image checked'],
  ['verifying the data', 'front: image checked', 'front: data'],
  ['socket, PID, restore host forked', 'front: data', 'front: restore host forked'],
];

function restartPhases(reps: RestartRep[], spans: [string, string | null, string][] = RESTART_SPANS): RestartPhases {
  const out: RestartPhases = {};
  const at = (p: Record<string, number>, name: string | null): number | undefined => {
    if (name === null) return 0;
    const k = Object.keys(p).find((x) => x === name || x.startsWith(`${name} `));
    return k === undefined ? undefined : p[k];
  };
  for (const [label, from, to] of spans)
    out[label] = summarize(
      nums(
        reps.map((r) => {
          if (!r.phases) return undefined;
          const a = at(r.phases, from);
          const b = at(r.phases, to);
          return a === undefined || b === undefined ? undefined : b - a;
        }),
      ),
    );
  return out;
}

export interface IncrementalSummary {
  n: number;
  /** The tracking text of checkpoints that were not incremental. */
  notIncremental: string[];
  changedPages: number | null;
  imageBytes: number | null;
  fullBytes: number | null;
  /** Incremental image / full image, per checkpoint. */
  share: Summary | null;
  checkpoint: Summary | null;
  pauseAtStop: Summary | null;
  tracking: string;
  writePassBeforeNs: number | null;
  writePassAfterNs: number | null;
  pages: number | null;
}

export interface ImageSummary {
  program: string;
  rssBytes: number | null;
  rssAnonBytes: number | null;
  imageBytes: number | null;
  storedBytes: number | null;
  byKind: Record<string, number>;
  largest: [string, number][];
  errors: string[];
}

export interface OpSummary {
  op: string;
  native: Summary | null;
  ckrun: Summary | null;
  /** median(ckrun) / median(native) */
  ratio: number | null;
  /** ckrun[i] / native[i] of the interleaved pairs. */
  pairedRatio: Summary | null;
}

export interface StartupSummary {
  program: string;
  variants: Record<StartupVariant, Summary | null>;
  /** median(shim, live session) - median(native), ns. */
  deltaNs: number | null;
  /** median(shim, no session) - median(native), ns. */
  deltaNoSessionNs: number | null;
  ckrunWhole: Summary | null;
  /** median(ckrun -- PROGRAM) - median(ckrun --help), ns. */
  ckrunWholeMinusStartupNs: number | null;
}

export interface CompressSummary {
  mib: number;
  data: DataKind;
  /** The --compress option given, null for none. */
  compress: string | null;
  rssBytes: number | null;
  imageBytes: number | null;
  checkpoint: Summary | null;
  pauseAtStop: Summary | null;
  /** Page cache, data verified (ckrun restart's default). */
  restartWarm: Summary | null;
  errors: string[];
}

export function summarizeCompress(c: CompressCase): CompressSummary {
  const cps = c.checkpoints;
  return {
    mib: c.mib,
    data: c.data,
    compress: c.compress,
    rssBytes: median(cps.map((r) => r.rssBytes)),
    imageBytes: median(cps.map((r) => r.imageBytes)),
    checkpoint: summarize(cps.map((r) => r.checkpointNs)),
    pauseAtStop: summarize(nums(cps.map((r) => r.pauseAtStopNs))),
    restartWarm: summarize(nums(c.restarts.filter((r) => !r.warmup && !r.cold).map((r) => r.ns))),
    errors: c.errors,
  };
}

export interface Target {
  what: string;
  target: string;
  measured: string;
  status: 'pass' | 'FAIL' | 'not measured';
}

function median(xs: (number | null)[]): number | null {
  return summarize(xs.filter((x): x is number => x !== null))?.median ?? null;
}

function nums(xs: (number | null | undefined)[]): number[] {
  return xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
}

export function summarizeMemory(c: MemoryCase): MemorySummary {
  const cps = c.checkpoints;
  const counted = c.restarts.filter((r) => !r.warmup && r.ns !== null && r.image === 'full');
  const chain = c.restarts.filter((r) => !r.warmup && r.ns !== null && r.image === 'incremental');
  const inc = c.incremental;
  // results of runs before bin/ckrun's fast start have no `via`: they went through node
  const front = counted.filter((r) => (r.via ?? 'node') === 'bin/ckrun');
  const warm = front.filter((r) => !r.cold && !r.noVerify);
  const warmNoVerify = front.filter((r) => !r.cold && r.noVerify);
  const warmNode = counted.filter((r) => (r.via ?? 'node') === 'node' && !r.cold && !r.noVerify);
  const cold = front.filter((r) => r.cold);
  const withLimit = cps.filter((r) => r.limitNs !== null);
  return {
    mib: c.mib,
    rssBytes: median(cps.map((r) => r.rssBytes)),
    anonHugeBytes: median(cps.map((r) => r.anonHugeBytes)),
    imageBytes: median(cps.map((r) => r.imageBytes)),
    storedBytes: median(cps.map((r) => r.storedBytes)),
    pauseAtStop: summarize(nums(cps.map((r) => r.pauseAtStopNs))),
    maxGap: summarize(nums(cps.map((r) => r.maxGapNs))),
    backgroundMaxGap: summarize(nums(cps.map((r) => r.backgroundMaxGapNs))),
    shimPause: summarize(nums(cps.map((r) => r.shimPauseNs))),
    checkpoint: summarize(nums(cps.map((r) => r.checkpointNs))),
    limit: summarize(nums(cps.map((r) => r.limitNs))),
    limitFsync: summarize(nums(cps.map((r) => r.limitFsyncNs))),
    ratio: summarize(pairedRatios(nums(withLimit.map((r) => r.checkpointNs)), nums(withLimit.map((r) => r.limitNs)))),
    logTook: summarize(nums(cps.map((r) => r.logTookNs))),
    restartWarm: summarize(nums(warm.map((r) => r.ns))),
    restartWarmNoVerify: summarize(nums(warmNoVerify.map((r) => r.ns))),
    restartWarmNode: summarize(nums(warmNode.map((r) => r.ns))),
    restartCold: summarize(nums(cold.map((r) => r.ns))),
    restartPhases: {
      verified: restartPhases(warm, FRONT_SPANS),
      notVerified: restartPhases(warmNoVerify, FRONT_SPANS),
      node: restartPhases(warmNode),
    },
    touchWarm: summarize(nums(warm.map((r) => r.touchNs))),
    touchCold: summarize(nums(cold.map((r) => r.touchNs))),
    pidNamespaceRestarts: counted.filter((r) => r.pidNamespace).length,
    byKind: cps[cps.length - 1]?.byKind ?? {},
    fullCheckpointsThatWereIncremental: cps.filter((r) => r.incremental).length,
    incremental: {
      n: inc.reps.length,
      notIncremental: inc.reps.filter((r) => !r.incremental).map((r) => r.tracking),
      changedPages: median(inc.reps.map((r) => r.changedPages)),
      imageBytes: median(inc.reps.map((r) => r.imageBytes)),
      fullBytes: median(inc.reps.map((r) => r.fullBytes)),
      share: summarize(nums(inc.reps.map((r) => r.imageBytes / r.fullBytes))),
      checkpoint: summarize(nums(inc.reps.map((r) => r.checkpointNs))),
      pauseAtStop: summarize(nums(inc.reps.map((r) => r.pauseAtStopNs))),
      tracking: inc.reps[0]?.tracking ?? '',
      writePassBeforeNs: inc.writePassBeforeNs,
      writePassAfterNs: inc.writePassAfterNs,
      pages: inc.pages,
    },
    restartChain: summarize(nums(chain.map((r) => r.ns))),
    errors: c.errors,
  };
}

export function summarizeImage(c: ImageCase): ImageSummary {
  const last = c.reps[c.reps.length - 1];
  return {
    program: c.program,
    rssBytes: median(c.reps.map((r) => r.rssBytes)),
    rssAnonBytes: median(c.reps.map((r) => r.rssAnonBytes)),
    imageBytes: median(c.reps.map((r) => r.imageBytes)),
    storedBytes: median(c.reps.map((r) => r.storedBytes)),
    byKind: last?.byKind ?? {},
    largest: last?.largest ?? [],
    errors: c.errors,
  };
}

export function summarizeOverhead(o: OverheadResult): OpSummary[] {
  const names = [...new Set(o.runs.flatMap((r) => Object.keys(r.ops)))];
  return names.map((op) => {
    const of = (mode: 'native' | 'ckrun'): number[] => nums(o.runs.filter((r) => r.mode === mode).map((r) => r.ops[op]));
    const native = summarize(of('native'));
    const ckrun = summarize(of('ckrun'));
    return { op, native, ckrun, ratio: ratioOfMedians(ckrun, native), pairedRatio: summarize(pairedRatios(of('ckrun'), of('native'))) };
  });
}

export function summarizeStartup(s: StartupSuite): StartupSummary[] {
  const help = summarize(s.ckrunHelp);
  return s.programs.map((p) => {
    const v = {
      native: summarize(p.samples.native),
      'shim, no session': summarize(p.samples['shim, no session']),
      'shim, live session': summarize(p.samples['shim, live session']),
    };
    const whole = summarize(p.ckrunWhole);
    const diff = (a: Summary | null, b: Summary | null): number | null => (a && b ? a.median - b.median : null);
    return {
      program: p.program,
      variants: v,
      deltaNs: diff(v['shim, live session'], v.native),
      deltaNoSessionNs: diff(v['shim, no session'], v.native),
      ckrunWhole: whole,
      ckrunWholeMinusStartupNs: diff(whole, help),
    };
  });
}

const ms = (ns: number): string => `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;

function check(what: string, target: string, value: number | null | undefined, limit: number, show: (v: number) => string, why = ''): Target {
  if (value === null || value === undefined || !Number.isFinite(value))
    return { what, target, measured: why || 'no data (see failures)', status: 'not measured' };
  return { what, target, measured: show(value), status: value < limit ? 'pass' : 'FAIL' };
}

function range(s: Summary | null, f: (v: number) => string): string {
  return s ? ` (${f(s.min)}–${f(s.max)}, n=${s.n})` : '';
}

/** The targets against the measurements (medians). */
export function targets(
  memory: MemorySummary[],
  images: ImageSummary[],
  ops: OpSummary[],
  startup: StartupSummary[],
  quick: boolean,
): Target[] {
  const gib = memory.find((m) => m.mib === 1024);
  const noGib = quick ? 'not measured (--quick)' : '';
  const out: Target[] = [];
  out.push(
    check('pause at 1 GiB: the stop, seen by the program', '< 20 ms', gib?.pauseAtStop?.median, 20e6, (v) => ms(v) + range(gib!.pauseAtStop, ms), noGib),
  );
  out.push(
    check('pause at 1 GiB: largest gap while the checkpoint runs', '< 20 ms', gib?.maxGap?.median, 20e6, (v) => ms(v) + range(gib!.maxGap, ms), noGib),
  );
  out.push(
    check(
      'checkpoint of 1 GiB on disk / plain write + fsync',
      '≤ 1.2×',
      gib?.ratio?.median,
      1.2 + 1e-9,
      (v) => `${v.toFixed(2)}×` + range(gib!.ratio, (x) => x.toFixed(2)),
      noGib,
    ),
  );
  out.push(
    check('restart of 1 GiB from the page cache', '< 100 ms', gib?.restartWarm?.median, 100e6, (v) => ms(v) + range(gib!.restartWarm, ms), noGib),
  );
  out.push(
    check(
      'incremental image of 1 GiB after 1% of the pages changed / the full image',
      '< 3%',
      gib?.incremental.share?.median,
      0.03,
      (v) => `${(100 * v).toFixed(2)}%` + range(gib!.incremental.share, (x) => `${(100 * x).toFixed(2)}%`),
      noGib,
    ),
  );
  const trivial = images.find((i) => i.program.startsWith('trivial C'));
  out.push(check('image of a trivial C program', '< 1 MiB', trivial?.imageBytes, 1048576, (v) => `${(v / 1048576).toFixed(2)} MiB (${v} bytes)`));
  for (const o of ops)
    // the median of the interleaved pairs' ratios: a native run and a ckrun run next to each
    // other see the same machine (this VM's speed shifts between phases), medians of all runs may not
    out.push(
      check(`overhead: ${o.op}`, '< 1.05×', o.pairedRatio?.median ?? o.ratio, 1.05, (v) => `${v.toFixed(3)}×` + range(o.pairedRatio, (x) => x.toFixed(2))),
    );
  for (const s of startup)
    out.push(
      check(`start-up: ${s.program} with the shim in a live session`, '< +5 ms', s.deltaNs, 5e6, (v) => `${v >= 0 ? '+' : ''}${(v / 1e6).toFixed(2)} ms`),
    );
  return out;
}
