// The examples themselves, without ckrun: each runs twice natively and must
// print exactly the same lines (and write the same files) both times, with
// a start line, steps 1..N in order and a final summary line. If this
// fails, the checkpoint tests prove nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ALL_EXAMPLES, type ExampleName, buildExamples, exampleProgram, inputBytes, mmapPattern } from './lib/examples.js';
import { firstDifference, stepOf } from './lib/lines.js';
import { type NativeRun, runNative } from './lib/proc.js';
import { Scope } from './lib/scope.js';

interface Prepared {
  argv: string[];
  dir: string;
}

function prepare(name: ExampleName, dir: string): Prepared {
  if (name === 'files') {
    fs.writeFileSync(path.join(dir, 'input.bin'), inputBytes());
    return { dir, argv: exampleProgram(name, [path.join(dir, 'app.log'), path.join(dir, 'input.bin')]) };
  }
  if (name === 'mmap') return { dir, argv: exampleProgram(name, [path.join(dir, 'shared.bin'), path.join(dir, 'private.bin')]) };
  return { dir, argv: exampleProgram(name) };
}

function checkShape(name: ExampleName, r: NativeRun): void {
  assert.is(r.code, 0, `${name} exited with ${r.code} (signal ${r.signal}):\n${r.stdout.slice(-2000)}\n${r.stderr}`);
  assert.ok(r.stdout.endsWith('\n'), `${name}: output does not end with a newline`);
  const base = name.replace(/\.(py|js)$/, '');
  const first = r.lines.find((l) => !l.endsWith(': constructor ran')) ?? '';
  assert.match(first, new RegExp(`^${base}(\\.py|\\.js)?: start`), `${name}: first line ${first}`);
  const steps = r.lines.map(stepOf).filter((s): s is number => s !== undefined);
  assert.ok(steps.length >= 100 && steps.length <= 300, `${name}: ${steps.length} steps`);
  steps.forEach((s, i) => assert.is(s, i + 1, `${name}: step lines out of order at ${i}`));
  assert.match(r.lines[r.lines.length - 1], /: done /, `${name}: last line ${r.lines[r.lines.length - 1]}`);
  const bad = r.lines.find((l) => l.startsWith('error:'));
  assert.is(bad, undefined, `${name}: reported ${bad}`);
}

test('every example is deterministic when run natively (twice, in parallel)', async () => {
  buildExamples();
  const scope = new Scope('examples');
  try {
    const jobs = ALL_EXAMPLES.map(async (name) => {
      const a = prepare(name, scope.dir(`${name}-a`));
      const b = prepare(name, scope.dir(`${name}-b`));
      const t0 = Date.now();
      const [ra, rb] = await Promise.all([runNative(a.argv, { cwd: a.dir }), runNative(b.argv, { cwd: b.dir })]);
      const secs = (Date.now() - t0) / 1000;
      checkShape(name, ra);
      checkShape(name, rb);
      const d = firstDifference(ra.lines, rb.lines);
      assert.is(d, -1, `${name}: the two runs differ at line ${d}:\n  ${ra.lines[d]}\n  ${rb.lines[d]}`);
      if (name === 'files')
        assert.ok(
          fs.readFileSync(path.join(a.dir, 'app.log')).equals(fs.readFileSync(path.join(b.dir, 'app.log'))),
          'files: the logs differ',
        );
      if (name === 'mmap') {
        assert.ok(
          fs.readFileSync(path.join(a.dir, 'shared.bin')).equals(fs.readFileSync(path.join(b.dir, 'shared.bin'))),
          'mmap: the shared files differ',
        );
        assert.ok(fs.readFileSync(path.join(a.dir, 'private.bin')).equals(mmapPattern()), 'mmap: the private file changed');
        assert.not.ok(fs.readFileSync(path.join(a.dir, 'shared.bin')).equals(mmapPattern()), 'mmap: the shared file did not change');
      }
      const expect: Partial<Record<ExampleName, string[]>> = {
        threads: ['errorcheck unlock: 0', 'robust: EOWNERDEAD', 'pthread_kill: 0 delivered 19', 'join robust owner: 0'],
        signals: ['alarm: fired 1', 'usr2 pending before unblock: 1, delivered on unblock: 1', 'dispositions: usr1 ok usr2 ok int ignored'],
        files: ['fds: same dirfd: ok cwd: ok umask: 027', 'scratch: open, deleted, complete', 'rlimit nofile: 200'],
        counter: ['counter: constructor ran'],
        mmap: ['guard: rw-p ---p r--p'],
      };
      for (const l of expect[name] ?? []) assert.ok(ra.lines.includes(l), `${name}: no line ${JSON.stringify(l)}`);
      return `${name} ${secs.toFixed(1)}s`;
    });
    await Promise.all(jobs);
  } finally {
    await scope.cleanup();
  }
});

test.run();
