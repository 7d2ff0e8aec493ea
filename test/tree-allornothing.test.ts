// All or nothing at restart (issue 11): no process of a family runs before
// every process is rebuilt; a process that fails during the restore fails
// the restart at once, naming it and its reason, and every other process of
// the family is ended; a family not rebuilt within its bound (in proportion
// to the images' size) is ended naming who did not finish. Nothing of the
// family is left running or waiting.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ckrun } from './lib/ckrun.js';
import { readManifest } from './lib/images.js';
import { sleep } from './lib/proc.js';
import { alive } from './lib/processes.js';
import { Scope } from './lib/scope.js';

// a parent that counts steps on stdout; its child appends its own steps to child.log
const FAMILY = `
import os, sys, time
pid = os.fork()
if pid == 0:
    log = open('child.log', 'a')
    i = 0
    while True:
        i += 1
        log.write(f'child {i}\\n'); log.flush()
        time.sleep(0.02)
i = 0
while True:
    i += 1
    print(f'step {i}', flush=True)
    time.sleep(0.02)
`;

async function checkpointedFamily(scope: Scope): Promise<{ ckpt: string; work: string; pids: number[] }> {
  const ckpt = scope.ckptDir('ckpt');
  const work = scope.dir('work');
  fs.writeFileSync(path.join(work, 'family.py'), FAMILY);
  // --files=size: the failure injected below (an immutable file) must reach a
  // member's restore; with the default snapshot, restart refuses earlier,
  // when it puts the file back
  const p = scope.launch({ dir: ckpt, program: ['python3', 'family.py'], cwd: work, extra: ['--files=size'], label: 'python family' });
  await p.waitForStep(10);
  const r = await ckrun(['checkpoint', '--dir', ckpt]);
  assert.is(r.code, 0, `checkpoint: ${r.stderr}`);
  await scope.kill9(p);
  const m = readManifest(path.join(ckpt, '1'));
  const pids = (m.processes ?? []).map((x) => Number(x.pid));
  assert.is(pids.length, 2, 'the image holds the parent and its child');
  return { ckpt, work, pids };
}

function assertNothingLeft(scope: Scope, pids: number[]): void {
  const strays = scope.strays();
  assert.equal(strays.map((s) => `${s.pid} ${s.cmdline.join(' ')}`), [], 'no process of the session is left');
  for (const pid of pids) assert.not.ok(alive(pid), `PID ${pid} of the family is not running`);
}

test('a member that cannot get its file back fails the restart at once, naming it; its parent never ran, nothing is left; restart works once the file is writable', async () => {
  const scope = new Scope('tree-allornothing-fail');
  const { ckpt, work, pids } = await checkpointedFamily(scope);
  const log = path.join(work, 'child.log');
  try {
    const linesBefore = fs.readFileSync(log, 'utf8').split('\n').length;
    // the child's file can no longer be opened for writing, even by root
    execFileSync('chattr', ['+i', log]);
    const t0 = Date.now();
    const r = await ckrun(['restart', '--dir', ckpt], { cwd: work });
    const took = Date.now() - t0;
    assert.is.not(r.code, 0, 'the restart fails');
    const child = Math.max(...pids);
    assert.match(r.stderr, new RegExp(`cannot reopen ${log.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} as descriptor \\d+: Operation not permitted`), r.stderr);
    assert.match(r.stderr, new RegExp(`process ${child} of the family of .* could not be restored .*every process of the family was ended, nothing of it runs`), r.stderr);
    assert.not.match(r.stdout, /step \d+/, `the parent printed nothing: it never ran\n${r.stdout}`);
    assert.ok(took < 20_000, `the failure is reported at once, not after a timeout (${took} ms)`);
    assertNothingLeft(scope, pids);
    assert.is(fs.readFileSync(log, 'utf8').split('\n').length, linesBefore, 'the child did not write');

    execFileSync('chattr', ['-i', log]);
    const again = scope.restart({ dir: ckpt, cwd: work, label: 'restart after chattr -i' });
    await again.waitForStep(15);
  } finally {
    try {
      execFileSync('chattr', ['-i', log]);
    } catch {
      // gone
    }
    await scope.cleanup();
  }
});

test('a family not rebuilt within its bound is ended, naming the processes that did not finish', async () => {
  const scope = new Scope('tree-allornothing-bound');
  try {
    const { ckpt, work, pids } = await checkpointedFamily(scope);
    // a bound of 0 ms: no family is rebuilt in time
    const r = await ckrun(['restart', '--dir', ckpt], { cwd: work, env: { CKRUN_RESTORE_BOUND_MS: '0' } });
    assert.is.not(r.code, 0, 'the restart fails');
    assert.match(r.stderr, /process(es)? of the family of .* did not finish restoring within 0 s: \d+ \(python3[.\d]*\)/, r.stderr);
    assert.match(r.stderr, /every process of the family was ended, nothing of it runs/);
    assert.not.match(r.stdout, /step \d+/, 'nothing of the family ran');
    await sleep(200);
    assertNothingLeft(scope, pids);
  } finally {
    await scope.cleanup();
  }
});

test.run();
