// Processes sharing a descriptor table (clone with CLONE_FILES, without
// CLONE_VM; issue 11). Restart cannot share a table again yet, so while two
// processes share one the checkpoint refuses at once, naming both, and the
// program runs on; before and after that time checkpoints work, and the
// program is restarted from them twice. Before the change the shim's own
// descriptors in the shared table were taken for the program's, or the
// sharing child never joined and ckrun waited 30 s to say something wrong.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { runNative } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations } from './lib/images.js';
import { assertPrefix, assertResumed } from './lib/spine.js';

async function scenario(name: string, extra: string[]): Promise<void> {
  const scope = new Scope(name);
  try {
    const program = exampleProgram('clonefiles', ['--steps', '110', '--share-from', '15', '--share-until', '35', ...extra]);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: `ckrun clonefiles ${extra.join(' ')}` });
    await s.waitForStep(5);
    await checkpoint(ckpt);

    // while the table is shared: refused at once, naming both processes
    await s.waitForLine('shared table: ok');
    await s.waitForStep(s.maxStep + 1);
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is(r.code, 1, r.describe());
    assert.match(
      r.stderr,
      /process \d+ shares its descriptor table with process \d+ without sharing its memory \(clone with CLONE_FILES but not CLONE_VM\); ckrun cannot restore a shared descriptor table yet/,
      r.stderr,
    );
    assert.equal(generations(ckpt), [1], 'the refused checkpoint leaves no generation');
    await s.waitForStep(s.maxStep + 1);

    // once it is not shared any more
    await s.waitForLine('shared table: ended');
    await s.waitForStep(s.maxStep + 1);
    const requested = s.lines.length;
    await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 2);
    await scope.kill9(s);
    const ref = await refRun;
    assert.is(ref.code, 0, ref.stdout + ref.stderr);
    assertPrefix(s, ref.lines, `${name}, launched`);

    const r1 = scope.restart({ dir: ckpt, label: `${name}: restart 1` });
    await r1.waitForStep(1);
    await r1.waitForStep(r1.maxStep + 3);
    const k = assertResumed({ beforeLines: s.lines, requestedAt: requested, after: r1, ref: ref.lines, complete: false, what: `${name}, restart 1` });
    const requested2 = r1.lines.length;
    await checkpoint(ckpt);
    await r1.waitForStep(r1.maxStep + 2);
    await scope.kill9(r1);

    const r2 = scope.restart({ dir: ckpt, label: `${name}: restart 2` });
    const exit = await r2.waitExit();
    assert.is(exit.code, 0, r2.describe());
    const before = ref.lines.slice(0, k).concat(r1.lines);
    assertResumed({ beforeLines: before, requestedAt: k + requested2, after: r2, ref: ref.lines, complete: true, what: `${name}, restart 2` });
    assert.is(lastLine(r2.lines), 'done');
  } finally {
    await scope.cleanup();
  }
}

test('a child of clone(CLONE_FILES): the checkpoint refuses while the table is shared; before and after, checkpoint, kill -9, restart, twice', async () => {
  await scenario('clone-files', []);
});

test('the same in a forked child of the program (a grandchild shares its table)', async () => {
  await scenario('clone-files-fork', ['--via-fork']);
});

test.run();
