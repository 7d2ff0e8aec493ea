// A checkpoint that meets a connection not yet accepted that holds bytes
// (issue 13): ckrun lets the program run on a little and tries again by
// itself, and says so in -v. examples/unaccepted.c holds such a connection
// for two seconds on demand. Launch, checkpoint while it holds, kill -9,
// restart, verify; again from the restarted program.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { socketExample } from './lib/examples.js';
import { type Proc } from './lib/proc.js';
import { checkpoint } from './lib/ckrun.js';
import { refusedAndRunsOn } from './lib/refused.js';
import { Scope } from './lib/scope.js';

function noErrors(p: Proc): void {
  const bad = p.lines.filter((l) => l.startsWith('ERROR'));
  if (bad.length) throw new Error(`the program reports: ${bad.join('; ')}\n${p.describe()}`);
}

/** Makes the program hold a connection with its request unaccepted, then checkpoints: tried again until it passes. */
async function checkpointWhileHolding(p: Proc, socks: string, ckpt: string): Promise<number> {
  const holding = p.lines.filter((l) => l === 'holding').length;
  fs.writeFileSync(path.join(socks, 'hold'), '');
  while (p.lines.filter((l) => l === 'holding').length === holding) await p.waitForLine('holding');
  await checkpoint(ckpt);
  const at = p.maxStep;
  assert.match(p.stderr, /checkpoint try 1 met a passing state \(.*a connection not yet accepted holds bytes/, p.describe());
  noErrors(p);
  return at;
}

test('a connection not yet accepted holding bytes: the checkpoint is tried again until it passes (-v says so), twice', async () => {
  const scope = new Scope('unaccepted');
  const bin = socketExample('unaccepted');
  try {
    const ckpt = scope.ckptDir();
    const socks = scope.dir('s');
    // enough that the restarted program is still running when its checkpoint passes at the last try
    const steps = 600;
    const p1 = scope.launch({ program: [bin, socks, String(steps)], dir: ckpt, extra: ['-v'], label: 'unaccepted' });
    await p1.waitForStep(20);
    const at1 = await checkpointWhileHolding(p1, socks, ckpt);
    await scope.kill9(p1);

    const p2 = scope.restart({ dir: ckpt, extra: ['-v'], label: 'restart 1' });
    await p2.waitForStep(at1 + 10);
    noErrors(p2);
    await checkpointWhileHolding(p2, socks, ckpt);
    await scope.kill9(p2);

    const p3 = scope.restart({ dir: ckpt, label: 'restart 2' });
    await p3.waitForLine('done');
    const exit = await p3.waitExit();
    noErrors(p3);
    assert.is(exit.code, 0, `the program ends well\n${p3.describe()}`);
    assert.ok(p3.lines.includes(`step ${steps - 1}`), p3.describe());
  } finally {
    await scope.cleanup();
  }
});

test('a connection not yet accepted whose client sent a line and closed its end fails the checkpoint (what it sent cannot be read before accept), never loses the line; the program runs on', async () => {
  const scope = new Scope('unaccepted-closed-work');
  try {
    await refusedAndRunsOn(
      'unaccepted-closed',
      [socketExample('closedclient'), scope.dir('work'), '150'],
      'ckrun closedclient',
      /a connection not yet accepted holds bytes ckrun cannot read: descriptor \d+ \(a Unix domain socket\): a client connected to this listening socket and closed its end/,
    );
  } finally {
    await scope.cleanup();
  }
});

test.run();
