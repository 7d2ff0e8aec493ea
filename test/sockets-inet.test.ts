// TCP and UDP (issue 4): examples/inet.c keeps records in flight on a
// connection inside one process, across a parent and a child, and
// datagrams queued on UDP sockets; each record carries its number, so one
// lost or duplicated fails the program. Launch, checkpoint, kill -9,
// restart, verify; again from the restarted process. An outside client
// (this test) connected at checkpoint time sees its connection gone, the
// program sees a reset, and a new client is served on the same port.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXAMPLES, EXAMPLE_BIN } from './lib/paths.js';
import { type Proc } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';

function buildInet(): string {
  fs.mkdirSync(EXAMPLE_BIN, { recursive: true });
  const src = path.join(EXAMPLES, 'inet.c');
  const bin = path.join(EXAMPLE_BIN, 'inet');
  if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(src).mtimeMs) return bin;
  const tmp = `${bin}.tmp${process.pid}`;
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', tmp, src], { stdio: ['ignore', 'pipe', 'pipe'] });
  fs.renameSync(tmp, bin);
  return bin;
}

function stepLines(p: Proc): number[] {
  return p.lines.map((l) => /^step (\d+)$/.exec(l)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1]));
}

function noErrors(p: Proc): void {
  const bad = p.lines.filter((l) => l.startsWith('ERROR'));
  if (bad.length) throw new Error(`the program reports: ${bad.join('; ')}\n${p.describe()}`);
}

/** The restarted run continues right after the checkpoint: no step twice within a run, none skipped. */
function continues(p: Proc, atCheckpoint: number): void {
  const steps = stepLines(p);
  assert.ok(steps.length > 0, `no steps after restart\n${p.describe()}`);
  assert.ok(steps[0] <= atCheckpoint + 1, `the restart skipped steps (checkpoint at ${atCheckpoint}, resumed at ${steps[0]})`);
  for (let i = 1; i < steps.length; i++) assert.is(steps[i], steps[i - 1] + 1, 'steps go on one by one');
}

function connectTo(port: number, host: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host }, () => resolve(s));
    s.once('error', reject);
  });
}

function ask(s: net.Socket, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.endsWith('\n')) {
        s.off('data', onData);
        resolve(got.trim());
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(line + '\n');
  });
}

/** Resolves when the connection ends one way or another (reset, EOF). */
function ended(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve('destroyed');
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
    s.once('close', () => resolve('closed'));
  });
}

async function scenario(mode: 'pair' | 'fork' | 'udp' | 'half', fam: '4' | '6', outside = false): Promise<void> {
  const scope = new Scope(`inet-${mode}-${fam}`);
  const bin = buildInet();
  const host = fam === '6' ? '::1' : '127.0.0.1';
  try {
    const ckpt = scope.ckptDir();
    const steps = 70;
    const p1 = scope.launch({ program: [bin, mode, String(steps), fam], dir: ckpt, label: `inet ${mode} ${fam}` });
    await p1.waitForStep(8);
    let port = 0;
    const header = p1.lines.find((l) => /^listening port \d+/.test(l));
    if (header) port = Number(/port (\d+)/.exec(header)![1]);
    let client: net.Socket | undefined;
    if (outside) {
      client = await connectTo(port, host);
      assert.is(await ask(client, 'hello'), 'echo hello', 'an outside client is served before the checkpoint');
    }
    const gen1 = await checkpoint(ckpt);
    const at1 = p1.maxStep;
    if (mode === 'pair') {
      const shown = await ckrun(['inspect', gen1]);
      assert.match(shown.stdout, /TCP and UDP sockets \(\d+\)/, shown.describe());
      assert.match(shown.stdout, /ESTABLISHED .* in session +2 KiB received/, shown.describe());
      if (outside) assert.match(shown.stdout, /outside: comes back reset/, shown.describe());
    }
    const lost = client ? ended(client) : undefined;
    await scope.kill9(p1);
    noErrors(p1);
    if (lost) await lost;

    const p2 = scope.restart({ dir: ckpt, label: `restart ${mode} ${fam}` });
    await p2.waitForStep(at1 + 12);
    noErrors(p2);
    continues(p2, at1);
    if (outside) {
      await p2.waitForLine('outside client reset');
      const again = await connectTo(port, host);
      assert.is(await ask(again, 'again'), 'echo again', 'a new outside client is served on the same port');
      again.destroy();
    }
    await checkpoint(ckpt);
    const at2 = p2.maxStep;
    await scope.kill9(p2);
    noErrors(p2);

    const p3 = scope.restart({ dir: ckpt, label: `second restart ${mode} ${fam}` });
    await p3.waitForLine('done');
    const exit = await p3.waitExit();
    noErrors(p3);
    assert.is(exit.code, 0, `the program ends well\n${p3.describe()}`);
    continues(p3, at2);
    assert.is(stepLines(p3).pop(), steps - 1);
  } finally {
    await scope.cleanup();
  }
}

test('TCP in one process (IPv4): listener, both ends of a connection, records in flight both ways; outside client reset, then served again', async () => {
  await scenario('pair', '4', true);
});

test('TCP in one process (IPv6)', async () => {
  await scenario('pair', '6');
});

test('TCP between a parent and a child (IPv4)', async () => {
  await scenario('fork', '4');
});

test('UDP (IPv4): bound and connected addresses, queued datagrams delivered in order from their sources', async () => {
  await scenario('udp', '4');
});

test('UDP (IPv6)', async () => {
  await scenario('udp', '6');
});

test('TCP: a connection its listener had not accepted waits in the queue again; a half-closed one gives its bytes, then EOF', async () => {
  await scenario('half', '4');
});

test('restart refuses, naming the port, when another program took the listening port', async () => {
  const scope = new Scope('inet-taken');
  const bin = buildInet();
  try {
    const ckpt = scope.ckptDir();
    const p1 = scope.launch({ program: [bin, 'pair', '1000', '4'], dir: ckpt });
    await p1.waitForStep(3);
    const port = Number(/port (\d+)/.exec(p1.lines.find((l) => l.startsWith('listening port'))!)![1]);
    await checkpoint(ckpt);
    await scope.kill9(p1);
    const squatter = net.createServer();
    await new Promise<void>((res, rej) => {
      squatter.once('error', rej);
      squatter.listen({ port, host: '127.0.0.1', exclusive: true }, () => res());
    });
    try {
      const r = await ckrun(['restart', '--dir', ckpt], { timeout: 30_000 });
      assert.ok(r.code !== 0, `restart must fail\n${r.describe()}`);
      assert.match(r.stderr, new RegExp(`port ${port}.*taken \\(a listening socket of user \\d+ holds it now\\)`), r.describe());
    } finally {
      squatter.close();
    }
    assert.is(scope.strays().length, 0, 'nothing is left running');
  } finally {
    await scope.cleanup();
  }
});

test.run();
