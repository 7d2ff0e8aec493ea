// Descriptor numbers where ckrun keeps its own (issue 5 put its connection at
// 63, where a fork copies the table without growing it): examples/fdnumbers
// takes 63 for itself with dup2, dup2()s over the numbers above it every step
// (ckrun's descriptors move out of the way), and starts a forked child that
// closes and reuses every number, and a vfork child that dup2()s over them in
// its own table before it execs. Checkpoints of the launched program and of
// each restarted copy must work, and every line must be the native run's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { runNative } from './lib/proc.js';
import { checkpointBySignal } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { assertPrefix, assertResumed } from './lib/spine.js';

const STEPS = 120;

test('a program that uses descriptor 63 and the numbers above it, and its forked and vforked children: checkpoint, kill -9, restart, twice', async () => {
  const scope = new Scope('fdnumbers');
  try {
    const program = exampleProgram('fdnumbers', ['--steps', String(STEPS)]);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun fdnumbers' });
    await s.waitForStep(10);
    await checkpointBySignal(s, ckpt);
    await s.waitForStep(s.maxStep + 5);
    let requestedAt = s.lines.length;
    await checkpointBySignal(s, ckpt);
    await s.waitForStep(s.maxStep + 5);
    await scope.kill9(s);
    const ref = await refRun;
    assert.is(ref.code, 0, ref.stderr);
    assert.ok(ref.lines.slice(1, -1).every((l) => /pipe=ok numbers=ok child=0 exec=ok$/.test(l)), 'the native run is all ok');
    assertPrefix(s, ref.lines, 'fdnumbers, launched');

    const r1 = scope.restart({ dir: ckpt, label: 'restart 1' });
    await r1.waitForStep(1);
    await r1.waitForStep(r1.maxStep + 5);
    const k1 = assertResumed({ beforeLines: s.lines, requestedAt, after: r1, ref: ref.lines, complete: false, what: 'restart 1' });
    requestedAt = k1 + r1.lines.length;
    await checkpointBySignal(r1, ckpt);
    await r1.waitForStep(r1.maxStep + 5);
    await scope.kill9(r1);
    assertResumed({ beforeLines: s.lines, requestedAt: k1, after: r1, ref: ref.lines, complete: false, what: 'restart 1' });

    const r2 = scope.restart({ dir: ckpt, label: 'restart 2' });
    const exit = await r2.waitExit();
    assert.is(exit.code, 0, r2.describe());
    assertResumed({ beforeLines: ref.lines.slice(0, k1).concat(r1.lines), requestedAt, after: r2, ref: ref.lines, complete: true, what: 'restart 2' });
    assert.is(lastLine(r2.lines), lastLine(ref.lines));
  } finally {
    await scope.cleanup();
  }
});

test.run();
