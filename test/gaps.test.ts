// Breadth gaps found by running CRIU's zdtm static tests under ckrun, each
// closed with a small program of our own that checks its own state at
// every step and prints FAIL at the first difference: it is launched,
// checkpointed, killed with kill -9 and restarted, twice, and must run to
// its end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram, socketExample } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { type Proc } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { generations } from './lib/images.js';
import { Scope } from './lib/scope.js';

function assertNoFailure(p: Proc, what: string): void {
  const bad = [...p.lines, ...p.stderr.split('\n')].find((l) => l.startsWith('FAIL'));
  if (bad) throw new Error(`${what}: the program found its state wrong: ${bad}\n${p.describe(8)}`);
}

/** Launch, checkpoint, kill -9, restart (twice), then the program runs to "done" checking itself. */
async function twiceThroughRestart(name: string, program: string[]): Promise<void> {
  const scope = new Scope(name);
  try {
    const ckpt = scope.ckptDir();
    let p = scope.launch({ dir: ckpt, program, label: `ckrun ${name}` });
    await p.waitForStep(3);
    await checkpoint(ckpt);
    await p.waitForStep(p.maxStep + 2);
    await scope.kill9(p);
    assertNoFailure(p, `${name}, launched`);
    for (let round = 1; round <= 2; round++) {
      p = scope.restart({ dir: ckpt, label: `${name}: restart ${round}` });
      await p.waitForStep(p.maxStep + 2);
      if (round === 1) {
        await checkpoint(ckpt);
        await p.waitForStep(p.maxStep + 2);
        await scope.kill9(p);
        assertNoFailure(p, `${name}, restart ${round}`);
        continue;
      }
      const exit = await p.waitExit();
      assertNoFailure(p, `${name}, restart ${round}`);
      assert.is(exit.code, 0, p.describe());
      assert.is(lastLine(p.lines), 'done', p.describe());
    }
  } finally {
    await scope.cleanup();
  }
}

/**
 * A checkpoint of the program fails with a message matching `why`, leaves
 * no generation, and the program runs on to its end unharmed.
 */
async function refusedAndRunsOn(name: string, program: string[], label: string, why: RegExp): Promise<void> {
  const scope = new Scope(name);
  try {
    const ckpt = scope.ckptDir();
    const p = scope.launch({ dir: ckpt, program, label });
    await p.waitForStep(2);
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is(r.code, 1, `the checkpoint must fail:\n${r.describe()}`);
    assert.match(r.stderr, why, r.describe());
    assert.equal(generations(ckpt), [], 'no generation is left behind');
    const exit = await p.waitExit();
    assertNoFailure(p, 'after the refused checkpoint');
    assert.is(exit.code, 0, p.describe());
    assert.is(lastLine(p.lines), 'done');
  } finally {
    await scope.cleanup();
  }
}

test('sockets bound to addresses not of this machine (IP_FREEBIND, also cleared after bind, IPv4 and IPv6) are bound there again', async () => {
  await twiceThroughRestart('freebind', [socketExample('freebind'), '--steps', '80']);
});

test('socket options a program set come back: TCP_CORK, SO_PRIORITY, SO_MARK, SO_BINDTODEVICE', async () => {
  await twiceThroughRestart('sockopts', [socketExample('sockopts'), '--steps', '80']);
});

test('a socket with a packet filter (SO_ATTACH_FILTER) fails the checkpoint, naming it, and the program runs on', async () => {
  await refusedAndRunsOn('sockfilter', [socketExample('sockopts'), '--steps', '80', '--filter'], 'ckrun sockopts --filter', /packet filter .*descriptor \d+: a filter of 1 instructions \(SO_ATTACH_FILTER\)/);
});

test('a SysV segment attached once and split by mprotect comes back attached once, each piece with its protection and bytes', async () => {
  await twiceThroughRestart('shmsplit', exampleProgram('shmsplit', ['--steps', '80']));
});

test('a SysV attachment with a piece unmapped: the restart refuses, naming the segment, and nothing runs', async () => {
  const scope = new Scope('shmsplit-partial');
  try {
    const ckpt = scope.ckptDir();
    const p = scope.launch({ dir: ckpt, program: exampleProgram('shmsplit', ['--steps', '200', '--partial']), label: 'ckrun shmsplit --partial' });
    await p.waitForStep(2);
    await checkpoint(ckpt);
    await scope.kill9(p);
    const r = await ckrun(['restart', '--dir', ckpt]);
    assert.not.equal(r.code, 0, `the restart must refuse:\n${r.describe()}`);
    assert.match(r.stderr, /has only part of the SysV shared memory segment \d+ attached \(12288 of its 16384 bytes/, r.describe());
    assert.equal(scope.strays(), [], 'nothing of the session runs');
  } finally {
    await scope.cleanup();
  }
});

test("a thread with an rseq area of its own (not glibc's) fails the checkpoint, naming the thread, and keeps its registration", async () => {
  await refusedAndRunsOn('rseqown', exampleProgram('rseqown', ['--steps', '80']), 'ckrun rseqown', /restartable-sequence \(rseq\) area of its own: thread \d+: ckrun registers only glibc's/);
});

test('a TCP connection shut down (SHUT_WR) behind bytes not sent yet (FIN_WAIT1) delivers exactly those bytes, then EOF', async () => {
  await twiceThroughRestart('tcpfin', [socketExample('tcpfin'), '--steps', '80']);
});

test('UDP sockets shut down (SHUT_WR, SHUT_RD, and SHUT_RDWR unconnected) stay shut', async () => {
  await twiceThroughRestart('udpshut', [socketExample('udpshut'), '--steps', '80']);
});

test('a shared file mapping made read-only, whose file was open for writing, can be made writable again after a restart', async () => {
  await twiceThroughRestart('mapwrite', exampleProgram('mapwrite', ['--steps', '80']));
});

test('a descriptor that sends I/O signals (O_ASYNC, F_SETOWN, F_SETSIG) fails the checkpoint, naming it, and the program runs on', async () => {
  await refusedAndRunsOn('sigio', exampleProgram('sigio', ['--steps', '60']), 'ckrun sigio', /descriptor \d+ has a signal for its I\/O \(F_SETSIG \d+\) and an owner for it \(F_SETOWN: process \d+\)/);
});

test.run();
