// Stopped processes (issue 11): a process stopped by SIGSTOP or job
// control runs no signal handler until SIGCONT, so its shim cannot answer
// a checkpoint by itself; ckrun holds it with a tracer of its own
// (ckrun-hold) for the length of the checkpoint, while for its parent and
// everyone else it stays stopped. After a restart it is stopped again
// before any of its code runs, and SIGCONT wakes it as before.
import { test } from 'uvu';
import { type StageContext, spine } from './lib/spine.js';

function noFailure(ctx: StageContext): void {
  const bad = ctx.proc.lines.find((l) => l.startsWith('FAIL'));
  if (bad) throw new Error(`stage ${ctx.stage}: the program says: ${bad}\n${ctx.proc.describe(20)}`);
}

test('children stopped by SIGTSTP (stop collected) and SIGSTOP (not collected) stay stopped through two restarts; SIGCONT continues them once', async () => {
  await spine({
    name: 'stopped',
    example: 'stopped',
    args: () => ['150'],
    first: 20,
    second: 60,
    expectLines: ['both children continued once and ended', 'stopped: done'],
    check: noFailure,
  });
});

test.run();
