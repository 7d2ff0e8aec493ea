// Descriptor kinds the zdtm file tests found wrong (issue 12): each
// program checks its own state after every restart and prints "FAIL: ..."
// when something is off; the cycle is launch, checkpoint mid-work, kill
// -9, restart, verify, twice, then the program runs to its end.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { cycle, kindProgram, refused } from './lib/filekinds.js';
import type { Proc } from './lib/proc.js';
import type { Scope } from './lib/scope.js';

/** A program that runs steps until DIR/release exists: checkpointed at two points, released after the second restart. */
function releasedAfterSecondRestart(name: 'fifos' | 'kinds' | 'deleted' | 'mqueue', doneLine: string, expect: string[] = [], args: string[] = []) {
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

test('deleted while open: holes, size, owner, mode and times of a deleted file, and a write-only one; twice', async () => {
  await releasedAfterSecondRestart('deleted', 'deleted: done', ['sparse: content and holes kept']);
});

test('memfd seals and exec flag, O_PATH descriptors of a file, a directory and a symlink, a deleted directory and a deleted cwd; twice', async () => {
  await releasedAfterSecondRestart('kinds', 'kinds: done', ['kinds: memfd content and seals kept']);
});

test('POSIX message queue: attributes, mode, two descriptions with their own flags, messages in priority order; twice', async () => {
  await releasedAfterSecondRestart('mqueue', 'mqueue: done', ['mqueue: messages kept in order'], [`/ckrun-test-${process.pid}`]);
});

test('chroot: a process in a chroot is refused at the checkpoint, naming it, and runs on', async () => {
  await refused({
    name: 'chroot',
    program: kindProgram('chroot', ['.']),
    message: /process \d+ runs in a chroot \(its \/ is not ckrun's\)/,
    release: (work) => path.join(work, 'jail', 'release'),
  });
});

test('fanotify: a fanotify descriptor is refused at the checkpoint, naming it, and the program runs on', async () => {
  await refused({
    name: 'fanotify',
    program: kindProgram('fanotify', ['.']),
    message: /descriptor \d+ \(anon_inode:\[fanotify\]\) is a fanotify descriptor/,
    release: (work) => path.join(work, 'release'),
  });
});

test.run();
