// python3 multiprocessing (issue 3): Pool(2) mapping work — forked
// workers, pipes, POSIX semaphores in /dev/shm, the pool's threads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lastLine } from './lib/lines.js';
import { runNative } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { assertPrefix, assertResumed } from './lib/spine.js';
import { treeProgram, treeScenario } from './lib/tree.js';

test('python multiprocessing.Pool(2): checkpoint, kill -9, restart; twice; the results are the uninterrupted run\'s', async () => {
  const scope = new Scope('tree-pool');
  try {
    const program = treeProgram('pool.py');
    const refRun = runNative(program);
    let req1 = 0;
    let req2 = 0;
    await treeScenario(scope, {
      name: 'pool',
      program,
      cwd: scope.dir('work'),
      minProcesses: 3,
      async progress({ stage, proc }) {
        if (stage === 0) {
          await proc.waitForStep(40);
          req1 = proc.lines.length;
        } else {
          await proc.waitFor(() => proc.lines.length >= 30, '30 lines from the restarted pool');
          req2 = proc.lines.length;
        }
      },
      checkGeneration(gen, m) {
        const parent = m.processes.find((p) => p.pid === m.root);
        assert.ok(parent, `${gen}: the root (the pool's parent) is in the generation: ${JSON.stringify(m.processes)}`);
        const workers = m.processes.filter((p) => p.ppid === parent.pid);
        assert.ok(workers.length >= 2, `${gen}: the two workers are children of the root: ${JSON.stringify(m.processes)}`);
      },
      async runsOn({ proc }) {
        await proc.waitForStep(proc.maxStep + 1);
      },
      async verify([s1, r1, r2]) {
        const ref = await refRun;
        assert.is(ref.code, 0, ref.stderr);
        assertPrefix(s1, ref.lines, 'pool, launched run');
        const k1 = assertResumed({ beforeLines: s1.lines, requestedAt: req1, after: r1, ref: ref.lines, complete: false, what: 'pool, first restart' });
        assertResumed({
          beforeLines: ref.lines.slice(0, k1).concat(r1.lines),
          requestedAt: k1 + req2,
          after: r2,
          ref: ref.lines,
          complete: true,
          what: 'pool, second restart',
        });
        assert.is(lastLine(r2.lines), lastLine(ref.lines));
        const errors = [...s1.lines, ...r1.lines, ...r2.lines].filter((l) => l.startsWith('error:'));
        assert.equal(errors, [], 'no error lines');
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test.run();
