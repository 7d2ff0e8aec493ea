// A shell pipeline (issue 3): bash, seq, a bash subshell running the loop,
// sha256sum — four processes, two pipes with data in flight — checkpointed
// in the middle, twice. The pipeline prints one line, at the very end: it
// must be the hash an uninterrupted run prints.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runNative, sleep } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { treeScenario } from './lib/tree.js';

// 200000 lines take about a second natively; the scenario needs a few
// seconds of work to checkpoint twice in the middle.
const N = 1_000_000;
const SCRIPT = `seq 1 ${N} | while read n; do echo $((n*n)); done | sha256sum`;

test('bash pipeline: checkpoint mid-pipeline, kill -9, restart; twice; the final hash is the uninterrupted one', async () => {
  const scope = new Scope('tree-pipeline');
  try {
    const program = ['/bin/bash', '-c', SCRIPT];
    const refRun = runNative(program, { timeout: 120_000 });
    await treeScenario(scope, {
      name: 'pipeline',
      program,
      cwd: scope.dir('work'),
      minProcesses: 3,
      async progress({ stage, proc }) {
        await sleep(stage === 0 ? 2000 : 1500);
        assert.ok(proc.running, `the pipeline ended before the checkpoint\n${proc.describe()}`);
        assert.is(proc.lines.length, 0, `the pipeline printed before its end:\n${proc.describe()}`);
      },
      async runsOn({ proc }) {
        await sleep(300);
        assert.ok(proc.running, `the pipeline finished right after the checkpoint: the machine is too fast for this test\n${proc.describe()}`);
        assert.is(proc.lines.length, 0, `the pipeline finished right after the checkpoint\n${proc.describe()}`);
      },
      async verify([s1, r1, r2]) {
        const ref = await refRun;
        assert.is(ref.code, 0, `the uninterrupted run failed: ${ref.stderr}`);
        assert.match(ref.stdout, /^[0-9a-f]{64} {2}-\n$/);
        assert.is(s1.stdout, '', 'the launched run printed nothing (it was killed before the end)');
        assert.is(r1.stdout, '', 'the first restart printed nothing (it was killed before the end)');
        assert.is(r2.stdout, ref.stdout, `the restarted pipeline's hash differs from the uninterrupted run's\n${r2.describe()}`);
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test.run();
