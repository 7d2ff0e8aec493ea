// The shim's wrappers stand where libc's system call wrappers stood, and
// those leave the vector registers alone: a program that keeps values in
// them across such a call (hand-written code; CRIU's zdtm sse00, sse20 and
// fpu01 do) must find them there, at its very first call of a wrapper
// (which once looked libc's function up then, clobbering xmm0) and at a
// call a checkpoint interrupted and a restart resumed. examples/vecregs.c
// fills ymm0..15 (xmm0..15 without AVX) before each call and compares
// after it, in itself and in a fresh copy every ten steps; it prints FAIL
// at the first difference.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { runNative, type Proc } from './lib/proc.js';
import { checkpoint } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { assertPrefix, assertResumed } from './lib/spine.js';

function assertKept(p: Proc, what: string): void {
  const bad = [...p.lines, ...p.stderr.split('\n')].find((l) => l.startsWith('FAIL'));
  if (bad) throw new Error(`${what}: a vector register changed across a call: ${bad}\n${p.describe(8)}`);
}

test('vector registers survive the wrappers, a checkpoint in the middle of a call, kill -9 and restart, twice', async () => {
  const scope = new Scope('vecregs');
  try {
    const program = exampleProgram('vecregs', ['--steps', '70']);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun vecregs' });
    await s.waitForStep(12);
    for (let i = 0; i < 3; i++) await checkpoint(ckpt);
    let requestedAt = s.lines.length;
    await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 3);
    await scope.kill9(s);
    assertKept(s, 'launched');
    const ref = await refRun;
    assert.is(ref.code, 0, `the uninterrupted run failed: ${ref.stdout}${ref.stderr}`);
    assertPrefix(s, ref.lines, 'vecregs, launched');
    let before = s.lines;
    for (let round = 1; round <= 2; round++) {
      const r = scope.restart({ dir: ckpt, label: `vecregs: restart ${round}` });
      await r.waitForStep(1);
      const k = assertResumed({ beforeLines: before, requestedAt, after: r, ref: ref.lines, complete: false, what: `restart ${round}` });
      if (round === 1) {
        await r.waitForStep(r.maxStep + 12);
        requestedAt = k + r.lines.length;
        await checkpoint(ckpt);
        await r.waitForStep(r.maxStep + 3);
        await scope.kill9(r);
        assertKept(r, `restart ${round}`);
        before = ref.lines.slice(0, k).concat(r.lines);
        continue;
      }
      const exit = await r.waitExit();
      assertKept(r, `restart ${round}`);
      assert.is(exit.code, 0, r.describe());
      assertResumed({ beforeLines: before, requestedAt: k, after: r, ref: ref.lines, complete: true, what: `restart ${round}` });
      assert.is(lastLine(r.lines), 'done');
    }
  } finally {
    await scope.cleanup();
  }
});

test.run();
