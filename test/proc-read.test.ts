// A program that has read part of its own /proc/self/smaps: a read on lists
// the mappings after the last one shown, from the process as it is, and a
// restarted process's list is not the same byte for byte (more mappings, image files
// behind its memory), so reading on at the saved offset would skip or repeat
// mappings without the program noticing (it did: memory-attrs found its
// regions "not mapped" after restarts that caught it mid-read). A checkpoint
// refuses while such a file is read part way, tries again while the program
// runs on, and fails naming the descriptor when it stays so; once the
// program closed it, checkpoint, kill -9 and restart work.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { python3 } from './lib/examples.js';
import { generations } from './lib/images.js';
import { lastLine } from './lib/lines.js';
import { Scope } from './lib/scope.js';

const PROGRAM = `
import os, sys, time
release = os.path.join(sys.argv[1], 'release')
f = open('/proc/self/smaps', 'rb', buffering=0)
head = f.read(200)
print('held', len(head), flush=True)
s = 0
while not os.path.exists(release):
    s += 1
    print('step', s, flush=True)
    time.sleep(0.05)
rest = f.read()
f.close()
print('closed', flush=True)
while not os.path.exists(os.path.join(sys.argv[1], 'finish')):
    s += 1
    print('step', s, flush=True)
    time.sleep(0.05)
print('done', flush=True)
`;

test('a /proc file read part way: the checkpoint refuses naming it, the program runs on; closed, it checkpoints and restarts', async () => {
  const scope = new Scope('proc-read');
  try {
    const ckpt = scope.ckptDir();
    const work = scope.dir('work');
    const s = scope.launch({ dir: ckpt, program: [python3(), '-c', PROGRAM, work], label: 'ckrun python3 (smaps held open)' });
    await s.waitForLine(/^held 200$/);
    await s.waitForStep(2);

    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is(r.code, 1, r.describe());
    assert.match(
      r.stderr,
      /a \/proc list of mappings is read part way: descriptor \d+ \(\/proc\/\d+\/smaps, at byte 200\): a restart lists the restored process's mappings, which are not the same byte for byte, so the program would read on at another line; checkpoint again once the program has closed it; the program runs on \(tried \d+ times/,
      r.stderr,
    );
    assert.equal(generations(ckpt), [], 'a refused checkpoint leaves no generation');
    const at = s.maxStep;
    await s.waitForStep(at + 3);

    fs.writeFileSync(path.join(work, 'release'), '');
    await s.waitForLine('closed');
    await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 2);
    await scope.kill9(s);

    const r1 = scope.restart({ dir: ckpt, label: 'restart' });
    await r1.waitForStep(s.maxStep + 2);
    fs.writeFileSync(path.join(work, 'finish'), '');
    const exit = await r1.waitExit();
    assert.is(exit.code, 0, r1.describe());
    assert.is(lastLine(r1.lines), 'done', r1.describe());
  } finally {
    await scope.cleanup();
  }
});

test.run();
