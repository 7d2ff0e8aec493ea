// The checkpoint directory cannot be hijacked (issue 9): ckrun, as root,
// refuses a --dir that another user could redirect or fill — a symbolic
// link user nobody planted in a sticky shared directory, a directory
// writable by others — with a message naming the path, the reason and the
// way out, before any process exists and without writing anything there,
// on launch and on restart. A link of one's own still works.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { stepOf } from './lib/lines.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations } from './lib/images.js';
import { asUser, NOBODY, NOGROUP } from './lib/users.js';

function needRoot(): void {
  if (process.geteuid?.() !== 0) throw new Error('this test plants directories as user nobody against root, which needs root: run npm test as root');
}

/** Every entry below dir (relative paths), to show that nothing was written there. */
function contents(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

/** A shared sticky directory (like /tmp) in which user nobody planted `ck -> attacker/` (mode 0777). */
async function plantedLink(scope: Scope): Promise<{ shared: string; link: string; attacker: string }> {
  fs.chmodSync(scope.root, 0o755);
  const shared = scope.dir('shared');
  fs.chmodSync(shared, 0o1777);
  const attacker = path.join(shared, 'attacker');
  const link = path.join(shared, 'ck');
  const r = await asUser(NOBODY, NOGROUP, `set -e; mkdir -m 0777 '${attacker}'; chmod 0777 '${attacker}'; ln -s '${attacker}' '${link}'`);
  assert.is(r.code, 0, `user nobody should be able to plant the link:\n${r.stderr}`);
  assert.is(fs.lstatSync(link).uid, NOBODY, 'the link is nobody\'s');
  return { shared, link, attacker };
}

/** A complete generation of the counter example, in a directory of root's own. */
async function goodGeneration(scope: Scope): Promise<string> {
  const dir = scope.ckptDir('good');
  const p = scope.launch({ program: exampleProgram('counter', ['--steps', '100000']), dir });
  await p.waitForStep(5);
  const gen = await checkpoint(dir);
  await scope.kill9(p);
  return gen;
}

/** A link of one's own to one's own directory is followed; missing directories are created 0700. */
async function ownLinkWorks(scope: Scope): Promise<void> {
  const real = scope.dir('real');
  const mine = path.join(scope.root, 'mine');
  fs.symlinkSync(real, mine);
  const p = scope.launch({ program: exampleProgram('counter', ['--steps', '100000']), dir: mine });
  await p.waitForStep(5);
  const g1 = await checkpoint(mine);
  assert.is(path.dirname(fs.realpathSync(g1)), real, `the generation is in the link's target (${g1})`);
  await checkpoint(real); // one session, whichever name is used
  assert.equal(generations(real), [1, 2]);
  await scope.kill9(p);

  const fresh = path.join(scope.root, 'new', 'deeper', 'ck');
  const q = scope.launch({ program: exampleProgram('counter', ['--steps', '100000']), dir: fresh });
  await q.waitForStep(3);
  await checkpoint(fresh);
  for (const d of [path.join(scope.root, 'new'), path.join(scope.root, 'new', 'deeper'), fresh])
    assert.is((fs.statSync(d).mode & 0o777).toString(8), '700', `${d} is created 0700`);
  await scope.kill9(q);
}

test('a --dir linked by another user through a sticky shared directory is refused, on launch and on restart, and nothing is written through it; a link of your own works', async () => {
  needRoot();
  const scope = new Scope('trust-link');
  try {
    const { link, attacker } = await plantedLink(scope);
    const program = exampleProgram('counter', ['--steps', '100000']);

    const launched = scope.launch({ program, dir: link });
    const ex = await launched.waitExit();
    assert.is(ex.code, 1, `ckrun should refuse the directory:\n${launched.describe()}`);
    const said = launched.stderr;
    assert.match(said, `refusing checkpoint directory ${link}: it is a symbolic link owned by nobody (uid 65534)`, said);
    assert.match(said, /which that user can point anywhere; use a directory you own/, said);
    assert.ok(!launched.lines.some((l) => stepOf(l) !== undefined || /start|constructor/.test(l)), `the program must never have started:\n${launched.describe()}`);

    // a directory below the link is refused for the link on its path
    const below = path.join(link, 'sub');
    const r = await ckrun(['--dir', below, '--', ...program]);
    assert.is(r.code, 1, r.describe());
    assert.match(r.stderr, `refusing checkpoint directory ${below}: its path goes through ${link}, a symbolic link owned by nobody (uid 65534)`, r.describe());

    // restart writes further checkpoints to --dir: the same rules, before any process exists
    const gen = await goodGeneration(scope);
    for (const front of [false, true]) {
      const rs = scope.restart({ image: gen, extra: ['--dir', link], front });
      const rex = await rs.waitExit();
      assert.is(rex.code, 1, `restart${front ? ' (bin/ckrun)' : ''} should refuse the directory:\n${rs.describe()}`);
      assert.match(rs.stderr, `refusing checkpoint directory ${link}: it is a symbolic link owned by nobody`, rs.describe());
      assert.ok(!rs.lines.some((l) => stepOf(l) !== undefined), `the program must not have run again:\n${rs.describe()}`);
    }
    assert.equal(contents(attacker), [], 'nothing may be written through the link');

    await ownLinkWorks(scope);
  } finally {
    await scope.cleanup();
  }
});

test('a --dir writable by others, or below a directory writable by others, or owned by another user, is refused and left untouched', async () => {
  needRoot();
  const scope = new Scope('trust-mode');
  try {
    const program = exampleProgram('counter', ['--steps', '100000']);
    const open = scope.dir('open');
    fs.chmodSync(open, 0o777);
    const group = scope.dir('group');
    fs.chmodSync(group, 0o770);
    const theirs = scope.dir('theirs');
    fs.chownSync(theirs, NOBODY, NOGROUP);
    const cases: [string, string][] = [
      [open, `refusing checkpoint directory ${open}: it is writable by its group and others (mode 0777), who could rename your checkpoints and plant their own; chmod go-w it or choose another --dir`],
      [group, `refusing checkpoint directory ${group}: it is writable by its group (mode 0770)`],
      [path.join(open, 'ck'), `refusing checkpoint directory ${path.join(open, 'ck')}: ${open} on its path is writable by its group and others (mode 0777) and not sticky`],
      [theirs, `refusing checkpoint directory ${theirs}: it is owned by nobody (uid 65534), not by you (uid 0)`],
    ];
    for (const [dir, message] of cases) {
      const r = await ckrun(['--dir', dir, '--', ...program]);
      assert.is(r.code, 1, r.describe());
      assert.ok(r.stderr.includes(message), `expected the message\n  ${message}\n${r.describe()}`);
      assert.not.match(r.stdout + r.stderr, /^step /m, 'the program must never have started');
    }
    for (const dir of [open, group, theirs]) assert.equal(contents(dir), [], `nothing may be written into ${dir}`);

    // restart's target directory: the same
    const gen = await goodGeneration(scope);
    const rs = scope.restart({ image: gen, extra: ['--dir', open], front: true });
    const rex = await rs.waitExit();
    assert.is(rex.code, 1, rs.describe());
    assert.match(rs.stderr, `refusing checkpoint directory ${open}: it is writable by its group and others (mode 0777)`, rs.describe());
    assert.equal(contents(open), [], 'restart wrote nothing there either');
  } finally {
    await scope.cleanup();
  }
});

test.run();
