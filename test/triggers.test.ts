// The ways to take a checkpoint: kill -USR2 <ckrun>, `ckrun checkpoint`,
// `--interval`, `--signal`; what happens without a session, when a
// checkpoint fails, and when everything is killed in the middle of one.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { type NativeRun, runNative, sleep } from './lib/proc.js';
import { killTree } from './lib/processes.js';
import { checkpoint, checkpointBySignal, ckrun, waitForGeneration } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { crc32c } from './lib/cbor.js';
import { generations, imagesOf, readBytes, readImage, runsOf } from './lib/images.js';
import { assertResumed } from './lib/spine.js';

let ref: NativeRun; // counter, uninterrupted
let ref300: NativeRun; // counter --steps 300

// uvu swallows errors of before() hooks: tests await this instead.
let setup: Promise<void> | undefined;
function ready(): Promise<void> {
  setup ??= (async () => {
    [ref, ref300] = await Promise.all([runNative(exampleProgram('counter')), runNative(exampleProgram('counter', ['--steps', '300']))]);
    assert.is(ref.code, 0, ref.stderr);
    assert.is(ref300.code, 0, ref300.stderr);
  })();
  return setup;
}

function sameAsRef(lines: string[], r: NativeRun, what: string): void {
  const i = lines.findIndex((l, k) => l !== r.lines[k]);
  assert.ok(i < 0 && lines.length === r.lines.length, `${what}: output differs from the uninterrupted run at line ${i < 0 ? lines.length : i}: ${JSON.stringify(lines[i])} vs ${JSON.stringify(r.lines[i])}`);
}

test('kill -USR2 <ckrun> checkpoints; the program never sees it and runs on; restart resumes from either generation', async () => {
  await ready();
  const scope = new Scope('usr2');
  try {
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program: exampleProgram('counter') });
    await s.waitForStep(30);
    const req1 = s.lines.length;
    const g1 = await checkpointBySignal(s, ckpt);
    assert.is(g1, path.join(ckpt, '1'));
    await s.waitForStep(s.maxStep + 20);
    const req2 = s.lines.length;
    const g2 = await checkpointBySignal(s, ckpt);
    assert.is(g2, path.join(ckpt, '2'));
    // counter has no SIGUSR2 handler: had the signal reached it, it would die (status 140)
    const exit = await s.waitExit();
    assert.is(exit.code, 0, `the program should finish normally\n${s.describe()}`);
    sameAsRef(s.lines, ref, 'the checkpointed run');

    // restart from the named image of generation 1: resumes near step 30
    const img1 = imagesOf(g1)[0];
    const r1 = scope.restart({ image: img1 });
    assert.is((await r1.waitExit()).code, 0, r1.describe());
    const k1 = assertResumed({ beforeLines: s.lines, requestedAt: req1, after: r1, ref: ref.lines, complete: true, what: 'restart IMAGE (generation 1)' });
    // restart --dir picks the newest generation (2)
    const r2 = scope.restart({ dir: ckpt });
    assert.is((await r2.waitExit()).code, 0, r2.describe());
    const k2 = assertResumed({ beforeLines: s.lines, requestedAt: req2, after: r2, ref: ref.lines, complete: true, what: 'restart --dir (newest generation)' });
    assert.ok(k2 > k1, `restart --dir resumed at line ${k2}, not after generation 1's line ${k1}: it did not pick the newest generation`);
  } finally {
    await scope.cleanup();
  }
});

test('ckrun checkpoint prints the generation; numbers continue across restarts', async () => {
  await ready();
  const scope = new Scope('cli-checkpoint');
  try {
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program: exampleProgram('counter') });
    await s.waitForStep(20);
    assert.is(await checkpoint(ckpt), path.join(ckpt, '1'));
    await s.waitForStep(s.maxStep + 10);
    const req = s.lines.length;
    assert.is(await checkpoint(ckpt), path.join(ckpt, '2'));
    await scope.kill9(s);

    const r = scope.restart({ dir: ckpt });
    await r.waitForStep(s.maxStep + 5);
    const k = assertResumed({ beforeLines: s.lines, requestedAt: req, after: r, ref: ref.lines, complete: false, what: 'restart' });
    const req3 = k + r.lines.length;
    assert.is(await checkpoint(ckpt), path.join(ckpt, '3'), 'the next generation after a restart');
    await scope.kill9(r);
    assert.equal(generations(ckpt), [1, 2, 3]);

    const r3 = scope.restart({ dir: ckpt });
    assert.is((await r3.waitExit()).code, 0, r3.describe());
    assertResumed({ beforeLines: ref.lines.slice(0, k).concat(r.lines), requestedAt: req3, after: r3, ref: ref.lines, complete: true, what: 'restart from generation 3' });
  } finally {
    await scope.cleanup();
  }
});

test('a request that comes while a checkpoint runs gets the next one, not the running one', async () => {
  await ready();
  const scope = new Scope('queued');
  try {
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program: exampleProgram('counter') });
    await s.waitForStep(20);
    // two clients at once: the first starts generation 1, the second comes
    // while it runs and is answered with generation 2 (two signals sent at
    // once would be one: the kernel does not queue a pending SIGUSR2 twice)
    const req = s.lines.length;
    const both = await Promise.all([checkpoint(ckpt), checkpoint(ckpt)]);
    assert.equal([...both].sort(), [path.join(ckpt, '1'), path.join(ckpt, '2')]);
    assert.equal(generations(ckpt), [1, 2]);
    await s.waitForStep(s.maxStep + 5);
    await scope.kill9(s);
    const r = scope.restart({ dir: ckpt });
    assert.is((await r.waitExit()).code, 0, r.describe());
    assertResumed({ beforeLines: s.lines, requestedAt: req, after: r, ref: ref.lines, complete: true, what: 'restart from generation 2' });
  } finally {
    await scope.cleanup();
  }
});

test('--interval takes checkpoints on its own; the program is undisturbed; restart resumes from the newest', async () => {
  await ready();
  const scope = new Scope('interval');
  try {
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, interval: 1, program: exampleProgram('counter', ['--steps', '300']) });
    const g1 = await waitForGeneration(ckpt, [], s);
    const g2 = await waitForGeneration(ckpt, [Number(path.basename(g1))], s);
    assert.ok(Number(path.basename(g2)) > Number(path.basename(g1)));
    const exit = await s.waitExit();
    assert.is(exit.code, 0, s.describe());
    sameAsRef(s.lines, ref300, 'the run with --interval');
    const gens = generations(ckpt);
    assert.ok(gens.length >= 2, `generations: ${gens.join(', ')}`);
    assert.equal(gens, gens.map((_, i) => i + 1), 'generations are numbered 1, 2, 3, …');

    const first = scope.restart({ image: imagesOf(g1)[0] });
    assert.is((await first.waitExit()).code, 0, first.describe());
    const k1 = assertResumed({ beforeLines: s.lines, requestedAt: 1, after: first, ref: ref300.lines, complete: true, what: 'restart of the first interval checkpoint' });
    const newest = scope.restart({ dir: ckpt });
    assert.is((await newest.waitExit()).code, 0, newest.describe());
    const kn = assertResumed({ beforeLines: s.lines, requestedAt: 1, after: newest, ref: ref300.lines, complete: true, what: 'restart of the newest interval checkpoint' });
    assert.ok(kn > k1, `the newest generation resumed at line ${kn}, the first at ${k1}`);
  } finally {
    await scope.cleanup();
  }
});

test('--signal SIGUSR1 chooses the trigger signal', async () => {
  await ready();
  const scope = new Scope('signal-option');
  try {
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, signal: 'SIGUSR1', program: exampleProgram('counter') });
    await s.waitForStep(30);
    const req = s.lines.length;
    const g = await checkpointBySignal(s, ckpt, 'SIGUSR1');
    assert.is(g, path.join(ckpt, '1'));
    const exit = await s.waitExit();
    assert.is(exit.code, 0, s.describe());
    sameAsRef(s.lines, ref, 'the run checkpointed with SIGUSR1');
    const r = scope.restart({ dir: ckpt });
    assert.is((await r.waitExit()).code, 0, r.describe());
    assertResumed({ beforeLines: s.lines, requestedAt: req, after: r, ref: ref.lines, complete: true, what: 'restart' });
  } finally {
    await scope.cleanup();
  }
});

test('ckrun checkpoint without a session: non-zero status and a clear message', async () => {
  const scope = new Scope('no-session');
  try {
    const empty = scope.dir('empty');
    const missing = path.join(scope.root, 'does-not-exist');
    for (const dir of [empty, missing]) {
      const t0 = Date.now();
      const r = await ckrun(['checkpoint', '--dir', dir], { timeout: 30_000 });
      assert.not.ok(r.timedOut, `it hung:\n${r.describe()}`);
      assert.ok(r.code !== 0 && r.code !== null, `status should be non-zero:\n${r.describe()}`);
      assert.match(r.stderr, /session|running|listen|no ckrun/i, `the message should say there is no session:\n${r.describe()}`);
      assert.ok(r.stderr.includes(dir) || r.stderr.includes(path.basename(dir)), `the message should name the directory:\n${r.describe()}`);
      assert.is(r.stdout.trim(), '', 'nothing on stdout (no path printed)');
      assert.ok(Date.now() - t0 < 30_000);
    }
    assert.equal(generations(empty), []);
  } finally {
    await scope.cleanup();
  }
});

function tryMountTmpfs(dir: string, size: string): boolean {
  try {
    // mode 0700: a checkpoint directory others may write to is refused
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('a checkpoint that fails (disk full) leaves the program running unharmed and says why', async () => {
  await ready();
  const scope = new Scope('enospc');
  const ckpt = scope.ckptDir();
  if (!tryMountTmpfs(ckpt, '2m')) {
    await scope.cleanup();
    throw new Error('this test needs a small tmpfs to fill up (mount -t tmpfs, as root), which failed');
  }
  try {
    const s = scope.launch({ dir: ckpt, program: exampleProgram('counter') });
    await s.waitForStep(40); // about 13 MiB of the buffer is written by now
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.ok(r.code !== 0 && r.code !== null, `ckrun checkpoint should fail on a full disk:\n${r.describe()}`);
    assert.match(r.stderr, /space|ENOSPC|full|write/i, `the message should give the reason:\n${r.describe()}`);
    const exit = await s.waitExit();
    assert.is(exit.code, 0, `the program should run on and finish:\n${s.describe()}`);
    sameAsRef(s.lines, ref, 'the program after a failed checkpoint');
    assert.match(s.stderr, /space|ENOSPC|full|fail/i, `the session's stderr should report the failure:\n${s.describe()}`);
    assert.equal(generations(ckpt), [], 'no complete generation after a failed checkpoint');
  } finally {
    await scope.cleanup().catch(() => undefined);
    try {
      execFileSync('umount', ['-l', ckpt], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
    fs.rmSync(scope.root, { recursive: true, force: true });
  }
});

test('kill -9 in the middle of a checkpoint never leaves a generation that looks complete but is not', async () => {
  await ready();
  const scope = new Scope('kill-during');
  try {
    for (const delay of [5, 40, 150]) {
      const ckpt = scope.ckptDir(`ckpt-${delay}`);
      const s = scope.launch({ dir: ckpt, program: exampleProgram('counter') });
      await s.waitForStep(100); // ~32 MiB to write
      process.kill(s.pid, 'SIGUSR2');
      await sleep(delay);
      await killTree(s.pid);
      await s.waitExit();
      for (const e of fs.readdirSync(ckpt)) {
        const p = path.join(ckpt, e);
        if (!/^\d+$/.test(e)) {
          assert.ok(e.startsWith('.'), `after kill -9 (${delay} ms): unexpected entry ${e} in ${ckpt}`);
          continue;
        }
        assert.ok(fs.existsSync(path.join(p, 'manifest.cbor')), `${p} is numbered but has no manifest`);
        for (const img of imagesOf(p)) {
          const im = readImage(img);
          assert.ok(im.headerCrcOk && im.metaCrcOk, `${img}: bad checksums in a complete generation`);
          assert.is(im.size, Number(im.header.file_length), `${img}: truncated in a complete generation`);
          for (const run of runsOf(im)) assert.is(crc32c(readBytes(img, run.offset, run.pages * 4096)), run.crc, `${img}: bad run`);
        }
        for (const f of fs.readdirSync(p)) assert.not.ok(f.endsWith('.tmp'), `${p}/${f}: temporary file in a complete generation`);
      }
      if (!generations(ckpt).length) {
        // nothing complete: restart says so and fails cleanly
        const r = await ckrun(['restart', '--dir', ckpt], { timeout: 30_000 });
        assert.ok(r.code !== 0 && r.code !== null, `restart with no complete generation should fail:\n${r.describe()}`);
        assert.ok(r.stderr.trim().length > 0, 'with a message');
      }
    }
  } finally {
    await scope.cleanup();
  }
});

test.run();
