// Who a restarted program runs as (issue 9, "Who an image runs as"): the
// credentials it had at the checkpoint, never the restarter's; a restart of
// another user's checkpoint only with --trust-owner; never credentials the
// restarter does not hold. The program (examples/creds.c) prints, on every
// step, what its main thread and a worker thread read of their own
// credentials: those lines must continue exactly as in an uninterrupted run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { T_EXIT } from './lib/paths.js';
import { exampleProgram } from './lib/examples.js';
import { lastLine, stepOf } from './lib/lines.js';
import { Proc, runNative, sleep, type NativeRun } from './lib/proc.js';
import { findProcesses } from './lib/processes.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { readManifest } from './lib/images.js';
import { asUser, asUserArgv, NOBODY, NOGROUP, sharedCkrun } from './lib/users.js';

const STEPS = 200;

function needRoot(): void {
  if (process.geteuid?.() !== 0) throw new Error('this test runs programs as user nobody and restarts them as root: run npm test as root');
}

/**
 * Every step line of a restarted run is the uninterrupted run's line of
 * that step, and it continues where the checkpoint was taken (after step
 * `requested`, printed before it was asked for; by step `killed`, the last
 * one printed before the kill), neither starting over nor skipping.
 */
function assertContinues(ref: NativeRun, lines: string[], requested: number, killed: number, what: string): void {
  const steps = lines.filter((l) => stepOf(l) !== undefined);
  assert.ok(steps.length > 0, `${what}: no step printed`);
  const first = stepOf(steps[0]!)!;
  assert.ok(first > requested && first <= killed + 1, `${what}: started at step ${first}, the checkpoint was taken between steps ${requested} and ${killed}:\n${steps[0]}`);
  for (const l of steps) {
    const want = ref.lines.find((r) => stepOf(r) === stepOf(l));
    assert.is(l, want, `${what}: step ${stepOf(l)} differs from the uninterrupted run's`);
  }
}

/** No process runs the program (a refused restart leaves nothing behind). */
async function assertNothingRuns(program: string, what: string): Promise<void> {
  await sleep(300);
  const left = findProcesses((p) => p.cmdline[0] === program || p.exe === program);
  assert.equal(left.map((p) => `${p.pid} ${p.cmdline.join(' ')}`), [], `${what}: a process was left running`);
}

test('a checkpoint of user nobody, restarted by root: refused without --trust-owner, leaving nothing; with it the program runs as nobody, checkpointed and restarted again', async () => {
  needRoot();
  const shared = sharedCkrun();
  const program = path.join(shared.examples, 'creds');
  const scope = new Scope('trust-nobody');
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    fs.chownSync(work, NOBODY, NOGROUP);
    const ck = path.join(work, 'ck');
    scope.ckptDirs.push(ck);
    const refRun = await asUser(NOBODY, NOGROUP, `${program} --steps ${STEPS}`, T_EXIT);
    assert.is(refRun.code, 0, refRun.stderr);
    const ref: NativeRun = { ...refRun, lines: refRun.stdout.split('\n').filter(Boolean) };
    assert.match(ref.lines[1] ?? '', /^step 1 main: Uid: 65534 65534 65534 65534 .*CapEff: 0000000000000000/, 'the reference run as nobody');

    // as nobody: launch, checkpoint mid-work, kill -9
    const [cmd, ...args] = asUserArgv(NOBODY, NOGROUP, `cd ${work} && exec node ${shared.ckrunJs} --dir ${ck} -- ${program} --steps ${STEPS}`);
    const s = scope.track(new Proc(cmd!, args, { label: 'ckrun creds (as nobody)' }));
    await s.waitForStep(20);
    const requested = s.maxStep;
    const gen = (await asUser(NOBODY, NOGROUP, `node ${shared.ckrunJs} checkpoint --dir ${ck}`)).stdout.trim();
    assert.match(gen, /\/1$/, `nobody's checkpoint: ${gen}`);
    await scope.kill9(s);
    const pid = readManifest(gen).root!;

    // root, without --trust-owner: refused by the fast start (bin/ckrun) and by node, nothing runs
    for (const front of [true, false]) {
      const r = scope.restart({ dir: ck, front, label: `root's restart of nobody's checkpoint (${front ? 'bin/ckrun' : 'node'})` });
      const exit = await r.waitExit();
      assert.is.not(exit.code, 0, r.describe());
      assert.match(r.stderr, /owned by nobody \(uid 65534\), not by root \(uid 0\), who runs this restart/, r.describe());
      assert.match(r.stderr, /--trust-owner/, r.describe());
      assert.is(r.lines.filter((l) => stepOf(l) !== undefined).length, 0, `${r.describe()}\nthe program ran`);
      await assertNothingRuns(program, `refused restart (${front ? 'bin/ckrun' : 'node'})`);
    }

    // with --trust-owner: it runs as nobody; further checkpoints go to a directory of root's
    const rootCk = scope.ckptDir('root-ck');
    const r1 = scope.restart({ image: gen, extra: ['--trust-owner', '--dir', rootCk], label: 'root restarts nobody\'s checkpoint, trusted' });
    await r1.waitForStep(s.maxStep + 10);
    assertContinues(ref, r1.lines, requested, s.maxStep, 'restarted with --trust-owner');
    const st = fs.readFileSync(`/proc/${findProcesses((p) => p.cmdline[0] === program)[0]?.pid}/status`, 'utf8');
    assert.match(st, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m, `the restored process's /proc status:\n${st}`);
    assert.match(st, /^CapEff:\s+0+$/m, st);

    // checkpointed by root's ckrun (the image file is ckrun's, the process nobody's), kill -9, restarted again
    const requested2 = r1.maxStep;
    const gen2 = await checkpoint(rootCk);
    await scope.kill9(r1);
    assert.is(fs.statSync(path.join(gen2, `${pid}.ckpt`)).uid, 0, 'the image in root\'s directory belongs to root');
    const r2 = scope.restart({ dir: rootCk, front: true, label: 'bin/ckrun restart of the nobody process from root\'s directory' });
    const exit = await r2.waitExit();
    assert.is(exit.code, 0, r2.describe());
    assertContinues(ref, r2.lines, requested2, r1.maxStep, 'restarted again');
    assert.is(lastLine(r2.lines), lastLine(ref.lines));
  } finally {
    await scope.cleanup();
  }
});

test('a root program\'s checkpoint in a directory handed to nobody is refused for nobody, with or without --trust-owner, and for root with it', async () => {
  needRoot();
  const shared = sharedCkrun();
  const program = path.join(shared.examples, 'creds');
  const scope = new Scope('trust-planted');
  try {
    fs.chmodSync(scope.root, 0o755);
    const ck = scope.ckptDir();
    const s = scope.launch({ dir: ck, program: [program, '--steps', String(STEPS)], label: 'ckrun creds (as root)' });
    await s.waitForStep(10);
    const gen = await checkpoint(ck);
    await scope.kill9(s);
    fs.chmodSync(ck, 0o755);
    for (const p of [ck, gen, ...fs.readdirSync(gen).map((f) => path.join(gen, f))]) fs.chownSync(p, NOBODY, NOGROUP);

    for (const trust of ['', '--trust-owner ']) {
      const r = await asUser(NOBODY, NOGROUP, `cd ${scope.root} && node ${shared.ckrunJs} restart ${trust}--dir ${ck}`);
      assert.is.not(r.code, 0, `nobody's restart ${trust}of root's process:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /ran as uid 0: an ordinary user restarts only their own processes/, r.stderr);
      assert.not.match(r.stdout, /^step /m, `the program ran:\n${r.stdout}`);
      await assertNothingRuns(program, `nobody's restart ${trust}`);
    }
    // the image is refused before anything else (further checkpoints could not go into nobody's directory either)
    const inPlace = scope.restart({ dir: ck, extra: ['--trust-owner'], label: 'root restarts a planted checkpoint in place, trusted' });
    assert.is.not((await inPlace.waitExit()).code, 0, inPlace.describe());
    assert.match(inPlace.stderr, /is owned by nobody \(uid 65534\) but holds a process that ran as root \(uid 0\)/, inPlace.describe());
    // and with further checkpoints going to a directory of root's
    const r = scope.restart({ image: gen, extra: ['--trust-owner', '--dir', scope.ckptDir('roots')], label: 'root restarts a planted checkpoint, trusted' });
    const exit = await r.waitExit();
    assert.is.not(exit.code, 0, r.describe());
    assert.match(r.stderr, /is owned by nobody \(uid 65534\) but holds a process that ran as root \(uid 0\)/, r.describe());
    await assertNothingRuns(program, 'root\'s trusted restart of a planted checkpoint');
  } finally {
    await scope.cleanup();
  }
});

test('a program that dropped root for nobody, groups and fewer capabilities comes back with exactly those, twice (bin/ckrun restart, node restart)', async () => {
  needRoot();
  const program = exampleProgram('creds', ['--drop', '--steps', String(STEPS)]);
  const scope = new Scope('trust-drop');
  try {
    const ref = await runNative(program);
    assert.is(ref.code, 0, ref.stderr);
    assert.match(
      ref.lines[1] ?? '',
      /^step 1 main: Uid: 65534 65534 65534 65534 Gid: 65534 65534 65534 65534 Groups: 27 44 100 CapEff: 0000000000000400 CapPrm: 0000000000000401 CapInh: 0000000000000400 CapBnd: [0-9a-f]+ CapAmb: 0000000000000400 NoNewPrivs: 1 \| getresuid 65534 65534 65534 getresgid 65534 65534 65534 getgroups 27,44,100 securebits 16 dumpable 0 \|\| worker: /,
      'the reference run dropped as expected',
    );
    const ck = scope.ckptDir();
    const s = scope.launch({ dir: ck, program, label: 'ckrun creds --drop' });
    await s.waitForStep(20);
    const requested1 = s.maxStep;
    const gen1 = await checkpoint(ck);
    await scope.kill9(s);
    const shown = await ckrun(['inspect', gen1, '--no-verify-data']);
    assert.match(shown.stdout, /^Runs as +nobody \(uid 65534\), gid 65534, groups 27, 44, 100$/m, shown.describe());
    assert.match(shown.stdout, /^Capabilities +effective CAP_NET_BIND_SERVICE; permitted CAP_CHOWN, CAP_NET_BIND_SERVICE; inheritable CAP_NET_BIND_SERVICE; ambient CAP_NET_BIND_SERVICE; bounding set every capability but CAP_SYS_BOOT/m, shown.describe());
    assert.match(shown.stdout, /^Security +securebits 0x10 \(keep caps\); no_new_privs set; dumpable 0$/m, shown.describe());

    const r1 = scope.restart({ dir: ck, front: true, env: { CKRUN_TRACE: '1' }, label: 'bin/ckrun restart' });
    await r1.waitForStep(s.maxStep + 15);
    assert.match(r1.stderr, /ckrun-restore\[\d+\]: restore host forked at/, `the fast start did not restore it itself\n${r1.stderr}`);
    assertContinues(ref, r1.lines, requested1, s.maxStep, 'bin/ckrun restart');
    const requested2 = r1.maxStep;
    await checkpoint(ck);
    await scope.kill9(r1);

    const r2 = scope.restart({ dir: ck, label: 'node restart' });
    const exit = await r2.waitExit();
    assert.is(exit.code, 0, r2.describe());
    assertContinues(ref, r2.lines, requested2, r1.maxStep, 'node restart');
    assert.is(lastLine(r2.lines), lastLine(ref.lines));
  } finally {
    await scope.cleanup();
  }
});

test('a family whose child runs as nobody with groups and capabilities (setpriv), restarted twice: each process comes back as itself', async () => {
  needRoot();
  const creds = exampleProgram('creds', ['--steps', String(STEPS)]).join(' ');
  const setpriv =
    'setpriv --reuid 65534 --regid 65534 --groups 27,44 --inh-caps +net_bind_service --ambient-caps +net_bind_service ' +
    '--bounding-set -sys_boot --no-new-privs';
  const program = ['/bin/bash', '-c', `${setpriv} ${creds} & wait`];
  const scope = new Scope('trust-family');
  try {
    const ref = await runNative(program);
    assert.is(ref.code, 0, ref.stderr);
    assert.match(ref.lines[1] ?? '', /^step 1 main: Uid: 65534 65534 65534 65534 Gid: 65534 65534 65534 65534 Groups: 27 44 CapEff: 0000000000000400 /, 'the reference run');
    const ck = scope.ckptDir();
    const s = scope.launch({ dir: ck, program, label: 'ckrun bash + setpriv creds' });
    await s.waitForStep(20);
    const requested1 = s.maxStep;
    const gen = await checkpoint(ck);
    assert.is(readManifest(gen).processes?.length, 2, 'bash and creds are one family');
    await scope.kill9(s);

    const r1 = scope.restart({ dir: ck, label: 'restart of the family' });
    await r1.waitForStep(s.maxStep + 10);
    assertContinues(ref, r1.lines, requested1, s.maxStep, 'the family, restarted');
    const bash = findProcesses((p) => p.cmdline[0] === '/bin/bash' && p.cmdline.includes(`${setpriv} ${creds} & wait`));
    assert.is(bash.length, 1, 'the restored bash');
    const st = fs.readFileSync(`/proc/${bash[0]!.pid}/status`, 'utf8');
    assert.match(st, /^Uid:\s+0\s+0\s+0\s+0$/m, `bash runs as root again:\n${st}`);
    const requested2 = r1.maxStep;
    await checkpoint(ck);
    await scope.kill9(r1);

    const r2 = scope.restart({ dir: ck, front: true, label: 'bin/ckrun restart of the family' });
    const exit = await r2.waitExit();
    assert.is(exit.code, 0, r2.describe());
    assertContinues(ref, r2.lines, requested2, r1.maxStep, 'the family, restarted again');
    assert.is(lastLine(r2.lines), lastLine(ref.lines));
  } finally {
    await scope.cleanup();
  }
});

test('threads with different credentials (one changed its filesystem user ID alone): each comes back with its own, checkpoint, kill -9, restart', async () => {
  needRoot();
  const program = exampleProgram('creds', ['--split', '--steps', '120']);
  const scope = new Scope('trust-split');
  try {
    const ref = await runNative(program);
    assert.is(ref.code, 0, ref.stderr);
    const ck = scope.ckptDir();
    const s = scope.launch({ dir: ck, program, label: 'ckrun creds --split' });
    await s.waitForStep(10);
    const requested = s.maxStep;
    const gen = await checkpoint(ck);
    await scope.kill9(s);
    const shown = await ckrun(['inspect', gen]);
    assert.match(shown.stdout, /^Thread \d+ runs as +uid 0 \(real\), 0 \(effective\), 0 \(saved\), 65534 \(filesystem\)/m, shown.describe());
    const r = scope.restart({ dir: ck, label: 'restart of creds --split' });
    const exit = await r.waitExit();
    assert.is(exit.code, 0, r.describe());
    assertContinues(ref, r.lines, requested, s.maxStep, 'creds --split, restarted');
    assert.is(lastLine(r.lines), lastLine(ref.lines));
  } finally {
    await scope.cleanup();
  }
});

test.run();
