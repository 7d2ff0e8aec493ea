// The descriptor-kind programs of issue 12 (examples/locks.c, fifos.c,
// ...): building them, and the cycle each test runs — launch, checkpoint
// mid-work, kill -9, restart, verify, then the same again from the
// restarted program, which then runs to its end. Each program checks its
// own state and prints "FAIL: ..." when something is off.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkpoint, ckrun } from './ckrun.js';
import { EXAMPLE_BIN, EXAMPLES } from './paths.js';
import type { Proc } from './proc.js';
import { Scope } from './scope.js';

export const KIND_C_EXAMPLES = ['locks', 'fifos', 'deleted', 'kinds', 'mqueue', 'chroot', 'fanotify'] as const;
export type KindExample = (typeof KIND_C_EXAMPLES)[number];

/** examples/NAME.c, built into examples/bin when older than its source. */
export function kindProgram(name: KindExample, args: string[] = []): string[] {
  fs.mkdirSync(EXAMPLE_BIN, { recursive: true });
  const src = path.join(EXAMPLES, `${name}.c`);
  const bin = path.join(EXAMPLE_BIN, name);
  const newest = Math.max(fs.statSync(path.join(EXAMPLES, 'common.h')).mtimeMs, fs.statSync(src).mtimeMs);
  if (!fs.existsSync(bin) || fs.statSync(bin).mtimeMs < newest) {
    const tmp = `${bin}.tmp${process.pid}`;
    try {
      execFileSync('gcc', ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', tmp, src, '-lrt'], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`building ${name} failed:\n${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
    }
    fs.renameSync(tmp, bin);
  }
  return [bin, ...args];
}

export function noFailure(p: Proc, what: string): void {
  const bad = p.lines.find((l) => l.startsWith('FAIL') || l.startsWith('error'));
  if (bad) throw new Error(`${what}: the program says: ${bad}\n${p.describe(30)}`);
}

/**
 * A program ckrun must refuse to checkpoint: the checkpoint fails at once
 * with a message matching `message`, and the program runs on to its end
 * (it stops when DIR/release exists, release being that path).
 */
export async function refused(o: { name: string; program: string[]; message: RegExp; release: (work: string) => string }): Promise<void> {
  const scope = new Scope(o.name);
  try {
    const ckpt = scope.ckptDir('ckpt');
    const work = scope.dir('work');
    const p = scope.launch({ dir: ckpt, program: o.program, cwd: work, label: `ckrun ${o.name}` });
    await p.waitForStep(5);
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    if (r.code === 0) throw new Error(`${o.name}: the checkpoint succeeded; it must be refused\n${r.describe()}`);
    if (!o.message.test(r.stderr)) throw new Error(`${o.name}: the refusal does not say why: ${r.stderr}`);
    await p.waitForStep(p.maxStep + 5);
    fs.writeFileSync(o.release(work), '');
    const exit = await p.waitExit();
    noFailure(p, o.name);
    if (exit.code !== 0) throw new Error(`${o.name}: the program should run on and end with status 0\n${p.describe()}`);
  } finally {
    await scope.cleanup();
  }
}

export interface CycleOptions {
  name: string;
  program: string[];
  /** stage 0: the launched program, 1 and 2: the restarted ones; resolves when it may be checkpointed (stages 0 and 1) */
  ready: (p: Proc, stage: 0 | 1, scope: Scope) => Promise<void>;
  /** checks on a restarted program (while it runs); stage 2 then lets it finish */
  verify: (p: Proc, stage: 1 | 2, scope: Scope) => Promise<void>;
  /** a line the program prints at its end (after verify of stage 2) */
  doneLine: string;
  cwd?: string;
}

/** launch → checkpoint → kill -9 → restart → verify → checkpoint → kill -9 → restart → verify → its end. */
export async function cycle(o: CycleOptions): Promise<void> {
  const scope = new Scope(o.name);
  try {
    const ckpt = scope.ckptDir('ckpt');
    const cwd = o.cwd ?? scope.dir('work');
    let p = scope.launch({ dir: ckpt, program: o.program, cwd, label: `ckrun ${o.name}` });
    for (const stage of [0, 1] as const) {
      await o.ready(p, stage, scope);
      noFailure(p, `${o.name}, stage ${stage}`);
      await checkpoint(ckpt);
      const next = p.maxStep + 2;
      await p.waitForStep(next);
      await scope.kill9(p);
      noFailure(p, `${o.name}, stage ${stage}`);
      p = scope.restart({ dir: ckpt, cwd, label: `restart ${stage + 1} of ${o.name}` });
      await p.waitForStep(1);
      await o.verify(p, (stage + 1) as 1 | 2, scope);
      noFailure(p, `${o.name}, restart ${stage + 1}`);
    }
    await p.waitForLine(o.doneLine);
    const exit = await p.waitExit();
    noFailure(p, `${o.name}, the end`);
    if (exit.code !== 0) throw new Error(`${o.name}: the restarted program should end with status 0\n${p.describe()}`);
  } finally {
    await scope.cleanup();
  }
}
