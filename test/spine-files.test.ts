// files: an O_APPEND log and an input read at an advancing offset (through
// a descriptor and its dup), a deleted scratch file, cwd and umask. After
// each restart the log holds every line exactly once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { inputBytes } from './lib/examples.js';
import { spine, stepReachedBefore } from './lib/spine.js';

const LOG = 'app.log';
const INPUT = 'input.bin';

function logLines(file: string): string[] {
  const t = fs.readFileSync(file, 'utf8');
  return t.split('\n').slice(0, -1);
}

test('files: log lines exactly once, input offsets and descriptors survive checkpoint/restart, twice', async () => {
  await spine({
    name: 'files',
    example: 'files',
    setup: (d) => fs.writeFileSync(path.join(d, INPUT), inputBytes()),
    args: (d) => [path.join(d, LOG), path.join(d, INPUT)],
    first: 40,
    second: 100,
    triggers: ['cli', 'cli'],
    expectLines: [
      'fds: same dirfd: ok cwd: ok umask: 027',
      'flags: log append=1 wronly=1 cloexec in=1 dup=0',
      'scratch: open, deleted, complete',
      'rlimit nofile: 200',
      /^files: done lines=200 log=\d+ bytes input=7400 records=200 /,
    ],
    check({ stage, work, refDir, ref, resumedAt }) {
      const mine = fs.readFileSync(path.join(work, LOG), 'utf8');
      const theirs = fs.readFileSync(path.join(refDir, LOG), 'utf8');
      if (stage === 2) {
        if (mine !== theirs) {
          const a = logLines(path.join(work, LOG));
          const b = logLines(path.join(refDir, LOG));
          const dup = a.filter((l, i) => a.indexOf(l) !== i);
          throw new Error(
            `the log differs from the uninterrupted run's: ${a.length} lines instead of ${b.length}` +
              (dup.length ? `; duplicated: ${dup.slice(0, 5).join(' | ')}` : '') +
              `\n  first difference at line ${a.findIndex((l, i) => l !== b[i])}`,
          );
        }
      } else {
        // while the restarted program runs: a prefix of the final log, with
        // at least the lines of the steps before the checkpoint
        if (!theirs.startsWith(mine)) {
          const a = mine.split('\n');
          const b = theirs.split('\n');
          const i = a.findIndex((l, k) => l !== b[k]);
          throw new Error(`after the restart the log is not a prefix of the uninterrupted run's (line ${i}: ${JSON.stringify(a[i])} instead of ${JSON.stringify(b[i])}): lines duplicated or a stale tail kept`);
        }
        const n = mine.split('\n').length - 1;
        const s = stepReachedBefore(ref.lines, resumedAt);
        if (n < s) throw new Error(`after the restart the log has ${n} lines, but the checkpoint was taken after step ${s}`);
      }
      if (fs.existsSync(path.join(work, `${LOG}.scratch`)))
        throw new Error('the deleted scratch file reappeared in the directory');
    },
  });
});

test.run();
