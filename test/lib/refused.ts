// A checkpoint the shim or ckrun refuses: it fails with its reason, leaves
// no generation, and the program runs on to its end unharmed.
import * as assert from 'uvu/assert';
import { ckrun } from './ckrun.js';
import { generations } from './images.js';
import { lastLine } from './lines.js';
import { type Proc } from './proc.js';
import { Scope } from './scope.js';

/** Throws at the first line of the program's (stdout or stderr) that starts with FAIL. */
export function assertNoFailure(p: Proc, what: string): void {
  const bad = [...p.lines, ...p.stderr.split('\n')].find((l) => l.startsWith('FAIL'));
  if (bad) throw new Error(`${what}: the program found its state wrong: ${bad}\n${p.describe(8)}`);
}

/**
 * Launches program, asks for a checkpoint once it printed step 2: the
 * checkpoint must fail with a message matching `why` and leave no
 * generation; the program must then run to its end, exit 0 and print a
 * last line matching `last` ("done" by default).
 */
export async function refusedAndRunsOn(name: string, program: string[], label: string, why: RegExp, last: RegExp = /^done$/): Promise<void> {
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
    assert.match(lastLine(p.lines) ?? '', last, p.describe());
  } finally {
    await scope.cleanup();
  }
}
