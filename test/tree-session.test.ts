// How long a session lasts: while any of its processes lives, not just the
// program ckrun started; ckrun then exits with that program's status.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { python3 } from './lib/examples.js';
import { sleep } from './lib/proc.js';
import { alive, waitGone, descendants as descendantsOf } from './lib/processes.js';
import { checkpoint } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { fileLines, treeProgram } from './lib/tree.js';

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

test('kill -9 of ckrun alone ends the family: the program, a child that joined a checkpoint, and one forked after it', async () => {
  const scope = new Scope('tree-session-killed');
  try {
    const ckpt = scope.ckptDir();
    const go = path.join(scope.dir('work'), 'go');
    const script = [
      'import os, sys, time',
      'def child():',
      '    if os.fork() == 0:',
      '        while True: time.sleep(1)',
      'child()',
      'print("forked", flush=True)',
      `while not os.path.exists(${JSON.stringify(go)}): time.sleep(0.02)`,
      'child()',
      'print("forked again", flush=True)',
      'while True: time.sleep(1)',
    ].join('\n');
    const p = scope.launch({ dir: ckpt, program: [python3(), '-c', script] });
    await p.waitForLine('forked');
    await checkpoint(ckpt); // the first child joins the session here
    fs.writeFileSync(go, '');
    await p.waitForLine('forked again');
    await sleep(200);
    const family = descendantsOf(p.pid);
    assert.is(family.length, 3, `the program and its two children run (${family.join(' ')})`);
    process.kill(p.pid, 'SIGKILL');
    const left = await waitGone(family, 5_000);
    assert.equal(left.filter(alive), [], 'every process of the family ended with ckrun');
  } finally {
    await scope.cleanup();
  }
});

test.run();
