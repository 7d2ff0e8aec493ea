// TCP connections half-closed, closed and connecting (issue 13): examples/tcp-states.c
// keeps one connection in FIN-WAIT-2 / CLOSE-WAIT with bytes in flight, a
// listener whose queue is full and a connect to it in SYN-SENT (which hung
// the restart before). Launch, checkpoint, kill -9, restart, verify each
// state and what arrives; again from the restarted process. Urgent data
// (MSG_OOB) not yet read fails the checkpoint (examples/urgent.py).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { python3, socketExample } from './lib/examples.js';
import { EXAMPLES } from './lib/paths.js';
import { type Proc } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';

function noErrors(p: Proc): void {
  const bad = p.lines.filter((l) => l.startsWith('ERROR'));
  if (bad.length) throw new Error(`the program reports: ${bad.join('; ')}\n${p.describe()}`);
}

test('TCP: FIN-WAIT-2 / CLOSE-WAIT with bytes in flight, a connection both ends closed (CLOSE) with bytes unread, a full listen queue and a connect in SYN-SENT: twice', async () => {
  const scope = new Scope('tcp-states');
  const bin = socketExample('tcp-states');
  try {
    const ckpt = scope.ckptDir();
    const steps = 300;
    const p1 = scope.launch({ program: [bin, String(steps)], dir: ckpt, label: 'tcp-states' });
    await p1.waitForStep(10);
    await checkpoint(ckpt);
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


test('TCP urgent data the program has not read fails the checkpoint, naming the connection; once read, the checkpoint passes and the restart goes on', async () => {
  const scope = new Scope('tcp-urgent');
  try {
    const ckpt = scope.ckptDir();
    const work = scope.dir('work');
    const p1 = scope.launch({ program: [python3(), path.join(EXAMPLES, 'urgent.py')], dir: ckpt, cwd: work, label: 'urgent.py' });
    await p1.waitFor(() => p1.lines.includes('urgent sent'), 'urgent sent');
    const refused = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is.not(refused.code, 0, refused.describe());
    assert.match(refused.stderr, /urgent data the program has not read: descriptor \d+ \(TCP port/);
    assert.ok(p1.running, 'the program runs on');
    fs.writeFileSync(path.join(work, 'go'), '');
    await p1.waitFor(() => p1.lines.includes('stream abcdef'), 'the urgent byte read, then the stream around it');
    assert.ok(p1.lines.includes('urgent read !'), p1.describe());
    await checkpoint(ckpt);
    await scope.kill9(p1);
    const p2 = scope.restart({ dir: ckpt, cwd: work, label: 'restart' });
    const exit = await p2.waitExit();
    assert.is(exit.code, 0, p2.describe());
    assert.is(p2.lines[p2.lines.length - 1], 'done', p2.describe());
    assert.not.ok(p2.lines.some((l) => l.startsWith('FAIL')), p2.describe());
  } finally {
    await scope.cleanup();
  }
});

test.run();
