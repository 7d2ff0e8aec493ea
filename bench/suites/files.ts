// Written files (src/files.ts): what `--files=snapshot` adds to the pause
// and to the checkpoint time, beside `--files=size` (which saves nothing of
// a file's content), while filewriter rewrites 4 KiB pages of a 100 MiB or
// 1 GiB file in place; and what putting the file back adds to a restart.
// The first checkpoint of a session copies the whole file, the later ones
// only the blocks changed since (found by reading and hashing the file).
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { bin, checkpoint, startRestart, startSession, verboseCheckpoint, WORK } from '../lib/ckrun.js';
import { errorText, log } from '../lib/log.js';
import { monoNs, sleep, waitPidGone } from '../lib/proc.js';

export type FilesPolicyName = 'snapshot' | 'size';

export interface FilesCheckpointRep {
  /** Which checkpoint of the session (1: the whole file is copied). */
  n: number;
  /** Request sent → generation complete. */
  checkpointNs: number;
  /** The program's pause as ckrun's verbose line says. */
  pausedNs: number | null;
  /** Bytes of the file stored in this generation, and the time it took (inside the pause). */
  filesBytes: number | null;
  filesNs: number | null;
}

export interface FilesCase {
  mib: number;
  policy: FilesPolicyName;
  checkpoints: FilesCheckpointRep[];
  /** `ckrun restart` (node) until the program is restored, the file put back first with snapshot. */
  restartNs: number[];
  errors: string[];
}

/** Pages a second filewriter rewrites: 4 MiB/s of random 4 KiB pages. */
const PAGES_PER_S = 1000;

function unitNs(u: string): number {
  return ({ ns: 1, µs: 1e3, ms: 1e6, s: 1e9 } as Record<string, number>)[u] ?? NaN;
}

function unitBytes(u: string): number {
  return ({ B: 1, bytes: 1, KiB: 1024, MiB: 1 << 20, GiB: 1 << 30 } as Record<string, number>)[u] ?? NaN;
}

/** "; 1 written file: 12.5 MiB stored in 40.1 ms of the pause" of checkpoint n's verbose line. */
function filesPart(stderr: string, n: number): { bytes: number; ns: number } | undefined {
  const re = new RegExp(`checkpoint ${n} written to .*written files?: ([0-9.]+) (B|bytes|KiB|MiB|GiB) stored in ([0-9.]+) (ns|µs|ms|s)`);
  const m = re.exec(stderr);
  return m ? { bytes: Number(m[1]) * unitBytes(m[2]!), ns: Number(m[3]) * unitNs(m[4]!) } : undefined;
}

export async function filesCase(mib: number, policy: FilesPolicyName, checkpoints: number, restarts: number, keep: boolean): Promise<FilesCase> {
  const out: FilesCase = { mib, policy, checkpoints: [], restartNs: [], errors: [] };
  const dir = join(WORK, `files-${mib}-${policy}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const data = join(dir, 'data.db');
  const ck = join(dir, 'ck');
  log(`written files ${mib} MiB --files=${policy}: ckrun -- filewriter ${mib} MiB, ${PAGES_PER_S} pages/s`);
  const session = startSession(ck, [bin('filewriter'), data, String(mib), String(PAGES_PER_S)], true, [`--files=${policy}`]);
  let pid = 0;
  let last: string | undefined;
  try {
    pid = Number((await session.waitLine((l) => l.startsWith('ready '), 300_000, 'filewriter ready')).split(' ')[1]);
    for (let n = 1; n <= checkpoints; n++) {
      await sleep(1000);
      const t0 = monoNs();
      last = await checkpoint(ck, 300_000);
      const ns = monoNs() - t0;
      await sleep(100); // the verbose line follows the answer
      const v = verboseCheckpoint(session.stderr, n);
      const f = filesPart(session.stderr, n);
      out.checkpoints.push({ n, checkpointNs: ns, pausedNs: v?.pausedNs ?? null, filesBytes: f?.bytes ?? (policy === 'size' ? 0 : null), filesNs: f?.ns ?? (policy === 'size' ? 0 : null) });
      log(
        `  checkpoint ${n}: ${(ns / 1e6).toFixed(1)} ms, paused ${v ? (v.pausedNs / 1e6).toFixed(1) : '?'} ms` +
          (f ? `, file: ${(f.bytes / 1048576).toFixed(1)} MiB stored in ${(f.ns / 1e6).toFixed(1)} ms` : ''),
      );
    }
  } catch (e) {
    out.errors.push(errorText(e));
    log(`  ${errorText(e)}`);
  } finally {
    await session.kill();
  }
  if (last && pid) {
    for (let i = 0; i < restarts; i++) {
      await waitPidGone(pid, 10_000);
      const t0 = monoNs();
      const r = startRestart(last, [], 'node');
      try {
        await waitStderr(r, /process \d+ restored/, 120_000);
        const ns = monoNs() - t0;
        out.restartNs.push(ns);
        log(`  restart ${i + 1}: ${(ns / 1e6).toFixed(1)} ms`);
        await sleep(1500); // the program rewrites pages again: the next restart has something to put back
      } catch (e) {
        out.errors.push(`restart: ${errorText(e)}`);
      } finally {
        await r.kill();
      }
    }
  }
  if (!keep) rmSync(dir, { recursive: true, force: true });
  return out;
}

async function waitStderr(p: { stderr: string; exitInfo: unknown; stderrTail(): string }, re: RegExp, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(p.stderr)) {
    if (p.exitInfo) throw new Error(`ckrun restart exited first: ${p.stderrTail()}`);
    if (Date.now() > end) throw new Error(`no ${re} within ${ms} ms: ${p.stderrTail()}`);
    await sleep(5);
  }
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function ms(ns: number | null): string {
  return ns === null ? '–' : `${(ns / 1e6).toFixed(0)} ms`;
}

function mibText(b: number | null): string {
  return b === null ? '–' : `${(b / 1048576).toFixed(1)} MiB`;
}

/** The suite's section of RESULTS.md. */
export function renderFiles(cases: FilesCase[]): string {
  if (cases.length === 0) return '';
  const rows = cases.map((c) => {
    const first = c.checkpoints.find((x) => x.n === 1);
    const later = c.checkpoints.filter((x) => x.n > 1);
    return (
      `| ${c.mib} MiB | ${c.policy} | ${ms(first?.pausedNs ?? null)} | ${ms(first?.checkpointNs ?? null)} | ${mibText(first?.filesBytes ?? null)} in ${ms(first?.filesNs ?? null)} | ` +
      `${ms(median(later.flatMap((x) => (x.pausedNs === null ? [] : [x.pausedNs]))))} | ${ms(median(later.map((x) => x.checkpointNs)))} | ` +
      `${mibText(median(later.flatMap((x) => (x.filesBytes === null ? [] : [x.filesBytes]))))} in ${ms(median(later.flatMap((x) => (x.filesNs === null ? [] : [x.filesNs]))))} | ` +
      `${ms(median(c.restartNs))} |`
    );
  });
  const errors = cases.flatMap((c) => c.errors.map((e) => `- ${c.mib} MiB ${c.policy}: ${e}`));
  return [
    '## Written files (`--files`)',
    '',
    `filewriter rewrites random 4 KiB pages of one file in place (${PAGES_PER_S} a second, like a database); checkpoints one second apart. ` +
      '`--files=snapshot` stores the whole file at the first checkpoint and then only the blocks changed since (it reads and hashes the whole file while the program is stopped); `--files=size` stores nothing of it. ' +
      'Pause: the program\'s, as ckrun reports it. Restart: `node bin/ckrun.js restart` until the program is restored (snapshot: after putting the file back; the program rewrote pages for 1.5 s before it was killed).',
    '',
    '| file | --files | 1st pause | 1st checkpoint | 1st: file stored | later pause (median) | later checkpoint | later: file stored | restart (median) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    ...(errors.length ? ['Failures:', '', ...errors, ''] : []),
  ].join('\n');
}
