// Directory snapshots (issue 12, `--snapshot-dir`): a program whose state is
// a directory tree (examples/snapdir_tree.py: files made, rewritten,
// removed and closed each step, subdirectories with links, one file kept
// open and rewritten in place) is checkpointed, runs on, is killed -9 and
// restarted; twice, the second time from the restarted program. The
// program checks its own tree at every step (content, mode, mtime, links,
// files made after the checkpoint gone) and prints a digest of the tree at
// the end, which must be an uninterrupted run's. Between kill and restart a
// name in the tree is replaced by a link to a file outside it: the restart
// never writes through it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkpoint, ckrun, launch } from './lib/ckrun.js';
import { python3 } from './lib/examples.js';
import { EXAMPLES, T_STEP } from './lib/paths.js';
import { Proc, sleep } from './lib/proc.js';
import { logged, readText } from './lib/logged.js';
import { Scope } from './lib/scope.js';
import { kill9Session } from './lib/tree.js';
import { asUser, NOBODY, NOGROUP } from './lib/users.js';

const STEPS = 120;
const PROGRAM = path.join(EXAMPLES, 'snapdir_tree.py');

function steps(log: string): number[] {
  return [...readText(log).matchAll(/^step (\d+)$/gm)].map((m) => Number(m[1]));
}

async function until(p: Proc, pred: () => boolean, what: string, ms = T_STEP): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${p.describe()}`);
    if (!p.running) {
      await sleep(100);
      if (pred()) return;
      throw new Error(`ckrun ended while waiting for ${what}\n${p.describe()}`);
    }
    await sleep(20);
  }
}

/** The digest an uninterrupted run prints (no delay, no ckrun). */
function expectedDigest(python: string, dir: string): string {
  fs.mkdirSync(dir);
  const out = execFileSync(python, [PROGRAM, dir, String(STEPS), '0'], { encoding: 'utf8' });
  const m = /^tree ([0-9a-f]{64})$/m.exec(out);
  if (!m) throw new Error(`the uninterrupted run printed no digest:\n${out}`);
  return m[1]!;
}

test('--snapshot-dir: a tree changed, grown and shrunk after the checkpoint (files closed) is put back at restart; twice, the second time from the restarted program; a planted link is replaced, never written through', async () => {
  const scope = new Scope('snapdir');
  try {
    const python = python3();
    const work = scope.dir('work');
    const ck = scope.ckptDir('ck');
    const tree = path.join(work, 'tree');
    fs.mkdirSync(tree, { mode: 0o755 });
    const outside = path.join(work, 'outside');
    fs.writeFileSync(outside, 'not the program\'s\n');
    const want = expectedDigest(python, path.join(work, 'plain'));
    const log = path.join(work, 'log');
    let p = logged(scope, ['--dir', ck, '--snapshot-dir', tree, '--', python, PROGRAM, tree, String(STEPS), '0.02'], log, work, 'ckrun snapdir_tree');
    for (const cycle of [1, 2]) {
      const from = steps(log).length;
      await until(p, () => steps(log).length >= from + 12, `12 steps before checkpoint ${cycle}`);
      const gen = await checkpoint(ck);
      const at = steps(log).length;
      await until(p, () => steps(log).length >= at + 6, `the program to run on after checkpoint ${cycle}`);
      await kill9Session(p, ck, `snapdir cycle ${cycle}`);
      if (cycle === 1) {
        const ins = await ckrun(['inspect', gen]);
        assert.match(ins.stdout, `snapshot directory ${tree}:`, ins.describe());
        const v = await ckrun(['verify', gen]);
        assert.is(v.code, 0, v.describe());
      }
      // every link of the tree pointed elsewhere (those of the checkpoint must come back as they were)
      for (const d of fs.readdirSync(tree).filter((n) => /^d\d+$/.test(n))) {
        fs.rmSync(path.join(tree, d, 'l'));
        fs.symlinkSync('elsewhere', path.join(tree, d, 'l'));
      }
      // a link planted where the program keeps its counter
      fs.rmSync(path.join(tree, 'count'));
      fs.symlinkSync(outside, path.join(tree, 'count'));
      p = logged(scope, ['restart', '--dir', ck], path.join(work, `restart${cycle}.out`), work, `ckrun restart ${cycle}`);
      const isLink = (): boolean => fs.lstatSync(path.join(tree, 'count'), { throwIfNoEntry: false })?.isSymbolicLink() ?? false;
      await until(p, () => !isLink(), `the restart to put the counter back as a file, over the planted link (cycle ${cycle})`);
      await until(p, () => steps(log).length > at, `the restarted program's first step (cycle ${cycle})`);
      assert.is(readText(outside), 'not the program\'s\n', 'the file the planted link names is untouched');
    }
    await until(p, () => /^tree /m.test(readText(log)) || /MISMATCH/.test(readText(log)), 'the program to finish', 120_000);
    const st = await p.waitExit();
    const text = readText(log);
    assert.not.match(text, /MISMATCH|Traceback/, `the program found its tree wrong:\n${text.slice(-1500)}`);
    assert.is(st.code, 0, `the restarted ckrun's status\n${p.describe()}`);
    assert.equal(steps(log), Array.from({ length: STEPS }, (_, i) => i + 1), 'every step once, in order');
    assert.match(text, `tree ${want}`, `the tree at the end is an uninterrupted run's:\n${text.slice(-300)}`);
  } finally {
    await scope.cleanup();
  }
});

test('--snapshot-dir refuses a directory another user owns or others may write, at launch; a checkpoint fails naming a subdirectory others may write, or a tree beyond --files-max; then succeeds once fixed; a restart refuses a subdirectory made writable by others after the checkpoint, where nobody planted a link', async () => {
  const scope = new Scope('snapdir-refuse');
  try {
    const open = scope.dir('open');
    fs.chmodSync(open, 0o777);
    const r = await ckrun(['--dir', scope.ckptDir('ck0'), '--snapshot-dir', open, '--', '/bin/true']);
    assert.is.not(r.code, 0, r.describe());
    assert.match(r.stderr, `refusing snapshot directory ${open}: it is writable by`, r.describe());
    const theirs = scope.dir('theirs');
    fs.chownSync(theirs, NOBODY, NOGROUP);
    const r2 = await ckrun(['--dir', scope.ckptDir('ck1'), '--snapshot-dir', theirs, '--', '/bin/true']);
    assert.is.not(r2.code, 0, r2.describe());
    assert.match(r2.stderr, `refusing snapshot directory ${theirs}: it is owned by nobody`, r2.describe());

    const tree = scope.dir('tree');
    fs.writeFileSync(path.join(tree, 'zz-big'), Buffer.alloc(8192, 1));
    fs.mkdirSync(path.join(tree, 'shared'));
    fs.chmodSync(path.join(tree, 'shared'), 0o777);
    const ck = scope.ckptDir('ck');
    const p = scope.track(launch({ dir: ck, extra: ['--snapshot-dir', tree, '--files-max', '4K'], program: ['/bin/sleep', '60'] }));
    await sleep(300);
    let c = await ckrun(['checkpoint', '--dir', ck]);
    assert.is.not(c.code, 0, c.describe());
    assert.match(c.stderr, `its subdirectory ${path.join(tree, 'shared')} is writable by its group or others`, c.describe());
    fs.chmodSync(path.join(tree, 'shared'), 0o755);
    c = await ckrun(['checkpoint', '--dir', ck]);
    assert.is.not(c.code, 0, c.describe());
    assert.match(c.stderr, `snapshot directory ${tree} holds more than --files-max 4 KiB`, c.describe());
    fs.truncateSync(path.join(tree, 'zz-big'), 1000);
    c = await ckrun(['checkpoint', '--dir', ck]);
    assert.is(c.code, 0, c.describe());
    await kill9Session(p, ck, 'the sleep session');

    // after the checkpoint a subdirectory became writable by others, and nobody planted a link there: the restart refuses, naming it
    fs.chmodSync(scope.root, 0o755);
    fs.chmodSync(path.join(tree, 'shared'), 0o777);
    const victim = path.join(scope.root, 'victim');
    fs.writeFileSync(victim, 'root\'s\n');
    const planted = await asUser(NOBODY, NOGROUP, `ln -s ${victim} ${path.join(tree, 'shared', 'evil')}`);
    assert.is(planted.code, 0, `nobody plants a link: ${planted.stderr}`);
    const rs = await ckrun(['restart', '--dir', ck]);
    assert.is.not(rs.code, 0, rs.describe());
    assert.match(rs.stderr, `its subdirectory ${path.join(tree, 'shared')} is writable by its group or others`, rs.describe());
    assert.is(readText(victim), 'root\'s\n', 'the file the planted link names is untouched');
    assert.ok(fs.lstatSync(path.join(tree, 'shared', 'evil')).isSymbolicLink(), 'a refused restart changed nothing');
  } finally {
    await scope.cleanup();
  }
});

test.run();
