// The command line: help for every command, exit statuses passed through
// (also after a restart), stdio, the default --dir, one session per dir.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { runNative } from './lib/proc.js';
import { checkpoint, ckrun, launch } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { assertResumed } from './lib/spine.js';

// ------------------------------------------------------------ help

test('ckrun --help explains the commands and options', async () => {
  const r = await ckrun(['--help']);
  assert.is(r.code, 0, r.describe());
  for (const word of ['checkpoint', 'restart', 'inspect', '--dir', '--interval', '--signal'])
    assert.ok(r.stdout.includes(word), `ckrun --help does not mention ${word}:\n${r.stdout}`);
});

test('ckrun COMMAND --help for every command', async () => {
  const cases: [string, string[]][] = [
    ['checkpoint', ['--dir']],
    ['restart', ['--dir']],
    ['inspect', ['--json']],
  ];
  for (const [cmd, words] of cases) {
    const r = await ckrun([cmd, '--help']);
    assert.is(r.code, 0, r.describe());
    for (const w of words) assert.ok(r.stdout.includes(w), `ckrun ${cmd} --help does not mention ${w}:\n${r.stdout}`);
  }
});

test('unknown options and commands: non-zero status and a message', async () => {
  for (const args of [['--no-such-option'], ['inspect'], ['restart', '--no-such-option']]) {
    const r = await ckrun(args, { timeout: 20_000 });
    assert.not.ok(r.timedOut, r.describe());
    assert.ok(r.code !== 0 && r.code !== null, `ckrun ${args.join(' ')} should fail:\n${r.describe()}`);
    assert.ok(r.stderr.trim().length > 0, `ckrun ${args.join(' ')} should say why:\n${r.describe()}`);
  }
});

// ------------------------------------------------------------ exit statuses

async function runUnder(scope: Scope, program: string[], input?: string) {
  const p = scope.launch({ dir: scope.ckptDir(`ckpt-${scope.ckptDirs.length}`), program, input });
  const exit = await p.waitExit();
  return { exit, p };
}

test("the program's exit status is ckrun's; 128+N when killed by signal N", async () => {
  const scope = new Scope('exit-status');
  try {
    const cases: [string[], number][] = [
      [['/bin/true'], 0],
      [['/bin/false'], 1],
      [['/bin/sh', '-c', 'exit 7'], 7],
      [['/bin/sh', '-c', 'kill -TERM $$'], 128 + 15],
      [['/bin/sh', '-c', 'kill -KILL $$'], 128 + 9],
      [['/bin/sh', '-c', 'kill -USR1 $$'], 128 + 10],
    ];
    const results = await Promise.all(cases.map(([argv]) => runUnder(scope, argv)));
    results.forEach(({ exit, p }, i) => assert.is(exit.code, cases[i][1], `${cases[i][0].join(' ')}:\n${p.describe()}`));
  } finally {
    await scope.cleanup();
  }
});

test("stdin, stdout and stderr are ckrun's", async () => {
  const scope = new Scope('stdio');
  try {
    const { exit, p } = await runUnder(scope, ['/bin/cat'], 'hello through ckrun\n');
    assert.is(exit.code, 0, p.describe());
    assert.is(p.stdout, 'hello through ckrun\n');
    const e = await runUnder(scope, ['/bin/sh', '-c', 'echo to-stderr >&2; echo to-stdout']);
    assert.is(e.exit.code, 0, e.p.describe());
    assert.is(e.p.stdout, 'to-stdout\n');
    assert.ok(e.p.stderr.includes('to-stderr'), e.p.describe());
  } finally {
    await scope.cleanup();
  }
});

test('a program that cannot be started: non-zero status and a message naming it', async () => {
  const scope = new Scope('no-program');
  try {
    const { exit, p } = await runUnder(scope, ['/nonexistent/program-xyz']);
    assert.ok(exit.code !== 0 && exit.code !== null, p.describe());
    assert.ok(p.stderr.includes('/nonexistent/program-xyz'), p.describe());
  } finally {
    await scope.cleanup();
  }
});

test('after a restart the exit status is passed on the same way (exit 3, SIGTERM → 143)', async () => {
  const scope = new Scope('restart-status');
  try {
    const cases: [string[], number][] = [
      [['--exit', '3'], 3],
      [['--signal', '15'], 143],
    ];
    await Promise.all(
      cases.map(async ([args, status], i) => {
        const ckpt = scope.ckptDir(`ckpt-${i}`);
        const [ref, s] = [runNative(exampleProgram('counter', args)), scope.launch({ dir: ckpt, program: exampleProgram('counter', args) })];
        await s.waitForStep(30);
        const req = s.lines.length;
        await checkpoint(ckpt);
        await scope.kill9(s);
        const r = scope.restart({ dir: ckpt });
        const exit = await r.waitExit();
        const native = await ref;
        const nativeStatus = native.code ?? 128 + (native.signal ? os.constants.signals[native.signal as NodeJS.Signals] : 0);
        assert.is(nativeStatus, status, 'native status');
        assert.is(exit.code, status, `counter ${args.join(' ')} after restart:\n${r.describe()}`);
        assertResumed({ beforeLines: s.lines, requestedAt: req, after: r, ref: native.lines, complete: true, what: `counter ${args.join(' ')}` });
        assert.is(lastLine(r.lines), lastLine(native.lines));
      }),
    );
  } finally {
    await scope.cleanup();
  }
});

// ------------------------------------------------------------ sessions and directories

test('--dir defaults to ./ckpt', async () => {
  const scope = new Scope('default-dir');
  try {
    const cwd = scope.dir('cwd');
    scope.ckptDirs.push(path.join(cwd, 'ckpt'));
    const s = scope.track(launch({ program: exampleProgram('counter'), cwd }));
    await s.waitForStep(10);
    const gen = await checkpoint(undefined, { cwd });
    assert.is(gen, path.join(fs.realpathSync(cwd), 'ckpt', '1'));
    assert.ok(fs.existsSync(path.join(cwd, 'ckpt', '1', 'manifest.cbor')));
    await scope.kill9(s);
  } finally {
    await scope.cleanup();
  }
});

test('a second session on the same --dir is refused; the first runs on', async () => {
  const scope = new Scope('one-session');
  try {
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program: exampleProgram('counter') });
    await s.waitForStep(5);
    const other = scope.launch({ dir: ckpt, program: ['/bin/sh', '-c', 'echo second-session-ran'] });
    const exit = await other.waitExit(30_000);
    assert.ok(exit.code !== 0 && exit.code !== null, `the second session should be refused:\n${other.describe()}`);
    assert.not.ok(other.stdout.includes('second-session-ran'), 'the second program must not run');
    assert.ok(other.stderr.trim().length > 0, `with a message:\n${other.describe()}`);
    // the first session still answers
    assert.is(await checkpoint(ckpt), path.join(ckpt, '1'));
    const e = await s.waitExit();
    assert.is(e.code, 0, s.describe());
  } finally {
    await scope.cleanup();
  }
});

test.run();
