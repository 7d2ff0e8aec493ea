// Descriptor kinds the zdtm file tests found wrong (issue 12): each
// program checks its own state after every restart and prints "FAIL: ..."
// when something is off; the cycle is launch, checkpoint mid-work, kill
// -9, restart, verify, twice, then the program runs to its end.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { checkpoint } from './lib/ckrun.js';
import { cycle, kindProgram, refused } from './lib/filekinds.js';
import { Scope as TestScope } from './lib/scope.js';
import { NOBODY, NOGROUP, asUser } from './lib/users.js';
import type { Proc } from './lib/proc.js';
import type { Scope } from './lib/scope.js';

/** A program that runs steps until DIR/release exists: checkpointed at two points, released after the second restart. */
function releasedAfterSecondRestart(name: 'fifos' | 'kinds' | 'deleted' | 'mqueue' | 'fanotify', doneLine: string, expect: string[] = [], args: string[] = []) {
  let work = '';
  return cycle({
    name,
    program: kindProgram(name, ['.', ...args]),
    doneLine,
    async ready(p: Proc, stage: 0 | 1, scope: Scope) {
      if (stage === 0) work = path.dirname(scope.dir('work/x'));
      await p.waitForStep(p.maxStep + 5);
    },
    async verify(p: Proc, stage: 1 | 2) {
      await p.waitForStep(p.maxStep + 5);
      if (stage === 2) {
        fs.writeFileSync(path.join(work, 'release'), '');
        await p.waitForLine(doneLine);
        for (const l of expect) await p.waitForLine(l, 1000);
      }
    },
  });
}

test('pipes and FIFOs: separate descriptions of one end stay separate with their own flags; named FIFOs with their bytes in flight; twice', async () => {
  await releasedAfterSecondRestart('fifos', 'fifos: done', [
    'pipe: 27 bytes in flight kept',
    'fifo f: 25 bytes in flight kept',
    'fifo g: 25 bytes in flight kept',
  ]);
});

test('deleted while open: holes, size, owner, mode and times of a deleted file, a write-only one, one in three descriptions of two processes (one inode), an O_TMPFILE file; twice', async () => {
  await releasedAfterSecondRestart('deleted', 'deleted: done', ['sparse: content and holes kept']);
});

test('memfd seals and exec flag (execveat after a restart), a memfd in two descriptions, O_PATH descriptors of a file, a directory, a symlink and a removed symlink, a deleted directory (one also removed with its parent), a deleted cwd also open as a descriptor, and its own /proc/self/fdinfo of another descriptor kept open; twice', async () => {
  await releasedAfterSecondRestart('kinds', 'kinds: done', ['kinds: memfd content and seals kept']);
});

test('POSIX message queue: attributes, mode, two descriptions with their own flags, messages in priority order, and a queue removed while open; twice', async () => {
  await releasedAfterSecondRestart('mqueue', 'mqueue: done', ['mqueue: messages kept in order', 'mqueue: removed queue kept its messages'], [`/ckrun-test-${process.pid}`]);
});

test('chroot: a process in a chroot is refused at the checkpoint, naming it, and runs on', async () => {
  await refused({
    name: 'chroot',
    program: kindProgram('chroot', ['.']),
    message: /process \d+ runs in a chroot \(its \/ is not ckrun's\)/,
    release: (work) => path.join(work, 'jail', 'release'),
  });
});

test('fanotify: a notification group with a mark on a directory comes back and reports opens; twice', async () => {
  await releasedAfterSecondRestart('fanotify', 'fanotify: done', ['fanotify: the mark reports opens']);
});

test('attack: links planted (as nobody) where a root session\'s deleted directory and working directory were are never followed by its restart', async () => {
  const scope = new TestScope('kinds-attack');
  try {
    fs.chmodSync(scope.root, 0o755);
    const ckpt = scope.ckptDir('ckpt');
    const work = scope.dir('work');
    fs.chmodSync(work, 0o1777);
    const victim = scope.dir('victim');
    fs.chmodSync(victim, 0o755);
    const p = scope.launch({ dir: ckpt, program: kindProgram('kinds', ['.']), cwd: work, label: 'ckrun kinds' });
    await p.waitForStep(5);
    await checkpoint(ckpt);
    await scope.kill9(p);
    const planted = await asUser(NOBODY, NOGROUP, `ln -s ${victim} ${work}/cwd && ln -s ${victim} ${work}/gone`);
    if (planted.code !== 0) throw new Error(`nobody could not plant the links: ${planted.stderr}`);
    const r = scope.restart({ dir: ckpt, cwd: work, label: 'restart over planted links' });
    const exit = await r.waitExit();
    if (exit.code === 0 || !/the working directory \S+\/cwd was deleted at the checkpoint, and ckrun cannot make it again/.test(r.stderr))
      throw new Error(`the restart should refuse, naming the working directory\n${r.describe()}`);
    const st = fs.statSync(victim);
    if (st.uid !== 0 || (st.mode & 0o7777) !== 0o755 || fs.readdirSync(victim).length !== 0)
      throw new Error(`the restart changed the directory the links point to: owner ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}`);
    if (!fs.lstatSync(path.join(work, 'cwd')).isSymbolicLink()) throw new Error('the planted link was replaced');
  } finally {
    await scope.cleanup();
  }
});

test.run();
