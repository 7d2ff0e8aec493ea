// make -j2 (issue 3): a build of a small C project of the test's own —
// make, its jobs (sleep, the gcc driver, cc1, as, collect2, ld) —
// checkpointed during the build, twice; after the restarts the build
// completes and the program it built prints the expected result.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runNative } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { MAKE_UNITS, treeScenario, until, writeProject } from './lib/tree.js';

function objects(dir: string): number {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.o')).length;
}

test('make -j2: checkpoint during the build, kill -9, restart; twice; the build completes and its program runs', async () => {
  const scope = new Scope('tree-make');
  try {
    const refDir = scope.dir('ref');
    const work = scope.dir('work');
    const expected = writeProject(refDir);
    writeProject(work);
    const ref = await runNative(['make', '-j2'], { cwd: refDir });
    assert.is(ref.code, 0, ref.stderr);
    assert.is(execFileSync(path.join(refDir, 'prog'), { encoding: 'utf8' }), `${expected}\n`, 'the natively built program');

    await treeScenario(scope, {
      name: 'make',
      program: ['/usr/bin/make', '-j2'],
      cwd: work,
      minProcesses: 2,
      async progress({ proc }) {
        const from = objects(work);
        await until(proc, () => objects(work) >= from + 3, `3 more object files in ${work}`);
        assert.not.ok(fs.existsSync(path.join(work, 'prog')), 'the build finished before the checkpoint');
      },
      async runsOn({ proc }) {
        const from = objects(work);
        await until(proc, () => objects(work) > from, 'the build to go on after the checkpoint');
      },
      verify([, , r2]) {
        assert.ok(fs.existsSync(path.join(work, 'prog')), `the build did not produce prog\n${r2.describe()}`);
        assert.is(objects(work), MAKE_UNITS + 1);
        assert.is(execFileSync(path.join(work, 'prog'), { encoding: 'utf8' }), `${expected}\n`, 'the program built across restarts');
      },
    });
  } finally {
    await scope.cleanup();
  }
});

test.run();
