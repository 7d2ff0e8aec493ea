// PostgreSQL 15 from Debian's package (issue 13): initdb and postgres in a
// data directory and a socket directory of the test's own, run as user
// postgres under a ckrun started by that user (clients over the Unix
// socket), and again under a ckrun started by root that runs postgres
// through setpriv (clients over TCP on 127.0.0.1). A client outside the
// session inserts rows in batches (one psql, one transaction per batch)
// while ckrun checkpoints; then kill -9 of the whole family (the postmaster
// first) and `ckrun restart` at once, with no ipcrm. After each restart
// every batch whose COMMIT returned before the checkpoint began is there,
// no batch begun after the checkpoint returned is, every batch is whole,
// new connections work, and the server did not run crash recovery (its log
// after the restart has no "database system was interrupted" nor "redo
// starts"). Then the same from the restarted server: twice.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Proc, sleep } from './lib/proc.js';
import { alive, descendants, isZombie, kill } from './lib/processes.js';
import { Scope } from './lib/scope.js';
import { asUser, asUserArgv, sharedCkrun } from './lib/users.js';
import { freePort } from './lib/net.js';

const PGBIN = '/usr/lib/postgresql/15/bin';
const BATCH = 2000; // rows per transaction
const RECOVERY = /database system was interrupted|redo starts|crash recovery|terminated by signal/;

interface Account {
  uid: number;
  gid: number;
}

interface Batch {
  n: number;
  start: number;
  end?: number;
  ok: boolean;
}

function postgresAccount(): Account {
  for (const f of ['initdb', 'postgres', 'psql'])
    if (!fs.existsSync(path.join(PGBIN, f))) throw new Error(`${PGBIN}/${f} is missing: install the Debian packages postgresql-15 and postgresql-client-15`);
  const id = (o: string) => Number(execFileSync('id', [o, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** Where the client connects: a socket directory (and the default port), or 127.0.0.1 and a TCP port. */
interface Server {
  host: string;
  port: number;
}

function psql(sock: Server, sql: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      path.join(PGBIN, 'psql'),
      ['-h', sock.host, '-p', String(sock.port), '-U', 'postgres', '-d', 'postgres', '-X', '-v', 'ON_ERROR_STOP=1', '-Atc', sql],
      { encoding: 'utf8', timeout: timeoutMs, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PGCONNECT_TIMEOUT: '10' } },
      (err, stdout, stderr) => (err ? reject(new Error(`psql "${sql}": ${err.message} ${stderr}`)) : resolve(stdout)),
    );
  });
}

/** The server answers a new connection; fails naming ckrun's output if it ends or never answers. */
async function ready(sock: Server, p: Proc, what: string): Promise<void> {
  const end = Date.now() + 60_000;
  let last = '';
  for (;;) {
    try {
      if ((await psql(sock, 'select 1', 10_000)).trim() === '1') return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (!p.running) throw new Error(`${what}: ckrun ended before postgres answered (${last})\n${p.describe()}`);
    if (Date.now() > end) throw new Error(`${what}: postgres did not answer within 60 s (${last})\n${p.describe()}`);
    await sleep(100);
  }
}

/** Inserts batches one after another until stopped, recording when each began and when its COMMIT returned. */
class Inserter {
  readonly batches: Batch[] = [];
  private stopping = false;
  private readonly running: Promise<void>;

  constructor(sock: Server, first: number) {
    this.running = this.loop(sock, first);
  }

  private async loop(sock: Server, first: number): Promise<void> {
    for (let n = first; !this.stopping; n++) {
      const b: Batch = { n, start: performance.now(), ok: false };
      this.batches.push(b);
      try {
        await psql(sock, `insert into t select ${n}, g from generate_series(1, ${BATCH}) g`);
        b.ok = true;
        b.end = performance.now();
      } catch {
        await sleep(20); // the server is being killed or restarted: the batch counts as not committed
      }
    }
  }

  async stop(): Promise<Batch[]> {
    this.stopping = true;
    await this.running;
    return this.batches;
  }

  committed(): number {
    return this.batches.filter((b) => b.ok).length;
  }
}

/** The batches in the table and their row counts. */
async function tableBatches(sock: Server): Promise<Map<number, number>> {
  const out = await psql(sock, 'select batch, count(*) from t group by batch order by batch');
  return new Map(out.trim().split('\n').filter(Boolean).map((l) => l.split('|').map(Number) as [number, number]));
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function parentOf(pid: number): number {
  try {
    return Number(/^PPid:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The postmaster below a ckrun: the postgres process whose parent is not one. */
function postmasters(p: Proc): number[] {
  return descendants(p.pid).filter((d) => comm(d) === 'postgres' && comm(parentOf(d)) !== 'postgres');
}

/** kill -9 of the family, the postmaster first: it forks a new backend or worker for one that died. */
async function kill9Family(scope: Scope, p: Proc): Promise<void> {
  const all = descendants(p.pid).filter((d) => comm(d) === 'postgres');
  const masters = postmasters(p);
  for (const d of [...masters, ...all]) kill(d, 'SIGKILL');
  await scope.kill9(p);
  const end = Date.now() + 15_000;
  let left = all;
  while ((left = left.filter((d) => alive(d) && !isZombie(d))).length && Date.now() < end) await sleep(50);
  if (left.length) throw new Error(`postgres processes ${left.join(', ')} survived kill -9`);
}

/**
 * A data directory made by initdb as the postgres user, listening on a
 * socket directory of its own and, with tcp, on 127.0.0.1 at a free port
 * (the clients then connect over TCP).
 */
async function initCluster(work: string, who: Account, tcp: boolean): Promise<{ data: string; server: Server }> {
  const data = path.join(work, 'data');
  const sock = path.join(work, 'sock');
  const r = await asUser(who.uid, who.gid, `cd ${work} && mkdir sock && ${PGBIN}/initdb -D ${data} -A trust -U postgres --no-sync`, 120_000);
  assert.is(r.code, 0, `initdb failed:\n${r.stdout}${r.stderr}`);
  const port = tcp ? await freePort() : 5432;
  fs.appendFileSync(
    path.join(data, 'postgresql.conf'),
    [
      `listen_addresses = '${tcp ? '127.0.0.1' : ''}'`,
      `port = ${port}`,
      `unix_socket_directories = '${sock}'`,
      'dynamic_shared_memory_type = posix',
      // autovacuum workers come and go during the checkpoints
      'autovacuum_naptime = 1',
      '',
    ].join('\n'),
  );
  return { data, server: { host: tcp ? '127.0.0.1' : sock, port } };
}

/** Which batches must be in the table after a restart from a checkpoint taken between ckStart and ckEnd. */
function verify(found: Map<number, number>, before: Set<number>, epoch: Batch[], ckStart: number, ckEnd: number, what: string): Set<number> {
  for (const [n, rows] of found) assert.is(rows, BATCH, `${what}: batch ${n} has ${rows} rows, not ${BATCH}: a transaction came back in part`);
  const missing = [...before].filter((n) => !found.has(n));
  assert.equal(missing, [], `${what}: batches that survived the previous restart are gone`);
  const mustHave = epoch.filter((b) => b.ok && b.end! < ckStart).map((b) => b.n);
  const mustNot = epoch.filter((b) => b.start > ckEnd).map((b) => b.n);
  assert.ok(mustHave.length > 0, `${what}: no batch committed before the checkpoint (the test did not load the server)`);
  assert.ok(mustNot.length > 0, `${what}: no batch begun after the checkpoint (the test did not go on loading the server)`);
  assert.equal(mustHave.filter((n) => !found.has(n)), [], `${what}: batches committed before the checkpoint are missing`);
  assert.equal(mustNot.filter((n) => found.has(n)), [], `${what}: batches begun after the checkpoint returned are there`);
  const known = new Set([...before, ...epoch.map((b) => b.n)]);
  assert.equal([...found.keys()].filter((n) => !known.has(n)), [], `${what}: batches nobody inserted`);
  return new Set(found.keys());
}

/** postgres's POSIX shared memory segments (dynamic_shared_memory_type = posix). */
function dsmSegments(who: Account): string[] {
  return fs.readdirSync('/dev/shm').filter((f) => f.startsWith('PostgreSQL.') && fs.statSync(path.join('/dev/shm', f)).uid === who.uid);
}

/**
 * After a failure: what a postgres killed with -9 leaves (a clean shutdown
 * removes it): its SysV segment (postmaster.pid's last line: key and id)
 * once nothing attaches it, and the /dev/shm segments made since `before`.
 */
function removeLeftovers(who: Account, data: string, before: string[]): void {
  for (const f of dsmSegments(who)) if (!before.includes(f)) fs.rmSync(path.join('/dev/shm', f), { force: true });
  const pidFile = path.join(data, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return;
  const id = fs.readFileSync(pidFile, 'utf8').split('\n')[6]?.trim().split(/\s+/)[1];
  if (id && /^\d+$/.test(id)) spawnSync('ipcrm', ['-m', id], { stdio: 'ignore' });
}

/**
 * Who runs ckrun: user postgres itself (its launch, checkpoints and
 * restarts), or root, whose ckrun starts postgres through setpriv.
 */
type Starter = 'postgres' | 'root';

/** argv that runs a shell script as the starter. */
function starterArgv(starter: Starter, who: Account, script: string): string[] {
  return starter === 'postgres' ? asUserArgv(who.uid, who.gid, script) : ['bash', '-c', script];
}

async function runAsStarter(starter: Starter, who: Account, script: string): Promise<{ code: number | null; out: string }> {
  if (starter === 'postgres') {
    const r = await asUser(who.uid, who.gid, script, 120_000);
    return { code: r.code, out: `${r.stdout}${r.stderr}` };
  }
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The program ckrun runs: postgres itself, or (started by root) postgres through setpriv as user postgres. */
function serverArgv(starter: Starter, who: Account, data: string): string {
  const postgres = `${PGBIN}/postgres -D ${data}`;
  return starter === 'postgres' ? postgres : `setpriv --reuid ${who.uid} --regid ${who.gid} --clear-groups ${postgres}`;
}

async function scenario(starter: Starter): Promise<void> {
  const label = starter;
  if (process.geteuid?.() !== 0) throw new Error('this test runs PostgreSQL as user postgres, which needs root: run npm test as root');
  const who = postgresAccount();
  const shared = sharedCkrun();
  const scope = new Scope(`server-postgres-${label}`);
  let current: Proc | undefined;
  let inserter: Inserter | undefined;
  const dsmBefore = dsmSegments(who);
  let data = '';
  try {
    fs.chmodSync(scope.root, 0o755);
    const work = scope.dir('work');
    fs.chownSync(work, who.uid, who.gid);
    // root's run serves over TCP too
    const cluster = await initCluster(work, who, starter === 'root');
    data = cluster.data;
    const sock = cluster.server;
    // a root session's checkpoints lie where only root may change them
    const ckpt = starter === 'root' ? scope.ckptDir('ck') : path.join(work, 'ck');
    if (starter === 'postgres') scope.ckptDirs.push(ckpt);
    const [cmd, ...args] = starterArgv(starter, who, `cd ${work} && exec ${shared.ckrunSh} --dir ${ckpt} -- ${serverArgv(starter, who, data)}`);
    current = scope.track(new Proc(cmd!, args, { label: `ckrun postgres (${label})` }));
    await ready(sock, current, 'launch');
    await psql(sock, 'create table t (batch int not null, i int not null)');

    let survived = new Set<number>();
    let next = 1;
    for (let round = 1; round <= 2; round++) {
      inserter = new Inserter(sock, next);
      while (inserter.committed() < 10) await sleep(20);
      const ckStart = performance.now();
      // the session belongs to user postgres: root's ckrun does not talk to it
      const ck = await runAsStarter(starter, who, `${shared.ckrunSh} checkpoint --dir ${ckpt}`);
      assert.is(ck.code, 0, `round ${round}: ckrun checkpoint failed:\n${ck.out}\n${current.describe()}`);
      const ckEnd = performance.now();
      // a few batches after the checkpoint: they must be gone after the restart
      const after = inserter.committed();
      while (inserter.committed() < after + 3) await sleep(20);
      const stopped = inserter.stop();
      await kill9Family(scope, current);
      const epoch = await stopped;
      next = epoch.at(-1)!.n + 1;

      const [rcmd, ...rargs] = starterArgv(starter, who, `cd ${work} && exec ${shared.ckrunSh} restart --stdio=inherit --dir ${ckpt}`);
      current = scope.track(new Proc(rcmd!, rargs, { label: `restart ${round}` }));
      await ready(sock, current, `restart ${round}`);
      const found = await tableBatches(sock);
      survived = verify(found, survived, epoch, ckStart, ckEnd, `restart ${round}`);
      // the server's log is the restart's stderr: a statement that fails shows in it
      const marker = `restart-${round}-log`;
      await psql(sock, `select '${marker}'::int`).then(
        () => assert.unreachable('the bad cast should fail'),
        () => undefined,
      );
      await current.waitFor(() => current!.stderr.includes(marker), `postgres to log the failed statement "${marker}"`, 30_000);
      assert.not.match(current.stdout + current.stderr, RECOVERY, `restart ${round}: postgres ran crash recovery:\n${current.describe()}`);
      // a new connection writes and reads back
      await psql(sock, `insert into t select 0, g from generate_series(1, ${BATCH}) g`);
      assert.is((await tableBatches(sock)).get(0), BATCH * round, `restart ${round}: a new connection's rows are there`);
      survived.add(0);
    }
    // a fast shutdown (SIGINT to the postmaster; pg_ctl would signal the PID the
    // restarted server sees, which is its PID in ckrun's namespace) removes its
    // shared memory and its /dev/shm segments
    const masters = postmasters(current);
    assert.is(masters.length, 1, `one postmaster below ckrun after the last restart:\n${current.describe()}`);
    kill(masters[0]!, 'SIGINT');
    await current.waitExit(60_000);
    assert.match(current.stderr, /database system is shut down/, `postgres shut down cleanly:\n${current.describe()}`);
    assert.equal(dsmSegments(who).filter((f) => !dsmBefore.includes(f)), [], 'no /dev/shm segment of the killed servers is left');
  } finally {
    await inserter?.stop();
    if (current?.running) await kill9Family(scope, current).catch((e: Error) => process.stderr.write(`${e.message}\n`));
    if (data) removeLeftovers(who, data, dsmBefore);
    await scope.cleanup();
  }
}

test('PostgreSQL 15 as user postgres under its own ckrun: batches committed before each checkpoint survive kill -9 and restart, later ones do not, no crash recovery; twice', () =>
  scenario('postgres'));

test('PostgreSQL 15 started by root through setpriv as user postgres, clients over TCP: the same, twice', () => scenario('root'));

test.run();
