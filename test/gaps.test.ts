// Breadth gaps found by running CRIU's zdtm static tests under ckrun, each
// closed with a small program of our own that checks its own state at
// every step and prints FAIL at the first difference: it is launched,
// checkpointed, killed with kill -9 and restarted, twice, and must run to
// its end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { socketExample } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { type Proc } from './lib/proc.js';
import { checkpoint } from './lib/ckrun.js';
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

test('sockets bound to addresses not of this machine (IP_FREEBIND, also cleared after bind, IPv4 and IPv6) are bound there again', async () => {
  await twiceThroughRestart('freebind', [socketExample('freebind'), '--steps', '30']);
});

test.run();
