// nginx with Debian's package defaults (issue 11): the master runs as root,
// its workers as www-data (`user www-data;`, `worker_processes auto;` of
// /etc/nginx/nginx.conf). The test runs a copy of that config with only the
// pid file, the logs and the site (a port on 127.0.0.1, a directory of the
// scope) changed, so the machine's own nginx is left alone. After each
// restart nginx serves the same file on the same port, and every process
// (master and workers, by PID) has the Uid, Gid and Groups it had; twice.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkpoint } from './lib/ckrun.js';
import { sleep, type Proc } from './lib/proc.js';
import { alive, descendants, isZombie, kill, nsPids } from './lib/processes.js';
import { Scope } from './lib/scope.js';
import { freePort } from './lib/net.js';

const DEBIAN_CONF = '/etc/nginx/nginx.conf';

/** Replace one directive of the Debian config; a config that lacks it fails the test naming it. */
function replaceDirective(conf: string, re: RegExp, by: string): string {
  if (!re.test(conf)) throw new Error(`${DEBIAN_CONF} has no line matching ${re}: is this Debian's default nginx config?`);
  return conf.replace(re, by);
}

/** Debian's nginx.conf with the pid file, the logs and the sites pointed into the scope. */
function scopedConfig(dir: string, www: string, port: number): string {
  if (!fs.existsSync(DEBIAN_CONF)) throw new Error(`${DEBIAN_CONF} is missing: install the Debian package nginx`);
  let conf = fs.readFileSync(DEBIAN_CONF, 'utf8');
  assert.match(conf, /^user www-data;$/m, `${DEBIAN_CONF} runs the workers as www-data`);
  conf = replaceDirective(conf, /^pid .*;$/m, `pid ${dir}/nginx.pid;`);
  conf = replaceDirective(conf, /^error_log .*;$/m, `error_log ${dir}/error.log;`);
  conf = replaceDirective(conf, /^(\s*)access_log .*;$/m, `$1access_log ${dir}/access.log;`);
  conf = replaceDirective(
    conf,
    /^(\s*)include \/etc\/nginx\/sites-enabled\/\*;$/m,
    `$1server {\n$1\tlisten 127.0.0.1:${port};\n$1\troot ${www};\n$1}`,
  );
  return conf;
}

/** How many workers the config starts (`auto`: one per online CPU, as nginx counts them). */
function workerCount(conf: string): number {
  const m = /^worker_processes\s+(\S+);$/m.exec(fs.readFileSync(conf, 'utf8'));
  if (!m) return 1;
  return m[1] === 'auto' ? Number(execFileSync('getconf', ['_NPROCESSORS_ONLN'], { encoding: 'utf8' }).trim()) : Number(m[1]);
}

function get(port: number, file: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/${file}`, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(Buffer.concat(parts)) : reject(new Error(`HTTP ${res.statusCode} for /${file}`)),
      );
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.once('error', reject);
  });
}

/** The served file once nginx answers; fails naming nginx's state if it ends or never answers. */
async function served(port: number, file: string, p: Proc, what: string): Promise<Buffer> {
  const end = Date.now() + 30_000;
  let last = '';
  for (;;) {
    try {
      return await get(port, file);
    } catch (e) {
      last = (e as Error).message;
    }
    if (!p.running) throw new Error(`${what}: ckrun ended before nginx answered (${last})\n${p.describe()}`);
    if (Date.now() > end) throw new Error(`${what}: nginx did not answer within 30 s (${last})\n${p.describe()}`);
    await sleep(50);
  }
}

/** Identity of a process: the Uid, Gid and Groups lines of /proc/PID/status. */
function identity(pid: number): string {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return ['Uid', 'Gid', 'Groups'].map((k) => new RegExp(`^${k}:.*$`, 'm').exec(st)?.[0] ?? `${k}: ?`).join('\n');
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** nginx's processes below a ckrun, by the PID they see (their innermost NSpid), with their identity. */
function nginxFamily(p: Proc): Map<number, string> {
  const out = new Map<number, string>();
  for (const d of descendants(p.pid)) {
    if (comm(d) !== 'nginx' || isZombie(d)) continue;
    const inner = nsPids(d).pop();
    if (inner !== undefined) out.set(inner, identity(d));
  }
  return out;
}

/** Wait until the master and every worker are there (workers start after the master answers). */
async function family(p: Proc, workers: number, what: string): Promise<Map<number, string>> {
  const end = Date.now() + 30_000;
  for (;;) {
    const f = nginxFamily(p);
    if (f.size === workers + 1) return f;
    if (Date.now() > end) throw new Error(`${what}: expected ${workers + 1} nginx processes below ckrun, found ${f.size}\n${p.describe()}`);
    await sleep(50);
  }
}

/**
 * kill -9 of the family, the master first: a master that outlives a killed
 * worker by a moment forks a new one, which killTree's walk from ckrun may
 * miss once the master is gone, and which keeps the port.
 */
async function kill9Family(scope: Scope, p: Proc): Promise<void> {
  const all = descendants(p.pid).filter((d) => comm(d) === 'nginx');
  const masters = all.filter((d) => identity(d).startsWith('Uid:\t0\t'));
  for (const d of [...masters, ...all]) kill(d, 'SIGKILL');
  await scope.kill9(p);
  // zombies left to init do not count: they hold no port
  const end = Date.now() + 15_000;
  let left = all;
  while ((left = left.filter((d) => alive(d) && !isZombie(d))).length && Date.now() < end) await sleep(50);
  if (left.length) throw new Error(`nginx processes ${left.join(', ')} survived kill -9`);
}

function show(f: Map<number, string>): string {
  return [...f].sort((a, b) => a[0] - b[0]).map(([pid, id]) => `${pid}: ${id.replace(/\n/g, ' | ')}`).join('\n');
}

test('nginx with Debian defaults (master root, workers www-data) serves the same file with the same credentials after restart, twice', async () => {
  const scope = new Scope('server-nginx');
  let current: Proc | undefined;
  try {
    // the scope's directory is private (0700): www-data must reach the site
    fs.chmodSync(scope.root, 0o711);
    const dir = scope.dir('nginx');
    const www = scope.dir('www');
    fs.chmodSync(www, 0o755);
    const body = Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${i} of the served file\n`).join(''));
    fs.writeFileSync(path.join(www, 'page.txt'), body, { mode: 0o644 });
    const port = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, scopedConfig(dir, www, port));
    const ckpt = scope.ckptDir();

    current = scope.launch({
      program: ['nginx', '-c', conf, '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'],
      dir: ckpt,
      label: 'nginx',
    });
    assert.equal(await served(port, 'page.txt', current, 'launch'), body, 'nginx serves the file');
    const workers = workerCount(conf);
    const before = await family(current, workers, 'launch');
    const wwwData = execFileSync('id', ['-u', 'www-data'], { encoding: 'utf8' }).trim();
    const ids = [...before.values()];
    assert.is(ids.filter((id) => id.startsWith(`Uid:\t${wwwData}\t${wwwData}\t${wwwData}\t${wwwData}\n`)).length, workers, `${workers} workers run as www-data:\n${show(before)}`);
    assert.is(ids.filter((id) => id.startsWith('Uid:\t0\t0\t0\t0\n')).length, 1, `the master runs as root:\n${show(before)}`);

    for (let round = 1; round <= 2; round++) {
      await checkpoint(ckpt);
      await kill9Family(scope, current);
      current = scope.restart({ dir: ckpt, label: `restart ${round}` });
      assert.equal(await served(port, 'page.txt', current, `restart ${round}`), body, `restart ${round}: nginx serves the same file`);
      const after = await family(current, workers, `restart ${round}`);
      assert.is(show(after), show(before), `restart ${round}: every nginx process has its PID, Uid, Gid and Groups`);
      // each worker still serves: enough requests that both reach the restored workers' accept
      for (let i = 0; i < 20; i++) assert.equal(await get(port, 'page.txt'), body, `restart ${round}: request ${i}`);
    }
    const log = fs.readFileSync(path.join(dir, 'error.log'), 'utf8');
    assert.not.match(log, /\[(emerg|alert|crit)\]/, `nginx's error log:\n${log}`);
  } finally {
    // the master first here too: cleanup's walk from ckrun kills the workers first
    if (current) await kill9Family(scope, current).catch((e: Error) => process.stderr.write(`${e.message}\n`));
    await scope.cleanup();
  }
});

test.run();
