// A checkpoint is invisible to the program: no system call returns EINTR
// because of it (issue 11). examples/blocking.c keeps a thread in each of
// the calls a signal handler always interrupts (man 7 signal: poll, select,
// epoll_wait, semop, msgrcv, sigtimedwait, nanosleep, socket calls with a
// timeout, futex, ...), through libc, through syscall() and through its own
// syscall instruction; it exits 1 with a "FAIL" line at the first EINTR or
// at a timeout that ends early or too late. util-linux's script, which kills
// its child when its poll fails, is the real program of the lot.
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram, python3 } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { runNative, sleep, type Proc } from './lib/proc.js';
import { checkpoint, ckrun, sessionSocketName } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { assertPrefix, assertResumed } from './lib/spine.js';

const IN_A_ROW = 20;

function assertNoFailure(p: Proc, what: string): void {
  const bad = [...p.lines, ...p.stderr.split('\n')].find((l) => l.startsWith('FAIL'));
  if (bad) throw new Error(`${what}: the program noticed a checkpoint: ${bad}\n${p.describe(12)}`);
}

/** A restarted program may run before node, which coordinates its session, has started. */
async function waitForSession(ckpt: string, r: Proc): Promise<void> {
  let last = '';
  for (let i = 0; i < 300; i++) {
    const st = await ckrun(['status', '--dir', ckpt]);
    if (st.code === 0) return;
    last = st.describe();
    await sleep(100);
  }
  throw new Error(`no session answered on ${ckpt} within 30 s of the restart:\n${last}\n${r.describe()}`);
}

async function checkpointsInARow(p: Proc, ckpt: string, what: string): Promise<number> {
  let requestedAt = 0;
  for (let i = 0; i < IN_A_ROW; i++) {
    requestedAt = p.lines.length;
    await checkpoint(ckpt);
    assertNoFailure(p, `${what}, after checkpoint ${i + 1} of ${IN_A_ROW}`);
  }
  return requestedAt;
}

test('no blocking call sees EINTR: 20 checkpoints in a row, kill -9, restart, twice', async () => {
  const scope = new Scope('eintr');
  try {
    const program = exampleProgram('blocking', ['--calls', 'nosysv', '--steps', '500']);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun blocking' });
    await s.waitForStep(10);
    let requestedAt = await checkpointsInARow(s, ckpt, 'launched');
    await s.waitForStep(s.maxStep + 5);
    await scope.kill9(s);
    const ref = await refRun;
    assert.is(ref.code, 0, ref.stderr);
    assertPrefix(s, ref.lines, 'blocking, launched');
    let before = s.lines;
    for (let round = 1; round <= 2; round++) {
      const r = scope.restart({ dir: ckpt, label: `restart ${round}` });
      await r.waitForStep(1);
      await waitForSession(ckpt, r);
      const k = assertResumed({ beforeLines: before, requestedAt, after: r, ref: ref.lines, complete: false, what: `restart ${round}` });
      requestedAt = k + (await checkpointsInARow(r, ckpt, `restart ${round}`));
      if (round === 1) {
        await r.waitForStep(r.maxStep + 5);
        await scope.kill9(r);
        assertNoFailure(r, `restart ${round}`);
        before = ref.lines.slice(0, k).concat(r.lines);
        continue;
      }
      const exit = await r.waitExit();
      assertNoFailure(r, `restart ${round}`);
      assert.is(exit.code, 0, r.describe());
      assertResumed({ beforeLines: before, requestedAt: k, after: r, ref: ref.lines, complete: true, what: `restart ${round}` });
      assert.is(lastLine(r.lines), 'done');
    }
  } finally {
    await scope.cleanup();
  }
});

/**
 * `checkpoint hold` on the session socket (the protocol ckrun's own clients
 * speak), then SIGUSR1 to pid while every process stands stopped, then
 * `resume`; a python3 client (node cannot reach an abstract socket name).
 */
/** Holds the program stopped in a checkpoint, sends SIGUSR1 (to thread tid alone when given), resumes. */
function signalWhileHeld(ckpt: string, pid: number, tid?: number): string {
  const py = [
    'import os, signal, socket, sys, time',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
    `s.connect("\\0" + ${JSON.stringify(sessionSocketName(ckpt))})`,
    'f = s.makefile("rw")',
    'def ask(line):',
    '    f.write(line + "\\n"); f.flush()',
    '    return f.readline().strip()',
    'held = ask("checkpoint hold")',
    'if not held.startswith("ok "): sys.exit("checkpoint hold: " + held)',
    tid === undefined ? `os.kill(${pid}, signal.SIGUSR1)` : `import ctypes; ctypes.CDLL(None, use_errno=True).syscall(234, ${pid}, ${tid}, signal.SIGUSR1)  # tgkill`,
    'time.sleep(0.2)',
    'print(ask("resume"))',
  ].join('\n');
  return execFileSync(python3(), ['-c', py], { encoding: 'utf8', timeout: 60_000 });
}

/**
 * Launches program, which prints "ready PID" (or "ready PID TID": that
 * thread is signalled alone) and blocks in poll; holds it stopped in a
 * checkpoint, signals it, resumes: its poll must fail with EINTR, the
 * program printing `woke` and exiting 0.
 */
async function signalledWhileHeld(scope: Scope, program: string[], label: string, woke: string): Promise<void> {
  const ckpt = scope.ckptDir();
  const p = scope.launch({ dir: ckpt, program, label });
  await p.waitFor(() => p.lines.some((l) => l.startsWith('ready')), 'the program to block in poll');
  const [pid, tid] = p.lines.find((l) => l.startsWith('ready'))!.split(' ').slice(1).map(Number);
  if (tid !== undefined) assert.ok(tid !== pid, 'the signalled thread is not the main thread');
  await sleep(200); // in poll
  assert.is(signalWhileHeld(ckpt, pid!, tid).trim(), 'ok', 'held, signalled, resumed');
  await p.waitFor(() => p.lines.some((l) => l.startsWith(woke) || l.startsWith('FAIL')), 'poll to fail with EINTR once the program runs on', 10_000);
  const st = await p.waitExit();
  assert.equal(p.lines.filter((l) => !l.startsWith('ckrun')), [['ready', pid, ...(tid === undefined ? [] : [tid])].join(' '), woke], p.describe());
  assert.is(st.code, 0, p.describe());
}

test("a signal with a handler that comes while the program is stopped for a checkpoint interrupts its poll, as it would without ckrun (the handler's exception ends python's poll)", async () => {
  const scope = new Scope('eintr-signal-in-pause');
  try {
    const py = [
      'import os, select, signal',
      'class Woke(Exception): pass',
      'def woke(sig, frame): raise Woke()',
      'signal.signal(signal.SIGUSR1, woke)',
      'r, w = os.pipe()',
      'p = select.poll()',
      'p.register(r, select.POLLIN)',
      'print("ready", os.getpid(), flush=True)',
      'try:',
      '    p.poll()',
      '    print("FAIL poll returned without the signal", flush=True)',
      'except Woke:',
      '    print("woke by SIGUSR1", flush=True)',
    ].join('\n');
    await signalledWhileHeld(scope, [python3(), '-c', py], 'ckrun python poll', 'woke by SIGUSR1');
  } finally {
    await scope.cleanup();
  }
});

test("the same for a signal sent to one thread alone (pthread_kill) while the program is stopped: that thread's poll ends with EINTR", async () => {
  const scope = new Scope('eintr-thread-signal-in-pause');
  try {
    await signalledWhileHeld(scope, exampleProgram('wakethread'), 'ckrun wakethread', 'worker woke by SIGUSR1');
  } finally {
    await scope.cleanup();
  }
});

test("the same for a signal sent to the whole process (kill) that only a worker can take (the main thread blocks it): the worker's poll ends with EINTR", async () => {
  const scope = new Scope('eintr-process-signal-worker');
  try {
    await signalledWhileHeld(scope, exampleProgram('wakethread', ['--process']), 'ckrun wakethread --process', 'worker woke by SIGUSR1');
  } finally {
    await scope.cleanup();
  }
});

test('timeouts end on time through 20 checkpoints (what was left, not the whole timeout again)', async () => {
  const scope = new Scope('eintr-timeouts');
  try {
    // one-second timeouts may end late by the checkpoints' pauses, never by
    // a second timeout: 400 ms tells one from the other
    const program = exampleProgram('blocking', ['--calls', 'timed', '--steps', '120', '--wait', '1000', '--late', '400']);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun blocking (timeouts)' });
    await s.waitForStep(10);
    await checkpointsInARow(s, ckpt, 'launched');
    const exit = await s.waitExit();
    assertNoFailure(s, 'launched');
    assert.is(exit.code, 0, s.describe());
    assert.is(lastLine(s.lines), 'done');
  } finally {
    await scope.cleanup();
  }
});

// Restoring SysV semaphores and message queues is issue 13's; here the
// calls only have to go on through checkpoints.
test('semop, semtimedop, msgrcv and msgsnd on a full queue see no EINTR through 20 checkpoints', async () => {
  const scope = new Scope('eintr-sysv');
  try {
    const program = exampleProgram('blocking', ['--calls', 'sysv', '--steps', '120']);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, label: 'ckrun blocking (sysv)' });
    await s.waitForStep(10);
    await checkpointsInARow(s, ckpt, 'launched');
    const exit = await s.waitExit();
    assertNoFailure(s, 'launched');
    assert.is(exit.code, 0, s.describe());
    assert.is(lastLine(s.lines), 'done');
  } finally {
    await scope.cleanup();
  }
});

// script runs the command in a pseudo-terminal of its own and copies its
// output with poll; a poll that failed made it kill its child. (A program's
// own pseudo-terminal restarted: test/terminal.test.ts.)
test("util-linux script copies its child's output through 20 checkpoints", async () => {
  const scope = new Scope('eintr-script');
  try {
    // runs until released, so that 20 checkpoints on a loaded machine never outlast it
    const release = path.join(scope.dir('work'), 'release');
    const loop = `i=0; while [ ! -e ${release} ]; do i=$((i+1)); echo line $i; sleep 0.02; done; echo end $i`;
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program: ['script', '-q', '-e', '-c', `bash -c '${loop}'`, '/dev/null'], label: 'ckrun script' });
    await s.waitFor(() => s.lines.some((l) => l.trim() === 'line 10'), 'line 10');
    await checkpointsInARow(s, ckpt, 'script');
    fs.writeFileSync(release, '');
    const exit = await s.waitExit();
    assert.is(exit.code, 0, s.describe());
    const lines = s.lines.map((l) => l.replace(/\r$/, ''));
    const got = lines.filter((l) => l.startsWith('line '));
    const end = lines.find((l) => l.startsWith('end '));
    assert.ok(end !== undefined, `the loop ended by itself:\n${s.describe()}`);
    const n = Number(end!.slice(4));
    assert.equal(got, Array.from({ length: n }, (_, i) => `line ${i + 1}`), 'every line once, in order');
  } finally {
    await scope.cleanup();
  }
});

test.run();
