// Incremental checkpoints (issue 5): the second and later checkpoints store
// only the pages that changed and refer to older images for the rest;
// deleting an older generation never breaks a newer one; a restarted
// process's next checkpoint is incremental too.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { runNative } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { imagesOf } from './lib/images.js';
import { assertResumed } from './lib/spine.js';

function imageSize(gen: string): number {
  return fs.statSync(imagesOf(gen)[0]!).size;
}

function refsIn(gen: string): string[] {
  return fs.readdirSync(gen).filter((f) => /^ref-\d+\.ckpt$/.test(f));
}

async function assertIncremental(gen: string, full: number, what: string): Promise<void> {
  const size = imageSize(gen);
  assert.ok(size < full / 5, `${what}: the incremental image should be far smaller than the full one (${size} vs ${full} bytes)`);
  assert.ok(refsIn(gen).length > 0, `${what}: ${gen} should hold hard links to the images it refers to`);
  const r = await ckrun(['inspect', gen]);
  assert.is(r.code, 0, r.describe());
  assert.match(r.stdout, /Incremental\s+yes/, `${what}: inspect should say the image is incremental:\n${r.stdout}`);
}

test('incremental checkpoints store what changed; older generations can be deleted; restarted processes stay incremental', async () => {
  const scope = new Scope('incremental');
  try {
    const program = exampleProgram('dirty', ['--mib', '64', '--steps', '120']);
    const ref = (await runNative(program)).lines;
    const dir = scope.ckptDir();

    const p = scope.launch({ program, dir });
    await p.waitForStep(15);
    const g1 = await checkpoint(dir);
    const full = imageSize(g1);
    assert.ok(full > 64 << 20, `the first checkpoint is full (${full} bytes)`);
    assert.equal(refsIn(g1), [], 'a full image refers to no other image');
    await p.waitForStep(25);
    const requested = p.lines.length;
    const g2 = await checkpoint(dir);
    await assertIncremental(g2, full, 'second checkpoint');
    await scope.kill9(p);

    // the older generation goes; the newer one keeps what it needs
    fs.rmSync(g1, { recursive: true });
    const r1 = scope.restart({ dir });
    await r1.waitForStep(45);
    assertResumed({ beforeLines: p.lines, requestedAt: requested, after: r1, ref, complete: false, what: 'first restart' });
    const before2 = [...r1.lines];
    const g3 = await checkpoint(dir);
    await assertIncremental(g3, full, 'checkpoint of the restarted process');
    await scope.kill9(r1);

    fs.rmSync(g2, { recursive: true });
    const r2 = scope.restart({ dir });
    const ex = await r2.waitExit();
    assert.is(ex.code, 0, r2.describe());
    assert.is(lastLine(r2.lines), lastLine(ref), 'the final state is an uninterrupted run\'s');
    // the second restart continues from the third checkpoint, not earlier
    const stepIn = (l: string | undefined): number => Number(/^step (\d+)/.exec(l ?? '')?.[1]);
    const lastStep = (lines: string[]): number => stepIn(lastLine(lines.filter((l) => l !== '')));
    const firstStep = stepIn(r2.lines[0]), requestedStep = lastStep(before2), killedStep = lastStep(r1.lines);
    assert.ok(
      firstStep > requestedStep && firstStep <= killedStep + 1,
      `the second restart should continue from the third checkpoint (its first step ${firstStep}; checkpoint requested after step ${requestedStep}, killed after ${killedStep})`,
    );
    const at = ref.indexOf(r2.lines[0]!);
    assert.ok(at > 0 && r2.lines.every((l, i) => l === '' || ref[at + i] === l), "the second restart prints exactly the uninterrupted run's lines");
    assert.ok(path.basename(g3) === '3', `generations continue their numbering (${g3})`);
  } finally {
    await scope.cleanup();
  }
});

test.run();
