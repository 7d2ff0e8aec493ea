// Unix datagrams and queues (issue 13): examples/unix-dgram.c keeps
// datagrams queued with their senders' names (a path, an abstract name,
// unnamed), a datagram pair, a named socket connected to a peer that went
// away, an unconnected seqpacket socket, ends whose peers closed with bytes
// unread (a pending reset), a pipe in flight held by no process, and a
// socket file with its own mode and owner. Launch, checkpoint, kill -9,
// restart, verify; again from the restarted process.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { socketExample } from './lib/examples.js';
import { type Proc } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';

function noErrors(p: Proc): void {
  const bad = p.lines.filter((l) => l.startsWith('ERROR'));
  if (bad.length) throw new Error(`the program reports: ${bad.join('; ')}\n${p.describe()}`);
}

test('Unix datagrams with their senders, a pipe in flight held by no process, pending resets, socket file mode and owner: twice', async () => {
  const scope = new Scope('unix-dgram');
  const bin = socketExample('unix-dgram');
  try {
    const ckpt = scope.ckptDir();
    const socks = scope.dir('s');
    const steps = 300;
    const p1 = scope.launch({ program: [bin, socks, String(steps)], dir: ckpt, label: 'unix-dgram' });
    await p1.waitForStep(10);
    const gen = await checkpoint(ckpt);
    const shown = await ckrun(['inspect', gen]);
    assert.is(shown.code, 0, shown.describe());
    const at1 = p1.maxStep;
    noErrors(p1);
    await scope.kill9(p1);

    const p2 = scope.restart({ dir: ckpt, label: 'restart 1' });
    await p2.waitForStep(at1 + 10);
    noErrors(p2);
    await checkpoint(ckpt);
    noErrors(p2);
    await scope.kill9(p2);

    const p3 = scope.restart({ dir: ckpt, label: 'restart 2', front: true });
    await p3.waitForLine('done');
    const exit = await p3.waitExit();
    noErrors(p3);
    assert.is(exit.code, 0, `the program ends well\n${p3.describe()}`);
    assert.ok(p3.lines.includes(`step ${steps - 1}`), p3.describe());
  } finally {
    await scope.cleanup();
  }
});

test.run();
