// Files come back as they were at the checkpoint (issue 12): a database
// rewritten in place after the checkpoint, journals and WAL files deleted
// after it, stdout/stderr redirected to a file. Each scenario: launch with
// `> log 2>&1`, checkpoint mid-work, let it run on, kill -9, restart; again
// from the restarted program; then it runs to its end and the result is
// checked against what it must be.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { generations, readManifest } from './lib/images.js';
import { readLateFiles } from '../src/files-late.js';
import { exampleProgram, python3 } from './lib/examples.js';
import { EXAMPLES, T_STEP } from './lib/paths.js';
import { Proc, sleep } from './lib/proc.js';
import { logged, readText } from './lib/logged.js';
import { Scope } from './lib/scope.js';
import { kill9Session } from './lib/tree.js';

function which(cmd: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${cmd} is missing: this test needs it (apt-get install ${cmd === 'sqlite3' ? 'sqlite3' : cmd}; test/lib/requirements.ts)`);
  }
}

/** python3 itself, not pyenv's shell shim (whose short-lived helpers ckrun reports on its stderr: the log). */
function realPython(): string {
  return execFileSync(python3(), ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
}

/** `ckrun ARGS > log 2>&1` (or `ckrun restart ARGS > out 2>&1`): the shell execs ckrun, so the Proc's PID is ckrun's. */
async function until(p: Proc, pred: () => boolean, what: string, ms = T_STEP): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${p.describe()}`);
    if (!p.running) {
      await sleep(100);
      if (pred()) return;
      throw new Error(`ckrun ended while waiting for ${what}\n${p.describe()}`);
    }
    await sleep(25);
  }
}

interface Cycle {
  /** What the test does between kill -9 and restart (another client opening the database). */
  between?: () => void | Promise<void>;
}

/**
 * launch → (checkpoint after `ahead` more units, run `ahead` more, kill -9,
 * between, restart) per cycle → wait for the end. `units()` counts the
 * program's progress from the outside.
 */
async function cycles(
  scope: Scope,
  o: { name: string; program: string[]; work: string; units: () => number; ahead: number; cycles: Cycle[]; done?: () => boolean; restartArgs?: string[] },
): Promise<Proc> {
  const ck = scope.ckptDir('ck');
  const log = path.join(o.work, 'log');
  let p = logged(scope, ['--dir', ck, '--', ...o.program], log, o.work, `ckrun ${o.name}`);
  for (const [i, c] of o.cycles.entries()) {
    const from = o.units();
    await until(p, () => o.units() >= from + o.ahead, `${o.ahead} more units of ${o.name} before checkpoint ${i + 1}`);
    await checkpoint(ck).catch((e: Error) => {
      // which ckrun it was, and how it stands, tells a lost session from a slow one
      throw new Error(`${e.message}\ncycle ${i + 1} of ${o.name}, the ckrun asked:\n${p.describe()}\n${readText(path.join(o.work, i === 0 ? 'log' : `restart${i}.out`)).slice(-1500)}`);
    });
    const at = o.units();
    await until(p, () => o.units() >= at + o.ahead, `${o.name} to run on after checkpoint ${i + 1}`);
    await kill9Session(p, ck, `${o.name} cycle ${i + 1}`);
    await c.between?.();
    p = logged(scope, ['restart', '--dir', ck, ...(o.restartArgs ?? [])], path.join(o.work, `restart${i + 1}.out`), o.work, `ckrun restart ${o.name}`);
  }
  if (o.done) await until(p, o.done, `${o.name} to finish`, 120_000);
  const st = await p.waitExit();
  assert.is(st.code, 0, `${o.name}: the restarted ckrun's status\n${p.describe()}\n${readText(path.join(o.work, 'log')).slice(-2000)}`);
  return p;
}

/**
 * A bash job (its text) that appends a line per iteration to a.log and ends
 * by printing "end": launched, then checkpointed `ahead` lines on, killed
 * `ahead` lines later and restarted, twice, and run to its end.
 */
async function bashJobCycles(scope: Scope, work: string, name: string, job: string, ahead: number): Promise<void> {
  fs.writeFileSync(path.join(work, 'job.sh'), job);
  const lines = (): number => readText(path.join(work, 'a.log')).split('\n').length - 1;
  await cycles(scope, { name, program: ['bash', path.join(work, 'job.sh')], work, units: lines, ahead, cycles: [{}, {}], done: () => readText(path.join(work, 'log')).includes('end\n') });
}

// ---- sqlite --------------------------------------------------------------

const TX = 40;
const ROWS = 20; // examples/sqlite_tx.py

function txLines(log: string): number[] {
  return [...readText(log).matchAll(/^tx (\d+) ok rows=\d+ integrity=(\S+)$/gm)].map((m) => {
    if (m[2] !== 'ok') throw new Error(`integrity_check said ${m[2]} after tx ${m[1]}`);
    return Number(m[1]);
  });
}

function checkSqliteLog(log: string): void {
  const text = readText(log);
  assert.not.match(text, /MISMATCH|Traceback|Error/, `the program found its database wrong:\n${text.slice(-1500)}`);
  const txs = txLines(log);
  assert.equal(txs, Array.from({ length: TX }, (_, i) => i + 1), `every transaction committed once, in order:\n${text.slice(-1500)}`);
}

function checkDatabase(sqlite: string, db: string): void {
  const out = execFileSync(sqlite, [db, 'PRAGMA integrity_check; SELECT COUNT(*), COUNT(DISTINCT tx), MIN(tx), MAX(tx) FROM t;'], { encoding: 'utf8' });
  assert.is(out, `ok\n${TX * ROWS}|${TX}|1|${TX}\n`, `the database at the end (${db})`);
}

for (const mode of ['delete', 'wal'] as const) {
  test(`sqlite (${mode === 'delete' ? 'rollback journal' : 'WAL'}) through python3, checkpointed mid-transaction: after each restart integrity_check is ok and the rows are those committed at the checkpoint; the second time with the sqlite3 CLI opening and closing the database between kill and restart`, async () => {
    const sqlite = which('sqlite3');
    const scope = new Scope(`files-sqlite-${mode}`);
    try {
      const work = scope.dir('work');
      const db = path.join(work, 'db');
      const log = path.join(work, 'log');
      await cycles(scope, {
        name: `sqlite ${mode}`,
        program: [realPython(), path.join(EXAMPLES, 'sqlite_tx.py'), db, mode, String(TX), '0.01'],
        work,
        units: () => txLines(log).length,
        ahead: 2,
        cycles: [
          {},
          {
            // another client: rolls back a hot journal / folds the WAL into the database and removes it
            between: async () => {
              execFileSync(sqlite, [db, 'SELECT COUNT(*) FROM t;'], { encoding: 'utf8' });
              if (mode === 'wal') assert.not.ok(fs.existsSync(`${db}-wal`), 'the sqlite3 CLI removed the WAL when it closed the database');
              // the files a restart puts back first do not make the generation unrestorable
              const v = await ckrun(['verify', '--dir', path.join(path.dirname(work), 'ck')]);
              assert.is(v.code, 0, v.describe());
            },
          },
        ],
        done: () => readText(log).includes('\ndone\n'),
      });
      checkSqliteLog(log);
      checkDatabase(sqlite, db);
    } finally {
      await scope.cleanup();
    }
  });
}

// ---- stdout into files -----------------------------------------------------

test('ckrun -- gzip -c FILE > out.gz, checkpoint, kill -9, restart; twice: out.gz decompresses to FILE', async () => {
  const gzip = which('gzip');
  const scope = new Scope('files-gzip');
  try {
    const work = scope.dir('work');
    const input = path.join(work, 'input.txt');
    // 96 MiB of random words: gzip takes seconds over it
    const buf = Buffer.alloc(96 << 20);
    let x = 0x2545f491;
    for (let i = 0; i < buf.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const r = (x >>> 0) % 32;
      buf[i] = r < 26 ? 97 + r : r < 31 ? 32 : 10;
    }
    fs.writeFileSync(input, buf);
    const out = path.join(work, 'log'); // what `> log` is in cycles(): here out.gz
    const size = (): number => (fs.existsSync(out) ? fs.statSync(out).size : 0);
    const MB = 1 << 20;
    await cycles(scope, {
      name: 'gzip',
      program: [gzip, '-c', input],
      work,
      units: () => Math.floor(size() / MB),
      ahead: 3,
      cycles: [{}, {}],
    });
    const back = execFileSync(gzip, ['-dc', out], { maxBuffer: 256 * MB });
    assert.ok(back.equals(buf), `out.gz decompresses to ${back.length} bytes, not the ${buf.length} of the input (or to other bytes)`);
  } finally {
    await scope.cleanup();
  }
});

test('a line-numbered job writing to > log 2>&1 (stdout and stderr): checkpoint, kill -9, restart; twice: every line exactly once', async () => {
  const scope = new Scope('files-stdio-log');
  try {
    const work = scope.dir('work');
    const log = path.join(work, 'log');
    const N = 600;
    const job = `import sys, time\nfor i in range(1, ${N + 1}):\n    (sys.stdout if i % 2 else sys.stderr).write(f'line {i}\\n')\n    (sys.stdout if i % 2 else sys.stderr).flush()\n    time.sleep(0.005)\nprint('end', flush=True)\n`;
    const lines = (): number => readText(log).split('\n').length - 1;
    await cycles(scope, {
      name: 'log job',
      program: [realPython(), '-c', job],
      work,
      units: lines,
      ahead: 40,
      cycles: [{}, {}],
      done: () => readText(log).endsWith('end\n'),
    });
    const want = [...Array.from({ length: N }, (_, i) => `line ${i + 1}`), 'end', ''].join('\n');
    const got = readText(log);
    if (got !== want) {
      const a = got.split('\n');
      const b = want.split('\n');
      const i = a.findIndex((l, k) => l !== b[k]);
      assert.unreachable(`the log differs from the job's output at line ${i + 1}: ${JSON.stringify(a[i])} instead of ${JSON.stringify(b[i])} (${a.length} lines, not ${b.length})`);
    }
    for (const k of [1, 2]) assert.is(readText(path.join(work, `restart${k}.out`)), '', `ckrun restart ${k} wrote nothing of the program's to its own stdio`);
  } finally {
    await scope.cleanup();
  }
});

test('files a job opens, writes and closes in every iteration (bash >> and > redirections, its own and a forked child\'s, python open(..., "a")): checkpoint, kill -9, restart; twice: each log has every line once, and the state file the job checks is as at the checkpoint', async () => {
  const scope = new Scope('files-closed');
  try {
    const work = scope.dir('work');
    const N = 160;
    // state holds the last iteration done; the job checks it before each one (its own state)
    const job =
      `echo 0 > state\n` +
      // a result written whole once, too big to be kept: the program would write it whole again
      `head -c 9M /dev/zero > big.out\n` +
      `for i in $(seq 1 ${N}); do\n` +
      `  read v < state\n` +
      `  if [ "$v" != $((i - 1)) ]; then echo "state says $v before iteration $i" >&2; exit 1; fi\n` +
      `  echo "a $i" >> a.log\n` +
      `  /bin/echo "b $i" >> b.log\n` +
      `  ${realPython()} -c "open('c.log', 'a').write('c $i\\n')"\n` +
      `  echo $i > state\n` +
      `  sleep 0.01\n` +
      `done\n` +
      `echo end\n`;
    await bashJobCycles(scope, work, 'closed-files job', job, 25);
    for (const k of ['a', 'b', 'c']) {
      const want = [...Array.from({ length: N }, (_, i) => `${k} ${i + 1}`), ''].join('\n');
      const got = readText(path.join(work, `${k}.log`));
      if (got !== want) {
        const a = got.split('\n');
        const b = want.split('\n');
        const i = a.findIndex((l, n) => l !== b[n]);
        assert.unreachable(`${k}.log differs from the job's output at line ${i + 1}: ${JSON.stringify(a[i])} instead of ${JSON.stringify(b[i])} (${a.length} lines, not ${b.length})`);
      }
    }
    assert.is(readText(path.join(work, 'state')), `${N}\n`);
    assert.is(readText(path.join(work, 'log')), 'end\n', "the job's own output");
    const ck = path.join(scope.root, 'ck');
    const gens = generations(ck);
    assert.ok(gens.length >= 2, `two generations in ${ck}`);
    for (const g of gens) {
      const saved = ((readManifest(path.join(ck, String(g))).files as { saved?: { path: string }[] } | undefined)?.saved ?? []).map((f) => path.basename(f.path));
      for (const name of ['a.log', 'b.log', 'c.log', 'state']) assert.ok(saved.includes(name), `generation ${g} keeps ${name} (${saved.join(', ')})`);
      assert.not.ok(saved.includes('big.out'), `generation ${g} does not keep big.out, a 9 MiB file written whole (${saved.join(', ')})`);
    }
  } finally {
    await scope.cleanup();
  }
});

test('files a job first opens for writing after the checkpoint (it starts appending to an existing log and rewriting an existing file in place in a later phase): checkpoint, kill -9, restart; twice: each has its lines once and its counter right', async () => {
  const scope = new Scope('files-late');
  try {
    const work = scope.dir('work');
    const N = 160;
    const BLOCK = 20;
    const blocks = N / BLOCK;
    // every block's files exist before the job starts; the job opens them for writing only in that block
    for (let b = 0; b < blocks; b++) {
      fs.writeFileSync(path.join(work, `late-${b}.log`), 'header\n');
      fs.writeFileSync(path.join(work, `late-${b}.db`), Buffer.alloc(4096));
    }
    const job =
      `for i in $(seq 1 ${N}); do\n` +
      `  b=$(( (i - 1) / ${BLOCK} ))\n` +
      `  echo "a $i" >> a.log\n` +
      `  /bin/echo "l $i" >> late-$b.log\n` +
      `  ${realPython()} -c "f = open('late-$b.db', 'r+b'); n = int.from_bytes(f.read(8), 'little'); f.seek(0); f.write((n + 1).to_bytes(8, 'little'))"\n` +
      `  sleep 0.01\n` +
      `done\n` +
      `echo end\n`;
    // more than a block between checkpoint and kill: some block's files are first written after the checkpoint
    await bashJobCycles(scope, work, 'late-files job', job, BLOCK + 5);
    assert.is(readText(path.join(work, 'a.log')), Array.from({ length: N }, (_, i) => `a ${i + 1}\n`).join(''), 'a.log has every line once');
    for (let b = 0; b < blocks; b++) {
      const want = ['header', ...Array.from({ length: BLOCK }, (_, i) => `l ${b * BLOCK + i + 1}`), ''].join('\n');
      assert.is(readText(path.join(work, `late-${b}.log`)), want, `late-${b}.log has its block's lines once`);
      assert.is(fs.readFileSync(path.join(work, `late-${b}.db`)).readBigUInt64LE(0), BigInt(BLOCK), `late-${b}.db counted its block's iterations once`);
    }
    const ck = path.join(scope.root, 'ck');
    const kept = generations(ck).flatMap((g) => readLateFiles(path.join(ck, String(g))).map((f) => path.basename(f.path)));
    assert.ok(kept.some((n) => n.endsWith('.log')) && kept.some((n) => n.endsWith('.db')), `the generations kept files first written after them (${kept.join(', ')})`);
  } finally {
    await scope.cleanup();
  }
});

test("files a job makes after the checkpoint (python open(..., 'x'), which fails on a file that is there) are removed at restart: checkpoint, kill -9, restart; twice: the job makes each once and ends", async () => {
  const scope = new Scope('files-made');
  try {
    const work = scope.dir('work');
    const N = 120;
    const job =
      `for i in $(seq 1 ${N}); do\n` +
      `  echo "a $i" >> a.log\n` +
      `  ${realPython()} -c "open('made-$i.txt', 'x').write('$i')" || { echo "made-$i.txt was there" >&2; exit 1; }\n` +
      `  sleep 0.01\n` +
      `done\n` +
      `echo end\n`;
    await bashJobCycles(scope, work, 'made-files job', job, 20);
    assert.is(readText(path.join(work, 'a.log')), Array.from({ length: N }, (_, i) => `a ${i + 1}\n`).join(''), 'a.log has every line once');
    for (let i = 1; i <= N; i++) assert.is(readText(path.join(work, `made-${i}.txt`)), String(i), `made-${i}.txt`);
  } finally {
    await scope.cleanup();
  }
});

test('directories, symbolic links, hard links, FIFOs and renamed entries a job makes after the checkpoint (mkdir, ln -s, ln, mkfifo, mv; each fails on a name that is there) are removed at restart: checkpoint, kill -9, restart; twice: the job makes each once and ends', async () => {
  const scope = new Scope('files-made-names');
  try {
    const work = scope.dir('work');
    const N = 150;
    const job =
      `set -u\n` +
      `for i in $(seq 1 ${N}); do\n` +
      `  echo "a $i" >> a.log\n` +
      `  mkdir "step-$i" || exit 1\n` +
      `  ${realPython()} -c "open('step-$i/out', 'x').write('$i')" || exit 1\n` +
      `  mkdir -p "tmp-$i/sub" && echo "$i" > "tmp-$i/sub/f"\n` +
      `  [ -e "moved-$i" ] && { echo "moved-$i was there" >&2; exit 1; }\n` +
      `  mv "tmp-$i" "moved-$i" || exit 1\n` +
      `  ln -s "step-$i" latest.new || exit 1\n` +
      `  mv -T latest.new latest || exit 1\n` +
      `  ln "step-$i/out" "out-$i" || exit 1\n` +
      `  mkfifo "fifo-$i" || exit 1\n` +
      `  sleep 0.01\n` +
      `done\n` +
      `echo end\n`;
    await bashJobCycles(scope, work, 'made-names job', job, 15);
    assert.is(readText(path.join(work, 'a.log')), Array.from({ length: N }, (_, i) => `a ${i + 1}\n`).join(''), 'a.log has every line once');
    const names = fs.readdirSync(work);
    const count = (prefix: string): number => names.filter((n) => n.startsWith(prefix)).length;
    assert.equal([count('step-'), count('moved-'), count('out-'), count('fifo-'), count('tmp-')], [N, N, N, N, 0], `one of each per step (${names.length} names)`);
    for (let i = 1; i <= N; i++) {
      assert.is(readText(path.join(work, `step-${i}`, 'out')), String(i), `step-${i}/out`);
      assert.is(fs.statSync(path.join(work, `out-${i}`)).ino, fs.statSync(path.join(work, `step-${i}`, 'out')).ino, `out-${i} is a link of step-${i}/out`);
      assert.ok(fs.lstatSync(path.join(work, `fifo-${i}`)).isFIFO(), `fifo-${i}`);
      assert.is(readText(path.join(work, `moved-${i}`, 'sub', 'f')), `${i}\n`, `moved-${i}/sub/f`);
    }
    assert.is(fs.readlinkSync(path.join(work, 'latest')), `step-${N}`);
    assert.not.ok(fs.existsSync(path.join(work, 'latest.new')), 'no temporary link left');
  } finally {
    await scope.cleanup();
  }
});

test("a log rotated by python's RotatingFileHandler after the checkpoint (each file renamed to the next name, the oldest replaced, a new log made): checkpoint, kill -9, restart; twice: every line is in the logs exactly once, in order", async () => {
  const scope = new Scope('files-rotated');
  try {
    const work = scope.dir('work');
    const N = 400;
    const job =
      `import logging, logging.handlers, time\n` +
      `h = logging.handlers.RotatingFileHandler('app.log', maxBytes=600, backupCount=1000)\n` +
      `log = logging.getLogger('job'); log.addHandler(h); log.setLevel(logging.INFO)\n` +
      `for i in range(1, ${N} + 1):\n` +
      `    log.info('line %05d of the job', i)\n` +
      `    with open('a.log', 'a') as f: f.write(f'a {i}\\n')\n` +
      `    time.sleep(0.01)\n` +
      `print('end', flush=True)\n`;
    fs.writeFileSync(path.join(work, 'job.py'), job);
    const lines = (): number => readText(path.join(work, 'a.log')).split('\n').length - 1;
    await cycles(scope, { name: 'rotating log', program: [realPython(), path.join(work, 'job.py')], work, units: lines, ahead: 40, cycles: [{}, {}], done: () => readText(path.join(work, 'log')).includes('end\n') });
    const rotated = fs.readdirSync(work).filter((f) => /^app\.log\.\d+$/.test(f)).sort((a, b) => Number(b.split('.')[2]) - Number(a.split('.')[2]));
    assert.ok(rotated.length > 10, `the log was rotated (${rotated.length} times)`);
    const all = [...rotated, 'app.log'].map((f) => readText(path.join(work, f))).join('');
    assert.is(all, Array.from({ length: N }, (_, i) => `line ${String(i + 1).padStart(5, '0')} of the job\n`).join(''), 'every line once, in order, across the rotated logs');
  } finally {
    await scope.cleanup();
  }
});

test('a state file a job replaces atomically (mkstemp, write, rename over it) and scratch files it makes with mkstemp: checkpoint, kill -9, restart; twice: the job finds the state and the scratch files as at the checkpoint, and ends', async () => {
  const scope = new Scope('files-replaced');
  try {
    const work = scope.dir('work');
    const N = 150;
    const lines = (): number => readText(path.join(work, 'a.log')).split('\n').length - 1;
    await cycles(scope, {
      name: 'replaced',
      program: exampleProgram('replaced', [work, String(N)]),
      work,
      units: lines,
      ahead: 20,
      cycles: [{}, {}],
      done: () => readText(path.join(work, 'log')).includes('end\n'),
    });
    assert.not.match(readText(path.join(work, 'log')), /FAIL|error:/, 'the job found its files as it left them');
    assert.is(readText(path.join(work, 'a.log')), Array.from({ length: N }, (_, i) => `a ${i + 1}\n`).join(''), 'a.log has every line once');
    assert.is(readText(path.join(work, 'state')), `${N}\n`);
    assert.is(fs.readdirSync(work).filter((f) => f.startsWith('scratch-')).length, N, 'one scratch file per step');
    assert.is(fs.readdirSync(work).filter((f) => f.startsWith('state.')).length, 0, 'no temporary state file left');
  } finally {
    await scope.cleanup();
  }
});

// ---- the policy the user sees ---------------------------------------------------

test('--files-max: a checkpoint beyond it fails naming the file and its size, the program runs on; inspect lists the files a generation saved', async () => {
  const scope = new Scope('files-max');
  try {
    const work = scope.dir('work');
    const big = path.join(work, 'big.bin');
    const job = `import os, time\nfd = os.open(${JSON.stringify(big)}, os.O_RDWR | os.O_CREAT, 0o600)\nos.pwrite(fd, b'x' * (3 << 20), 0)\nprint('ready', flush=True)\nfor i in range(400):\n    os.pwrite(fd, b'%06d' % i, 0)\n    print(f'step {i}', flush=True)\n    time.sleep(0.02)\n`;
    const ck = scope.ckptDir('ck');
    const p = scope.launch({ program: [realPython(), '-c', job], dir: ck, extra: ['--files-max', '1M'], label: 'ckrun --files-max 1M' });
    await p.waitForLine('ready');
    const r = await ckrun(['checkpoint', '--dir', ck]);
    assert.is(r.code, 1, r.describe());
    assert.match(r.stderr, /more than --files-max 1 MiB: .*big\.bin \(3 MiB\)/, r.describe());
    const at = p.lines.length;
    await p.waitFor(() => p.lines.length > at + 3, 'the program to run on after the refused checkpoint');
    assert.ok(p.running, 'the program runs on');
    await kill9Session(p, ck, 'files-max');

    const q = scope.launch({ program: [realPython(), '-c', job], dir: ck, label: 'ckrun (default --files)' });
    await q.waitForLine('ready');
    const gen = await checkpoint(ck);
    const shown = await ckrun(['inspect', gen]);
    assert.match(shown.stdout, /Written files: put back as they were at the checkpoint \(--files=snapshot\)/, shown.describe());
    assert.match(shown.stdout, new RegExp(`${big.replace(/[.]/g, '\\.')}\\s+3 MiB\\s+content\\s+3 MiB`), shown.describe());
    await kill9Session(q, ck, 'files inspect');
  } finally {
    await scope.cleanup();
  }
});

test('an empty log the program holds open for appending and removes after the checkpoint (DMTCP syscall-tester): the restart makes it again, empty, and the program goes on; twice', async () => {
  const scope = new Scope('files-empty-log');
  try {
    const work = scope.dir('work');
    const log = path.join(work, 'empty.log');
    const go = path.join(work, 'go');
    const job =
      `import os, time\nfd = os.open(${JSON.stringify(log)}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)\nprint('ready', flush=True)\n` +
      `while not os.path.exists(${JSON.stringify(go)}): time.sleep(0.02)\n` +
      `os.unlink(${JSON.stringify(log)})\nprint('removed', flush=True)\ntime.sleep(0.3)\n` +
      `os.write(fd, b'x')\nprint('end', os.fstat(fd).st_size, flush=True)\n`;
    const ck = scope.ckptDir('ck');
    let p = scope.launch({ program: [realPython(), '-c', job], dir: ck, label: 'ckrun empty log' });
    await p.waitForLine('ready');
    for (const round of [1, 2]) {
      await checkpoint(ck);
      fs.writeFileSync(go, '');
      await until(p, () => p.lines.includes('removed'), 'the log removed');
      await kill9Session(p, ck, `empty log, round ${round}`);
      fs.rmSync(go);
      assert.not.ok(fs.existsSync(log), 'the log is gone before the restart');
      p = scope.restart({ dir: ck, label: `ckrun restart ${round} (empty log)` });
      await until(p, () => fs.existsSync(log), 'the log made again');
      assert.is(fs.statSync(log).size, 0, 'made again empty');
    }
    fs.writeFileSync(go, '');
    assert.is((await p.waitExit()).code, 0, p.describe());
    assert.ok(p.lines.includes('end 1'), p.describe());
  } finally {
    await scope.cleanup();
  }
});

test('a link planted on the way to a written file after the checkpoint: restart refuses before any process exists and writes nothing through it', async () => {
  const scope = new Scope('files-link');
  try {
    const work = scope.dir('work');
    const sub = scope.dir('work/sub');
    const victim = scope.dir('victim');
    const job = `import os, time\nfd = os.open(${JSON.stringify(path.join(sub, 'data.bin'))}, os.O_RDWR | os.O_CREAT, 0o600)\nos.pwrite(fd, b'program data\\n' * 100, 0)\nprint('ready', flush=True)\nfor i in range(400):\n    os.pwrite(fd, b'%06d' % i, 0)\n    time.sleep(0.02)\n`;
    const ck = scope.ckptDir('ck');
    const p = scope.launch({ program: [realPython(), '-c', job], dir: ck, label: 'ckrun link' });
    await p.waitForLine('ready');
    await checkpoint(ck);
    await kill9Session(p, ck, 'link');
    fs.writeFileSync(path.join(victim, 'data.bin'), 'not the program\'s\n');
    fs.renameSync(sub, `${sub}.moved`);
    fs.symlinkSync(victim, sub);
    const r = scope.restart({ dir: ck, label: 'ckrun restart (planted link)' });
    const st = await r.waitExit();
    assert.is.not(st.code, 0, r.describe());
    assert.match(r.stderr, /symbolic link on the way/, r.describe());
    assert.is(fs.readFileSync(path.join(victim, 'data.bin'), 'utf8'), "not the program's\n", 'nothing was written through the link');
  } finally {
    await scope.cleanup();
  }
});

test('--files=size only cuts a written file back to its checkpoint size at restart; --files=none leaves it as it is', async () => {
  const scope = new Scope('files-policy');
  try {
    for (const policy of ['size', 'none'] as const) {
      const work = scope.dir(`work-${policy}`);
      const file = path.join(work, 'data.bin');
      const job = `import os, time\nfd = os.open(${JSON.stringify(file)}, os.O_RDWR | os.O_CREAT, 0o600)\nos.pwrite(fd, b'A' * 8192, 0)\nprint('ready', flush=True)\nwhile not os.path.exists(${JSON.stringify(path.join(work, 'go'))}): time.sleep(0.02)\nos.pwrite(fd, b'B' * 16384, 0)\nprint('changed', flush=True)\nwhile True: time.sleep(0.05)\n`;
      const ck = scope.ckptDir(`ck-${policy}`);
      const p = scope.launch({ program: [realPython(), '-c', job], dir: ck, extra: [`--files=${policy}`], label: `ckrun --files=${policy}` });
      await p.waitForLine('ready');
      const gen = await checkpoint(ck);
      fs.writeFileSync(path.join(work, 'go'), '');
      await p.waitForLine('changed');
      await kill9Session(p, ck, `--files=${policy}`);
      assert.not.ok(fs.existsSync(path.join(gen, 'files')), `--files=${policy} saves no content`);
      fs.unlinkSync(path.join(work, 'go')); // the restarted program waits for it again: the file is as the restart left it
      const r = scope.restart({ dir: ck, extra: ['-v'], label: `ckrun restart (--files=${policy})` });
      await r.waitFor(() => /process \d+ restored/.test(r.stderr), 'the restarted program');
      const now = fs.readFileSync(file);
      if (policy === 'size') assert.ok(now.equals(Buffer.alloc(8192, 'B')), `--files=size: cut to 8192 bytes, not rolled back (${now.length} bytes, starts ${now.subarray(0, 1).toString()})`);
      else assert.ok(now.equals(Buffer.alloc(16384, 'B')), `--files=none: left as it was (${now.length} bytes)`);
      await kill9Session(r, ck, `restart --files=${policy}`);
    }
  } finally {
    await scope.cleanup();
  }
});

// ---- holes, times, a file removed after the checkpoint, a refusal ------------

test('a file with holes rewritten in place and grown, a scratch file removed after the checkpoint: the restarted program finds both as they were (content, holes, size, mtime, mode); twice; damaged saved data is refused before any file is touched (a generation named), or passed over with a warning for the older one (restart --dir)', async () => {
  const scope = new Scope('files-state');
  try {
    const work = scope.dir('work');
    const ck = scope.ckptDir('ck');
    const sparse = path.join(work, 'sparse.bin');
    let p = scope.launch({ program: [realPython(), path.join(EXAMPLES, 'filestate.py'), work, '2'], dir: ck, label: 'ckrun filestate' });
    await p.waitForLine('ready');
    for (const n of [1, 2]) {
      const gen = await checkpoint(ck);
      fs.writeFileSync(path.join(work, `go-${n}`), '');
      await p.waitForLine(`changed ${n}`);
      await kill9Session(p, ck, `filestate round ${n}`);
      if (n === 2) {
        // a damaged table: the restart refuses, and leaves every file as it is
        const before = fs.readFileSync(sparse);
        const tab = fs.readdirSync(path.join(gen, 'files')).find((f) => f.endsWith('.tab'))!;
        const tabPath = path.join(gen, 'files', tab);
        const good = fs.readFileSync(tabPath);
        const bad = Buffer.from(good);
        bad[0] = bad[0]! ^ 0xff;
        fs.writeFileSync(tabPath, bad);
        const refused = scope.restart({ image: gen, label: 'ckrun restart GEN (damaged)' });
        const st = await refused.waitExit();
        assert.is.not(st.code, 0, `a restart from a damaged table must refuse\n${refused.describe()}`);
        assert.match(refused.stderr, /fails its checksum/, 'the refusal names the damage');
        assert.ok(fs.readFileSync(sparse).equals(before), 'the refused restart left the file as it was');
        // restart --dir: generation 1 instead, saying why
        const older = scope.restart({ dir: ck, label: 'ckrun restart --dir (damaged newest)' });
        await older.waitForLine('changed 1');
        assert.match(older.stderr, /cannot use generation \S+\/2: the files saved with \S+\/2 are damaged: .*fails its checksum/, older.describe());
        assert.match(older.stderr, /restarting from \S+\/1 instead/, older.describe());
        await kill9Session(older, ck, 'filestate from generation 1');
        fs.writeFileSync(tabPath, good);
      }
      p = scope.restart({ dir: ck, label: `ckrun restart ${n}` });
      await p.waitForLine(`changed ${n}`);
      const check = p.lines.find((l) => l.startsWith(`check ${n} `));
      assert.is(check, `check ${n} ok`, `after restart ${n} the program found its files as at the checkpoint\n${p.describe()}`);
    }
    await p.waitForLine('done');
    const st = await p.waitExit();
    assert.is(st.code, 0, p.describe());
  } finally {
    await scope.cleanup();
  }
});

test.run();
