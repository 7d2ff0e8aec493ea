// ckrun's request lines ("parent", "stop", "save", "resume") each raise the
// shim's signal (here checkpoints are asked for with kill -USR2 <ckrun>), and any thread that does not block it may take one: here
// eight workers sleep on a condition variable, as redis's background threads
// do. Many checkpoints in a row of the launched program and of each restarted
// copy must all succeed, and the program must go on exactly where it was.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { runNative } from './lib/proc.js';
import { checkpointBySignal } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { assertPrefix, assertResumed } from './lib/spine.js';

const STEPS = 3000;
const IN_A_ROW = 20;

test('idle threads taking the request signals: 20 checkpoints in a row, restart, again, twice', async () => {
  const scope = new Scope('requests');
  try {
    const fast = path.join(scope.dir('work'), 'fast');
    const program = exampleProgram('idlers', ['--steps', String(STEPS), '--until-file', fast]);
    const refRun = runNative(exampleProgram('idlers', ['--steps', String(STEPS), '--until-file', '/']));
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun idlers' });
    await s.waitForStep(20);
    let requestedAt = 0;
    for (let i = 0; i < IN_A_ROW; i++) {
      requestedAt = s.lines.length;
      await checkpointBySignal(s, ckpt);
    }
    await s.waitForStep(s.maxStep + 5);
    await scope.kill9(s);
    const ref = await refRun;
    assert.is(ref.code, 0, ref.stderr);
    assertPrefix(s, ref.lines, 'idlers, launched');

    let before = s.lines;
    for (let round = 1; round <= 2; round++) {
      const r = scope.restart({ dir: ckpt, label: `restart ${round}` });
      await r.waitForStep(1);
      const k = assertResumed({ beforeLines: before, requestedAt, after: r, ref: ref.lines, complete: false, what: `restart ${round}` });
      for (let i = 0; i < IN_A_ROW; i++) {
        requestedAt = k + r.lines.length;
        await checkpointBySignal(r, ckpt);
      }
      await r.waitForStep(r.maxStep + 5);
      if (round === 1) {
        await scope.kill9(r);
        assertResumed({ beforeLines: before, requestedAt: k, after: r, ref: ref.lines, complete: false, what: `restart ${round}` });
        before = ref.lines.slice(0, k).concat(r.lines);
        continue;
      }
      fs.writeFileSync(fast, ''); // the rest without pauses
      const exit = await r.waitExit();
      assert.is(exit.code, 0, r.describe());
      assertResumed({ beforeLines: before, requestedAt: k, after: r, ref: ref.lines, complete: true, what: `restart ${round}` });
      assert.is(lastLine(r.lines), lastLine(ref.lines));
    }
  } finally {
    await scope.cleanup();
  }
});

test.run();
