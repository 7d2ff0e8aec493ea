// Threads of one process with credentials of their own (CRIU's zdtm
// thread_different_uid_gid and different_creds): examples/threadcreds.c has
// its worker threads set other user and group IDs, groups, filesystem IDs,
// capability sets, securebits and no_new_privs with raw system calls (which
// change the calling thread's only), and every thread checks on every step
// that its credentials are still its own, printing FAIL at the first
// difference. The checkpoint saves each thread's own (a thread's `creds`),
// the restart gives every thread its own again, and what a restart cannot
// give a thread (an ordinary user's, another user's IDs) is refused before
// any process exists, naming the thread.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine, stepOf } from './lib/lines.js';
import { Proc, runNative } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { imagesOf, readImage } from './lib/images.js';
import { assertPrefix, assertResumed } from './lib/spine.js';
import { asUser, asUserArgv, NOBODY, NOGROUP, sharedCkrun } from './lib/users.js';

function needRoot(): void {
  if (process.geteuid?.() !== 0) throw new Error('this test sets threads to other users and capabilities, which needs root: run npm test as root');
}

function noFailure(p: Proc, what: string): void {
  const bad = [...p.lines, ...p.stderr.split('\n')].find((l) => l.startsWith('FAIL') || l.startsWith('error:'));
  if (bad) throw new Error(`${what}: a thread found its credentials changed: ${bad}\n${p.describe(8)}`);
}

/** The TIDs of the threads whose credentials the generation's image holds apart from the process's. */
function threadsWithOwnCreds(gen: string): number[] {
  const img = readImage(imagesOf(gen)[0]!);
  return ((img.meta['threads'] as { tid: number; creds?: unknown }[] | undefined) ?? []).filter((t) => t.creds !== undefined).map((t) => Number(t.tid));
}

test('threads with credentials of their own (raw setresuid, setresgid, setgroups, setfsuid, capset, prctl) keep them: checkpoint, kill -9, restart, twice', async () => {
  needRoot();
  const scope = new Scope('threadcreds');
  try {
    const program = exampleProgram('threadcreds', ['--steps', '150']);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun threadcreds' });
    await s.waitForStep(10);
    const requested = s.lines.length;
    const g1 = await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 2);
    await scope.kill9(s);
    noFailure(s, 'launched');
    const ref = await refRun;
    assert.is(ref.code, 0, `the uninterrupted run failed: ${ref.stdout}${ref.stderr}`);
    assertPrefix(s, ref.lines, 'threadcreds, launched');
    assert.is(threadsWithOwnCreds(g1).length, 3, 'the three workers carry credentials of their own');

    const shown = await ckrun(['inspect', g1]);
    assert.is(shown.code, 0, shown.describe());
    for (const want of [
      /^Thread \d+ runs as +uid 1000 \(real\), 1001 \(effective\), 1002 \(saved\), 1002 \(filesystem\), gid 100 \(real\), 101 \(effective\), 102 \(saved\), 103 \(filesystem\), groups 27, 44; effective none; permitted none/m,
      /^Thread \d+ runs as +uid 0 \(real\), 0 \(effective\), 0 \(saved\), 4321 \(filesystem\), gid 0, groups none; effective CAP_NET_BIND_SERVICE; permitted CAP_CHOWN, CAP_NET_BIND_SERVICE; securebits 0x10/m,
      /^Thread \d+ runs as +uid 1000 \(real\), 1000 \(effective\), 0 \(saved\), 1000 \(filesystem\), gid 0, groups 4242; .*no_new_privs set$/m,
    ])
      assert.match(shown.stdout, want, `ckrun inspect should show ${want}:\n${shown.stdout}`);

    const r1 = scope.restart({ dir: ckpt, label: 'threadcreds: restart 1' });
    await r1.waitForStep(1);
    await r1.waitForStep(r1.maxStep + 3);
    noFailure(r1, 'restart 1');
    const k = assertResumed({ beforeLines: s.lines, requestedAt: requested, after: r1, ref: ref.lines, complete: false, what: 'restart 1' });
    const requested2 = r1.lines.length;
    const g2 = await checkpoint(ckpt);
    assert.is(threadsWithOwnCreds(g2).length, 3, 'the restarted workers carry credentials of their own again');
    await r1.waitForStep(r1.maxStep + 2);
    await scope.kill9(r1);
    noFailure(r1, 'restart 1');

    const r2 = scope.restart({ dir: ckpt, label: 'threadcreds: restart 2' });
    const exit = await r2.waitExit();
    noFailure(r2, 'restart 2');
    assert.is(exit.code, 0, r2.describe());
    const before = ref.lines.slice(0, k).concat(r1.lines);
    assertResumed({ beforeLines: before, requestedAt: k + requested2, after: r2, ref: ref.lines, complete: true, what: 'restart 2' });
    assert.is(lastLine(r2.lines), 'done');
  } finally {
    await scope.cleanup();
  }
});

test("an ordinary user's thread with no_new_privs of its own comes back with it in a restart in a user namespace", async () => {
  needRoot();
  const shared = sharedCkrun();
  const program = path.join(shared.examples, 'threadcreds');
  const scope = new Scope('threadcreds-user');
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    fs.chownSync(work, NOBODY, NOGROUP);
    const ck = path.join(work, 'ck');
    scope.ckptDirs.push(ck);
    const cmd = `${program} --user --steps 120`;
    const [c, ...a] = asUserArgv(NOBODY, NOGROUP, `${cmd}`);
    const ref = execFileSync(c!, a, { encoding: 'utf8' }).split('\n').filter(Boolean);
    const run = await asUser(
      NOBODY,
      NOGROUP,
      `set -e; cd ${work}
      node ${shared.ckrunJs} --dir ${ck} -- ${cmd} > run1.txt 2>&1 & ck=$!
      until [ "$(grep -c '^step' run1.txt 2>/dev/null)" -ge 20 ] 2>/dev/null; do sleep 0.05; done
      node ${shared.ckrunJs} checkpoint --dir ${ck}
      kill -9 $ck; wait $ck 2>/dev/null || true
      node ${shared.ckrunJs} restart --stdio=inherit --dir ${ck} > run2.txt 2>&1`,
      120_000,
    );
    assert.is(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.is(threadsWithOwnCreds(path.join(ck, '1')).length, 1, 'the nnp thread carries credentials of its own');
    const run2 = fs.readFileSync(path.join(work, 'run2.txt'), 'utf8').split('\n').filter(Boolean);
    const bad = run2.find((l) => l.startsWith('FAIL'));
    assert.not.ok(bad, `a thread found its credentials changed: ${bad}\n${run2.slice(-5).join('\n')}`);
    const first = run2.find((l) => stepOf(l) !== undefined);
    assert.ok(first && ref.includes(first) && stepOf(first)! >= 20, `the restart should continue, not start over:\n${run2.slice(0, 3).join('\n')}`);
    for (const l of run2.filter((x) => stepOf(x) !== undefined)) assert.ok(ref.includes(l), `a line the uninterrupted run did not print: ${l}`);
    assert.is(lastLine(run2), 'done');
  } finally {
    await scope.cleanup();
  }
});

test("threads that ran as other users than their process: an ordinary user's restart refuses them before any process exists, naming the thread", async () => {
  needRoot();
  const shared = sharedCkrun();
  const program = path.join(shared.examples, 'threadcreds');
  const scope = new Scope('threadcreds-refused');
  try {
    fs.chmodSync(scope.root, 0o755);
    const ck = scope.ckptDir();
    // the main thread (which takes the checkpoint) becomes nobody; its workers stay root's
    const s = scope.launch({ dir: ck, program: [program, '--drop-main', '--steps', '400'], label: 'ckrun threadcreds --drop-main' });
    await s.waitForStep(10);
    const gen = await checkpoint(ck);
    await scope.kill9(s);
    noFailure(s, 'launched');
    // handed to nobody, whose own it then is
    fs.chmodSync(ck, 0o755);
    for (const p of [ck, gen, ...fs.readdirSync(gen).map((f) => path.join(gen, f))]) fs.chownSync(p, NOBODY, NOGROUP);
    // whichever of the workers comes first in the image: each ran as another user (uid 1000 or 0)
    const thread = /thread \d+ of image \S+ ran as uid (1000|0) \(real\), (1001|1000|0) \(effective\), (1002|0) \(saved\), (1002|1000|4321) \(filesystem\): an ordinary user restarts only their own processes/;
    const r = await asUser(NOBODY, NOGROUP, `cd ${scope.root} && node ${shared.ckrunJs} restart --dir ${ck}`);
    assert.is.not(r.code, 0, `nobody's restart:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, thread, r.stderr);
    assert.not.match(r.stdout, /^step /m, `the program ran:\n${r.stdout}`);
    assert.equal(scope.strays(), [], 'nothing is left running');
    // the restore host's own check says the same
    const host = path.join(shared.root, 'build', 'Release', 'ckrun-restore');
    const image = imagesOf(gen)[0]!;
    const checked = await asUser(NOBODY, NOGROUP, `${host} --check --no-verify-data ${image}`);
    assert.is.not(checked.code, 0, `the restore host's check as nobody:\n${checked.stderr}`);
    assert.match(checked.stderr, /thread \d+ of image \S+ ran with uid (1000|0) \(real\), [^;]+; setting them again needs CAP_SETUID/, checked.stderr);
  } finally {
    await scope.cleanup();
  }
});

test.run();
