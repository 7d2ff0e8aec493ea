// For job schedulers and supervisors, without one: --checkpoint-on SIGNAL
// (a checkpoint, then the program ends; it never sees the signal),
// --resume (one command for the first run and every requeue, continuing
// the program's output file where the checkpoint left it) and
// --keep-alive (a program killed by kill -9 comes back from its newest
// checkpoint). The program writes to a file, as a batch job's does.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { flipByte, generations, imagesOf } from './lib/images.js';
import { CKRUN, NODE, T_EXIT, T_STEP } from './lib/paths.js';
import { Proc, runNative, sleep, type NativeRun } from './lib/proc.js';
import { alive, descendants } from './lib/processes.js';
import { Scope } from './lib/scope.js';
import { ckrun } from './lib/ckrun.js';

const STEPS = ['--steps', '300'];
let ref: NativeRun | undefined;

async function reference(): Promise<NativeRun> {
  ref ??= await runNative(exampleProgram('counter', STEPS));
  assert.is(ref.code, 0, ref.stderr);
  return ref;
}

/** `ckrun ARGS...` with its stdout appended to `out` (as a job's output file), ckrun itself being the process started. */
function ckrunTo(scope: Scope, out: string, args: string[], label: string, redirect = '>>'): Proc {
  return scope.track(new Proc('/bin/sh', ['-c', `exec "$@" ${redirect}"$CKRUN_TEST_OUT"`, 'sh', NODE, CKRUN, ...args], { env: { CKRUN_TEST_OUT: out }, label }));
}

function linesOf(file: string): string[] {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const lines = text.split('\n');
  lines.pop(); // the part after the last newline
  return lines;
}

async function waitLines(file: string, n: number, p: Proc): Promise<void> {
  const until = Date.now() + T_STEP;
  while (linesOf(file).length < n) {
    if (p.exit) assert.unreachable(`ckrun ended before ${file} had ${n} lines\n${p.describe()}`);
    if (Date.now() > until) assert.unreachable(`${file} never reached ${n} lines\n${p.describe()}`);
    await sleep(20);
  }
}

function assertSameAsRef(file: string, r: NativeRun, what: string): void {
  const lines = linesOf(file);
  const i = lines.findIndex((l, k) => l !== r.lines[k]);
  assert.ok(
    i < 0 && lines.length === r.lines.length,
    `${what}: ${file} differs from the uninterrupted run at line ${i < 0 ? lines.length : i}: ${JSON.stringify(lines[i])} vs ${JSON.stringify(r.lines[i])}`,
  );
}

/** The program ckrun runs (its only descendant named counter). */
function programOf(ckrunPid: number): number {
  const pids = descendants(ckrunPid).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'counter';
    } catch {
      return false;
    }
  });
  assert.is(pids.length, 1, `expected one counter below ckrun ${ckrunPid}, found ${pids.join(' ') || 'none'}`);
  return pids[0]!;
}

async function stopBy(p: Proc, sig: NodeJS.Signals, out: string, atLines: number): Promise<void> {
  await waitLines(out, atLines, p);
  const program = programOf(p.pid);
  process.kill(p.pid, sig);
  const exit = await p.waitExit(T_EXIT);
  assert.is(exit.code, 75, `${sig}: ckrun should exit 75 (checkpointed and stopped)\n${p.describe()}`);
  assert.match(p.stderr, new RegExp(`${sig} received: taking a checkpoint, then ending the program`));
  assert.match(p.stderr, /checkpoint \d+ written to .*; ending the program/);
  assert.not.ok(alive(program), `the program (PID ${program}) outlived ckrun`);
}

test('--checkpoint-on USR1,TERM: each signal to ckrun checkpoints and ends the program (status 75); --resume continues it; the output file is the uninterrupted run', async () => {
  const r = await reference();
  const scope = new Scope('checkpoint-on');
  try {
    const ckpt = path.join(scope.root, 'ckpt'); // created by the first run
    scope.ckptDirs.push(ckpt);
    const out = path.join(scope.root, 'job.out');
    const args = ['--resume', '--dir', ckpt, '--checkpoint-on', 'USR1', '--checkpoint-on=TERM', '--', ...exampleProgram('counter', STEPS)];
    // counter has no handler for either: had one reached it, it would have died of it
    await stopBy(ckrunTo(scope, out, args, 'first run'), 'SIGUSR1', out, 60);
    assert.equal(generations(ckpt), [1]);
    await stopBy(ckrunTo(scope, out, args, 'requeue 1'), 'SIGTERM', out, 150);
    assert.equal(generations(ckpt), [1, 2]);
    const last = ckrunTo(scope, out, args, 'requeue 2');
    const exit = await last.waitExit(T_EXIT);
    assert.is(exit.code, 0, last.describe());
    assertSameAsRef(out, r, 'after two stops and resumes');
  } finally {
    await scope.cleanup();
  }
});

test('--checkpoint-on TERM: a SIGTERM sent to every process of the job at once (Slurm\'s requeue, preemption, time limit), the program first, is a checkpoint the program never sees; one sent to the program alone reaches it; --resume finishes the uninterrupted run', async () => {
  const r = await reference();
  const scope = new Scope('checkpoint-on-job');
  try {
    const ckpt = path.join(scope.root, 'ckpt');
    scope.ckptDirs.push(ckpt);
    const out = path.join(scope.root, 'job.out');
    const args = ['--resume', '--dir', ckpt, '--checkpoint-on', 'TERM', '--', ...exampleProgram('counter', STEPS)];
    // counter has no SIGTERM handler: had the signal reached it, it would have died of it and no checkpoint could be taken
    const first = ckrunTo(scope, out, args, 'first run');
    await waitLines(out, 60, first);
    const program = programOf(first.pid);
    process.kill(program, 'SIGTERM');
    process.kill(first.pid, 'SIGTERM');
    const exit = await first.waitExit(T_EXIT);
    assert.is(exit.code, 75, `ckrun should exit 75 (checkpointed and stopped)\n${first.describe()}`);
    assert.equal(generations(ckpt), [1]);
    // restored while it held the signal: the program drops it and runs to its end
    const last = ckrunTo(scope, out, args, 'requeue');
    const end = await last.waitExit(T_EXIT);
    assert.is(end.code, 0, last.describe());
    assertSameAsRef(out, r, 'after a job-wide SIGTERM and a resume');
    // the signal to the program alone, ckrun not told: the program gets it (after the hold) and dies of it, as without ckrun
    const alone = path.join(scope.root, 'alone.out');
    const other = ckrunTo(scope, alone, ['--dir', path.join(scope.root, 'ckpt2'), '--checkpoint-on', 'TERM', '--', ...exampleProgram('counter', STEPS)], 'signal to the program alone');
    scope.ckptDirs.push(path.join(scope.root, 'ckpt2'));
    await waitLines(alone, 30, other);
    process.kill(programOf(other.pid), 'SIGTERM');
    const died = await other.waitExit(T_EXIT);
    assert.is(died.code, 128 + 15, `the program should have died of SIGTERM\n${other.describe()}`);
    assert.ok(linesOf(alone).length < r.lines.length, 'the program ran to its end: it never got the signal');
  } finally {
    await scope.cleanup();
  }
});

test('--resume: starts afresh over an interrupted first checkpoint, falls back past a damaged newest generation like restart, refuses when none verifies or the command differs', async () => {
  const r = await reference();
  const scope = new Scope('resume');
  try {
    const ckpt = scope.ckptDir();
    fs.mkdirSync(path.join(ckpt, '.1.partial')); // what a checkpoint cut off by kill -9 leaves
    const out = path.join(scope.root, 'job.out');
    const args = ['--resume', '--dir', ckpt, '--checkpoint-on', 'USR1', '--', ...exampleProgram('counter', STEPS)];
    await stopBy(ckrunTo(scope, out, args, 'first run'), 'SIGUSR1', out, 60);
    const atGen2 = linesOf(out).length;
    await stopBy(ckrunTo(scope, out, args, 'requeue 1'), 'SIGUSR1', out, atGen2 + 60);
    const gens = generations(ckpt);
    assert.is(gens.length, 2, `two generations expected, found ${gens.join(' ')}`);
    const [g1, g2] = gens.map((n) => path.join(ckpt, String(n)));
    // the newest generation's own image damaged: restart's fallback, said the same way
    const own2 = imagesOf(g2!)[0]!;
    flipByte(own2, Math.floor(fs.statSync(own2).size / 2));
    const fallback = ckrunTo(scope, out, args, 'requeue 2');
    assert.is((await fallback.waitExit(T_EXIT)).code, 0, fallback.describe());
    assert.match(fallback.stderr, new RegExp(`cannot use generation ${g2}`));
    assert.match(fallback.stderr, new RegExp(`restarting from ${g1} instead`));
    // generation 1 put the output file back as it was then: still the uninterrupted run
    assertSameAsRef(out, r, 'after the fallback to generation 1');

    const finished = fs.readFileSync(out);
    // another command over these checkpoints: refused, nothing runs
    const other = ckrunTo(scope, out, ['--resume', '--dir', ckpt, '--', ...exampleProgram('counter', ['--steps', '301'])], 'other command');
    assert.is((await other.waitExit(T_EXIT)).code, 1, other.describe());
    assert.match(other.stderr, /is a checkpoint of `.*counter --steps 300`, not of `.*counter --steps 301`; run the same command to continue it, or move .* aside/);
    // every generation damaged: refused, never started afresh
    for (const g of generations(ckpt)) for (const img of imagesOf(path.join(ckpt, String(g)))) flipByte(img, Math.floor(fs.statSync(img).size / 2));
    const refused = ckrunTo(scope, out, args, 'all damaged');
    assert.is((await refused.waitExit(T_EXIT)).code, 1, refused.describe());
    assert.match(refused.stderr, /no older checkpoint in .* verifies either; ckrun does not start the program afresh while .* holds checkpoints: repair it \(ckrun verify .*\), or move .* aside/);
    assert.ok(fs.readFileSync(out).equals(finished), 'a refused --resume changed the output file');
  } finally {
    await scope.cleanup();
  }
});

test('--keep-alive=1: the program killed by kill -9 comes back from its newest checkpoint after a pause, said on stderr; the second kill ends ckrun (137); --resume finishes it', async () => {
  const r = await reference();
  const scope = new Scope('keep-alive');
  try {
    const ckpt = scope.ckptDir();
    const out = path.join(scope.root, 'job.out');
    const p = ckrunTo(scope, out, ['--keep-alive=1', '--dir', ckpt, '--interval', '0.3', '--', ...exampleProgram('counter', STEPS)], 'keep-alive');
    await waitLines(out, 60, p);
    while (generations(ckpt).length === 0) await sleep(20);
    const first = programOf(p.pid);
    process.kill(first, 'SIGKILL');
    // the same program again (its PID is restored), from a checkpoint
    const until = Date.now() + T_STEP;
    while (!/restart 1 of 1/.test(p.stderr) || descendants(p.pid).length === 0 || !isCounter(first)) {
      if (p.exit || Date.now() > until) assert.unreachable(`no restart after kill -9\n${p.describe()}`);
      await sleep(20);
    }
    assert.match(p.stderr, /--keep-alive: the program was killed by SIGKILL \(the OOM killer, or kill -9\); restarting it from the newest checkpoint in .* in 1 s \(restart 1 of 1\)/);
    await waitLines(out, linesOf(out).length + 30, p);
    process.kill(programOf(p.pid), 'SIGKILL');
    const exit = await p.waitExit(T_EXIT);
    assert.is(exit.code, 137, p.describe());
    assert.match(p.stderr, /it was restarted 1 time already \(--keep-alive=1\): ckrun ends with its status/);
    const rest = ckrunTo(scope, out, ['--resume', '--dir', ckpt, '--', ...exampleProgram('counter', STEPS)], 'resume');
    assert.is((await rest.waitExit(T_EXIT)).code, 0, rest.describe());
    assertSameAsRef(out, r, 'after two kill -9 and a --resume');
  } finally {
    await scope.cleanup();
  }
});

test('--checkpoint-on: when the checkpoint fails, the signal goes on to the program as without ckrun, and ckrun exits with its status', async () => {
  const scope = new Scope('checkpoint-on-fails');
  try {
    const ckpt = scope.ckptDir();
    const out = path.join(scope.root, 'job.out');
    // --files-max 1: the output file the program writes (not O_APPEND: its blocks are snapshot) is too big, so every checkpoint fails
    const p = ckrunTo(scope, out, ['--dir', ckpt, '--files-max', '1', '--checkpoint-on', 'USR1', '--', ...exampleProgram('counter', STEPS)], 'failing checkpoint', '>');
    await waitLines(out, 30, p);
    process.kill(p.pid, 'SIGUSR1');
    const exit = await p.waitExit(T_EXIT);
    // counter has no SIGUSR1 handler: it dies of it, as it would have without ckrun
    assert.is(exit.code, 128 + 10, p.describe());
    assert.match(p.stderr, /checkpoint failed: .*more than/);
    assert.match(p.stderr, /no checkpoint was taken on SIGUSR1: passing SIGUSR1 on to the program/);
    assert.equal(generations(ckpt), []);
  } finally {
    await scope.cleanup();
  }
});

test('usage: --checkpoint-on refuses uncatchable signals and the trigger signal; --keep-alive=N needs a count; nothing runs', async () => {
  const scope = new Scope('resume-usage');
  try {
    const ckpt = path.join(scope.root, 'ckpt');
    const cases: [string[], RegExp][] = [
      [['--checkpoint-on', 'KILL'], /--checkpoint-on KILL: SIGKILL cannot take checkpoints: it cannot be caught/],
      [['--checkpoint-on', 'USR1,USR2'], /--checkpoint-on USR2: SIGUSR2 is already the signal that takes a checkpoint and lets the program run on \(--signal\)/],
      [['--signal', 'USR1', '--checkpoint-on', 'TERM', '--checkpoint-on', 'USR1'], /--checkpoint-on USR1: SIGUSR1 is already the signal/],
      [['--checkpoint-on', 'NOPE'], /--checkpoint-on: unknown signal name 'NOPE'/],
      [['--keep-alive=0'], /--keep-alive=N needs a whole number of restarts from 1 to 9999, not '0'/],
    ];
    for (const [opts, message] of cases) {
      const r = await ckrun(['--dir', ckpt, ...opts, '--', ...exampleProgram('counter', ['--steps', '1'])]);
      assert.is(r.code, 2, r.describe());
      assert.match(r.stderr, message, r.describe());
      assert.is(r.stdout, '', `the program ran:\n${r.describe()}`);
    }
    assert.not.ok(fs.existsSync(ckpt), 'a refused command line created the checkpoint directory');
  } finally {
    await scope.cleanup();
  }
});

function isCounter(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'counter';
  } catch {
    return false;
  }
}

test.run();
