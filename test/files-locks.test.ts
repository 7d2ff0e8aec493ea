// File locks (issue 12): a parent holding flock(A), a POSIX lock on B and
// an OFD lock on C, a child waiting for each; after every restart the
// parent holds them again (its own /proc/self/fdinfo), the child still
// waits (no EINTR), an outside process is refused all three; once the
// parent lets go the child gets them.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { python3 } from './lib/examples.js';
import { cycle, kindProgram } from './lib/filekinds.js';
import { EXAMPLES } from './lib/paths.js';
import type { Proc } from './lib/proc.js';

function probe(dir: string): string {
  return execFileSync(kindProgram('locks')[0], ['probe', dir], { encoding: 'utf8' }).trim();
}

test('locks: flock, POSIX and OFD locks are held again, a waiting child waits again, an outsider is refused; twice', async () => {
  let dir = '';
  const stillWaiting = (p: Proc, what: string) => {
    const got = p.lines.find((l) => l.startsWith('child: got'));
    if (got) throw new Error(`${what}: the child got a lock the parent holds: ${got}\n${p.describe()}`);
  };
  await cycle({
    name: 'locks',
    program: kindProgram('locks', ['.']),
    doneLine: 'locks: done',
    async ready(p, stage, scope) {
      if (stage === 0) {
        dir = path.dirname(scope.dir('work/x'));
        await p.waitForLine('child: waiting');
      }
      await p.waitForStep(p.maxStep + 5);
      stillWaiting(p, `stage ${stage}`);
    },
    async verify(p, stage) {
      await p.waitForStep(p.maxStep + 5);
      const r = probe(dir);
      if (r !== 'probe A held B held C held') throw new Error(`restart ${stage}: an outside process could take a lock: ${r}\n${p.describe()}`);
      stillWaiting(p, `restart ${stage}`);
      if (stage === 2) fs.writeFileSync(path.join(dir, 'release'), '');
    },
  });
});

// an outside writer: refused while the program holds sqlite's exclusive lock
const OUTSIDER = `
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    con.execute("INSERT INTO t (v) VALUES ('outsider')")
    print('outsider wrote')
except sqlite3.OperationalError as e:
    print('outsider refused:', e)
`;

test('locks: sqlite in exclusive locking mode keeps an outside writer out after each restart; twice', async () => {
  let db = '';
  const outsider = (what: string, p: Proc) => {
    const r = execFileSync(python3(), ['-c', OUTSIDER, db], { encoding: 'utf8' }).trim();
    if (r !== 'outsider refused: database is locked') throw new Error(`${what}: an outside writer was not refused: ${r}\n${p.describe()}`);
  };
  await cycle({
    name: 'sqlite-exclusive',
    program: [python3(), path.join(EXAMPLES, 'sqlite_exclusive.py'), '.'],
    doneLine: 'sqlite: done',
    async ready(p, stage, scope) {
      if (stage === 0) {
        db = path.join(path.dirname(scope.dir('work/x')), 'db.sqlite');
        await p.waitForLine('sqlite: 10 rows, exclusive');
        outsider('the launched program', p);
      }
      await p.waitForStep(p.maxStep + 5);
    },
    async verify(p, stage) {
      await p.waitForStep(p.maxStep + 5);
      outsider(`restart ${stage}`, p);
      if (stage === 2) fs.writeFileSync(path.join(path.dirname(db), 'release'), '');
    },
  });
});

test.run();
