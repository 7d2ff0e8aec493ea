// Memory attributes a restart must put back (issue 11, zdtm): madvise marks
// (MADV_DONTFORK, WIPEONFORK, DONTDUMP, HUGEPAGE, NOHUGEPAGE, SEQUENTIAL,
// RANDOM, MERGEABLE), locked memory (mlock, mlock2 MLOCK_ONFAULT, mlockall
// with MCL_FUTURE and MCL_ONFAULT), MAP_NORESERVE, MAP_GROWSDOWN, mseal, and
// pages released with MADV_DONTNEED. examples/memattrs.c checks its own
// VmFlags, VmLck, contents and what a forked child sees at every step, and
// prints FAIL at the first difference. What cannot be restored is refused
// with the region's name: locked memory beyond the restarting process's
// RLIMIT_MEMLOCK, and fork marks set behind libc's back.
import { execa } from 'execa';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CKRUN, NODE } from './lib/paths.js';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { type Proc, runNative, sleep } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations } from './lib/images.js';
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

/** launch → full and incremental checkpoints → kill -9 → restart → checkpoint → kill -9 → restart to the end */
async function twice(name: string, args: string[]): Promise<void> {
  const scope = new Scope(name);
  try {
    const program = exampleProgram('memattrs', args);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: `ckrun memattrs ${args.join(' ')}` });
    await s.waitForStep(5);
    await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 2);
    const requested = s.lines.length;
    const g2 = await checkpoint(ckpt);
    await assertIncremental(g2, `${name}: second checkpoint`);
    await s.waitForStep(s.maxStep + 2);
    await scope.kill9(s);
    noFailure(s, `${name}, launched`);
    const ref = await refRun;
    assert.is(ref.code, 0, `${name}: the uninterrupted run failed: ${ref.stdout}${ref.stderr}`);
    assertPrefix(s, ref.lines, `${name}, launched`);

    const r1 = scope.restart({ dir: ckpt, label: `${name}: restart 1` });
    await r1.waitForStep(1);
    await r1.waitForStep(r1.maxStep + 3);
    noFailure(r1, `${name}, restart 1`);
    const k = assertResumed({ beforeLines: s.lines, requestedAt: requested, after: r1, ref: ref.lines, complete: false, what: `${name}, restart 1` });
    const requested2 = r1.lines.length;
    const g3 = await checkpoint(ckpt);
    await assertIncremental(g3, `${name}: checkpoint of the restarted program`);
    await r1.waitForStep(r1.maxStep + 2);
    await scope.kill9(r1);
    noFailure(r1, `${name}, restart 1`);

    const r2 = scope.restart({ dir: ckpt, label: `${name}: restart 2` });
    const exit = await r2.waitExit();
    noFailure(r2, `${name}, restart 2`);
    assert.is(exit.code, 0, r2.describe());
    const before = ref.lines.slice(0, k).concat(r1.lines);
    assertResumed({ beforeLines: before, requestedAt: k + requested2, after: r2, ref: ref.lines, complete: true, what: `${name}, restart 2` });
    assert.is(lastLine(r2.lines), lastLine(ref.lines), `${name}: the final state is an uninterrupted run's`);
  } finally {
    await scope.cleanup();
  }
}

test('madvise marks, locks, MAP_NORESERVE, MAP_GROWSDOWN, mseal and released pages come back: kill -9, restart, twice', async () => {
  await twice('memory-attrs', ['--steps', '150']);
});

test('mlockall: MCL_CURRENT, MCL_FUTURE and MCL_ONFAULT come back (new mappings are locked after restart)', async () => {
  // the three at once: each mostly waits for its program's paced steps;
  // every one ends (and cleans up) before the first failure is thrown
  const ends = await Promise.allSettled(
    ['future', 'onfault', 'current'].map((mode) => twice(`memory-attrs-mlockall-${mode}`, ['--steps', '120', '--mlockall', mode])),
  );
  const failed = ends.find((e): e is PromiseRejectedResult => e.status === 'rejected');
  if (failed) throw failed.reason;
});

test('locked memory beyond RLIMIT_MEMLOCK is refused by a restart without CAP_IPC_LOCK, naming the region; as root it restores', async () => {
  const scope = new Scope('memory-attrs-memlock');
  try {
    // the program lowers its own RLIMIT_MEMLOCK to 64 KiB, locks 128 KiB (root
    // may), then gives up CAP_IPC_LOCK: it had nothing a restarter without
    // that capability lacks, but the restart cannot lock what it had
    const program = exampleProgram('memattrs', ['--steps', '150', '--memlock-limit', '64', '--drop-ipc-lock']);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun memattrs --memlock-limit 64' });
    await s.waitForStep(5);
    await checkpoint(ckpt);
    await scope.kill9(s);
    noFailure(s, 'launched');

    const refused = await execa('setpriv', ['--bounding-set=-ipc_lock', '--', NODE, CKRUN, 'restart', '--dir', ckpt], {
      reject: false,
      timeout: 60_000,
      input: '',
    });
    assert.is.not(refused.exitCode, 0, `a restart without CAP_IPC_LOCK must refuse:\n${refused.stdout}\n${refused.stderr}`);
    assert.match(
      refused.stderr,
      /region 0x[0-9a-f]+-0x[0-9a-f]+ \(\w+\) of image \S+ was locked in memory \(mlock\): the program had 128 KiB locked, more than its RLIMIT_MEMLOCK of 64 KiB, which takes CAP_IPC_LOCK; this restart does not have it/,
      refused.stderr,
    );
    assert.is(refused.stdout, '', 'the program did not run again');
    assert.equal(scope.strays(), [], 'nothing is left running');

    const r = scope.restart({ dir: ckpt, label: 'restart as root' });
    const exit = await r.waitExit();
    noFailure(r, 'restart as root');
    assert.is(exit.code, 0, r.describe());
    assert.match(lastLine(r.lines), /^done /);
  } finally {
    await scope.cleanup();
  }
});

test('fork marks set with a raw system call fail the checkpoint, naming the region; the program runs on', async () => {
  for (const [regions, why] of [
    ['plain,dontfork', /the region 0x[0-9a-f]+-0x[0-9a-f]+ is missing from the checkpoint writer's copy of the program \(marked MADV_DONTFORK/],
    ['plain,wipeonfork', /the region 0x[0-9a-f]+-0x[0-9a-f]+ is marked MADV_WIPEONFORK by a raw system call ckrun did not see/],
  ] as const) {
    const scope = new Scope('memory-attrs-raw');
    try {
      const ckpt = scope.ckptDir();
      const s = scope.launch({ dir: ckpt, program: exampleProgram('memattrs', ['--steps', '60', '--regions', regions, '--raw-fork-marks']) });
      await s.waitForStep(5);
      const r = await ckrun(['checkpoint', '--dir', ckpt]);
      assert.is(r.code, 1, r.describe());
      assert.match(r.stderr, why, r.stderr);
      assert.equal(generations(ckpt), [], 'a failed checkpoint leaves no generation');
      await sleep(100);
      const exit = await s.waitExit();
      noFailure(s, regions);
      assert.is(exit.code, 0, s.describe());
      assert.match(lastLine(s.lines), /^done /);
    } finally {
      await scope.cleanup();
    }
  }
});

test.run();
