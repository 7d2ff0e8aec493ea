// A program that has read part of its own /proc/self/smaps: a read on lists
// the mappings after the last one shown, from the process as it is, and a
// restarted process's smaps is not the same byte for byte (its counts of
// pages differ), so reading on at the saved offset would skip or repeat
// mappings without the program noticing (it did: memory-attrs found its
// regions "not mapped" after restarts that caught it mid-read). A checkpoint
// refuses while such a file is read part way, tries again while the program
// runs on, and fails naming the descriptor when it stays so; once the
// program closed it, checkpoint, kill -9 and restart work. (Its maps is the
// same text after a restart, and is read on: gaps.test.ts, mapsread.)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkpoint, ckrun } from './lib/ckrun.js';
import type { Cbor } from './lib/cbor.js';
import { editMeta, resealManifest } from './lib/craft.js';
import { python3 } from './lib/examples.js';
import { generations } from './lib/images.js';
import { lastLine } from './lib/lines.js';
import { Scope } from './lib/scope.js';

const PROGRAM = `
import os, sys, time
release = os.path.join(sys.argv[1], 'release')
f = open('/proc/self/smaps', 'rb', buffering=0)
head = f.read(200 if sys.argv[2] == 'read' else 0)
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
    const s = scope.launch({ dir: ckpt, program: [python3(), '-c', PROGRAM, work, 'read'], label: 'ckrun python3 (smaps held open)' });
    await s.waitForLine(/^held 200$/);
    await s.waitForStep(2);

    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.is(r.code, 1, r.describe());
    assert.match(
      r.stderr,
      /a \/proc list of mappings is read part way: descriptor \d+ \(\/proc\/\d+\/smaps, at byte 200\): it counts pages, which the restored process has in other numbers \(the pages a restart reads in are all there\), so the program would read on at another place of the text; checkpoint again once the program has closed it; the program runs on \(tried \d+ times/,
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

test('an image with a list of mappings read part way (from an older ckrun) is refused by restart, naming it, before any process exists', async () => {
  const scope = new Scope('proc-read-old');
  try {
    const ckpt = scope.ckptDir();
    const work = scope.dir('work');
    // opened, not read yet (offset 0): checkpointed; the image is then
    // made to say what an older ckrun wrote for one read part way
    const s = scope.launch({ dir: ckpt, program: [python3(), '-c', PROGRAM, work, 'open'], label: 'ckrun python3 (smaps open)' });
    await s.waitForLine(/^held 0$/);
    const gen = await checkpoint(ckpt);
    await scope.kill9(s);
    let edited = '';
    for (const f of fs.readdirSync(gen).filter((n) => n.endsWith('.ckpt')))
      editMeta(path.join(gen, f), (m) => {
        for (const d of m['files'] as Record<string, Cbor>[])
          if (String(d['path']).endsWith('/smaps')) {
            d['offset'] = 200;
            edited = String(d['path']);
          }
      });
    assert.ok(edited, 'the image has the smaps descriptor');
    resealManifest(gen);
    const r = await ckrun(['restart', '--dir', ckpt]);
    assert.is.not(r.code, 0, r.describe());
    assert.match(
      r.stderr,
      /descriptor \d+ \(\/proc\/\d+\/smaps\) is read part way \(at byte 200\): it counts pages, which the restored process has in other numbers \(the pages a restart reads in are all there\), so the program would read on at another place of the text; restart from another image/,
      r.describe(),
    );
    assert.is(r.stdout, '', 'the program did not run again');
    assert.equal(scope.strays(), [], 'nothing is left running');
  } finally {
    await scope.cleanup();
  }
});

test.run();
