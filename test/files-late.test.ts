// What a generation learns after its checkpoint (src/files-late.ts): files
// first opened for writing after it, kept into it, and files made after
// it, which a restart removes. The log's form (a line per entry, a last
// line ckrun did not finish ignored, anything else refused), the birth-time
// rule that never notes a file that was there at the checkpoint, and the
// removal that only ever takes that very file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LATE_FILES, LateFiles, readLate, removeMadeFiles } from '../src/files-late.js';
import { FilesError } from '../src/files.js';

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ckrun-late-'));
}

function birth(p: string): bigint {
  return fs.lstatSync(p, { bigint: true }).birthtimeNs;
}

/** Makes p with a birth time after since (the file system's clock is coarse: a few ms). */
function makeAfter(p: string, since: bigint): void {
  for (let i = 0; i < 200; i++) {
    fs.writeFileSync(p, 'made after');
    if (birth(p) > since) return;
    fs.rmSync(p);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
  throw new Error(`no birth time after ${since} for ${p}: does this file system record birth times?`);
}

test('kept files go into the generation, each once, with a line of the log; a new LateFiles of that generation knows them; a file born after the checkpoint is not kept', () => {
  const dir = tempDir();
  try {
    const gen = path.join(dir, 'ck', '1');
    fs.mkdirSync(gen, { recursive: true });
    const data = path.join(dir, 'data.bin');
    fs.writeFileSync(data, Buffer.alloc(10000, 7));
    const st = fs.statSync(data);
    const since = birth(data) + 1n; // the checkpoint came after data was made
    const late = new LateFiles(gen, [], since);
    const f = { path: data, dev: st.dev, ino: st.ino, how: 'inplace' as const };
    const s = late.keep(f, [path.join(dir, 'ck')]);
    assert.ok(s, 'kept');
    assert.is(s!.how, 'content');
    assert.is(s!.size, 10000);
    assert.is(late.keep(f, []), undefined, 'a second ask keeps nothing more');
    assert.equal(
      readLate(gen).saved.map((x) => x.path),
      [data],
    );
    assert.is(new LateFiles(gen, [], since).keep(f, []), undefined, 'a restarted session knows it from the log');
    // made after the checkpoint (a temporary file renamed over another): nothing to keep
    const tmp = path.join(dir, 'state.tmp');
    makeAfter(tmp, since);
    const tst = fs.statSync(tmp);
    assert.is(late.keep({ path: tmp, dev: tst.dev, ino: tst.ino, how: 'truncate' }, [path.join(dir, 'ck')]), undefined, 'a file born after the checkpoint');
    assert.equal(readLate(gen).saved.map((x) => x.path), [data], 'not in the log either');
    // in the checkpoint directory: never the program's
    const own = path.join(dir, 'ck', 'x');
    fs.writeFileSync(own, 'x');
    const ost = fs.statSync(own);
    assert.is(late.keep({ path: own, dev: ost.dev, ino: ost.ino, how: 'inplace' }, [path.join(dir, 'ck')]), undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the log: a last line without its end is ignored, a damaged line or a table not its own refuses the generation', () => {
  const dir = tempDir();
  try {
    const log = path.join(dir, LATE_FILES);
    const made = { path: '/tmp/x', dev: 1, ino: 2, btime_ns: '1796662738000000001' };
    fs.writeFileSync(log, `${JSON.stringify({ made })}\n{"made": {"path": "/tmp/y"`);
    assert.equal(readLate(dir).made, [{ path: '/tmp/x', dev: 1, ino: 2, btime_ns: 1796662738000000001n }]);
    fs.writeFileSync(log, `not json\n${JSON.stringify({ made })}\n`);
    assert.throws(() => readLate(dir), (e: unknown) => e instanceof FilesError && /damaged at line 1/.test((e as Error).message));
    const saved = { path: '/tmp/z', dev: 1, ino: 3, size: 0, mode: 0o644, uid: 0, gid: 0, atime_ns: '1', mtime_ns: '1', how: 'content', block: 4096, table: 'files/7.tab', table_crc: 0, sources: [], stored: 0 };
    fs.writeFileSync(log, `${JSON.stringify({ saved })}\n`);
    assert.throws(() => readLate(dir), (e: unknown) => e instanceof FilesError && /not one of its own/.test((e as Error).message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a made file is noted only when it was born after the checkpoint, once; a restart removes it only while its path names that very file, never through a link', () => {
  const dir = tempDir();
  try {
    const gen = path.join(dir, 'gen');
    fs.mkdirSync(gen);
    const before = path.join(dir, 'before.txt');
    fs.writeFileSync(before, 'there at the checkpoint');
    const since = birth(before);
    const made = path.join(dir, 'made.txt');
    makeAfter(made, since);
    const late = new LateFiles(gen, [], since);
    const id = (p: string): { path: string; dev: number; ino: number } => ({ path: p, dev: fs.statSync(p).dev, ino: fs.statSync(p).ino });
    assert.is(late.made(id(before), []), undefined, 'born at the checkpoint instant or before: never noted');
    assert.ok(late.made(id(made), []), 'born after: noted');
    assert.is(late.made(id(made), []), undefined, 'once');
    const noted = readLate(gen).made;
    assert.is(noted.length, 1);
    // the same path, another file: left alone; a link put at the path: not followed
    const again = path.join(dir, 'again.txt');
    fs.writeFileSync(again, 'x');
    const warnings: string[] = [];
    const other = { ...noted[0]!, path: again };
    assert.equal(removeMadeFiles([other], undefined, (l) => warnings.push(l)), [], 'another file at the path stays');
    const link = path.join(dir, 'link.txt');
    fs.symlinkSync(made, link);
    assert.equal(removeMadeFiles(noted.map((m) => ({ ...m, path: link })), undefined, (l) => warnings.push(l)), [], 'a link is not followed');
    assert.ok(fs.existsSync(made));
    assert.equal(removeMadeFiles(noted, undefined, (l) => warnings.push(l)), noted.map((m) => `${m.path} (removed: made after the checkpoint)`), 'the very file is removed');
    assert.equal(warnings, []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('entries moved after the checkpoint go back (newest first, only onto a free name), new names of old entries go while another name holds them, and a made directory goes with what was born in it after it, not with what is older', () => {
  const dir = tempDir();
  try {
    const gen = path.join(dir, 'gen');
    fs.mkdirSync(gen);
    const p = (n: string): string => path.join(dir, n);
    fs.mkdirSync(p('old-dir'));
    fs.writeFileSync(p('old-dir/f'), 'old');
    fs.writeFileSync(p('old-file'), 'old');
    fs.writeFileSync(p('kept-out'), 'old');
    const since = birth(p('kept-out'));
    const late = new LateFiles(gen, [], since);
    const id = (n: string): { dev: number; ino: number } => ({ dev: fs.lstatSync(p(n)).dev, ino: fs.lstatSync(p(n)).ino });
    // made after: a directory, a tree made elsewhere and moved into it
    let made = p('new-dir');
    for (let i = 0; i < 200; i++) {
      fs.mkdirSync(made);
      if (birth(made) > since) break;
      fs.rmdirSync(made);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
    fs.mkdirSync(p('new-dir/tree/sub'), { recursive: true });
    fs.writeFileSync(p('new-dir/tree/sub/f'), 'new');
    assert.ok(late.made({ path: made, ...id('new-dir') }, []), 'the new directory is noted');
    // moves: old-dir to new-dir/old-dir, then on to moved-dir (two moves, undone newest first); a link of old-file
    assert.ok(late.moved({ ...id('old-dir'), from: p('old-dir'), to: p('new-dir/old-dir') }, []));
    fs.renameSync(p('old-dir'), p('new-dir/old-dir'));
    assert.ok(late.moved({ ...id('new-dir/old-dir'), from: p('new-dir/old-dir'), to: p('moved-dir') }, []));
    assert.is(late.moved({ ...id('new-dir/old-dir'), from: p('new-dir/old-dir'), to: p('moved-dir') }, []), undefined, 'once');
    fs.renameSync(p('new-dir/old-dir'), p('moved-dir'));
    assert.ok(late.moved({ ...id('old-file'), from: p('old-file'), to: p('link'), link: true }, []));
    fs.linkSync(p('old-file'), p('link'));
    // an old file moved into the made directory, whose old name is taken again: it stays, and so does the directory
    assert.ok(late.moved({ ...id('kept-out'), from: p('kept-out'), to: p('new-dir/kept-out') }, []));
    fs.renameSync(p('kept-out'), p('new-dir/kept-out'));
    fs.writeFileSync(p('kept-out'), 'another');
    const warnings: string[] = [];
    const record = readLate(gen);
    const done = removeMadeFiles(record.made, undefined, (l) => warnings.push(l), record.moved);
    assert.equal(done, [`${p('link')} (removed: a name of ${p('old-file')} made after the checkpoint)`, `${p('new-dir/old-dir')} (moved back from ${p('moved-dir')})`, `${p('old-dir')} (moved back from ${p('new-dir/old-dir')})`]);
    assert.is(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings[0]!, /kept-out is taken now/);
    assert.match(warnings[1]!, /new-dir, made by the program after the checkpoint, cannot be removed \(it is not empty\)/);
    assert.is(fs.readFileSync(p('old-dir/f'), 'utf8'), 'old');
    assert.equal(fs.readdirSync(p('new-dir')), ['kept-out'], 'the tree born in it is gone, the older file stays');
    assert.is(fs.lstatSync(p('old-file')).nlink, 1);
    // the old file moved out again: the directory goes; a link whose old name is gone (link, then unlink) is moved back
    fs.rmSync(p('new-dir/kept-out'));
    fs.linkSync(p('old-file'), p('link'));
    fs.rmSync(p('old-file'));
    assert.equal(removeMadeFiles(record.made, undefined, (l) => warnings.push(l), record.moved), [`${p('old-file')} (moved back from ${p('link')})`, `${made} (removed: made after the checkpoint)`]);
    assert.ok(fs.existsSync(p('old-file')) && !fs.existsSync(p('link')), 'the entry is at its old name again');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('symbolic links there at the checkpoint that a rename replaced, or moved away and gone since, are made again with their targets', () => {
  const dir = tempDir();
  try {
    const gen = path.join(dir, 'gen');
    fs.mkdirSync(gen);
    const p = (n: string): string => path.join(dir, n);
    fs.symlinkSync('x', p('next'));
    fs.symlinkSync('y', p('latest'));
    const late = new LateFiles(gen, [], birth(p('latest')));
    const st = fs.lstatSync(p('next'));
    assert.ok(late.moved({ dev: st.dev, ino: st.ino, from: p('next'), to: p('latest') }, []));
    fs.renameSync(p('next'), p('latest'));
    fs.rmSync(p('latest'));
    const record = readLate(gen);
    assert.equal(record.moved.map((m) => [m.replaced ?? false, m.target]), [[true, 'y'], [false, 'x']]);
    const warnings: string[] = [];
    const done = removeMadeFiles([], undefined, (l) => warnings.push(l), record.moved);
    assert.equal(warnings, []);
    assert.is(done.length, 2, done.join('\n'));
    assert.is(fs.readlinkSync(p('next')), 'x');
    assert.is(fs.readlinkSync(p('latest')), 'y');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a symbolic link a rename would replace is kept only when the requesting process's user owns it", () => {
  const dir = tempDir();
  try {
    const gen = path.join(dir, 'gen');
    fs.mkdirSync(gen);
    const p = (n: string): string => path.join(dir, n);
    fs.writeFileSync(p('new'), 'x');
    fs.symlinkSync('y', p('cur'));
    const late = new LateFiles(gen, [], birth(p('cur')) > birth(p('new')) ? birth(p('cur')) : birth(p('new')));
    const st = fs.lstatSync(p('new'));
    const owner = fs.lstatSync(p('cur')).uid;
    late.moved({ dev: st.dev, ino: st.ino, from: p('new'), to: p('cur') }, [], owner + 1);
    assert.equal(readLate(gen).moved.filter((m) => m.replaced), [], "another user's link is not kept");
    late.moved({ dev: st.dev, ino: st.ino, from: p('new'), to: p('cur') }, [], owner);
    assert.equal(readLate(gen).moved.filter((m) => m.replaced).map((m) => m.target), ['y'], "its owner's request keeps it");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
