// Migration by stream (issue 14): `ckrun checkpoint --stream > FILE`,
// kill -9, `ckrun restart - < FILE` into another directory; twice, the
// second time from the restarted program. A stream cut short or damaged is
// refused before any process exists and leaves nothing behind.
import { execa } from 'execa';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { generations } from './lib/images.js';
import { lastLine } from './lib/lines.js';
import { CKRUN, CKRUN_SH, NODE, T_CKPT } from './lib/paths.js';
import { Proc, runNative } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { NOBODY } from './lib/users.js';
import { assertResumed } from './lib/spine.js';

/** `ckrun checkpoint --stream --dir DIR > FILE`; returns the stream's size. */
async function streamTo(dir: string, file: string): Promise<number> {
  const r = await execa('sh', ['-c', 'exec "$0" "$1" checkpoint --stream --dir "$2" > "$3"', NODE, CKRUN, dir, file], {
    reject: false,
    timeout: T_CKPT,
  });
  assert.is(r.exitCode, 0, `ckrun checkpoint --stream failed: ${r.stderr}`);
  return fs.statSync(file).size;
}

/** `ckrun restart - --dir DIR --stdio=inherit < FILE`, through bin/ckrun (its fast start hands `-` to node). */
function restartFrom(scope: Scope, file: string, dir: string, label: string, extra: string[] = []): Proc {
  return scope.track(new Proc('sh', ['-c', 'd=$1; f=$2; shift 2; exec "$0" restart - --dir "$d" --stdio=inherit "$@" < "$f"', CKRUN_SH, dir, file, ...extra], { label }));
}

/** A refused stream: status 1, the reason on stderr, no generation kept, nothing of the session running. */
async function assertRefused(scope: Scope, file: string, dir: string, reason: RegExp, extra: string[] = []): Promise<string> {
  const r = restartFrom(scope, file, dir, 'restart of a refused stream', extra);
  const exit = await r.waitExit();
  assert.is(exit.code, 1, r.describe());
  assert.match(r.stderr, reason, r.describe());
  assert.equal(generations(dir), [], `a refused stream left generations in ${dir}: ${fs.readdirSync(dir).join(' ')}`);
  assert.equal(fs.readdirSync(dir), [], `a refused stream left ${fs.readdirSync(dir).join(' ')} in ${dir}`);
  assert.equal(scope.strays(), [], 'a process of the refused restart runs');
  return r.stderr;
}

test('checkpoint --stream, kill -9, restart - in another directory; again from the restarted program; bad streams refused', async () => {
  const scope = new Scope('stream');
  try {
    const program = exampleProgram('counter', ['--steps', '200']);
    const refRun = runNative(program);
    const [d1, d2, d3] = [scope.ckptDir('src'), scope.ckptDir('moved'), scope.ckptDir('moved-again')];
    const s1 = scope.launch({ dir: d1, program });
    await s1.waitForStep(40);
    const req1 = s1.lines.length;
    const file1 = path.join(scope.root, 'one.stream');
    const size = await streamTo(d1, file1);
    await s1.waitForStep(s1.maxStep + 1); // it runs on after --stream
    await scope.kill9(s1);

    // cut short, and one bit flipped inside an image: refused, nothing left
    const whole = fs.readFileSync(file1);
    fs.writeFileSync(path.join(scope.root, 'cut.stream'), whole.subarray(0, Math.floor(size / 2)));
    await assertRefused(scope, path.join(scope.root, 'cut.stream'), d2, /is truncated: it ends inside \d+\.ckpt of generation 1 .*nothing was restarted/);
    const flipped = Buffer.from(whole);
    flipped[Math.floor(size / 3)]! ^= 0x10;
    fs.writeFileSync(path.join(scope.root, 'flipped.stream'), flipped);
    await assertRefused(scope, path.join(scope.root, 'flipped.stream'), d2, /is damaged: \d+\.ckpt of generation 1 does not match its checksum.*nothing was restarted/);
    // another user's stream is refused; trusted, it may not give root's credentials (the program ran as root)
    const foreign = path.join(scope.root, 'nobody.stream');
    fs.copyFileSync(file1, foreign);
    fs.chownSync(foreign, NOBODY, -1);
    await assertRefused(scope, foreign, d2, /standard input is a file owned by nobody \(uid 65534\), not by you/);
    await assertRefused(scope, foreign, d2, /is owned by nobody \(uid 65534\) but holds a process that ran as root .* ckrun refuses it even with --trust-owner/, ['--trust-owner']);

    const ref = await refRun;
    assert.is(ref.code, 0, 'the uninterrupted run failed');
    const r1 = restartFrom(scope, file1, d2, 'restart - (1)');
    await r1.waitForStep(100);
    assert.match(r1.stderr, /ckrun restart: running \(generation 1 of the stream, now .*\/moved\/1\)/, r1.describe());
    const k1 = assertResumed({ beforeLines: s1.lines, requestedAt: req1, after: r1, ref: ref.lines, complete: false, what: 'first restart -' });
    const req2 = r1.lines.length;
    const file2 = path.join(scope.root, 'two.stream');
    await streamTo(d2, file2);
    await scope.kill9(r1);

    const r2 = restartFrom(scope, file2, d3, 'restart - (2)');
    const exit = await r2.waitExit();
    assert.is(exit.code, 0, r2.describe());
    const r1Lines = ref.lines.slice(0, k1).concat(r1.lines);
    assertResumed({ beforeLines: r1Lines, requestedAt: k1 + req2, after: r2, ref: ref.lines, complete: true, what: 'second restart -' });
    assert.is(lastLine(r2.lines), lastLine(ref.lines));
  } finally {
    await scope.cleanup();
  }
});

/** `ckrun migrate --dir FROM --to 'ckrun restart - --dir TO'`: it passes the moved program's output on. */
function migrate(scope: Scope, from: string, to: string, label: string): Proc {
  const target = `exec '${NODE}' '${CKRUN}' restart - --dir '${to}'`;
  return scope.track(new Proc(NODE, [CKRUN, 'migrate', '--dir', from, '--to', target], { label }));
}

test('migrate (dirty, 32 MiB): a target that fails leaves the program running; then it moves, and moves again, its output continuous', async () => {
  const scope = new Scope('migrate');
  try {
    // long enough never to end during the test; the uninterrupted run's lines are a prefix of the same program's
    const program = exampleProgram('dirty', ['--mib', '32', '--steps', '100000']);
    const refRun = scope.track(new Proc(program[0]!, program.slice(1), { label: 'uninterrupted dirty' }));
    const [d1, d2, d3] = [scope.ckptDir('src'), scope.ckptDir('there'), scope.ckptDir('back')];
    const s1 = scope.launch({ dir: d1, program });
    await s1.waitForStep(20);

    // the target takes a little of the stream and fails: the program runs on here
    const bad = scope.track(new Proc(NODE, [CKRUN, 'migrate', '--dir', d1, '--to', 'head -c 100000 > /dev/null; exit 3'], { label: 'failed migrate' }));
    const badExit = await bad.waitExit();
    assert.is(badExit.code, 1, bad.describe());
    assert.match(bad.stderr, /exited with status 3 before it said the program runs there; the program runs on here/, bad.describe());
    await s1.waitForStep(s1.maxStep + 3);

    const m1 = migrate(scope, d1, d2, 'migrate 1');
    const e1 = await s1.waitExit();
    assert.is(e1.signal ?? e1.code, 137, `the source ckrun should end when its program moved\n${s1.describe()}\n${m1.describe()}`);
    await m1.waitFor(() => m1.lines.length > 10, 'lines of the moved program');
    assert.match(m1.stderr, /the program runs on the target and was ended here: \d+ rounds? while it ran, then .* it stood still at most \d+ ms/, m1.describe());

    const m2 = migrate(scope, d2, d3, 'migrate 2');
    const e2 = await m1.waitExit();
    assert.is(e2.code, 137, `the first target ends when the program moved on\n${m1.describe()}\n${m2.describe()}`);
    await m2.waitFor(() => m2.lines.length > 10, 'lines of the program moved again');
    await refRun.waitForStep(m2.maxStep);
    const ref = refRun.lines;
    // it goes on exactly where it stopped: no line twice, none missing
    const k1 = assertResumed({ beforeLines: s1.lines, requestedAt: s1.lines.length, after: m1, ref, complete: false, what: 'first migration' });
    const before = ref.slice(0, k1).concat(m1.lines);
    assertResumed({ beforeLines: before, requestedAt: before.length, after: m2, ref, complete: false, what: 'second migration' });
  } finally {
    await scope.cleanup();
  }
});

test.run();
