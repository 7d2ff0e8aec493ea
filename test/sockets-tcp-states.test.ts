// TCP connections half-closed and connecting (issue 13): examples/tcp-states.c
// keeps one connection in FIN-WAIT-2 / CLOSE-WAIT with bytes in flight, a
// listener whose queue is full and a connect to it in SYN-SENT (which hung
// the restart before). Launch, checkpoint, kill -9, restart, verify each
// state and what arrives; again from the restarted process.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { socketExample } from './lib/examples.js';
import { type Proc } from './lib/proc.js';
import { checkpoint } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';

function noErrors(p: Proc): void {
  const bad = p.lines.filter((l) => l.startsWith('ERROR'));
  if (bad.length) throw new Error(`the program reports: ${bad.join('; ')}\n${p.describe()}`);
}

test('TCP: FIN-WAIT-2 / CLOSE-WAIT with bytes in flight, a full listen queue and a connect in SYN-SENT: twice', async () => {
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

test.run();
