// Unix domain sockets (issue 4): bytes in flight both ways, message
// boundaries, names, listeners with connections not yet accepted, a peer
// outside the session; in one process, between two processes, and under a
// Python asyncio server with its client. Each: launch, checkpoint, kill -9,
// restart, verify; checkpoint the restarted run, kill, restart, verify.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXAMPLES, EXAMPLE_BIN } from './lib/paths.js';
import { python3 } from './lib/examples.js';
import { Proc } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations } from './lib/images.js';
import { kill9Session } from './lib/tree.js';

/** Compiles examples/NAME.c into examples/bin (as the other examples are built), unless up to date. */
function buildExample(name: string): string {
  fs.mkdirSync(EXAMPLE_BIN, { recursive: true });
  const src = path.join(EXAMPLES, `${name}.c`);
  const bin = path.join(EXAMPLE_BIN, name);
  const newest = Math.max(fs.statSync(path.join(EXAMPLES, 'common.h')).mtimeMs, fs.statSync(src).mtimeMs);
  if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= newest) return bin;
  const tmp = `${bin}.tmp${process.pid}`;
  try {
    execFileSync('gcc', ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`building ${name} failed:\n${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
  }
  fs.renameSync(tmp, bin);
  return bin;
}

interface Rounds {
  /** the line the program prints when round R is armed (its state is what a checkpoint must keep) */
  armed(r: number): string | RegExp;
  /** lets round R go on after the restart */
  go(r: number): void;
  /** checks the lines of the run that finished round R */
  verified(r: number, p: Proc): void;
}

/** launch → armed 1 → checkpoint → kill -9 → restart → go 1 → armed 2 → checkpoint → kill -9 → restart → go 2 → exit 0. */
async function twoRounds(scope: Scope, name: string, program: string[], cwd: string, o: Rounds, onGen?: (gen: string) => Promise<void>): Promise<Proc[]> {
  const ckpt = scope.ckptDir('ckpt');
  const elsewhere = scope.dir('elsewhere');
  const runs: Proc[] = [];
  let p = scope.launch({ dir: ckpt, program, cwd, label: `ckrun ${name}` });
  runs.push(p);
  for (const r of [1, 2]) {
    await p.waitForLine(o.armed(r));
    const gen = await checkpoint(ckpt).catch((e: Error) => {
      throw new Error(`${name}: checkpoint ${r} failed: ${e.message}\n${p.describe()}`);
    });
    await onGen?.(gen);
    await kill9Session(p, ckpt, `${name}, run ${r}`);
    assert.equal(generations(ckpt).length, r, `${name}: generation ${r} is complete`);
    p = scope.restart({ dir: ckpt, cwd: elsewhere, label: `restart ${r} of ${name}` });
    runs.push(p);
    o.go(r);
    if (r === 1) {
      await p.waitForLine(o.armed(2)).catch((e: Error) => {
        throw new Error(`${name}: the first restart did not reach round 2: ${e.message}\n${p.describe()}`);
      });
      o.verified(1, p);
    }
  }
  const exit = await p.waitExit();
  if (exit.code !== 0) throw new Error(`${name}: the second restart should end with status 0\n${p.describe()}`);
  o.verified(2, p);
  return runs;
}

function noFailure(p: Proc, what: string): void {
  const bad = p.lines.filter((l) => /^(FAIL|error)/.test(l));
  assert.equal(bad, [], `${what}: ${p.describe()}`);
}

test('one process: socketpair, named and abstract stream, datagrams, seqpacket, a pending connection and an outside peer', async () => {
  const scope = new Scope('sockets-unix');
  const outside: net.Socket[] = [];
  let server: net.Server | undefined;
  try {
    const bin = buildExample('unixsock');
    const work = scope.dir('work');
    const outsidePath = path.join(work, 'outside.sock');
    server = net.createServer((c) => {
      outside.push(c);
      c.on('error', () => {});
      c.write('outside-ok');
    });
    await new Promise<void>((res) => server!.listen(outsidePath, res));
    await twoRounds(
      scope,
      'unixsock',
      [bin, work, outsidePath],
      work,
      {
        armed: (r) => `armed ${r}`,
        go: (r) => fs.writeFileSync(path.join(work, `go${r}`), ''),
        verified(r, p) {
          noFailure(p, `round ${r}`);
          assert.ok(p.lines.includes(`verified ${r}`), `round ${r} verified: ${p.describe()}`);
        },
      },
      async (gen) => {
        const r = await ckrun(['inspect', gen]);
        assert.is(r.code, 0, r.describe());
        assert.match(r.stdout, /unix stream/, `inspect lists the Unix sockets:\n${r.stdout}`);
        assert.match(r.stdout, /outside the session/, `inspect marks the connection to the outside server:\n${r.stdout}`);
        assert.match(r.stdout, /listening/, r.stdout);
      },
    );
  } finally {
    for (const c of outside) c.destroy();
    server?.close();
    await scope.cleanup();
  }
});

/** The highest "got N" a run printed. */
function gotSoFar(p: Proc): number {
  let n = 0;
  for (const l of p.lines) {
    const m = /^got (\d+)$/.exec(l);
    if (m) n = Math.max(n, Number(m[1]));
  }
  return n;
}

/** Progress lines over the three runs: each restart continues where its checkpoint was, without a gap or a repeat past it. */
function assertContinues(before: Proc, after: Proc, what: string): void {
  const last = gotSoFar(before);
  const first = after.lines.map((l) => /^got (\d+)$/.exec(l)).find((m) => m);
  if (first && Number(first[1]) > last + 100) throw new Error(`${what}: the restarted run skipped from got ${last} to ${first[1]}`);
}

interface Exchange {
  name: string;
  program: string[];
  cwd: string;
  count: number;
  /** processes every generation holds */
  processes: number;
  /** checks a generation's inspection (the first one) */
  inspect?(text: string): void;
}

/** launch → got ≥300 → checkpoint → kill -9 → restart → 200 more → checkpoint → kill -9 → restart → "done COUNT", no FAIL. */
async function numberedExchange(scope: Scope, o: Exchange): Promise<void> {
  const ckpt = scope.ckptDir('ckpt');
  const elsewhere = scope.dir('elsewhere');
  let p = scope.launch({ dir: ckpt, program: o.program, cwd: o.cwd, label: `ckrun ${o.name}` });
  for (const r of [1, 2]) {
    const from = r === 1 ? 300 : gotSoFar(p) + 200;
    await p.waitFor(() => gotSoFar(p) >= from, `got ${from} (run ${r})`);
    const gen = await checkpoint(ckpt).catch((e: Error) => {
      throw new Error(`${o.name}: checkpoint ${r} failed: ${e.message}\n${p.describe()}`);
    });
    const images = fs.readdirSync(gen).filter((f) => /^\d+\.ckpt$/.test(f));
    assert.is(images.length, o.processes, `${gen} holds ${o.processes} processes: ${images.join(', ')}`);
    if (r === 1 && o.inspect) {
      const ins = await ckrun(['inspect', gen]);
      assert.is(ins.code, 0, ins.describe());
      o.inspect(ins.stdout);
    }
    await kill9Session(p, ckpt, `${o.name}, run ${r}`);
    const next = scope.restart({ dir: ckpt, cwd: elsewhere, label: `restart ${r} of ${o.name}` });
    await next.waitFor(() => gotSoFar(next) > 0 || !next.running, `progress after restart ${r}`).catch(() => {});
    assertContinues(p, next, `${o.name}, restart ${r}`);
    p = next;
  }
  const exit = await p.waitExit();
  // (the killed runs may print FAIL: kill -9 ends one process before the other)
  noFailure(p, `${o.name}, second restart`);
  assert.is(exit.code, 0, p.describe());
  assert.ok(p.lines.includes(`done ${o.count}`), p.describe());
}

test('two processes: parent and child exchange numbered messages over socketpairs across checkpoints', async () => {
  const scope = new Scope('sockets-unix-pair');
  try {
    await numberedExchange(scope, {
      name: 'unixpair',
      program: [buildExample('unixpair'), '4000'],
      cwd: scope.dir('work'),
      count: 4000,
      processes: 2,
      inspect: (t) => assert.match(t, /unix seqpacket, connected, peer process \d+ fd \d+/, `inspect finds the peer in the other process:\n${t}`),
    });
  } finally {
    await scope.cleanup();
  }
});

test('python asyncio echo server (start_unix_server) and its client process: numbered messages across checkpoints', async () => {
  const scope = new Scope('sockets-unix-asyncio');
  try {
    const work = scope.dir('work');
    await numberedExchange(scope, {
      name: 'asyncio unix',
      program: [python3(), path.join(EXAMPLES, 'echo_asyncio.py'), 'unix', work, '3000'],
      cwd: work,
      count: 3000,
      processes: 2,
      inspect: (t) => assert.match(t, /listening, name \S*echo\.sock/, `inspect shows the server's listener:\n${t}`),
    });
  } finally {
    await scope.cleanup();
  }
});

// The same over TCP.
test('python asyncio echo server over TCP on 127.0.0.1 (a free port) and its client process', async () => {
  const scope = new Scope('sockets-unix-asyncio-tcp');
  try {
    const work = scope.dir('work');
    await numberedExchange(scope, {
      name: 'asyncio tcp',
      program: [python3(), path.join(EXAMPLES, 'echo_asyncio.py'), 'tcp', work, '3000'],
      cwd: work,
      count: 3000,
      processes: 2,
    });
  } finally {
    await scope.cleanup();
  }
});

// Bytes a client sent on a connection the program has not accepted wait
// where only accept() reaches them: the checkpoint refuses, names the
// reason, and the program goes on with its queues untouched.
const PENDING_PY = `
import os, socket, sys, time
d = sys.argv[1]
l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
l.bind(d + "/l.sock"); l.listen(4)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(d + "/l.sock"); c.sendall(b"early bytes")
print("ready", flush=True)
while not os.path.exists(d + "/go"): time.sleep(0.02)
s, _ = l.accept()
print("read", s.recv(100).decode(), flush=True)
`;

test('a connection not yet accepted with bytes in it: the checkpoint fails clearly and changes nothing', async () => {
  const scope = new Scope('sockets-unix-pending');
  try {
    const work = scope.dir('work');
    const ckpt = scope.ckptDir('ckpt');
    const p = scope.launch({ dir: ckpt, program: [python3(), '-c', PENDING_PY, work], cwd: work, label: 'ckrun pending' });
    await p.waitForLine('ready');
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is.not(r.code, 0, r.describe());
    assert.match(r.stderr + r.stdout, /not accepted yet/, r.describe());
    assert.equal(generations(ckpt), [], 'no generation was written');
    fs.writeFileSync(path.join(work, 'go'), '');
    const exit = await p.waitExit();
    assert.is(exit.code, 0, p.describe());
    assert.ok(p.lines.includes('read early bytes'), p.describe());
  } finally {
    await scope.cleanup();
  }
});

// The same bytes from a client outside the session: that connection is
// lost at restart like every connection to the outside (its bytes with
// it), so the checkpoint passes; the program accepts the next client.
const PENDING_OUTSIDE_PY = `
import os, socket, sys, time
d = sys.argv[1]
l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
l.bind(d + "/l.sock"); l.listen(4)
for i in (1, 2):
    print("ready", i, flush=True)
    while not os.path.exists(d + "/go%d" % i): time.sleep(0.02)
    s, _ = l.accept()
    print("read", s.recv(100).decode(), flush=True)
`;

function sendFrom(sockPath: string, bytes: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sockPath, () => c.write(bytes, () => resolve(c)));
    c.once('error', reject);
  });
}

/** sendFrom once the restarted program listens again (the restart makes the socket first). */
async function sendOnceListening(sockPath: string, bytes: string, p: Proc): Promise<net.Socket> {
  const end = Date.now() + 30_000;
  for (;;) {
    try {
      return await sendFrom(sockPath, bytes);
    } catch (e) {
      if (!p.running || Date.now() > end) throw new Error(`cannot connect to ${sockPath}: ${(e as Error).message}\n${p.describe()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

test('a connection not yet accepted with bytes from a client outside the session: the checkpoint passes, the connection is lost at restart; twice', async () => {
  const scope = new Scope('sockets-unix-pending-outside');
  const clients: net.Socket[] = [];
  try {
    const work = scope.dir('work');
    const ckpt = scope.ckptDir('ckpt');
    const sock = path.join(work, 'l.sock');
    let p: Proc = scope.launch({ dir: ckpt, program: [python3(), '-c', PENDING_OUTSIDE_PY, work], cwd: work, label: 'ckrun pending outside' });
    for (const round of [1, 2]) {
      await p.waitForLine(`ready ${round}`);
      const early = await sendFrom(sock, `early ${round}`);
      early.on('error', () => undefined); // reset by the kill
      clients.push(early);
      await checkpoint(ckpt);
      await kill9Session(p, ckpt, `round ${round}`);
      p = scope.restart({ dir: ckpt, extra: ['--stdio=inherit'], label: `restart ${round}` });
      clients.push(await sendOnceListening(sock, `late ${round}`, p));
      fs.writeFileSync(path.join(work, `go${round}`), '');
      await p.waitForLine(/^read /);
      assert.ok(p.lines.includes(`read late ${round}`), `restart ${round}: the program accepts the next client:\n${p.describe()}`);
    }
    assert.is((await p.waitExit()).code, 0, p.describe());
  } finally {
    for (const c of clients) c.destroy();
    await scope.cleanup();
  }
});

test.run();
