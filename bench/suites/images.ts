// Image size against resident memory for small real programs: a trivial C
// program (a loop that sleeps), python3 (a loop) and node (a setInterval).
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { bin, checkpoint, inspect, NODE, PROGRAMS, programPid, startSession, statusBytes, WORK } from '../lib/ckrun.js';
import { errorText, log } from '../lib/log.js';
import { sleep } from '../lib/proc.js';

export interface ImageRep {
  rssBytes: number | null;
  rssAnonBytes: number | null;
  imageBytes: number;
  storedBytes: number;
  byKind: Record<string, number>;
  largest: [string, number][];
}

export interface ImageCase {
  program: string;
  argv: string[];
  reps: ImageRep[];
  errors: string[];
}

export function imagePrograms(python: string): { name: string; argv: string[] }[] {
  return [
    { name: 'trivial C (sleep loop)', argv: [bin('sleeper')] },
    { name: 'python3 (sleep loop)', argv: [python, join(PROGRAMS, 'loop.py')] },
    { name: 'node (setInterval)', argv: [NODE, join(PROGRAMS, 'interval.js')] },
  ];
}

/** One session per program, `checkpoints` checkpoints of it, 0.5 s apart. */
export async function imageCase(name: string, argv: string[], checkpoints: number, keep: boolean): Promise<ImageCase> {
  const out: ImageCase = { program: name, argv, reps: [], errors: [] };
  const dir = join(WORK, `image-${name.replace(/[^a-z0-9]+/gi, '-')}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const session = startSession(dir, argv);
  try {
    await session.waitLine((l) => l === 'ready', 60_000, `${name} ready`);
    const pid = await programPid(session, 10_000);
    await sleep(500);
    for (let i = 0; i < checkpoints; i++) {
      const rssBytes = statusBytes(pid, 'VmRSS') ?? null;
      const rssAnonBytes = statusBytes(pid, 'RssAnon') ?? null;
      const generation = await checkpoint(dir, 60_000);
      const info = await inspect(generation);
      out.reps.push({
        rssBytes,
        rssAnonBytes,
        imageBytes: info.fileBytes,
        storedBytes: info.storedBytes,
        byKind: info.byKind,
        largest: info.largest,
      });
      if (!keep) rmSync(generation, { recursive: true, force: true });
      await sleep(500);
    }
    const r = out.reps[out.reps.length - 1];
    if (r) log(`  image ${name}: ${(r.imageBytes / 1048576).toFixed(2)} MiB, VmRSS ${((r.rssBytes ?? NaN) / 1048576).toFixed(2)} MiB`);
  } catch (e) {
    out.errors.push(errorText(e));
    log(`  image ${name} failed: ${errorText(e)}`);
  } finally {
    await session.kill();
  }
  if (!keep) rmSync(dir, { recursive: true, force: true });
  return out;
}
