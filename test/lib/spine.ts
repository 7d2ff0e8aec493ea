// The spine scenario every example goes through (issue 2, "Tests"):
//
//   launch under ckrun → checkpoint mid-work → kill -9 → restart → verify
//   → checkpoint the restarted process mid-work → kill -9 → restart → verify
//
// "Verify" means the program's own state: its output lines must be exactly
// the lines of an uninterrupted native run of the same program, the
// restarted output must continue where the checkpoint was taken (not start
// over, not skip), the final line must equal the uninterrupted run's, and
// each example may check its files.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ExampleName, exampleProgram } from './examples.js';
import { excerptAround, lastLine, stepOf } from './lines.js';
import { type NativeRun, Proc, runNative } from './proc.js';
import { descendants, findRestored, innerTids, nsPids } from './processes.js';
import { checkpoint, checkpointBySignal } from './ckrun.js';
import { Scope } from './scope.js';
import { readImage, generations, imagesOf, readManifest } from './images.js';

export type Trigger = 'cli' | 'signal';

export interface StageContext {
  /** 1 after the first restart (killed later), 2 after the second (ran to the end) */
  stage: 1 | 2;
  /** the working directory of the checkpointed runs (argument files live here) */
  work: string;
  /** the working directory of the uninterrupted reference run */
  refDir: string;
  /** the uninterrupted run */
  ref: NativeRun;
  /** the restarted run of this stage */
  proc: Proc;
  /** index in ref.lines of the restarted run's first line */
  resumedAt: number;
  ckpt: string;
}

export interface SpineOptions {
  name: string;
  example: ExampleName;
  /** program arguments for a working directory (called for the reference run and the checkpointed run) */
  args?: (dir: string) => string[];
  /** prepare a working directory (input files…) */
  setup?: (dir: string) => void;
  /** step at which the first checkpoint is requested */
  first: number;
  /** step (printed by the restarted run) at which the second is requested */
  second: number;
  /** how each checkpoint is requested */
  triggers?: [Trigger, Trigger];
  /** lines the complete output (original + restarted runs) must contain */
  expectLines?: (string | RegExp)[];
  /** program-specific checks after each restart (stage 1: while the restarted program runs) */
  check?: (ctx: StageContext) => void | Promise<void>;
  /** threads of the image may have ended by the time the restart is looked at (glibc's timer callbacks): only the PID is checked */
  shortLivedThreads?: boolean;
  /** the uninterrupted run ends before the checkpointed one starts (programs that would hear each other: netlink multicast) */
  refFirst?: boolean;
}

async function trigger(how: Trigger, proc: Proc, ckpt: string): Promise<string> {
  return how === 'cli' ? checkpoint(ckpt) : checkpointBySignal(proc, ckpt);
}

function checkGeneration(gen: string, expected: number): void {
  if (path.basename(gen) !== String(expected))
    throw new Error(`expected generation ${expected}, the checkpoint made ${gen}`);
  const m = readManifest(gen);
  const images = imagesOf(gen);
  if (!images.length) throw new Error(`${gen}: no image (manifest: ${JSON.stringify(m)})`);
  for (const i of images) if (!fs.existsSync(i)) throw new Error(`${gen}: manifest names ${i}, which does not exist`);
}

/**
 * Check that `after` (a restarted run) printed exactly ref.lines[k ..] for a k
 * that `before` had reached when the checkpoint was taken: not less than the
 * lines seen when the checkpoint was requested (minus one, for a line whose
 * flush the checkpoint interrupted), not more than `before` ever printed.
 * `complete`: the run went on to the end. Returns k.
 */
export function assertResumed(o: {
  /** all lines the run that was checkpointed printed, numbered as in ref */
  beforeLines: string[];
  requestedAt: number;
  after: Proc;
  ref: string[];
  complete: boolean;
  what: string;
}): number {
  const { beforeLines, after, ref } = o;
  const part = after.lines;
  if (!part.length) throw new Error(`${o.what}: the restarted program printed nothing\n${after.describe()}`);
  const init = part.find((l) => l === ref[0] || /^[\w.-]+: (start|constructor ran)\b/.test(l));
  if (init !== undefined)
    throw new Error(`${o.what}: the restarted program ran its initialization again (printed ${JSON.stringify(init)})\n${after.describe(8)}`);
  const lo = Math.max(1, o.requestedAt - 1);
  const hi = beforeLines.length;
  for (let k = lo; k <= hi; k++) {
    if (o.complete && k + part.length !== ref.length) continue;
    if (k + part.length > ref.length) continue;
    let ok = true;
    for (let i = 0; i < part.length && ok; i++) ok = ref[k + i] === part[i];
    if (ok) return k;
  }
  // explain the mismatch
  const first = stepOf(part[0]);
  const at = ref.indexOf(part[0]);
  let why: string;
  if (at < 0) why = `its first line ${JSON.stringify(part[0])} is not a line of the uninterrupted run`;
  else if (at < lo)
    why = `it resumed at line ${at} (step ${first}), before the checkpoint was requested (line ${o.requestedAt}): the state is older than the checkpoint`;
  else if (at > hi)
    why = `it resumed at line ${at} (step ${first}), beyond what the checkpointed run ever printed (${hi} lines): lines were skipped`;
  else {
    let d = 0;
    while (d < part.length && at + d < ref.length && ref[at + d] === part[d]) d++;
    why =
      at + d >= ref.length && d < part.length
        ? `it printed ${part.length - d} lines more than the uninterrupted run`
        : d === part.length
          ? `it stopped early: the uninterrupted run has ${ref.length - at - d} more lines, starting ${JSON.stringify(ref[at + d])}`
          : `its line ${d} differs from the uninterrupted run:\n    restarted:     ${JSON.stringify(part[d])}\n    uninterrupted: ${JSON.stringify(ref[at + d])}`;
  }
  throw new Error(
    `${o.what}: the restarted output is not the continuation of the checkpointed run: ${why}\n` +
      `  the checkpointed run printed ${hi} lines (the checkpoint was requested after line ${o.requestedAt}), last:\n${excerptAround(beforeLines, hi - 3, 3)}\n` +
      `  uninterrupted run around there:\n${excerptAround(ref, (at >= 0 ? at : hi) - 2, 5)}\n${after.describe(15)}`,
  );
}

/** Every line printed by the first (checkpointed) run must be the uninterrupted run's, in order. */
export function assertPrefix(p: Proc, ref: string[], what: string): void {
  for (let i = 0; i < p.lines.length; i++) {
    if (p.lines[i] !== ref[i])
      throw new Error(
        `${what}: line ${i} under ckrun differs from the uninterrupted run:\n    ckrun:         ${JSON.stringify(p.lines[i])}\n    uninterrupted: ${JSON.stringify(ref[i])}\n${p.describe(10)}`,
      );
  }
}

/**
 * The restarted program runs with the PID it had at the checkpoint (in a
 * fresh PID namespace if need be) and every thread of the image is back
 * with its TID.
 */
export function assertOriginalIds(restarted: Proc, gen: string, what: string, pidOnly = false): void {
  const m = readManifest(gen);
  const pid = Number(m.processes?.[0]?.pid ?? m.root);
  const found = findRestored(restarted.pid, pid);
  if (!found) {
    const below = descendants(restarted.pid).map((d) => `${d} (NSpid ${nsPids(d).join(' ')})`);
    throw new Error(`${what}: no process below ckrun restart runs with the original PID ${pid}; below it: ${below.join(', ') || 'nothing'}`);
  }
  if (pidOnly) return;
  const img = readImage(imagesOf(gen)[0]);
  const want = ((img.meta.threads as { tid: number }[] | undefined) ?? []).map((t) => Number(t.tid)).sort((a, b) => a - b);
  const have = innerTids(found.outer).sort((a, b) => a - b);
  const missing = want.filter((t) => !have.includes(t));
  if (missing.length) throw new Error(`${what}: threads ${missing.join(', ')} of the image are not back with their TIDs (now: ${have.join(', ')})`);
}

/** The highest step among lines[0 .. k): the step the program had finished when it was checkpointed. */
export function stepReachedBefore(lines: string[], k: number): number {
  let m = 0;
  for (let i = 0; i < k && i < lines.length; i++) m = Math.max(m, stepOf(lines[i]) ?? 0);
  return m;
}

/** After a checkpoint the program runs on: it prints another step. */
async function runsOn(p: Proc): Promise<void> {
  const next = p.maxStep + 1;
  await p.waitForStep(next).catch((e: Error) => {
    throw new Error(`the program did not run on after the checkpoint (no step ${next}):\n${e.message}`);
  });
}

export async function spine(o: SpineOptions): Promise<void> {
  const scope = new Scope(o.name);
  const [t1, t2] = o.triggers ?? ['cli', 'cli'];
  try {
    const refDir = scope.dir('ref');
    const work = scope.dir('work');
    const elsewhere = scope.dir('elsewhere');
    const ckpt = scope.ckptDir('ckpt');
    o.setup?.(refDir);
    o.setup?.(work);
    const program = (d: string) => exampleProgram(o.example, o.args?.(d) ?? []);

    // the uninterrupted reference, natively, in parallel
    const refRun = runNative(program(refDir), { cwd: refDir });
    if (o.refFirst) await refRun;

    // 1. launch, checkpoint mid-work, kill -9
    const s1 = scope.launch({ dir: ckpt, program: program(work), cwd: work, label: `ckrun ${o.example}` });
    await s1.waitForStep(o.first);
    const req1 = s1.lines.length;
    const gen1 = await trigger(t1, s1, ckpt);
    checkGeneration(gen1, 1);
    await runsOn(s1);
    await scope.kill9(s1);

    const ref = await refRun;
    if (ref.code !== 0)
      throw new Error(`the uninterrupted run of ${o.example} failed (status ${ref.code}, signal ${ref.signal}):\n${ref.stdout}\n${ref.stderr}`);
    assertPrefix(s1, ref.lines, `${o.name}, first run`);

    // 2. restart; it continues; checkpoint it mid-work; kill -9
    const r1 = scope.restart({ dir: ckpt, cwd: elsewhere, label: `restart 1 of ${o.example}` });
    await r1.waitForStep(o.second);
    const k1 = assertResumed({ beforeLines: s1.lines, requestedAt: req1, after: r1, ref: ref.lines, complete: false, what: `${o.name}, first restart` });
    assertOriginalIds(r1, gen1, o.name, o.shortLivedThreads);
    await o.check?.({ stage: 1, work, refDir, ref, proc: r1, resumedAt: k1, ckpt });
    const req2 = r1.lines.length;
    const gen2 = await trigger(t2, r1, ckpt);
    checkGeneration(gen2, 2);
    await runsOn(r1);
    await scope.kill9(r1);
    assertResumed({ beforeLines: s1.lines, requestedAt: req1, after: r1, ref: ref.lines, complete: false, what: `${o.name}, first restart` });
    if (generations(ckpt).join() !== '1,2') throw new Error(`generations in ${ckpt}: ${generations(ckpt).join(', ')}; expected 1, 2`);

    // 3. restart again; it runs to the end
    const r2 = scope.restart({ dir: ckpt, cwd: elsewhere, label: `restart 2 of ${o.example}` });
    const exit = await r2.waitExit();
    if (exit.code !== 0)
      throw new Error(`${o.name}: the second restart should run the program to its end and exit 0\n${r2.describe()}`);
    // r1 printed ref.lines[k1 ..]
    const r1Lines = ref.lines.slice(0, k1).concat(r1.lines);
    const k2 = assertResumed({ beforeLines: r1Lines, requestedAt: k1 + req2, after: r2, ref: ref.lines, complete: true, what: `${o.name}, second restart` });
    if (lastLine(r2.lines) !== lastLine(ref.lines))
      throw new Error(`${o.name}: final line differs\n    restarted:     ${lastLine(r2.lines)}\n    uninterrupted: ${lastLine(ref.lines)}`);

    const all = ref.lines.slice(0, k2).concat(r2.lines);
    for (const e of o.expectLines ?? []) {
      const hit = all.some((l) => (typeof e === 'string' ? l === e : e.test(l)));
      if (!hit) throw new Error(`${o.name}: no line ${String(e)} in the output of the checkpointed and restarted runs\n${r2.describe(40)}`);
    }
    await o.check?.({ stage: 2, work, refDir, ref, proc: r2, resumedAt: k2, ckpt });
  } finally {
    await scope.cleanup();
  }
}
