// Failures are fast and clear (issue 9). The checkpoint writer (a forked
// copy of the program that writes its image while the program runs on)
// killed with SIGKILL: `ckrun checkpoint` fails at once, naming the writer
// and how it ended, instead of waiting a minute and blaming the program; no
// partial generation stays; the program runs on; the next checkpoint works
// and restarts. And `ckrun checkpoint` against a session that dies under it
// (its program killed, or ckrun itself) prints one line and a documented
// exit status, never a stack trace.
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { runNative, sleep, type Proc } from './lib/proc.js';
import { descendants } from './lib/processes.js';
import { checkpoint, ckrun, type CliResult } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations } from './lib/images.js';

/** Big enough that writing its image takes a while (hundreds of ms) on this kind of machine. */
const MIB = '512';

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The running checkpoint writer below ckrun, waited for while `until` is pending. */
async function findWriter(ckrunPid: number, until: Promise<unknown>): Promise<number | undefined> {
  let settled = false;
  void until.finally(() => (settled = true));
  while (!settled) {
    const w = descendants(ckrunPid).find((p) => comm(p) === 'ckrun-writer');
    if (w !== undefined) return w;
    await sleep(2);
  }
  return undefined;
}

function partials(dir: string): string[] {
  return fs.readdirSync(dir).filter((e) => e.startsWith('.'));
}

function assertOneLine(r: CliResult, what: string): void {
  const lines = r.stderr.trimEnd().split('\n');
  assert.is(lines.length, 1, `${what}: one line on stderr:\n${r.describe()}`);
  assert.not.match(r.stderr, /^\s+at /m, `${what}: no stack trace:\n${r.describe()}`);
}

/**
 * Starts `ckrun checkpoint` and, once its writer runs, kills the writer
 * (and first `also`, if given). Tries again when the writer finished before
 * it could be killed. Returns the checkpoint's result and the writer's PID.
 */
async function checkpointKillingWriter(s: Proc, ckpt: string, also?: () => void): Promise<{ r: CliResult; writer: number }> {
  for (let attempt = 1; ; attempt++) {
    const run = ckrun(['checkpoint', '--dir', ckpt]);
    const writer = await findWriter(s.pid, run);
    if (writer !== undefined) {
      also?.();
      try {
        process.kill(writer, 'SIGKILL');
      } catch {
        // it finished meanwhile
      }
    }
    const r = await run;
    if (writer !== undefined && r.code !== 0) return { r, writer };
    if (attempt >= 5) throw new Error(`the writer finished each time before it could be killed (${attempt} tries):\n${r.describe()}`);
  }
}

test('kill -9 of the checkpoint writer: the checkpoint fails at once naming it, nothing partial stays, the program runs on, the next checkpoint restarts', async () => {
  const scope = new Scope('writer-killed');
  try {
    const ckpt = scope.ckptDir();
    const program = exampleProgram('dirty', ['--mib', MIB, '--steps', '60']);
    const refRun = runNative(program);
    const s = scope.launch({ dir: ckpt, program });
    await s.waitForStep(2);
    const { r, writer } = await checkpointKillingWriter(s, ckpt);
    assert.is(r.code, 1, `the checkpoint fails (exit status 1):\n${r.describe()}`);
    assert.match(
      r.stderr,
      new RegExp(`the checkpoint writer of process \\d+ \\(PID ${writer}\\) was killed by SIGKILL before it finished the image`),
      `the message names the writer and how it ended:\n${r.describe()}`,
    );
    assertOneLine(r, 'the failed checkpoint');
    assert.equal(partials(ckpt), [], 'no partial generation stays');
    assert.equal(generations(ckpt), [], 'no generation was completed');
    assert.ok(s.running, `the program runs on:\n${s.describe()}`);
    const at = s.maxStep;
    await s.waitForStep(at + 2);

    const gen = await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 1);
    await scope.kill9(s);
    const again = scope.restart({ image: gen });
    const exit = await again.waitExit();
    const ref = await refRun;
    assert.is(exit.code, 0, again.describe());
    for (const l of again.lines) assert.ok(ref.lines.includes(l), `a line the program never prints natively: ${l}\n${again.describe()}`);
    assert.is(lastLine(again.lines), lastLine(ref.lines), 'the restarted program ends in the native state');
  } finally {
    await scope.cleanup();
  }
});

test('the writer killed the moment it exists, again and again: each checkpoint fails naming it, the program never notices', async () => {
  const scope = new Scope('writer-killed-early');
  try {
    const ckpt = scope.ckptDir();
    // killed before it read the pause from the stopped program, the writer used to cost the program a SIGPIPE
    const program = exampleProgram('dirty', ['--mib', '64', '--steps', '400']);
    const refRun = runNative(program);
    const s = scope.launch({ dir: ckpt, program });
    await s.waitForStep(2);
    for (let i = 0; i < 8; i++) {
      const run = ckrun(['checkpoint', '--dir', ckpt]);
      const writer = await findWriter(s.pid, run);
      if (writer !== undefined) process.kill(writer, 'SIGKILL');
      const r = await run;
      if (r.code === 0) continue; // it was done before it could be killed
      assert.match(r.stderr, /the checkpoint writer of process \d+ \(PID \d+\) was killed by SIGKILL/, r.describe());
      assert.ok(s.running, `the program runs on after kill ${i + 1} of its writer:\n${s.describe()}`);
    }
    assert.equal(partials(ckpt), [], 'no partial generation stays');
    await checkpoint(ckpt);
    await s.waitExit();
    const ref = await refRun;
    assert.is(s.exit?.code, 0, s.describe());
    assert.equal(s.lines, ref.lines, "the program's output is a native run's");
  } finally {
    await scope.cleanup();
  }
});

test('ckrun checkpoint while the session dies under it: one line, a documented exit status, no stack trace', async () => {
  const scope = new Scope('writer-session-dies');
  try {
    // the program killed while its image is written (and the writer with it)
    const ckpt = scope.ckptDir('ck1');
    const s = scope.launch({ dir: ckpt, program: exampleProgram('dirty', ['--mib', MIB, '--steps', '100000']) });
    await s.waitForStep(2);
    const prog = descendants(s.pid).find((p) => comm(p) === 'dirty');
    assert.ok(prog, s.describe());
    const { r } = await checkpointKillingWriter(s, ckpt, () => process.kill(prog!, 'SIGKILL'));
    assert.ok(r.code === 1 || r.code === 4, `exit status 1 (failed) or 4 (the session ended):\n${r.describe()}`);
    assertOneLine(r, 'program killed during the checkpoint');
    await s.waitExit();
    assert.equal(partials(ckpt), [], 'no partial generation stays');

    // ckrun itself killed while the checkpoint runs
    const ckpt2 = scope.ckptDir('ck2');
    const s2 = scope.launch({ dir: ckpt2, program: exampleProgram('dirty', ['--mib', MIB, '--steps', '100000']) });
    await s2.waitForStep(2);
    const run = ckrun(['checkpoint', '--dir', ckpt2]);
    const writer = await findWriter(s2.pid, run);
    assert.ok(writer !== undefined, 'the checkpoint reached its writer');
    process.kill(s2.pid, 'SIGKILL');
    const r2 = await run;
    assert.is(r2.code, 4, `exit status 4: the session ended before it answered:\n${r2.describe()}`);
    assert.match(r2.stderr, /ended before it answered/, r2.describe());
    assertOneLine(r2, 'ckrun killed during the checkpoint');
  } finally {
    await scope.cleanup();
  }
});

test.run();
