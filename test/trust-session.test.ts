// Who may talk to a session (issue 9). The session socket is an abstract
// name anyone on the machine can connect to; ckrun judges every connection
// by its peer credentials. Attacks as user nobody against a root session
// and against another ordinary user's session: `ckrun status`, `ckrun
// checkpoint`, a shim's `hello` with the program's PID (which used to make
// ckrun drop the program's own connection: the program was SIGKILLed), a
// fake member with a made-up PID (which used to make every later checkpoint
// wait 30 s) and a `restored` line. Each is refused and logged, the program
// runs on unharmed (its output is a native run's), and the next real
// checkpoint simply succeeds. Also: a shim never joins a listener of
// another user, and a process of the session that changed its user ID
// still joins.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './lib/paths.js';
import { exampleProgram } from './lib/examples.js';
import { Proc, runNative, type NativeRun } from './lib/proc.js';
import { descendants } from './lib/processes.js';
import { checkpoint, ckrun, sessionSocketName } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations, readManifest } from './lib/images.js';
import { until } from './lib/tree.js';
import { readLateFiles } from '../src/files-late.js';
import { asUser, asUserArgv, NOBODY, NOGROUP, sharedCkrun, type UserRun } from './lib/users.js';

/** An ordinary user other than nobody, for a session that is neither root's nor the attacker's. */
const OTHER = 12345;

function requireRoot(): void {
  if (process.geteuid?.() !== 0) throw new Error('this test acts as users nobody and 12345, which needs root: run npm test as root');
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The program ckrun (pid) started: its first descendant named `name`. */
function programOf(ckrunPid: number, name: string): number {
  const p = descendants(ckrunPid).find((d) => comm(d) === name);
  if (p === undefined) throw new Error(`no process ${name} below ckrun ${ckrunPid}`);
  return p;
}

/**
 * A python3 script (run as the attacker) that speaks the session protocol
 * on raw connections to the abstract name: each line on a connection of
 * its own, prints what came back (or that nothing did) and whether ckrun
 * closed the connection.
 */
function rawAttack(socketName: string, lines: string[]): string {
  const py = [
    'import json, socket',
    `name = "\\0" + ${JSON.stringify(socketName)}`,
    `for line in ${JSON.stringify(lines)}:`,
    '    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
    '    s.connect(name)',
    '    s.sendall((line + "\\n").encode())',
    '    s.settimeout(5)',
    '    got = b""',
    '    closed = False',
    '    try:',
    '        while True:',
    '            b = s.recv(4096)',
    '            if not b:',
    '                closed = True',
    '                break',
    '            got += b',
    '    except socket.timeout:',
    '        pass',
    '    except ConnectionResetError:',
    '        closed = True',
    '    print("SENT %s GOT %s CLOSED %s" % (json.dumps(line), json.dumps(got.decode(errors="replace")), closed), flush=True)',
  ].join('\n');
  return `python3 -c '${py.replace(/'/g, `'\\''`)}'`;
}

/** A python3 script that opens n connections to the abstract name, each saying hello as a made-up process. */
function rawFlood(socketName: string, n: number): string {
  const py = [
    'import socket',
    `for i in range(${n}):`,
    '    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
    `    s.connect("\\0" + ${JSON.stringify(socketName)})`,
    '    s.sendall(b"hello 4242 1\\n")',
    '    s.close()',
  ].join('\n');
  return `python3 -c '${py}'`;
}

function assertOneLine(r: UserRun, what: string): void {
  const lines = r.stderr.trimEnd().split('\n');
  assert.is(lines.length, 1, `${what}: one line on stderr, no stack trace:\n${r.stderr}`);
  assert.not.match(r.stderr, /^\s+at /m, `${what}: no stack trace:\n${r.stderr}`);
}

/** Every raw attack line got `refused ...` and the connection was closed. */
function assertRawRefused(out: string, lines: string[], what: string): void {
  for (const line of lines) {
    const row = out.split('\n').find((l) => l.startsWith(`SENT ${JSON.stringify(line)} `));
    assert.ok(row, `${what}: no result for '${line}':\n${out}`);
    assert.match(row!, /GOT "refused [^"]+\\n" CLOSED True$/, `${what}: '${line}' should be refused and its connection closed:\n${row}`);
  }
}

/** The program ran on exactly as natively: every line, in order, and its exit. */
function assertNative(p: Proc, ref: NativeRun, what: string): void {
  assert.is(p.exit?.code, 0, `${what}: the program should end normally:\n${p.describe()}`);
  const program = p.lines.filter((l) => !l.startsWith('ckrun'));
  assert.equal(program, ref.lines, `${what}: the program's output should be a native run's:\n${p.describe()}`);
}

test('user nobody against a root session: status, checkpoint, hello, a fake member, restored: all refused; the program runs on; checkpoints keep working', async () => {
  requireRoot();
  const shared = sharedCkrun();
  const scope = new Scope('trust-root');
  try {
    fs.chmodSync(scope.root, 0o755);
    const ckpt = scope.ckptDir();
    const program = exampleProgram('counter', ['--steps', '250']);
    const refRun = runNative(program);
    const s = scope.launch({ dir: ckpt, program });
    await s.waitForStep(5);
    const pid = programOf(s.pid, 'counter');
    const name = sessionSocketName(ckpt);

    const status = await asUser(NOBODY, NOGROUP, `node ${shared.ckrunJs} status --dir ${ckpt}`);
    assert.ok(status.code !== 0, `nobody's status should fail:\n${status.stdout}${status.stderr}`);
    assert.match(status.stderr, /refused/, `nobody's status should be refused:\n${status.stderr}`);
    assert.not.match(status.stdout, /counter/, `nobody learns nothing about the program:\n${status.stdout}`);
    assertOneLine(status, 'status as nobody');

    const ck = await asUser(NOBODY, NOGROUP, `node ${shared.ckrunJs} checkpoint --dir ${ckpt}`);
    assert.is(ck.code, 5, `nobody's checkpoint: exit status 5 (not yours):\n${ck.stderr}`);
    assert.match(ck.stderr, /refused/, `nobody's checkpoint should be refused:\n${ck.stderr}`);
    assertOneLine(ck, 'checkpoint as nobody');
    assert.equal(generations(ckpt), [], 'no checkpoint was taken for nobody');

    const passwd = fs.statSync('/etc/passwd');
    const lines = [`hello ${pid} 0`, 'hello 99999 1', `restored ${pid}`, 'checkpoint', 'status', `wrote w ${passwd.dev} ${passwd.ino} /etc/passwd`, `keep w ${passwd.dev} ${passwd.ino} /etc/passwd`, `made ${passwd.dev} ${passwd.ino} /etc/passwd`, `madeq ${passwd.dev} ${passwd.ino} /etc/passwd`, 'sendq 3'];
    const raw = await asUser(NOBODY, NOGROUP, rawAttack(name, lines));
    assertRawRefused(raw.stdout, lines, 'raw lines as nobody');
    assert.not.match(raw.stdout, /counter|"argv"/, `nobody learns nothing about the program:\n${raw.stdout}`);
    // a flood of connections does not flood ckrun's log
    const FLOOD = 200;
    const flood = await asUser(NOBODY, NOGROUP, rawFlood(name, FLOOD));
    assert.is(flood.code, 0, `the flood ran:\n${flood.stderr}`);

    // the program still runs on its own connection, and a checkpoint simply succeeds
    await s.waitForStep(s.maxStep + 3);
    const gen = await checkpoint(ckpt);
    assert.equal(
      readManifest(gen).processes?.map((p) => p.pid),
      [pid],
      'the checkpoint holds the program, and no fake member',
    );
    assert.match(s.stderr, /refused a connection from PID \d+ \(user 65534/, `ckrun logs the refusals (without -v):\n${s.stderr}`);
    await s.waitExit();
    assertNative(s, await refRun, 'root session attacked by nobody');
    // every refused connection is accounted for, in at most ten lines and a sum
    const logged = s.stderr.split('\n').filter((l) => /^ckrun: (refused|closed) a connection/.test(l)).length;
    const more = /^ckrun: (\d+) more connections were refused or closed/m.exec(s.stderr);
    assert.ok(logged <= 10 && more, `at most ten lines, then a sum:\n${s.stderr.slice(0, 3000)}`);
    assert.is(logged + Number(more![1]), 2 + lines.length + FLOOD, `every refused connection is counted:\n${s.stderr.slice(-2000)}`);
  } finally {
    await scope.cleanup();
  }
});

test("a process of a root session that dropped to user nobody says it wrote root's file, or asks to keep one after the checkpoint: the file is not saved (a restart would not put it back), one of nobody's own is", async () => {
  requireRoot();
  const scope = new Scope('trust-wrote');
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    fs.chmodSync(work, 0o755);
    const rootFile = path.join(work, 'root.txt');
    const ownFile = path.join(work, 'nobody.txt');
    fs.writeFileSync(rootFile, 'root\n', { mode: 0o644 });
    fs.writeFileSync(ownFile, 'nobody\n', { mode: 0o644 });
    fs.chownSync(ownFile, NOBODY, NOGROUP);
    // the same, asked to be kept after the checkpoint (the shim's `keep`, before a first open for writing)
    const rootLate = path.join(work, 'root-late.txt');
    const ownLate = path.join(work, 'nobody-late.txt');
    fs.writeFileSync(rootLate, 'root\n', { mode: 0o644 });
    fs.writeFileSync(ownLate, 'nobody\n', { mode: 0o644 });
    fs.chownSync(ownLate, NOBODY, NOGROUP);
    const ckpt = scope.ckptDir();
    // the member forges the shim's line on connections of its own, after it dropped its privileges
    const py = [
      'import os, socket, sys, time',
      `files = [${JSON.stringify(rootFile)}, ${JSON.stringify(ownFile)}]`,
      'stats = [os.stat(f) for f in files]',
      'os.setgroups([]); os.setgid(65534); os.setuid(65534)',
      'for f, st in zip(files, stats):',
      '    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
      '    s.connect("\\0" + os.environ["CKRUN_SOCK"])',
      '    s.sendall(("wrote w %d %d %s\\n" % (st.st_dev, st.st_ino, f)).encode())',
      '    s.close()',
      `late = [${JSON.stringify(rootLate)}, ${JSON.stringify(ownLate)}]`,
      'for i in range(1, 400):',
      '    if os.environ.get("GO") is None and os.path.exists(late[0] + ".go"):',
      '        os.environ["GO"] = "1"',
      '        for f in late:',
      '            st = os.stat(f)',
      '            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
      '            s.connect("\\0" + os.environ["CKRUN_SOCK"])',
      '            s.sendall(("keep w %d %d %s\\n" % (st.st_dev, st.st_ino, f)).encode())',
      '            print("answer " + s.recv(64).decode().strip(), flush=True)',
      '            s.close()',
      '    print("step %d" % i, flush=True)',
      '    time.sleep(0.05)',
    ].join('\n');
    const s = scope.launch({ dir: ckpt, program: ['/usr/bin/python3', '-c', py], extra: ['-v'] });
    await s.waitForStep(10);
    const gen = await checkpoint(ckpt);
    const saved = ((readManifest(gen).files as { saved?: { path: string }[] } | undefined)?.saved ?? []).map((f) => f.path);
    assert.ok(saved.includes(ownFile), `the file nobody could write is saved, as the program wrote it (${saved.join(', ')})\n${s.stderr}`);
    assert.not.ok(saved.includes(rootFile), `root's file, which nobody could not write, is not saved (${saved.join(', ')})`);
    assert.match(s.stderr, /said it wrote .*root\.txt, which it could not write: not saved/, `ckrun says so with -v:\n${s.stderr}`);
    // after the checkpoint: a keep of each (it is answered either way: the shim waits for it)
    fs.writeFileSync(`${rootLate}.go`, '');
    await until(s, () => s.lines.filter((l) => l === 'answer kept').length === 2, 'both keeps answered', 20000);
    const late = readLateFiles(gen).map((f) => f.path);
    assert.equal(late, [ownLate], `only nobody's own file is kept after the checkpoint (${late.join(', ')})\n${s.stderr}`);
    assert.match(s.stderr, /asked to keep .*root-late\.txt, which it could not write: not kept/, `ckrun says so with -v:\n${s.stderr}`);
  } finally {
    await scope.cleanup();
  }
});

test("user nobody against another user's session: refused there too, and told whose socket it is", async () => {
  requireRoot();
  const shared = sharedCkrun();
  const scope = new Scope('trust-user');
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    fs.chownSync(work, OTHER, OTHER);
    const ckpt = path.join(work, 'ck');
    scope.ckptDirs.push(ckpt);
    const args = ['--steps', '250'];
    const refRun = runNative([path.join(shared.examples, 'counter'), ...args]);
    const [cmd, ...cmdArgs] = asUserArgv(
      OTHER,
      OTHER,
      `cd ${work} && exec node ${shared.ckrunJs} --dir ${ckpt} -- ${path.join(shared.examples, 'counter')} ${args.join(' ')}`,
    );
    const s = scope.track(new Proc(cmd!, cmdArgs, { label: `ckrun counter as user ${OTHER}` }));
    await s.waitForStep(5);
    const pid = programOf(s.pid, 'counter');
    const name = sessionSocketName(ckpt);

    for (const command of ['status', 'checkpoint']) {
      const r = await asUser(NOBODY, NOGROUP, `node ${shared.ckrunJs} ${command} --dir ${ckpt}`);
      assert.ok(r.code !== 0, `nobody's ${command} should fail:\n${r.stdout}${r.stderr}`);
      if (command === 'checkpoint') assert.is(r.code, 5, `nobody's checkpoint: exit status 5 (not yours):\n${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(`the session socket of ${ckpt} \\(@${name}\\) is held by user ${OTHER} \\(PID \\d+\\), not by you or root`),
        `nobody's ${command} names the socket's holder:\n${r.stderr}`,
      );
      assertOneLine(r, `${command} as nobody`);
    }
    const lines = [`hello ${pid} 0`, 'hello 99999 1', `restored ${pid}`, 'checkpoint', 'status'];
    const raw = await asUser(NOBODY, NOGROUP, rawAttack(name, lines));
    assertRawRefused(raw.stdout, lines, `raw lines as nobody against user ${OTHER}`);
    assert.equal(generations(ckpt), [], 'no checkpoint was taken for nobody');

    await s.waitForStep(s.maxStep + 3);
    const own = await asUser(OTHER, OTHER, `node ${shared.ckrunJs} checkpoint --dir ${ckpt}`);
    assert.is(own.code, 0, `the session's own user checkpoints it:\n${own.stdout}${own.stderr}`);
    assert.equal(generations(ckpt), [1], `the session's own checkpoint is there:\n${own.stdout}`);
    assert.equal(readManifest(path.join(ckpt, '1')).processes?.map((p) => p.pid), [pid], 'no fake member in it');
    assert.match(s.stderr, /refused a connection from PID \d+ \(user 65534/, `ckrun logs the refusals:\n${s.stderr}`);
    await s.waitExit();
    assertNative(s, await refRun, `user ${OTHER}'s session attacked by nobody`);
  } finally {
    await scope.cleanup();
  }
});

test("a shim does not join another user's listener, and ckrun does not talk to it", async () => {
  requireRoot();
  const shared = sharedCkrun();
  const scope = new Scope('trust-squat');
  try {
    fs.chmodSync(scope.root, 0o755);
    const ckpt = scope.ckptDir();
    const name = sessionSocketName(ckpt);
    // nobody binds the session name of root's directory first, and listens
    const own = scope.dir('nobody');
    fs.chownSync(own, NOBODY, NOGROUP);
    const ready = path.join(own, 'listening');
    const got = path.join(own, 'got');
    const py = [
      'import socket, os',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
      `s.bind("\\0" + ${JSON.stringify(name)})`,
      's.listen(16)',
      `open(${JSON.stringify(ready)}, "w").close()`,
      'while True:',
      '    c, _ = s.accept()',
      '    c.settimeout(3)',
      '    try:',
      '        data = c.recv(4096)',
      // it answers like a coordinator would, to get the program's memory
      '        c.sendall(b"stop /tmp/stolen.ckpt\\n")',
      '    except Exception as e:',
      '        data = repr(e).encode()',
      '    c.close()',
      `    with open(${JSON.stringify(got)}, "a") as f: f.write(repr(data) + "\\n")`,
    ].join('\n');
    const [cmd, ...cmdArgs] = asUserArgv(NOBODY, NOGROUP, `exec python3 -c '${py.replace(/'/g, `'\\''`)}'`);
    const squatter = scope.track(new Proc(cmd!, cmdArgs, { label: 'squatter as nobody' }));
    for (let i = 0; i < 200 && !fs.existsSync(ready); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(fs.existsSync(ready), `nobody's listener should be up:\n${squatter.describe()}`);

    // ckrun's clients and launch do not talk to it
    const st = await ckrun(['status', '--dir', ckpt]);
    assert.match(st.stderr, new RegExp(`is held by user ${NOBODY} \\(PID \\d+\\), not by you or root`), st.describe());
    const ck = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is(ck.code, 5, `root's checkpoint of a directory whose socket nobody holds: exit status 5:\n${ck.describe()}`);
    const launched = await ckrun(['--dir', ckpt, '--', '/bin/true']);
    assert.ok(launched.code !== 0, `ckrun must not start a session there:\n${launched.describe()}`);
    assert.match(launched.stderr, new RegExp(`held by user ${NOBODY}.*choose another --dir`), launched.describe());

    // a program whose shim was pointed at it runs on without a coordinator
    const program = exampleProgram('counter', ['--steps', '40']);
    const ref = await runNative(program);
    const shim = path.join(ROOT, 'build', 'Release', 'libckrun.so');
    const run = await runNative(['/usr/bin/env', `LD_PRELOAD=${shim}`, `CKRUN_SOCK=${name}`, ...program]);
    assert.is(run.code, 0, run.stderr);
    assert.equal(run.lines, ref.lines, 'the program runs as natively');
    await new Promise((r) => setTimeout(r, 500));
    const heard = fs.existsSync(got) ? fs.readFileSync(got, 'utf8') : '(no connection)';
    assert.not.match(heard, /hello/, `the shim must not say hello to another user's listener:\n${heard}`);
    assert.not.ok(fs.existsSync('/tmp/stolen.ckpt'), 'no image was written where the listener said');
  } finally {
    await scope.cleanup();
    fs.rmSync('/tmp/stolen.ckpt', { force: true });
    fs.rmSync('/tmp/stolen.ckpt.tmp', { force: true });
  }
});

test("a process of the same user outside the session, with the session's environment, is refused and runs on as if there were no ckrun", async () => {
  const scope = new Scope('trust-outsider');
  try {
    const ckpt = scope.ckptDir();
    const program = exampleProgram('counter', ['--steps', '250']);
    const refRun = runNative(program);
    const s = scope.launch({ dir: ckpt, program });
    await s.waitForStep(5);
    const pid = programOf(s.pid, 'counter');
    // an environment that leaked out of the session: same user (root), not below ckrun
    const outside = exampleProgram('counter', ['--steps', '60']);
    const ref = await runNative(outside);
    const shim = path.join(ROOT, 'build', 'Release', 'libckrun.so');
    const run = await runNative(['/usr/bin/env', `LD_PRELOAD=${shim}`, `CKRUN_SOCK=${sessionSocketName(ckpt)}`, ...outside]);
    assert.is(run.code, 0, `the outsider must run on (not end as if ckrun had died):\n${run.stdout}\n${run.stderr}`);
    assert.equal(run.lines, ref.lines, 'the outsider runs as natively');
    assert.match(
      s.stderr,
      /refused a connection from PID \d+ \(user 0, [^)]*\): PID \d+ is not a process of this session \(it is not below ckrun\) \(it sent 'hello \d+ \d+'\)/,
      `ckrun refuses the outsider and says why:\n${s.describe()}`,
    );
    const gen = await checkpoint(ckpt);
    assert.equal(readManifest(gen).processes?.map((p) => p.pid), [pid], 'the checkpoint holds the session, not the outsider');
    await s.waitExit();
    assertNative(s, await refRun, 'the session');
  } finally {
    await scope.cleanup();
  }
});

for (const exec of [true, false])
  test(`a worker that dropped root for nobody${exec ? ' and exec\'d' : ' (fork only, as nginx does)'} joins, is checkpointed, and comes back as nobody: kill -9, restart, twice`, async () => {
    requireRoot();
    const scope = new Scope('trust-setuid');
    try {
      const ckpt = scope.ckptDir();
      const program = [path.join(ROOT, 'examples', 'bin', 'setuid-child'), '--steps', '250', ...(exec ? ['--exec'] : [])];
      buildSetuidChild(program[0]!);
      let run: Proc = scope.launch({ dir: ckpt, program, extra: ['-v'] });
      for (let round = 0; round < 3; round++) {
        const from = run.lines.filter((l) => l.startsWith('child step')).length;
        await run.waitFor(() => run.lines.filter((l) => l.startsWith('child step')).length >= from + 5, 'five more steps of the worker');
        if (round === 2) break;
        const parent = programOf(run.pid, 'setuid-child');
        const child = descendants(parent).find((d) => fs.statSync(`/proc/${d}`).uid === NOBODY);
        assert.ok(child, `the worker running as nobody should be there:\n${run.describe()}`);
        const r = await ckrun(['checkpoint', '--dir', ckpt]);
        assert.is(r.code, 0, `the checkpoint of the worker and its root parent:\n${r.describe()}\n${run.describe()}`);
        assert.not.match(run.stderr, /refused/, `nothing of the session may be refused:\n${run.describe()}`);
        const gen = generations(ckpt).pop();
        const pids = readManifest(path.join(ckpt, String(gen))).processes?.map((p) => p.pid).sort((x, y) => x - y);
        assert.is(pids?.length, 2, `both processes are in the checkpoint:\n${run.describe()}`);
        await scope.kill9(run);
        run = scope.restart({ dir: ckpt, label: `restart ${round + 1}` });
      }
      const exit = await run.waitExit();
      assert.is(exit.code, 0, run.describe());
      assert.ok(run.lines.some((l) => /^child step \d+ uid=65534 /.test(l)), `the restarted worker runs as nobody:\n${run.describe()}`);
      assert.ok(run.lines.some((l) => /^child step 250 uid=65534 /.test(l)), `the worker got to its end as nobody:\n${run.describe()}`);
      assert.is(run.lines[run.lines.length - 1], 'setuid-child: done child=0', run.describe());
    } finally {
      await scope.cleanup();
    }
  });

/** examples/setuid-child.c is not among test/lib/examples.ts's C_EXAMPLES (it needs root): built here. */
function buildSetuidChild(bin: string): void {
  const src = path.join(ROOT, 'examples', 'setuid-child.c');
  if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(src).mtimeMs) return;
  fs.mkdirSync(path.dirname(bin), { recursive: true });
  const tmp = `${bin}.tmp${process.pid}`;
  try {
    execFileSync('gcc', ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`building setuid-child failed:\n${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
  }
  fs.renameSync(tmp, bin);
}

test.run();
