// --compress beside the uncompressed numbers: checkpoint time, image size and
// restart time of memloop holding random data (which does not compress: ckrun
// stores such segments as they are) and log-like text (which does), with and
// without --compress. Random data without --compress is the memory suite's.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { bin, startSession, statusBytes, WORK } from '../lib/ckrun.js';
import { errorText, log } from '../lib/log.js';
import { sleep, waitPidGone } from '../lib/proc.js';
import { collectGaps, timedCheckpoint } from './memloop.js';
import { restarts, type KeptImage, type RestartRep } from './restart.js';

export type DataKind = 'random' | 'text';

export interface CompressPlan {
  mib: number;
  checkpoints: number;
  restarts: number;
}

export interface CompressCheckpointRep {
  rssBytes: number | null;
  /** The generation's image file(s): <pid>.ckpt.gz with --compress. */
  imageBytes: number;
  /** Request sent → generation complete (compressed, fsync'd) and on disk. */
  checkpointNs: number;
  pauseAtStopNs: number | null;
  shimPauseNs: number;
}

export interface CompressCase {
  mib: number;
  data: DataKind;
  /** The --compress option given, or null for none. */
  compress: string | null;
  checkpoints: CompressCheckpointRep[];
  restarts: RestartRep[];
  errors: string[];
}

const READY_TIMEOUT_MS = 180_000;

/** The variants measured here, per size. */
export const COMPRESS_VARIANTS: { data: DataKind; compress: string | null }[] = [
  { data: 'random', compress: '--compress' },
  { data: 'text', compress: null },
  { data: 'text', compress: '--compress' },
];

/** One variant: `checkpoints` checkpoints (the last one kept), then restarts of it from the page cache. */
export async function compressCase(plan: CompressPlan, data: DataKind, compress: string | null, keep: boolean): Promise<CompressCase> {
  const out: CompressCase = { mib: plan.mib, data, compress, checkpoints: [], restarts: [], errors: [] };
  const name = `${data}${compress ? '-gz' : ''}`;
  const dir = join(WORK, `compress-${plan.mib}-${name}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const label = `${plan.mib} MiB ${data}${compress ? ` ${compress}` : ''}`;
  log(`compression ${label}: starting ckrun${compress ? ` ${compress}` : ''} -- memloop ${plan.mib}${data === 'text' ? ' text' : ''}`);
  const argv = [bin('memloop'), String(plan.mib), ...(data === 'text' ? ['text'] : [])];
  const session = startSession(dir, argv, true, compress ? [compress] : []);
  const gaps = collectGaps(session);
  let kept: KeptImage | undefined;
  try {
    const ready = (await session.waitLine((l) => l.startsWith('ready '), READY_TIMEOUT_MS, 'memloop ready')).split(' ');
    const pid = Number(ready[1]);
    for (let i = 0; i < plan.checkpoints; i++) {
      // Every checkpoint without a parent (a compressed one never has one;
      // an uncompressed one would be incremental to the previous): the
      // previous generation goes first, the last one stays for the restarts.
      if (kept) rmSync(kept.generation, { recursive: true, force: true });
      kept = undefined;
      await sleep(300);
      try {
        const rss = statusBytes(pid, 'VmRSS') ?? null;
        const c = await timedCheckpoint(session, gaps, dir, plan.mib * (compress ? 4 : 1));
        out.checkpoints.push({
          rssBytes: rss,
          imageBytes: c.info.fileBytes,
          checkpointNs: c.ns,
          pauseAtStopNs: c.pauseAtStopNs,
          shimPauseNs: c.info.manifestPauseNs,
        });
        log(`  checkpoint ${label} #${i + 1}: ${(c.ns / 1e6).toFixed(1)} ms, image ${(c.info.fileBytes / 1048576).toFixed(2)} MiB`);
        kept = { generation: c.generation, pid: c.info.pid, sum: ready[3] ?? '?', kind: 'full' };
      } catch (e) {
        out.errors.push(`checkpoint: ${errorText(e)}`);
        log(`  checkpoint ${label} #${i + 1} failed: ${errorText(e)}`);
        if (session.exitInfo) throw new Error(`the session ended: ${session.stderrTail()}`);
      }
    }
  } catch (e) {
    out.errors.push(errorText(e));
    log(`  compression ${label}: ${errorText(e)}`);
  } finally {
    await session.kill();
  }
  if (kept) {
    await waitPidGone(kept.pid, 10_000);
    out.restarts.push(...(await restarts(plan.mib, kept, { warm: plan.restarts, noVerify: false, cold: 0 }, out.errors)));
  }
  if (!keep) rmSync(dir, { recursive: true, force: true });
  return out;
}
