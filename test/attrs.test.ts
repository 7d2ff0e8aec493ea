// Process and thread attributes a restart must put back (issue 11, CRIU's
// zdtm tests): examples/attrs.c sets oom_score_adj, PR_SET_THP_DISABLE, the
// child-subreaper flag, dumpable, membarrier, PR_SET_MDWE,
// PR_SET_MEMORY_MERGE, an AIO context with a completion left unreaped,
// zombies with their exit status, /proc/self files open (in a child too),
// queued signals with their values, and per thread a name, a scheduling
// policy, nice value, real-time priority, SCHED_RESET_ON_FORK, CPU affinity,
// I/O priority, timer slack, PR_MCE_KILL, PR_SET_TSC, a parent-death signal
// and seccomp filters (one synced to every thread with
// SECCOMP_FILTER_FLAG_TSYNC, one more on one thread); it checks them all
// itself at every step and prints FAIL at the first difference. What no
// restart could give back fails the checkpoint, naming it; what this
// restart cannot give back (an ordinary user's: a lower nice value,
// SCHED_FIFO) is refused before any process exists; and what the restart
// has itself (root at nice -7 under SCHED_RR, in the real-time I/O class,
// at another oom_score_adj) never reaches the program.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { Proc, runNative, sleep } from './lib/proc.js';
import { CKRUN, NODE } from './lib/paths.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations } from './lib/images.js';
import { assertPrefix, assertResumed, spine } from './lib/spine.js';
import { asUserArgv, NOBODY, NOGROUP, sharedCkrun } from './lib/users.js';
import { refusedAndRunsOn } from './lib/refused.js';

function noFailure(p: Proc, what: string): void {
  const bad = [...p.lines, ...p.stderr.split('\n')].find((l) => l.startsWith('FAIL') || l.startsWith('error:'));
  if (bad) throw new Error(`${what}: the program found an attribute wrong: ${bad}\n${p.describe(8)}`);
}

test('every process and thread attribute comes back: checkpoint, kill -9, restart, twice', async () => {
  const scope = new Scope('attrs');
  try {
    const program = exampleProgram('attrs', ['--steps', '120', '--rt', '--kid']);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun attrs' });
    await s.waitForStep(5);
    const requested = s.lines.length;
    const g1 = await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 2);
    await scope.kill9(s);
    noFailure(s, 'launched');
    const ref = await refRun;
    assert.is(ref.code, 0, `the uninterrupted run failed: ${ref.stdout}${ref.stderr}`);
    assertPrefix(s, ref.lines, 'attrs, launched');

    const shown = await ckrun(['inspect', g1]);
    assert.is(shown.code, 0, shown.describe());
    for (const want of [
      /oom_score_adj 345/,
      /THP disabled/,
      /child subreaper/,
      /membarrier PRIVATE_EXPEDITED/,
      /MDWE refuse-exec-gain/,
      /attrs-t1 +SCHED_BATCH nice 5/,
      /attrs-u2 +SCHED_FIFO priority 3, reset on fork/,
      /seccomp filters: 2 \(1 on every thread\)/,
      /AIO context 0x[0-9a-f]+: 1 completion not yet reaped/,
      /queued: .*SIGRTMIN\+3 value 4242 \(sigqueue from \d+\)/,
    ])
      assert.match(shown.stdout, want, `ckrun inspect should show ${want}:\n${shown.stdout}`);

    const r1 = scope.restart({ dir: ckpt, label: 'attrs: restart 1' });
    await r1.waitForStep(1);
    await r1.waitForStep(r1.maxStep + 3);
    noFailure(r1, 'restart 1');
    const k = assertResumed({ beforeLines: s.lines, requestedAt: requested, after: r1, ref: ref.lines, complete: false, what: 'restart 1' });
    const requested2 = r1.lines.length;
    await checkpoint(ckpt);
    await r1.waitForStep(r1.maxStep + 2);
    await scope.kill9(r1);
    noFailure(r1, 'restart 1');

    const r2 = scope.restart({ dir: ckpt, label: 'attrs: restart 2' });
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

test('what no restart could give back fails the checkpoint, naming it; the program runs on', async () => {
  for (const [mode, why] of [
    ['--seccomp-raw', /thread \d+ holds seccomp filters ckrun did not see installed \(.*system call instruction of its own/],
    ['--aio-raw', /AIO context 0x[0-9a-f]+ was created behind libc's back/],
    ['--aio-inflight', /AIO context 0x[0-9a-f]+ has requests in flight \(submitted, not completed within 1 s\)/],
    ['--plain --strict', /thread \d+ blocks ckrun's signal 63: it is in seccomp strict mode \(SECCOMP_MODE_STRICT\)/],
    ['--plain --dispatch', /thread \d+ has syscall user dispatch on \(PR_SET_SYSCALL_USER_DISPATCH\)/],
  ] as const) {
    const scope = new Scope('attrs-refused');
    try {
      const ckpt = scope.ckptDir();
      const s = scope.launch({ dir: ckpt, program: exampleProgram('attrs', ['--steps', '40', ...mode.split(' ')]), label: `ckrun attrs ${mode}` });
      await s.waitForStep(3);
      const r = await ckrun(['checkpoint', '--dir', ckpt]);
      assert.is(r.code, 1, `${mode}: ${r.describe()}`);
      assert.match(r.stderr, why, `${mode}: ${r.stderr}`);
      assert.equal(generations(ckpt), [], 'a failed checkpoint leaves no generation');
      const exit = await s.waitExit();
      noFailure(s, mode);
      assert.is(exit.code, 0, s.describe());
      assert.is(lastLine(s.lines), 'done');
    } finally {
      await scope.cleanup();
    }
  }
});

/** Runs `bash -c script` as nobody under a command that sets its scheduling (nice, chrt). */
function asNobodyUnder(prefix: readonly string[], script: string): Promise<{ code: number | null; out: string }> {
  const argv = [...prefix, ...asUserArgv(NOBODY, NOGROUP, script)];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test("an ordinary user's restart refuses a lower nice value, SCHED_FIFO and the real-time I/O class before any process exists; root gives them back", async () => {
  if (process.geteuid?.() !== 0) throw new Error('this test runs ckrun as user nobody, which needs root: run npm test as root');
  const shared = sharedCkrun();
  for (const [prefix, why] of [
    [['nice', '-n', '-5'], /thread \d+ of image \S+ ran at nice -5; this restart runs at nice 0, has no CAP_SYS_NICE and the image's RLIMIT_NICE is 0, so it may not lower it/],
    [['chrt', '--fifo', '1'], /thread \d+ of image \S+ ran with SCHED_FIFO priority 1; this restart has no CAP_SYS_NICE and the image's RLIMIT_RTPRIO is 0/],
    [['ionice', '-c', '1', '-n', '3'], /thread \d+ of image \S+ had the real-time I\/O class \(ioprio_set IOPRIO_CLASS_RT\), which only a restart with CAP_SYS_ADMIN or CAP_SYS_NICE gives back; restart it as root/],
  ] as const) {
    const scope = new Scope('attrs-sched');
    try {
      fs.chmodSync(scope.root, 0o755);
      const work = scope.dir('work');
      fs.chownSync(work, NOBODY, NOGROUP);
      const ck = path.join(work, 'ck');
      scope.ckptDirs.push(ck);
      const cmd = `${path.join(shared.examples, 'attrs')} --steps 400 --plain`;
      // launched with the lower nice value or SCHED_FIFO a privileged parent gave it
      const run = await asNobodyUnder(
        prefix,
        `set -e; cd ${work}
        node ${shared.ckrunJs} --dir ${ck} -- ${cmd} > run1.txt 2>&1 & ck=$!
        until [ "$(grep -c '^step' run1.txt 2>/dev/null)" -ge 3 ] 2>/dev/null; do sleep 0.05; done # (no output yet: not a number)
        node ${shared.ckrunJs} checkpoint --dir ${ck}
        kill -9 $ck; wait $ck 2>/dev/null || true`,
      );
      assert.match(run.out, /\/1\n/, `${prefix.join(' ')}: the checkpoint should be made:\n${run.out}`);
      await sleep(200);
      const refused = await asNobodyUnder([], `cd ${work}; node ${shared.ckrunJs} restart --dir ${ck}`);
      assert.is.not(refused.code, 0, `${prefix.join(' ')}: nobody's restart must refuse:\n${refused.out}`);
      assert.match(refused.out, why, refused.out);
      assert.not.match(refused.out, /^step/m, 'the program did not run again');
      assert.equal(scope.strays(), [], 'nothing is left running');
      // root may: the program runs on as nobody, its scheduling as it was
      const r = scope.restart({
        image: path.join(ck, '1'),
        extra: ['--dir', scope.ckptDir('root-ck'), '--trust-owner', '--stdio=inherit'],
        label: `restart as root (${prefix.join(' ')})`,
      });
      await r.waitForStep(1);
      await r.waitForStep(r.maxStep + 3);
      noFailure(r, `restart as root (${prefix.join(' ')})`);
    } finally {
      await scope.cleanup();
    }
  }
});

test("a root restart's own scheduling, oom_score_adj and I/O class are not given to the program: checkpoint, kill -9, restart, twice", async () => {
  if (process.geteuid?.() !== 0) throw new Error('this test runs ckrun restart at nice -7 and SCHED_RR, which needs root: run npm test as root');
  for (const tool of ['choom', 'chrt', 'ionice', 'nice'])
    if (!fs.existsSync(`/usr/bin/${tool}`)) throw new Error(`this test needs /usr/bin/${tool} (test/lib/requirements.ts names its Debian package)`);
  const scope = new Scope('attrs-restorer');
  try {
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program: exampleProgram('attrs', ['--steps', '400', '--plain']), label: 'ckrun attrs --plain' });
    await s.waitForStep(3);
    await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 2);
    await scope.kill9(s);
    noFailure(s, 'launched');
    // the restarter runs with what the program never had; the program checks it got none of it
    const privileged = ['/usr/bin/choom', '-n', '600', '--', '/usr/bin/ionice', '-c', '1', '-n', '3', '/usr/bin/nice', '-n', '-7', '/usr/bin/chrt', '--rr', '2'];
    for (const round of [1, 2]) {
      const r = scope.track(new Proc(privileged[0]!, [...privileged.slice(1), NODE, CKRUN, 'restart', '--dir', ckpt], { label: `attrs: privileged restart ${round}` }));
      await r.waitForStep(1);
      await r.waitForStep(r.maxStep + 3);
      noFailure(r, `privileged restart ${round}`);
      if (round === 1) await checkpoint(ckpt);
      await scope.kill9(r);
      noFailure(r, `privileged restart ${round}`);
    }
  } finally {
    await scope.cleanup();
  }
});

test("an ordinary user's checkpoint of a process that is not dumpable fails, saying why; the program runs on", async () => {
  if (process.geteuid?.() !== 0) throw new Error('this test runs ckrun as user nobody, which needs root: run npm test as root');
  const shared = sharedCkrun();
  const scope = new Scope('attrs-dumpable');
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    fs.chownSync(work, NOBODY, NOGROUP);
    const ck = path.join(work, 'ck');
    scope.ckptDirs.push(ck);
    const run = await asNobodyUnder(
      [],
      `cd ${work}
      node ${shared.ckrunJs} --dir ${ck} -- ${path.join(shared.examples, 'attrs')} --steps 40 > run1.txt 2>&1 & ck=$!
      until [ "$(grep -c '^step' run1.txt 2>/dev/null)" -ge 3 ] 2>/dev/null; do sleep 0.05; done
      node ${shared.ckrunJs} checkpoint --dir ${ck}; echo "checkpoint exit $?"
      wait $ck; echo "ckrun exit $?"; tail -n 1 run1.txt; grep FAIL run1.txt || true`,
    );
    assert.match(run.out, /cannot read \/proc\/\d+\/(maps|fd) of process \d+: it is not dumpable .* run ckrun as root to checkpoint such a program, or keep the program dumpable/, run.out);
    assert.match(run.out, /checkpoint exit 1\n/, run.out);
    assert.match(run.out, /ckrun exit 0\ndone\n/, `the program runs on to its end:\n${run.out}`);
    assert.equal(generations(ck), [], 'a failed checkpoint leaves no generation');
  } finally {
    await scope.cleanup();
  }
});

test('a process whose own seccomp filter makes getpid() fail (as zdtm\'s do), and its child that joins a checkpoint under it: kill -9, restart, twice', async () => {
  await spine({ name: 'getpidless', example: 'getpidless', args: () => ['--steps', '120'], first: 10, second: 15 });
});

const DONE_HASH = /^done [0-9a-f]{16}$/;

test('a thread whose own seccomp filter makes prctl() fail fails the checkpoint, naming it (its attributes would be saved wrong); the program runs on', async () => {
  await refusedAndRunsOn(
    'getpidless-prctl',
    exampleProgram('getpidless', ['--steps', '60', '--prctl-thread']),
    'ckrun getpidless --prctl-thread',
    /a thread's own seccomp filter makes prctl\(\) fail.*: thread \d+: ckrun reads a thread's name/,
    DONE_HASH,
  );
});

test("a process in seccomp strict mode fails the checkpoint at once, naming it (ckrun's signal would kill it); the program runs on", async () => {
  await refusedAndRunsOn(
    'getpidless-strict',
    exampleProgram('getpidless', ['--steps', '80', '--strict-kid']),
    'ckrun getpidless --strict-kid',
    /process \d+ \(getpidless, [^)]+\) is in seccomp strict mode \(SECCOMP_MODE_STRICT\)/,
    DONE_HASH,
  );
});

test.run();
