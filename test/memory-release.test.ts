// Memory the program releases after a restart behaves as the kernel
// promises for the memory it had: MADV_DONTNEED makes anonymous pages read
// as zero and private file pages read as the file again, MADV_FREE works on
// anonymous memory, and /proc/self/maps shows the program's own mappings
// (no image file). A restart that mapped saved pages from the image brought
// the checkpoint's bytes back into released memory, which allocators such
// as jemalloc hand out as zeroed. examples/release.c checks all of it at
// every step and prints FAIL at the first difference.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { type Proc, runNative } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { assertPrefix, assertResumed } from './lib/spine.js';

function noFailure(p: Proc, what: string): void {
  const bad = [...p.lines, ...p.stderr.split('\n')].find((l) => l.startsWith('FAIL') || l.startsWith('error:'));
  if (bad) throw new Error(`${what}: the program found its memory wrong: ${bad}\n${p.describe(8)}`);
}

async function assertIncremental(gen: string, what: string): Promise<void> {
  const r = await ckrun(['inspect', gen]);
  assert.is(r.code, 0, r.describe());
  assert.match(r.stdout, /Incremental\s+yes/, `${what}: the checkpoint should be incremental:\n${r.stdout}`);
}

test('released memory reads as zero (anonymous) or as its file (private file mapping) after a restart, and maps shows no image: kill -9, restart, twice', async () => {
  const scope = new Scope('memory-release');
  try {
    const refRun = runNative(exampleProgram('release', ['--steps', '160', '--dir', scope.dir('ref')]));
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program: exampleProgram('release', ['--steps', '160', '--dir', scope.dir('work')]), label: 'ckrun release' });
    await s.waitForStep(10);
    await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 3);
    const requested = s.lines.length;
    const g2 = await checkpoint(ckpt);
    await assertIncremental(g2, 'second checkpoint');
    await s.waitForStep(s.maxStep + 2);
    await scope.kill9(s);
    noFailure(s, 'launched');
    const ref = await refRun;
    assert.is(ref.code, 0, `the uninterrupted run failed: ${ref.stdout}${ref.stderr}`);
    assertPrefix(s, ref.lines, 'launched');

    const r1 = scope.restart({ dir: ckpt, label: 'restart 1' });
    await r1.waitForStep(1);
    // every chunk is released once within 64 steps after the restart
    await r1.waitForStep(r1.maxStep + 70);
    noFailure(r1, 'restart 1');
    const k = assertResumed({ beforeLines: s.lines, requestedAt: requested, after: r1, ref: ref.lines, complete: false, what: 'restart 1' });
    const requested2 = r1.lines.length;
    const g3 = await checkpoint(ckpt);
    await assertIncremental(g3, 'checkpoint of the restarted program');
    await r1.waitForStep(r1.maxStep + 2);
    await scope.kill9(r1);
    noFailure(r1, 'restart 1');

    const r2 = scope.restart({ dir: ckpt, label: 'restart 2' });
    const exit = await r2.waitExit();
    noFailure(r2, 'restart 2');
    assert.is(exit.code, 0, r2.describe());
    const before = ref.lines.slice(0, k).concat(r1.lines);
    assertResumed({ beforeLines: before, requestedAt: k + requested2, after: r2, ref: ref.lines, complete: true, what: 'restart 2' });
    assert.is(lastLine(r2.lines), lastLine(ref.lines), 'the final state is an uninterrupted run\'s');
  } finally {
    await scope.cleanup();
  }
});

test.run();
