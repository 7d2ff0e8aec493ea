// Stopped processes (issue 11): a process stopped by SIGSTOP or job
// control runs no signal handler until SIGCONT, so its shim cannot answer
// a checkpoint by itself; ckrun holds it with a tracer of its own
// (ckrun-hold) for the length of the checkpoint, while for its parent and
// everyone else it stays stopped. After a restart it is stopped again
// before any of its code runs, and SIGCONT wakes it as before.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ckrun } from './lib/ckrun.js';
import { exampleProgram } from './lib/examples.js';
import { readManifest } from './lib/images.js';
import { sleep, type Proc } from './lib/proc.js';
import { descendants, findRestored } from './lib/processes.js';
import { Scope } from './lib/scope.js';
import { type StageContext, spine } from './lib/spine.js';

/** A process's state letter (/proc/PID/stat). */
function state(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '?';
  }
}

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`waited ${ms / 1000} s for ${what}`);
    await sleep(20);
  }
}

/** The program's process below ckrun (launch) or below ckrun restart (its PID from the manifest). */
function programOf(p: Proc, ckpt?: string): number {
  if (ckpt) {
    const found = findRestored(p.pid, Number(readManifest(path.join(ckpt, '1')).root));
    if (!found) throw new Error(`no restored program below ${p.pid}`);
    return found.outer;
  }
  const mine = descendants(p.pid).filter((d) => fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'counter');
  if (mine.length !== 1) throw new Error(`expected one counter below ckrun ${p.pid}, found ${mine.join(', ')}`);
  return mine[0]!;
}

/** It stays stopped and prints nothing for a while. */
async function staysStopped(p: Proc, pid: number, what: string): Promise<void> {
  const lines = p.lines.length;
  await sleep(300);
  assert.is(state(pid), 'T', `${what}: the program is stopped (state T)`);
  assert.is(p.lines.length, lines, `${what}: a stopped program prints nothing`);
}

function noFailure(ctx: StageContext): void {
  const bad = ctx.proc.lines.find((l) => l.startsWith('FAIL'));
  if (bad) throw new Error(`stage ${ctx.stage}: the program says: ${bad}\n${ctx.proc.describe(20)}`);
}

test('children stopped by SIGTSTP (stop collected), SIGSTOP and SIGTTIN (not collected, reported with their own signals) stay stopped through two restarts; SIGCONT continues them once', async () => {
  await spine({
    name: 'stopped',
    example: 'stopped',
    args: () => ['150'],
    first: 20,
    second: 60,
    expectLines: ['the children continued once each and ended', 'stopped: done'],
    check: noFailure,
  });
});

test('a program stopped with SIGSTOP is checkpointed stopped, comes back stopped after kill -9 and restart, twice, and SIGCONT continues it', async () => {
  const scope = new Scope('stopped-root');
  try {
    const ckpt = scope.ckptDir('ckpt');
    const p = scope.launch({ dir: ckpt, program: exampleProgram('counter', ['--steps', '80']), cwd: scope.dir('work'), label: 'counter' });
    await p.waitForStep(10);
    let pid = programOf(p);
    process.kill(pid, 'SIGSTOP');
    await until(() => state(pid) === 'T', 'the program to stop');
    const stoppedAt = p.maxStep;
    let running: Proc = p;
    for (const gen of [1, 2]) {
      const r = await ckrun(['checkpoint', '--dir', ckpt]);
      assert.is(r.code, 0, `checkpoint ${gen} of a stopped program: ${r.stderr}`);
      await staysStopped(running, pid, `after checkpoint ${gen}`);
      await scope.kill9(running);
      running = scope.restart({ dir: ckpt, cwd: scope.dir('elsewhere'), label: `restart ${gen}` });
      await until(() => findRestored(running.pid, Number(readManifest(path.join(ckpt, '1')).root)) !== undefined, `restart ${gen}`);
      pid = programOf(running, ckpt);
      await until(() => state(pid) === 'T', `the restarted program to be stopped (restart ${gen}; it is in state ${state(pid)})`);
      await staysStopped(running, pid, `after restart ${gen}`);
    }
    process.kill(pid, 'SIGCONT');
    const exit = await running.waitExit();
    assert.is(exit.code, 0, `the continued program ends well:\n${running.describe()}`);
    assert.ok(running.lines.some((l) => l.startsWith(`step ${stoppedAt + 1} `)), `it continues at step ${stoppedAt + 1}:\n${running.describe()}`);
    assert.ok(running.lines.some((l) => l.startsWith('counter: done steps=80')), 'it runs to its end');
  } finally {
    await scope.cleanup();
  }
});

test('a program traced by another process (strace) is refused at checkpoint, naming the tracer; it runs on and is checkpointed once the tracer is gone', async () => {
  const scope = new Scope('stopped-traced');
  try {
    const ckpt = scope.ckptDir('ckpt');
    const p = scope.launch({ dir: ckpt, program: exampleProgram('counter', ['--steps', '400']), cwd: scope.dir('work'), label: 'counter' });
    await p.waitForStep(5);
    const pid = programOf(p);
    const strace = spawn('strace', ['-q', '-o', '/dev/null', '-p', String(pid)], { stdio: 'ignore' });
    try {
      await until(() => /^TracerPid:\s*[1-9]/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')), 'strace to attach');
      const r = await ckrun(['checkpoint', '--dir', ckpt]);
      assert.is.not(r.code, 0, 'the checkpoint of a traced program fails');
      assert.match(r.stderr, new RegExp(`is traced by process ${strace.pid} \\(strace, strace\\)`), `the message names the tracer: ${r.stderr}`);
      assert.match(r.stderr, /detach it \(or end the tracer\) and checkpoint again/);
      const step = p.maxStep;
      await p.waitForStep(step + 3);
    } finally {
      strace.kill('SIGINT');
    }
    await until(() => /^TracerPid:\s*0$/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8')), 'strace to detach');
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is(r.code, 0, `the checkpoint once strace is gone: ${r.stderr}`);
  } finally {
    await scope.cleanup();
  }
});

test('a process traced by another process of the session (ckrun -- strace -f counter) is refused at checkpoint, naming its tracer; the program runs on to its end', async () => {
  const scope = new Scope('stopped-traced-inside');
  try {
    const ckpt = scope.ckptDir('ckpt');
    const program = ['/usr/bin/strace', '-f', '-q', '-o', '/dev/null', ...exampleProgram('counter', ['--steps', '120'])];
    const p = scope.launch({ dir: ckpt, program, cwd: scope.dir('work'), label: 'strace -f counter' });
    await p.waitForStep(5);
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is.not(r.code, 0, 'the checkpoint of a traced process fails');
    assert.match(r.stderr, /process \d+ \(counter\) is traced by process \d+ \(strace, [^)]*strace\): ckrun cannot checkpoint a process under a debugger or tracer/, r.stderr);
    assert.not.ok(fs.existsSync(path.join(ckpt, '1')), 'no generation was written');
    const exit = await p.waitExit();
    assert.is(exit.code, 0, p.describe());
    assert.ok(p.lines.some((l) => l.startsWith('counter: done steps=120')), `it ran on to its end:\n${p.describe()}`);
  } finally {
    await scope.cleanup();
  }
});

test.run();
