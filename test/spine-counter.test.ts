// counter: 64 MiB of memory filled as it goes, a growing heap and stack.
// Checkpoint with `ckrun checkpoint`, then with kill -USR2.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { runNative } from './lib/proc.js';
import { findRestored } from './lib/processes.js';
import { checkpoint } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { readManifest } from './lib/images.js';
import { assertResumed, spine } from './lib/spine.js';

test('counter: checkpoint, kill -9, restart; again; memory, heap and stack survive', async () => {
  await spine({
    name: 'counter',
    example: 'counter',
    first: 40,
    second: 100,
    triggers: ['cli', 'signal'],
    expectLines: [/^counter: done steps=200 nodes=200 /],
  });
});

test('restart while the original still runs (its PID is taken): both finish, the copy in a fresh PID namespace', async () => {
  const scope = new Scope('pidns');
  try {
    // 400 steps (about 5 s): the original is sure to still hold its PID while the copy starts
    const program = exampleProgram('counter', ['--steps', '400']);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program });
    await s.waitForStep(30);
    const req = s.lines.length;
    const gen = await checkpoint(ckpt);
    // a copy of the generation in another directory (the original session owns ckpt)
    const copy = scope.ckptDir('copy');
    fs.cpSync(gen, path.join(copy, '1'), { recursive: true });
    const pid = Number(readManifest(gen).processes?.[0]?.pid);
    const r = scope.restart({ dir: copy });
    await r.waitFor(() => r.maxStep > 0, 'a step from the restarted copy');
    assert.ok(s.running && s.maxStep < 400, 'the original finished before the copy started: the test proves nothing (machine too slow?)');
    const where = findRestored(r.pid, pid);
    assert.ok(where, `the restarted copy does not run with PID ${pid} in any namespace\n${r.describe()}`);
    assert.ok(where.levels >= 2 && where.outer !== pid, `PID ${pid} is taken: the copy must be in a new PID namespace (NSpid levels ${where.levels})`);
    const [e1, e2, ref] = await Promise.all([s.waitExit(), r.waitExit(), refRun]);
    assert.is(e1.code, 0, s.describe());
    assert.is(e2.code, 0, r.describe());
    assert.equal(s.lines, ref.lines, 'the original ran on undisturbed');
    assertResumed({ beforeLines: s.lines, requestedAt: req, after: r, ref: ref.lines, complete: true, what: 'the copy' });
  } finally {
    await scope.cleanup();
  }
});

test.run();
