// Pause, checkpoint, incremental checkpoint and restart of a program holding
// 10 MiB, 100 MiB or 1 GiB of random data (bench/programs/memloop.c), and the
// plain write of the same bytes beside every full checkpoint.
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { anonHugeBytes, bin, startSession, statusBytes, verboseCheckpoint, WORK } from '../lib/ckrun.js';
import { waitQuietCpu } from '../lib/environment.js';
import { errorText, log } from '../lib/log.js';
import { LineProc, runOk, sleep, waitPidGone } from '../lib/proc.js';
import { collectGaps, command, timedCheckpoint, type Gap, type TimedCheckpoint } from './memloop.js';
import { restarts, type KeptImage, type RestartRep } from './restart.js';

export type { RestartRep } from './restart.js';

export interface MemoryPlan {
  mib: number;
  /** Full checkpoints (each with a plain write beside it). */
  checkpoints: number;
  /** Incremental checkpoints after 1% of the pages changed. */
  incremental: number;
  /** Restarts of the full image with it in the page cache (after one uncounted warm-up). */
  warmRestarts: number;
  /** Restarts of the full image after dropping the caches. */
  coldRestarts: number;
  /** Restarts of the newest incremental image (page cache). */
  chainRestarts: number;
}

export interface CheckpointRep {
  rssBytes: number | null;
  anonHugeBytes: number | null;
  imageBytes: number;
  storedBytes: number;
  /** The image referred to an older one (should be false: the previous generation was deleted). */
  incremental: boolean;
  /** Request sent → generation complete and on disk. */
  checkpointNs: number;
  /** The plain write + fsync of imageBytes, same directory, same rep. */
  limitNs: number | null;
  limitWriteNs: number | null;
  limitFsyncNs: number | null;
  limitError?: string;
  /** Whether the plain write ran before the checkpoint in this rep. */
  limitFirst: boolean;
  /** The program's gap that contains the image's created_ns (the stop). */
  pauseAtStopNs: number | null;
  /** The largest gap between request and completion. */
  maxGapNs: number;
  /** The largest gap in the 500 ms before the request (no checkpoint running). */
  backgroundMaxGapNs: number;
  /** manifest processes[].pause_ns: the shim's own measure. */
  shimPauseNs: number;
  /** meta.stats.pause_ns. */
  statsPauseNs: number;
  /** From ckrun's verbose log line (rounded as printed). */
  logPauseNs: number | null;
  logTookNs: number | null;
  /** Bytes stored per region kind. */
  byKind: Record<string, number>;
}

export interface IncrementalRep {
  /** Pages memloop changed since the previous checkpoint. */
  changedPages: number;
  /** The new image's own file. */
  imageBytes: number;
  /** The full image of the same program (the first of the chain). */
  fullBytes: number;
  incremental: boolean;
  tracking: string;
  /** Bytes of unchanged pages it refers to in older images. */
  referredBytes: number;
  checkpointNs: number;
  pauseAtStopNs: number | null;
  shimPauseNs: number;
}

export interface IncrementalCase {
  reps: IncrementalRep[];
  /** memloop rewriting one word of every page before any checkpoint. */
  writePassBeforeNs: number | null;
  /** The same after a checkpoint (changes are tracked: a fault per page). */
  writePassAfterNs: number | null;
  pages: number | null;
}

export interface MemoryCase {
  mib: number;
  checkpoints: CheckpointRep[];
  incremental: IncrementalCase;
  restarts: RestartRep[];
  errors: string[];
}

const READY_TIMEOUT_MS = 180_000;

interface Ctx {
  plan: MemoryPlan;
  session: LineProc;
  gaps: Gap[];
  dir: string;
  pid: number;
  keep: boolean;
  errors: string[];
}

/** Flushes dirty data and lets the disk settle (deleted images are discarded on this ext4). */
async function quiesce(): Promise<void> {
  await runOk('sync', [], 120_000);
  await sleep(300);
  await waitQuietCpu(5_000, 0.6); // memloop spins on one of the two cores: 50% is quiet
}

interface Limit {
  total: number;
  write: number;
  fsync: number;
}

async function plainWrite(dir: string, bytes: number): Promise<Limit> {
  const r = await runOk(bin('writelimit'), [join(dir, 'plain-write.tmp'), String(bytes)], 600_000);
  const m = /^write (\d+) (\d+) (\d+) (\d+)/m.exec(r.stdout);
  if (!m) throw new Error(`writelimit printed '${r.stdout.trim()}'`);
  return { total: Number(m[1]), write: Number(m[2]), fsync: Number(m[3]) };
}

async function limitOrError(dir: string, bytes: number): Promise<Limit | string> {
  await quiesce();
  try {
    return await plainWrite(dir, bytes);
  } catch (e) {
    return errorText(e);
  }
}

function toRep(c: TimedCheckpoint, limit: Limit | string | undefined, limitFirst: boolean, rss: number | null, huge: number | null): CheckpointRep {
  const fromLog = verboseCheckpoint(c.log, Number(basename(c.generation)));
  const l = typeof limit === 'object' ? limit : undefined;
  const rep: CheckpointRep = {
    rssBytes: rss,
    anonHugeBytes: huge,
    imageBytes: c.info.fileBytes,
    storedBytes: c.info.storedBytes,
    incremental: c.info.incremental,
    checkpointNs: c.ns,
    limitNs: l?.total ?? null,
    limitWriteNs: l?.write ?? null,
    limitFsyncNs: l?.fsync ?? null,
    limitFirst,
    pauseAtStopNs: c.pauseAtStopNs,
    maxGapNs: c.maxGapNs,
    backgroundMaxGapNs: c.backgroundMaxGapNs,
    shimPauseNs: c.info.manifestPauseNs,
    statsPauseNs: c.info.statsPauseNs,
    logPauseNs: fromLog?.pausedNs ?? null,
    logTookNs: fromLog?.tookNs ?? null,
    byKind: c.info.byKind,
  };
  if (typeof limit === 'string') rep.limitError = limit;
  return rep;
}

/**
 * One full checkpoint with the plain write beside it (before or after it);
 * the generation is removed afterwards (so the next one is full again) unless keep.
 */
async function checkpointRep(ctx: Ctx, limitFirst: boolean, lastImageBytes: number): Promise<CheckpointRep> {
  const before = limitFirst ? await limitOrError(ctx.dir, lastImageBytes) : undefined;
  await quiesce();
  await sleep(700); // the program runs undisturbed through the background window
  const rss = statusBytes(ctx.pid, 'VmRSS') ?? null;
  const huge = anonHugeBytes(ctx.pid) ?? null;
  const c = await timedCheckpoint(ctx.session, ctx.gaps, ctx.dir, ctx.plan.mib);
  // Out of the way, so that the next checkpoint has no parent and is full again.
  if (ctx.keep) renameSync(c.generation, join(ctx.dir, `full-${ctx.session.pid}-${basename(c.generation)}-${Date.now()}`));
  else rmSync(c.generation, { recursive: true, force: true });
  const after = limitFirst ? undefined : await limitOrError(ctx.dir, c.info.fileBytes);
  return toRep(c, before ?? after, limitFirst, rss, huge);
}

const ms = (ns: number | null): string => `${((ns ?? NaN) / 1e6).toFixed(1)} ms`;

async function fullCheckpoints(ctx: Ctx, out: CheckpointRep[]): Promise<void> {
  let lastImage = ctx.plan.mib * 1048576;
  // One uncounted pair first: the session's first checkpoint and the first
  // plain write of this size fill page cache from memory the VM has not used
  // yet (this machine hands unused guest memory back to its host), and the
  // writer's code and the coordinator's checkpoint path run for the first time.
  try {
    const w = await checkpointRep(ctx, false, lastImage);
    lastImage = w.imageBytes;
    log(`  checkpoint ${ctx.plan.mib} MiB warm-up (not counted): ${ms(w.checkpointNs)} (plain write ${ms(w.limitNs)})`);
  } catch (e) {
    log(`  checkpoint ${ctx.plan.mib} MiB warm-up failed: ${errorText(e)}`);
  }
  for (let i = 0; i < ctx.plan.checkpoints; i++) {
    try {
      const rep = await checkpointRep(ctx, i % 2 === 1, lastImage);
      lastImage = rep.imageBytes;
      out.push(rep);
      log(
        `  checkpoint ${ctx.plan.mib} MiB #${i + 1}: ${ms(rep.checkpointNs)} (plain write ${ms(rep.limitNs)}), ` +
          `pause at the stop ${ms(rep.pauseAtStopNs)}, largest gap ${ms(rep.maxGapNs)}, ckrun's pause_ns ${ms(rep.shimPauseNs)}${rep.incremental ? ' (incremental!)' : ''}`,
      );
      if (rep.limitError) ctx.errors.push(`plain write: ${rep.limitError}`);
    } catch (e) {
      ctx.errors.push(`checkpoint: ${errorText(e)}`);
      log(`  checkpoint ${ctx.plan.mib} MiB #${i + 1} failed: ${errorText(e)}`);
      if (ctx.session.exitInfo) throw new Error(`the session ended: ${ctx.session.stderrTail()}`);
    }
  }
}

/**
 * A full checkpoint kept for the restarts, then `incremental` rounds of
 * "change 1% of the pages, checkpoint", then the cost of writing every page
 * once while changes are tracked. Returns the images to restart.
 */
async function incrementalPart(ctx: Ctx, readyWritePassNs: number, readySum: string, out: IncrementalCase): Promise<KeptImage[]> {
  await quiesce();
  const full = await timedCheckpoint(ctx.session, ctx.gaps, ctx.dir, ctx.plan.mib);
  const kept: KeptImage[] = [{ generation: full.generation, pid: full.info.pid, sum: readySum, kind: 'full' }];
  out.writePassBeforeNs = readyWritePassNs;
  let last: KeptImage | undefined;
  for (let i = 0; i < ctx.plan.incremental; i++) {
    try {
      const [, pages, sum] = await command(ctx.session, ctx.pid, 'SIGUSR1', 'dirtied', 60_000);
      await sleep(300);
      const c = await timedCheckpoint(ctx.session, ctx.gaps, ctx.dir, ctx.plan.mib);
      out.reps.push({
        changedPages: Number(pages),
        imageBytes: c.info.fileBytes,
        fullBytes: full.info.fileBytes,
        incremental: c.info.incremental,
        tracking: c.info.tracking,
        referredBytes: c.info.referredBytes,
        checkpointNs: c.ns,
        pauseAtStopNs: c.pauseAtStopNs,
        shimPauseNs: c.info.manifestPauseNs,
      });
      last = { generation: c.generation, pid: c.info.pid, sum: sum!, kind: 'incremental' };
      log(
        `  incremental ${ctx.plan.mib} MiB #${i + 1}: ${pages} pages changed, image ${(c.info.fileBytes / 1048576).toFixed(2)} MiB ` +
          `(${((100 * c.info.fileBytes) / full.info.fileBytes).toFixed(2)}% of the full one${c.info.incremental ? '' : `; NOT incremental: ${c.info.tracking}`}), ${ms(c.ns)}`,
      );
    } catch (e) {
      ctx.errors.push(`incremental checkpoint: ${errorText(e)}`);
      log(`  incremental ${ctx.plan.mib} MiB #${i + 1} failed: ${errorText(e)}`);
    }
  }
  try {
    const [, ns, pages] = await command(ctx.session, ctx.pid, 'SIGUSR2', 'wrote', 120_000);
    out.writePassAfterNs = Number(ns);
    out.pages = Number(pages);
  } catch (e) {
    ctx.errors.push(`write pass after a checkpoint: ${errorText(e)}`);
  }
  if (last) kept.push(last);
  return kept;
}

/** Runs one size: full checkpoints with plain writes, incremental ones, then restarts. */
export async function memoryCase(plan: MemoryPlan, keep: boolean, canDropCaches: boolean): Promise<MemoryCase> {
  const out: MemoryCase = {
    mib: plan.mib,
    checkpoints: [],
    incremental: { reps: [], writePassBeforeNs: null, writePassAfterNs: null, pages: null },
    restarts: [],
    errors: [],
  };
  const dir = join(WORK, `mem-${plan.mib}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  log(`memory ${plan.mib} MiB: starting ckrun -- memloop ${plan.mib}`);
  const session = startSession(dir, [bin('memloop'), String(plan.mib)]);
  const gaps = collectGaps(session);
  let kept: KeptImage[] = [];
  try {
    const ready = (await session.waitLine((l) => l.startsWith('ready '), READY_TIMEOUT_MS, 'memloop ready')).split(' ');
    const ctx: Ctx = { plan, session, gaps, dir, pid: Number(ready[1]), keep, errors: out.errors };
    await fullCheckpoints(ctx, out.checkpoints);
    kept = await incrementalPart(ctx, Number(ready[4]), ready[3] ?? '?', out.incremental);
  } catch (e) {
    out.errors.push(errorText(e));
    log(`  memory ${plan.mib} MiB: ${errorText(e)}`);
  } finally {
    await session.kill();
  }
  for (const k of kept) {
    await waitPidGone(k.pid, 10_000);
    const p =
      k.kind === 'full'
        ? { warm: plan.warmRestarts, noVerify: true, node: true, cold: canDropCaches ? plan.coldRestarts : 0 }
        : { warm: plan.chainRestarts, noVerify: false, cold: 0 };
    out.restarts.push(...(await restarts(plan.mib, k, p, out.errors)));
  }
  if (!keep) rmSync(dir, { recursive: true, force: true });
  return out;
}
