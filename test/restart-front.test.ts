// `bin/ckrun restart` — the command users type — starts in the restore host
// (preload/front.c): it verifies the image, restores the program with its
// PID and hands the session to node, which starts meanwhile. The program
// must come back exactly as through node's own restart, be checkpointed
// again (by `ckrun checkpoint` and by the signal), and restart again.
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { Proc, runNative, sleep } from './lib/proc.js';
import { checkpoint, checkpointBySignal } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { assertOriginalIds, assertPrefix, assertResumed } from './lib/spine.js';

const TRACE = { CKRUN_TRACE: '1' };

/** The restore host restored the program itself, and node took the session over (it may start later than the program). */
async function assertFront(p: Proc, what: string): Promise<void> {
  for (let i = 0; i < 200 && !/session adopted at/.test(p.stderr); i++) await sleep(50);
  assert.match(p.stderr, /ckrun-restore\[\d+\]: restore host forked at/, `${what}: the restore host did not restore the program itself\n${p.stderr}`);
  assert.match(p.stderr, /ckrun\[\d+\]: session adopted at/, `${what}: node did not take the session over\n${p.stderr}`);
}

test('bin/ckrun restart: the restore host restores, node adopts the session; checkpoint, kill -9, restart, twice', async () => {
  const scope = new Scope('front');
  try {
    const program = exampleProgram('counter');
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun counter' });
    await s.waitForStep(30);
    const req1 = s.lines.length;
    const gen1 = await checkpoint(ckpt);
    await scope.kill9(s);
    const ref = await refRun;
    assert.is(ref.code, 0, ref.stderr);
    assertPrefix(s, ref.lines, 'counter, launched');

    const r1 = scope.restart({ dir: ckpt, front: true, env: TRACE, label: 'bin/ckrun restart 1' });
    await r1.waitForStep(s.maxStep + 10);
    await assertFront(r1, 'restart 1');
    const k1 = assertResumed({ beforeLines: s.lines, requestedAt: req1, after: r1, ref: ref.lines, complete: false, what: 'bin/ckrun restart 1' });
    assertOriginalIds(r1, gen1, 'bin/ckrun restart 1');
    // the adopted session answers on the directory's socket, and to the signal
    await checkpoint(ckpt);
    const req2 = r1.lines.length;
    const gen3 = await checkpointBySignal(r1, ckpt);
    assert.is(path.basename(gen3), '3');
    await r1.waitForStep(r1.maxStep + 3);
    await scope.kill9(r1);

    // a generation named on the command line; it runs to the end
    const r2 = scope.restart({ image: gen3, front: true, env: TRACE, label: 'bin/ckrun restart 2' });
    const exit = await r2.waitExit();
    assert.is(exit.code, 0, r2.describe());
    await assertFront(r2, 'restart 2');
    const r1Lines = ref.lines.slice(0, k1).concat(r1.lines);
    assertResumed({ beforeLines: r1Lines, requestedAt: k1 + req2, after: r2, ref: ref.lines, complete: true, what: 'bin/ckrun restart 2' });
    assert.is(lastLine(r2.lines), lastLine(ref.lines));
  } finally {
    await scope.cleanup();
  }
});

test('bin/ckrun restart leaves what it does not take on to node: a compressed image, an option it does not know', async () => {
  const scope = new Scope('front-fallback');
  try {
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program: exampleProgram('counter'), extra: ['--compress'], label: 'ckrun --compress counter' });
    await s.waitForStep(20);
    await checkpoint(ckpt);
    await scope.kill9(s);
    const r = scope.restart({ dir: ckpt, front: true, env: TRACE, extra: ['--new-pid-namespace'], label: 'bin/ckrun restart (node)' });
    await r.waitForStep(s.maxStep + 5);
    assert.not.match(r.stderr, /session adopted/, 'a compressed image is restarted by node');
    assert.match(r.stderr, /image verified/, r.stderr);
  } finally {
    await scope.cleanup();
  }
});

test.run();
