// mmap: a file mapped MAP_SHARED and written (the file on disk must end up
// as in an uninterrupted run), another MAP_PRIVATE and written (the file
// must never change), shared anonymous memory, a PROT_NONE guard page and a
// read-only page.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { mmapPattern } from './lib/examples.js';
import { spine } from './lib/spine.js';

function sameBytes(a: Buffer, b: Buffer, what: string): void {
  if (a.equals(b)) return;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  throw new Error(`${what}: differs at byte ${i} (page ${Math.floor(i / 4096)}), sizes ${a.length} and ${b.length}`);
}

test('mmap: shared and private file mappings, shmem and protections survive checkpoint/restart, twice', async () => {
  const pattern = mmapPattern();
  await spine({
    name: 'mmap',
    example: 'mmap',
    args: (d) => [path.join(d, 'shared.bin'), path.join(d, 'private.bin')],
    first: 40,
    second: 100,
    triggers: ['cli', 'signal'],
    expectLines: ['guard: rw-p ---p r--p', /^mmap: done /],
    check({ stage, work, refDir }) {
      sameBytes(fs.readFileSync(path.join(work, 'private.bin')), pattern, `private.bin after restart ${stage} (private writes reached the file)`);
      if (stage === 2) {
        sameBytes(fs.readFileSync(path.join(refDir, 'private.bin')), pattern, 'private.bin of the uninterrupted run');
        sameBytes(
          fs.readFileSync(path.join(work, 'shared.bin')),
          fs.readFileSync(path.join(refDir, 'shared.bin')),
          'shared.bin compared with the uninterrupted run',
        );
      }
    },
  });
});

test.run();
