// A restart right after kill -9 of two processes talking over localhost TCP
// (issue 13): the killed connection leaves TIME-WAIT entries on the very
// ports the restart binds again (the listener has no SO_REUSEADDR, as in
// most programs). examples/tcp-twopeers.c checks its numbered messages and
// that every port stayed the same. Launch, checkpoint, kill -9, restart at
// once (TIME-WAIT present), verify; again from the restarted processes.
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { socketExample } from './lib/examples.js';
import { type Proc, sleep } from './lib/proc.js';
import { descendants, kill } from './lib/processes.js';
import { checkpoint } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';

/** The /proc/net/tcp entries in a state (hex: 01 established, 06 TIME-WAIT) with port on either side, as their fields. */
function tcpEntriesOn(port: number, state: string): string[][] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return fs
    .readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 4 && f[3] === state && (f[1].endsWith(`:${hex}`) || f[2].endsWith(`:${hex}`)));
}

/** TIME-WAIT entries with port on either side. */
function timeWaitOn(port: number): string[] {
  return tcpEntriesOn(port, '06').map((f) => `${f[1]} -> ${f[2]}`);
}

/** Established connections on port with bytes in a send or receive queue. */
function queuedOn(port: number): string[] {
  return tcpEntriesOn(port, '01')
    .filter((f) => f[4] !== '00000000:00000000')
    .map((f) => `${f[1]} -> ${f[2]} queues ${f[4]}`);
}

function noErrors(p: Proc): void {
  const bad = p.lines.filter((l) => l.startsWith('ERROR'));
  if (bad.length) throw new Error(`the program reports: ${bad.join('; ')}\n${p.describe()}`);
}

/** kill -9 of the family, then the prerequisite of this test: the killed connection's TIME-WAIT is there. */
async function killLeavingTimeWait(scope: Scope, p: Proc, port: number): Promise<void> {
  noErrors(p);
  // both stopped first, so that neither sees the other die and writes to a
  // closed connection, and at an instant when no byte is queued either way:
  // a socket closed with bytes unread sends a reset, which leaves no TIME-WAIT
  for (let tries = 0; ; tries++) {
    const pids = descendants(p.pid);
    for (const pid of pids) kill(pid, 'SIGSTOP');
    await sleep(50);
    if (queuedOn(port).length === 0 || tries >= 40) break;
    for (const pid of pids) kill(pid, 'SIGCONT');
    await sleep(13);
  }
  await scope.kill9(p);
  const held = timeWaitOn(port);
  assert.ok(held.length > 0, `prerequisite missing: no TIME-WAIT entry on port ${port} after kill -9 (nothing to test)`);
}

test('localhost TCP between two processes: restart right after kill -9 despite TIME-WAIT, ports and messages kept, twice', async () => {
  const scope = new Scope('tcp-timewait');
  const bin = socketExample('tcp-twopeers');
  try {
    const ckpt = scope.ckptDir();
    const steps = 400;
    const p1 = scope.launch({ program: [bin, String(steps)], dir: ckpt, label: 'tcp-twopeers' });
    await p1.waitForStep(20);
    const port = Number(/^listening port (\d+)/.exec(p1.lines.find((l) => l.startsWith('listening port'))!)![1]);
    await checkpoint(ckpt);
    const at1 = p1.maxStep;
    await killLeavingTimeWait(scope, p1, port);

    // through bin/ckrun (the restore host first), then through node
    const p2 = scope.restart({ dir: ckpt, label: 'restart 1', front: true, env: { CKRUN_VERBOSE: '1' } });
    await p2.waitForStep(at1 + 20);
    noErrors(p2);
    assert.match(p2.stderr, /removed \d+ TIME-WAIT entries the killed run's connections left/, p2.describe());
    assert.ok(p2.maxStep > at1, 'the restarted processes go on');
    await checkpoint(ckpt);
    const at2 = p2.maxStep;
    await killLeavingTimeWait(scope, p2, port);

    const p3 = scope.restart({ dir: ckpt, label: 'restart 2' });
    await p3.waitForLine('done');
    const exit = await p3.waitExit();
    noErrors(p3);
    assert.is(exit.code, 0, `the program ends well\n${p3.describe()}`);
    assert.ok(p3.lines.includes(`step ${steps - 1}`), p3.describe());
    assert.ok(at2 > at1);
  } finally {
    await scope.cleanup();
  }
});

test.run();
