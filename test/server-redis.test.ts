// redis-server (Debian's package) under ckrun: 100,000 keys loaded, then
// checkpointed under redis-benchmark load with a client of this test
// connected. After restart every key written before the checkpoint is
// there with its value (DBSIZE, a sample, a checksum of a known subset),
// the server accepts new clients on the same port, and the client that was
// connected has lost its connection and connects again; twice.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Proc, sleep } from './lib/proc.js';
import { checkpoint } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { freePort } from './lib/net.js';

const KEYS = 100_000;
const value = (i: number) => `v:${i}:${(i * 7919) % 100003}`;

function cli(port: number, args: string[], input?: string): string {
  return execFileSync('redis-cli', ['-p', String(port), ...args], {
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 60_000,
    maxBuffer: 64 << 20,
  }).trim();
}

async function waitPing(port: number, p: Proc): Promise<number> {
  const start = Date.now();
  for (;;) {
    try {
      if (cli(port, ['ping']) === 'PONG') return Date.now() - start;
    } catch {
      /* not yet */
    }
    if (!p.running) throw new Error(`redis ended before it answered\n${p.describe()}`);
    if (Date.now() - start > 30_000) throw new Error(`redis did not answer within 30 s\n${p.describe()}`);
    await sleep(20);
  }
}

function loadKeys(port: number): void {
  const parts: string[] = [];
  for (let i = 0; i < KEYS; i++) {
    const k = `k:${i}`;
    const v = value(i);
    parts.push(`*3\r\n$3\r\nSET\r\n$${k.length}\r\n${k}\r\n$${v.length}\r\n${v}\r\n`);
  }
  const out = cli(port, ['--pipe'], parts.join(''));
  assert.match(out, /errors: 0, replies: 100000/, out);
}

function subsetChecksum(port: number, values?: string[]): string {
  const keys = Array.from({ length: 1000 }, (_, i) => `k:${i * 97}`);
  const got = values ?? cli(port, ['mget', ...keys]).split('\n');
  return createHash('sha256').update(got.join('\n')).digest('hex');
}

function verify(port: number, round: number): void {
  const size = Number(cli(port, ['dbsize']));
  assert.ok(size >= KEYS, `DBSIZE ${size} after restart ${round}`);
  const expected = Array.from({ length: 1000 }, (_, i) => value(i * 97));
  assert.is(subsetChecksum(port), subsetChecksum(port, expected), 'checksum of k:0, k:97, ... k:96903');
  for (let s = 0; s < 50; s++) {
    const i = Math.floor(Math.random() * KEYS);
    assert.is(cli(port, ['get', `k:${i}`]), value(i), `k:${i}`);
  }
}

/** A client of this test, connected at checkpoint time; resolves how its connection ended. */
function resp(port: number): Promise<{ sock: net.Socket; gone: Promise<string>; ask(cmd: string): Promise<string> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1' }, () => {
      const gone = new Promise<string>((res) => {
        sock.once('error', (e: NodeJS.ErrnoException) => res(e.code ?? 'error'));
        sock.once('close', () => res('closed'));
      });
      const ask = (cmd: string) =>
        new Promise<string>((res) => {
          sock.once('data', (d) => res(d.toString().trim()));
          sock.write(cmd + '\r\n');
        });
      resolve({ sock, gone, ask });
    });
    sock.once('error', reject);
  });
}

test('redis-server: 100,000 keys under redis-benchmark load survive checkpoint/restart on the same port, twice', async () => {
  const scope = new Scope('server-redis');
  try {
    const ckpt = scope.ckptDir();
    const port = await freePort();
    const server = scope.launch({
      program: ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
      dir: ckpt,
      label: 'redis-server',
    });
    await waitPing(port, server);
    loadKeys(port);
    let current = server;
    for (let round = 1; round <= 2; round++) {
      const bench = scope.track(
        new Proc('redis-benchmark', ['-p', String(port), '-t', 'set,get', '-n', '100000000', '-r', '1000', '-c', '10', '-q'], {
          label: 'redis-benchmark',
        }),
      );
      const client = await resp(port);
      assert.is(await client.ask('PING'), '+PONG');
      await sleep(700);
      await checkpoint(ckpt);
      await scope.kill9(current);
      await scope.kill9(bench);
      const how = await client.gone;
      assert.ok(['closed', 'ECONNRESET', 'EPIPE'].includes(how), `the connected client lost its connection (${how})`);

      current = scope.restart({ dir: ckpt, label: `restart ${round}` });
      const ms = await waitPing(port, current);
      process.stdout.write(`  redis restart ${round}: answered PING after ${ms} ms\n`);
      verify(port, round);
      const again = await resp(port);
      assert.is(await again.ask(`SET after:${round} yes`), '+OK', 'a client connects again and writes');
      again.sock.destroy();
      if (round === 2) assert.is(cli(port, ['get', 'after:1']), 'yes', 'what was written after the first restart is there');
      // the clients of the killed server are gone from the restored one (their sockets came back reset)
      await sleep(300);
      const clients = cli(port, ['client', 'list']).split('\n').filter(Boolean).length;
      assert.ok(clients <= 2, `the restored server dropped its stale clients (CLIENT LIST has ${clients})`);
    }
  } finally {
    await scope.cleanup();
  }
});

test.run();
