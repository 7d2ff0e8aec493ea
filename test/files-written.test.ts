// The shim's `wrote` lines as ckrun reads them (src/files-written.ts): the
// line's form, how a file opened in several ways is kept, which file the
// newest told is, and who may have a file saved (a process that could not
// write a file never makes a restart put it back).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mayHaveWritten, parseWrote, WrittenFiles } from '../src/files-written.js';

test('wrote lines: a, t or w, device, inode and a path to the end of the line; anything else is refused', () => {
  assert.equal(parseWrote('a 2049 77 /var/log/job log.txt'), { path: '/var/log/job log.txt', dev: 2049, ino: 77, how: 'append' });
  assert.equal(parseWrote('t 1 2 /x')?.how, 'truncate');
  assert.equal(parseWrote('w 1 2 /x')?.how, 'inplace');
  for (const bad of ['x 1 2 /x', 'a 1 2 x', 'a 1 /x', 'a -1 2 /x', 'a 1 99999999999999999999 /x', ''])
    assert.is(parseWrote(bad), undefined, `'${bad}' is refused`);
});

test('a file opened in two ways is kept whole; the list is oldest told first, a file told again moving to the end', () => {
  const w = new WrittenFiles();
  w.note({ path: '/a', dev: 1, ino: 1, how: 'append' });
  w.note({ path: '/b', dev: 1, ino: 2, how: 'truncate' });
  w.note({ path: '/a', dev: 1, ino: 1, how: 'append' });
  assert.equal(
    w.list().map((f) => [f.path, f.how]),
    [
      ['/b', 'truncate'],
      ['/a', 'append'],
    ],
  );
  w.note({ path: '/b2', dev: 1, ino: 2, how: 'append' });
  assert.equal(w.list().at(-1), { path: '/b2', dev: 1, ino: 2, how: 'inplace' }, 'renamed, then appended to after a truncation: kept whole, at its new path');
  w.forget('1:1');
  assert.is(w.size, 1);
});

test("who may have a file saved: root, its owner, a writer by group or by everyone; not another user, not a file that is not the one told", () => {
  if (process.geteuid?.() !== 0) throw new Error('this test makes files of other users, which needs root: run npm test as root');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckrun-wrote-'));
  try {
    const file = (name: string, uid: number, gid: number, mode: number) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, 'x');
      fs.chownSync(p, uid, gid);
      fs.chmodSync(p, mode);
      const st = fs.statSync(p);
      return { path: p, dev: st.dev, ino: st.ino, how: 'inplace' as const };
    };
    const rootOnly = file('root', 0, 0, 0o644);
    const nobodys = file('nobody', 65534, 65534, 0o644);
    const groupW = file('group', 0, 4242, 0o664);
    const everyone = file('everyone', 0, 0, 0o666);
    const nobody = { pid: 0, uid: 65534, gid: 65534 };
    assert.ok(mayHaveWritten(rootOnly, { pid: 0, uid: 0, gid: 0 }), 'root');
    assert.not.ok(mayHaveWritten(rootOnly, nobody), "nobody, of root's file");
    assert.ok(mayHaveWritten(nobodys, nobody), 'its owner');
    assert.not.ok(mayHaveWritten(groupW, nobody), 'not in the group');
    assert.ok(mayHaveWritten(groupW, { pid: 0, uid: 65534, gid: 4242 }), 'its group');
    assert.ok(mayHaveWritten(everyone, nobody), 'written by everyone');
    assert.not.ok(mayHaveWritten({ ...nobodys, ino: nobodys.ino + 1 }, nobody), 'another inode at that path');
    assert.not.ok(mayHaveWritten(nobodys, undefined), 'a sender whose credentials are unknown');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
