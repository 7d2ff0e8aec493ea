// Memory at scale (issue 11): a huge MAP_NORESERVE region of which only a
// little is touched costs what is present, not what is reserved. A 2 TiB
// region with 300 scattered pages (examples/sparse.c checks every word of
// them at every step) is checkpointed fully and incrementally, killed,
// restarted, checkpointed and restarted again; the images hold the pages
// present. Nothing here measures time, but before the change the first
// checkpoint stood frozen until ckrun gave up after 30 s.
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { type Proc, runNative } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { imagesOf, readImage } from './lib/images.js';
import { assertPrefix, assertResumed } from './lib/spine.js';

interface Region {
  start: bigint | number;
  end: bigint | number;
  bytes?: number;
  runs?: unknown[];
}

function noFailure(p: Proc, what: string): void {
  const bad = p.lines.find((l) => l.startsWith('FAIL'));
  if (bad) throw new Error(`${what}: the program found its memory wrong: ${bad}\n${p.describe(8)}`);
}

/** The image's largest region: the reservation, with what it stores. */
function reservation(gen: string): { size: bigint; bytes: number; runs: number } {
  const img = readImage(imagesOf(gen)[0]!);
  const regions = img.meta.memory as unknown as Region[];
  let best: Region | undefined;
  for (const r of regions) if (!best || BigInt(r.end) - BigInt(r.start) > BigInt(best.end) - BigInt(best.start)) best = r;
  assert.ok(best, `${gen}: no memory regions`);
  return { size: BigInt(best.end) - BigInt(best.start), bytes: Number(best.bytes ?? 0), runs: (best.runs ?? []).length };
}

async function assertIncremental(gen: string, what: string): Promise<void> {
  const r = await ckrun(['inspect', gen]);
  assert.is(r.code, 0, r.describe());
  assert.match(r.stdout, /Incremental\s+yes/, `${what}: the checkpoint should be incremental:\n${r.stdout}`);
}

async function scenario(name: string, args: string[], storedAtMost: number, gib: number): Promise<void> {
  const scope = new Scope(name);
  try {
    const program = exampleProgram('sparse', args);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: `ckrun sparse ${args.join(' ')}` });
    await s.waitForStep(5);
    const g1 = await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 2);
    const requested = s.lines.length;
    const g2 = await checkpoint(ckpt);
    await assertIncremental(g2, 'second checkpoint');
    await s.waitForStep(s.maxStep + 2);
    await scope.kill9(s);
    noFailure(s, 'launched');
    const ref = await refRun;
    assert.is(ref.code, 0, ref.stderr);
    assertPrefix(s, ref.lines, `${name}, launched`);
    for (const g of [g1, g2]) {
      const res = reservation(g);
      assert.is(res.size, BigInt(gib) << 30n, `${g}: the reservation is one region of ${gib} GiB`);
      assert.ok(res.bytes > 0 && res.bytes <= storedAtMost, `${g}: the reservation stores its present pages only (${res.bytes} bytes)`);
      assert.ok(fs.statSync(imagesOf(g)[0]!).size < storedAtMost + (64 << 20), `${g}: the image is small`);
    }
    // its changes are tracked too: the incremental image stores the pages rewritten since
    assert.ok(
      reservation(g2).bytes < reservation(g1).bytes / 2,
      `the incremental checkpoint stores the reservation's changed pages only (${reservation(g2).bytes} of ${reservation(g1).bytes} bytes)`,
    );

    const r1 = scope.restart({ dir: ckpt, label: 'restart 1' });
    await r1.waitForStep(1);
    await r1.waitForStep(r1.maxStep + 4);
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
    assert.is(lastLine(r2.lines), lastLine(ref.lines), "the final state is an uninterrupted run's");
  } finally {
    await scope.cleanup();
  }
}

test('2 TiB MAP_NORESERVE with 300 scattered pages: full and incremental checkpoints, kill -9, restart, twice', async () => {
  await scenario('memory-scale-2tib', ['--gib', '2048', '--runs', '300', '--run-pages', '1', '--steps', '160'], 4 << 20, 2048);
});

test('64 GiB MAP_NORESERVE with 64 MiB in scattered 2 MiB runs (mapped from the image at restart): twice', async () => {
  await scenario('memory-scale-64gib', ['--gib', '64', '--runs', '32', '--run-pages', '512', '--steps', '120'], 80 << 20, 64);
});

test.run();
