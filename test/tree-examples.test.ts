// The process-tree examples without ckrun: each runs twice natively and
// must give exactly the same output (and files) both times. If this fails,
// the tree tests prove nothing.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { firstDifference, stepOf } from './lib/lines.js';
import { runNative, sleep, type NativeRun } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { fileLines, treeProgram, writeProject } from './lib/tree.js';

function same(a: NativeRun, b: NativeRun, what: string): void {
  assert.is(a.code, 0, `${what} exited with ${a.code}:\n${a.stdout.slice(-2000)}\n${a.stderr}`);
  assert.is(b.code, 0, `${what} exited with ${b.code}:\n${b.stdout.slice(-2000)}\n${b.stderr}`);
  const d = firstDifference(a.lines, b.lines);
  assert.is(d, -1, `${what}: the two runs differ at line ${d}:\n  ${a.lines[d]}\n  ${b.lines[d]}`);
  assert.is(a.lines.find((l) => l.startsWith('error:')), undefined, `${what} reported an error`);
}

function steps(r: NativeRun, n: number, what: string): void {
  const s = r.lines.map(stepOf).filter((x): x is number => x !== undefined);
  assert.is(s.length, n, `${what}: ${s.length} steps`);
  s.forEach((x, i) => assert.is(x, i + 1, `${what}: steps out of order at ${i}`));
}

test('family, offsets, pool.py, daemon, the pipeline and the make project are deterministic natively (twice, in parallel)', async () => {
  const scope = new Scope('tree-examples');
  try {
    const d = (n: string): string => scope.dir(n);
    const [fa, fb, oa, ob, pa, pb, sa, sb] = await Promise.all([
      runNative(treeProgram('family')),
      runNative(treeProgram('family')),
      runNative(treeProgram('offsets', [path.join(d('oa'), 'out.txt')])),
      runNative(treeProgram('offsets', [path.join(d('ob'), 'out.txt')])),
      runNative(treeProgram('pool.py')),
      runNative(treeProgram('pool.py')),
      runNative(['/bin/bash', '-c', 'seq 1 200000 | while read n; do echo $((n*n)); done | sha256sum']),
      runNative(['/bin/bash', '-c', 'seq 1 200000 | while read n; do echo $((n*n)); done | sha256sum']),
    ]);
    same(fa, fb, 'family');
    steps(fa, 160, 'family');
    assert.match(fa.lines[fa.lines.length - 1]!, /^family: done steps=160 .* total=96000 seen=160,160,160 a=3 b=5 zombie=42$/);
    assert.ok(fa.lines.includes('family: zombie state before wait: Z'));
    same(oa, ob, 'offsets');
    steps(oa, 150, 'offsets');
    assert.match(oa.lines[oa.lines.length - 1]!, /alternating=ok/);
    assert.ok(fs.readFileSync(path.join(d('oa'), 'out.txt')).equals(fs.readFileSync(path.join(d('ob'), 'out.txt'))));
    same(pa, pb, 'pool.py');
    steps(pa, 200, 'pool.py');
    same(sa, sb, 'pipeline');
    assert.match(sa.stdout, /^[0-9a-f]{64} {2}-\n$/);

    const da = path.join(d('da'), 'out.txt');
    const db = path.join(d('db'), 'out.txt');
    const [la, lb] = await Promise.all([runNative(treeProgram('daemon', [da])), runNative(treeProgram('daemon', [db]))]);
    same(la, lb, 'daemon (the program started)');
    const end = Date.now() + 60_000;
    while ((fileLines(da).length < 201 || fileLines(db).length < 201) && Date.now() < end) await sleep(100);
    assert.is(fileLines(da).length, 201, 'the daemon wrote 200 lines and "done"');
    assert.ok(fs.readFileSync(da).equals(fs.readFileSync(db)), 'the two daemons wrote the same file');

    const ma = d('ma');
    const mb = d('mb');
    const expected = writeProject(ma);
    writeProject(mb);
    const [ra, rb] = await Promise.all([runNative(['make', '-j2'], { cwd: ma }), runNative(['make', '-j2'], { cwd: mb })]);
    assert.is(ra.code, 0, ra.stderr);
    assert.is(rb.code, 0, rb.stderr);
    for (const m of [ma, mb]) assert.is(execFileSync(path.join(m, 'prog'), { encoding: 'utf8' }), `${expected}\n`);
  } finally {
    await scope.cleanup();
  }
});

test.run();
