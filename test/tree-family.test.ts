// A C family (issue 3): a parent and two children in a ring of pipes with
// data in flight, a shared anonymous mapping incremented under a
// process-shared mutex, a zombie reaped only at the end, and waitpid
// statuses that must come out right after a restart.
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lastLine } from './lib/lines.js';
import { runNative } from './lib/proc.js';
import { ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { assertPrefix, assertResumed } from './lib/spine.js';
import { sharedGroupOf, treeProgram, treeScenario } from './lib/tree.js';

test('family: pipes in flight, shared memory and mutex, zombie, waitpid; checkpoint, kill -9, restart; twice', async () => {
  const scope = new Scope('tree-family');
  try {
    const program = treeProgram('family');
    const refRun = runNative(program);
    let req1 = 0;
    let req2 = 0;
    await treeScenario(scope, {
      name: 'family',
      program,
      cwd: scope.dir('work'),
      minProcesses: 3,
      async progress({ stage, proc }) {
        if (stage === 0) {
          await proc.waitForStep(40);
          req1 = proc.lines.length;
        } else {
          await proc.waitFor(() => proc.lines.length >= 30, '30 lines from the restarted family');
          req2 = proc.lines.length;
        }
      },
      checkGeneration(gen, m) {
        assert.is(m.processes.length, 3, `${gen}: the parent and children A and B (the zombie has no image): ${JSON.stringify(m.processes)}`);
        const parent = m.processes.find((p) => !m.processes.some((q) => q.pid === p.ppid));
        assert.ok(parent, `${gen}: no process is the parent of the others: ${JSON.stringify(m.processes)}`);
        const kids = m.processes.filter((p) => p !== parent);
        for (const k of kids) assert.is(k.ppid, parent.pid, `${gen}: process ${k.pid} is a child of the parent`);
        for (const k of kids) assert.is(k.pgid, parent.pgid, `${gen}: process ${k.pid} is in the parent's process group`);
        assert.equal(
          (m.shm_owners ?? []).map((o) => o[2]),
          [parent.pid],
          `${gen}: one shared memory object, stored by the parent (lowest PID): ${JSON.stringify(m.shm_owners)}`,
        );
        assert.ok(
          sharedGroupOf(m, m.processes.map((p) => p.pid), 1),
          `${gen}: the three share their stdout (one open file description): ${JSON.stringify(m.shared_files)}`,
        );
      },
      async runsOn({ stage, proc, ckpt }) {
        const n = proc.maxStep;
        await proc.waitForStep(n + 1);
        if (stage !== 0) return;
        // ckrun inspect shows the tree and what the processes share
        const gen = path.join(ckpt, '1');
        const text = await ckrun(['inspect', gen]);
        assert.is(text.code, 0, text.describe());
        assert.match(text.stdout, /^Process tree \(3 processes\)$/m);
        assert.match(text.stdout, /\(zombies: \d+ exited 42\)/);
        assert.match(text.stdout, /^Shared memory \(1\)$/m);
        assert.match(text.stdout, /session stdout/);
        assert.ok(text.stdout.indexOf('Process tree') < text.stdout.indexOf('Threads ('), 'the tree comes before the per-process details');
        const json = await ckrun(['inspect', gen, '--json']);
        assert.is(json.code, 0, json.describe());
        const j = JSON.parse(json.stdout) as { family?: { processes: { pid: number; depth: number }[]; sharedMemory: { owner: number; mappedBy: number[] }[] } };
        assert.ok(j.family, 'inspect --json has the family');
        assert.equal(j.family.processes.map((p) => p.depth), [0, 1, 1]);
        assert.is(j.family.sharedMemory.length, 1);
        assert.is(j.family.sharedMemory[0]!.mappedBy.length, 3);
      },
      async verify([s1, r1, r2]) {
        const ref = (await refRun).lines;
        assertPrefix(s1, ref, 'family, launched run');
        const k1 = assertResumed({ beforeLines: s1.lines, requestedAt: req1, after: r1, ref, complete: false, what: 'family, first restart' });
        const r1Lines = ref.slice(0, k1).concat(r1.lines);
        assertResumed({ beforeLines: r1Lines, requestedAt: k1 + req2, after: r2, ref, complete: true, what: 'family, second restart' });
        assert.is(lastLine(r2.lines), lastLine(ref), 'the final summary (hash, shared counter, waitpid statuses) is the uninterrupted run\'s');
        assert.match(lastLine(ref), / total=96000 seen=160,160,160 a=3 b=5 zombie=42$/);
        assert.ok(r2.lines.includes('family: zombie state before wait: Z'), `the zombie is still a zombie after the restarts\n${r2.describe()}`);
        const errors = [...s1.lines, ...r1.lines, ...r2.lines].filter((l) => l.startsWith('error:'));
        assert.equal(errors, [], 'no process reported an error');
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test.run();
