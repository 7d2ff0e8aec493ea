// `ckrun restart` of a memloop image, timed from the command's start to the
// program's first loop iteration, with a check that the data came back.
import { closeSync, openSync, readSync } from 'node:fs';
import { dropCaches, generationFiles, parentOf, startRestart, tracePhases, type RestartVia } from '../lib/ckrun.js';
import { errorText, log } from '../lib/log.js';
import { monoNs, sleep, waitPidGone } from '../lib/proc.js';

export interface RestartRep {
  /** Which image: the full one, or the newest of a chain of incremental ones. */
  image: 'full' | 'incremental';
  cold: boolean;
  /** Run with --no-verify-data (ckrun then checks only header and metadata checksums). */
  noVerify: boolean;
  /** bin/ckrun restart (the restore host starts, node adopts), or node bin/ckrun.js restart. */
  via: RestartVia;
  warmup: boolean;
  /** `ckrun restart` started → first loop iteration of the program. */
  ns: number | null;
  /** One read per page of the data right after the restart. */
  touchNs: number | null;
  /** The restore went into a new PID namespace (its PID was not free). */
  pidNamespace: boolean | null;
  /** ckrun's CKRUN_TRACE phases: ns since its node process started (see src/restart.ts). */
  phases?: Record<string, number>;
  error?: string;
}

export interface KeptImage {
  generation: string;
  pid: number;
  /** memloop's per-page sum at the time of the checkpoint. */
  sum: string;
  kind: 'full' | 'incremental';
}

export interface RestartPlan {
  warm: number;
  /** Also run every page-cache restart with --no-verify-data. */
  noVerify: boolean;
  /** Also run every page-cache restart through node's restart (node bin/ckrun.js restart). */
  node?: boolean;
  cold: number;
}

/** Reads files through, so that they are in the page cache. */
function readThrough(paths: string[]): void {
  const buf = Buffer.allocUnsafe(8 << 20);
  for (const path of paths) {
    const fd = openSync(path, 'r');
    try {
      while (readSync(fd, buf, 0, buf.length, null) > 0) {
        /* keep reading */
      }
    } finally {
      closeSync(fd);
    }
  }
}

/** One `ckrun restart` of the kept image, timed to the program's first iteration. */
async function restartRep(kept: KeptImage, cold: boolean, warmup: boolean, noVerify: boolean, via: RestartVia): Promise<RestartRep> {
  const rep: RestartRep = { image: kept.kind, cold, noVerify, via, warmup, ns: null, touchNs: null, pidNamespace: null };
  if (!(await waitPidGone(kept.pid, 10_000))) {
    rep.error = `PID ${kept.pid} is still taken 10 s after the previous run ended`;
    return rep;
  }
  if (cold) await dropCaches();
  else readThrough(generationFiles(kept.generation));
  const t0 = monoNs();
  const proc = startRestart(kept.generation, noVerify ? ['--no-verify-data'] : [], via);
  try {
    const line = await proc.waitLine((l) => l.startsWith('restart ') && Number(l.split(' ')[1]) > t0, 120_000, 'restart');
    rep.ns = Number(line.split(' ')[1]) - t0;
    rep.pidNamespace = parentOf(kept.pid) !== proc.pid;
    const touched = await proc.waitLine((l) => l.startsWith('touched '), 120_000, 'first pass over the data after restart');
    rep.touchNs = Number(touched.split(' ')[1]);
    // ckrun marks "restored" when the shim's message arrives, which may be
    // after the program's first lines
    for (let i = 0; i < 50 && !/: restored at /.test(proc.stderr); i++) await sleep(10);
    rep.phases = tracePhases(proc.stderr);
    const sum = touched.split(' ')[3];
    if (sum !== kept.sum) rep.error = `the restored data differs: its per-page sum is ${sum}, at the checkpoint it was ${kept.sum}`;
  } catch (e) {
    rep.error = errorText(e);
  } finally {
    await proc.kill();
  }
  await waitPidGone(kept.pid, 10_000);
  return rep;
}

function describe(r: RestartRep): string {
  if (r.error) return `failed: ${r.error.split('\n')[0]}`;
  return `${((r.ns ?? NaN) / 1e6).toFixed(1)} ms, first pass ${((r.touchNs ?? NaN) / 1e6).toFixed(1)} ms${r.pidNamespace ? ' (new PID namespace)' : ''}`;
}

function label(r: RestartRep): string {
  const what = [
    r.image === 'incremental' ? 'incremental chain' : '',
    r.warmup ? 'warm-up' : r.cold ? 'caches dropped' : 'page cache',
    r.noVerify ? '--no-verify-data' : '',
    r.via === 'node' ? 'node bin/ckrun.js restart' : '',
  ]
    .filter((s) => s !== '')
    .join(', ');
  return `(${what})`;
}

/**
 * An uncounted warm-up, `warm` page-cache restarts (each followed by one with
 * --no-verify-data when asked), then `cold` restarts after dropping caches.
 * Stops after three failures in a row.
 */
export async function restarts(mib: number, kept: KeptImage, plan: RestartPlan, errors: string[]): Promise<RestartRep[]> {
  type Step = [cold: boolean, warmup: boolean, noVerify: boolean, via: RestartVia];
  const order: Step[] = [[false, true, false, 'bin/ckrun']];
  for (let i = 0; i < plan.warm; i++) {
    order.push([false, false, false, 'bin/ckrun']);
    if (plan.noVerify) order.push([false, false, true, 'bin/ckrun']);
    if (plan.node) order.push([false, false, false, 'node']);
  }
  for (let i = 0; i < plan.cold; i++) order.push([true, false, false, 'bin/ckrun']);
  const out: RestartRep[] = [];
  let failedInARow = 0;
  for (const [cold, warmup, noVerify, via] of order) {
    const r = await restartRep(kept, cold, warmup, noVerify, via);
    out.push(r);
    log(`  restart ${mib} MiB ${label(r)}: ${describe(r)}`);
    if (!r.error) {
      failedInARow = 0;
      continue;
    }
    errors.push(`restart ${label(r)}: ${r.error}`);
    if (++failedInARow === 3) {
      errors.push(`restarts ${kept.kind === 'incremental' ? 'of the incremental chain ' : ''}stopped after 3 failures in a row`);
      log(`  restart ${mib} MiB: 3 failures in a row, skipping the remaining restarts of this image`);
      break;
    }
  }
  return out;
}
