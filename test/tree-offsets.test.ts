// Shared file offset after fork (issue 3): parent and child write lines
// alternately through one descriptor opened before fork (no O_APPEND); a
// restart must give them one open file description again, or their lines
// overwrite each other.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lastLine } from './lib/lines.js';
import { runNative } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { assertPrefix, assertResumed } from './lib/spine.js';
import { fileLines, sharedGroupOf, treeProgram, treeScenario } from './lib/tree.js';

test('offsets: one open file description shared after fork; checkpoint, kill -9, restart; twice; every line once, alternating', async () => {
  const scope = new Scope('tree-offsets');
  try {
    const refDir = scope.dir('ref');
    const work = scope.dir('work');
    const refRun = runNative(treeProgram('offsets', [path.join(refDir, 'out.txt')]));
    const out = path.join(work, 'out.txt');
    let req1 = 0;
    let req2 = 0;
    await treeScenario(scope, {
      name: 'offsets',
      program: treeProgram('offsets', [out]),
      cwd: work,
      minProcesses: 2,
      async progress({ stage, proc }) {
        if (stage === 0) {
          await proc.waitForStep(40);
          req1 = proc.lines.length;
        } else {
          await proc.waitFor(() => proc.lines.length >= 30, '30 lines from the restarted pair');
          req2 = proc.lines.length;
        }
      },
      checkGeneration(gen, m) {
        assert.is(m.processes.length, 2, `${gen}: parent and child: ${JSON.stringify(m.processes)}`);
        const pids = m.processes.map((p) => p.pid);
        const g = (m.shared_files ?? []).find((grp) => pids.every((pid) => grp.some(([p, fd]) => p === pid && fd >= 3)));
        assert.ok(g, `${gen}: the output file's descriptor is one open file description in both: ${JSON.stringify(m.shared_files)}`);
        assert.ok(sharedGroupOf(m, pids, 1), `${gen}: stdout is shared too: ${JSON.stringify(m.shared_files)}`);
      },
      async runsOn({ proc }) {
        await proc.waitForStep(proc.maxStep + 1);
      },
      async verify([s1, r1, r2]) {
        const ref = await refRun;
        assert.is(ref.code, 0, ref.stderr);
        assertPrefix(s1, ref.lines, 'offsets, launched run');
        const k1 = assertResumed({ beforeLines: s1.lines, requestedAt: req1, after: r1, ref: ref.lines, complete: false, what: 'offsets, first restart' });
        assertResumed({
          beforeLines: ref.lines.slice(0, k1).concat(r1.lines),
          requestedAt: k1 + req2,
          after: r2,
          ref: ref.lines,
          complete: true,
          what: 'offsets, second restart',
        });
        assert.is(lastLine(r2.lines), lastLine(ref.lines));
        assert.match(lastLine(ref.lines), /alternating=ok/);
        const want: string[] = [];
        for (let i = 1; i <= 150; i++) want.push(`parent ${i}`, `child ${i}`);
        assert.equal(fileLines(out), want, 'the file holds every line once, alternating');
        assert.ok(fs.readFileSync(out).equals(fs.readFileSync(path.join(refDir, 'out.txt'))), 'the file is the uninterrupted run\'s');
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test.run();
