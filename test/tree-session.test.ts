// How long a session lasts: while any of its processes lives, not just the
// program ckrun started; ckrun then exits with that program's status.
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Scope } from './helpers.js';
import { fileLines, treeProgram } from './tree.js';

test('ckrun waits for a child that outlives the program, then exits with the program\'s status', async () => {
  const scope = new Scope('tree-session');
  try {
    const p = scope.launch({
      dir: scope.ckptDir(),
      program: ['/bin/bash', '-c', '(sleep 1.5; echo child done) & echo parent exits; exit 3'],
    });
    await p.waitForLine('parent exits');
    const t0 = Date.now();
    const exit = await p.waitExit();
    assert.is(exit.code, 3, p.describe());
    assert.equal(p.lines, ['parent exits', 'child done'], 'ckrun lasted until the child was done');
    assert.ok(Date.now() - t0 > 1000, 'ckrun did not end with the program');
  } finally {
    await scope.cleanup();
  }
});

test('a daemon keeps the session going after the program ckrun started has exited', async () => {
  const scope = new Scope('tree-session-daemon');
  try {
    const out = path.join(scope.dir('work'), 'out.txt');
    const p = scope.launch({ dir: scope.ckptDir(), program: treeProgram('daemon', [out, '--lines', '50']) });
    await p.waitForLine('daemon: detached');
    const exit = await p.waitExit();
    assert.is(exit.code, 0, p.describe());
    const lines = fileLines(out);
    assert.is(lines.length, 51, `ckrun exited only once the daemon was done: ${out} has ${lines.length} lines`);
    assert.match(lines[50]!, /^done 50 /);
  } finally {
    await scope.cleanup();
  }
});

test('killed by a signal: 128+N, also when a child is left to finish', async () => {
  const scope = new Scope('tree-session-signal');
  try {
    const p = scope.launch({
      dir: scope.ckptDir(),
      program: ['/bin/bash', '-c', '(sleep 1; echo child done) & echo parent; kill -TERM $$'],
    });
    const exit = await p.waitExit();
    assert.is(exit.code, 128 + 15, p.describe());
    assert.equal(p.lines, ['parent', 'child done']);
  } finally {
    await scope.cleanup();
  }
});

test.run();
