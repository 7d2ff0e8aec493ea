// Disk hygiene (issue 9): what an interrupted checkpoint leaves (`.N.partial`)
// is removed by the next session once no writer writes into it; `--keep N`
// keeps the newest N complete generations, every one of them restartable
// even when incremental (the images they build on are hard-linked into
// them); `--full-every K` makes every K-th image of a process a full one.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { Proc, runNative, sleep } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations, imagesOf, readImage } from './lib/images.js';
import { assertResumed } from './lib/spine.js';

function partials(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => /^\.\d+\.partial$/.test(n));
}

/** Whether the image of a generation was made incremental (the shim's own account in its metadata). */
function incremental(gen: string): boolean {
  const images = imagesOf(gen);
  assert.is(images.length, 1, `${gen} holds one image`);
  const inc = readImage(images[0]!).meta['incremental'] as Record<string, unknown> | undefined;
  return inc?.['parent_used'] === true;
}

/** PIDs of processes with a descriptor open on a file below dir. */
function openersOf(dir: string): number[] {
  const out: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(dir + '/')) {
          out.push(Number(pid));
          break;
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

/** The image file a checkpoint writer is writing in `.N.partial`, once it holds at least `bytes`; undefined when the checkpoint completed first. */
async function writerCaught(dir: string, number: number, bytes: number): Promise<string | undefined> {
  const partial = path.join(dir, `.${number}.partial`);
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    if (generations(dir).includes(number)) return undefined;
    try {
      for (const f of fs.readdirSync(partial))
        // ckrun creates <pid>.ckpt and hands it to its process; a shim
        // without it writes <pid>.ckpt.tmp
        if (/\.ckpt(\.tmp)?$/.test(f) && fs.statSync(path.join(partial, f)).size >= bytes) return path.join(partial, f);
    } catch {
      // not there yet
    }
    await sleep(2);
  }
  throw new Error(`no checkpoint writer seen writing into ${partial} within 30 s`);
}

test('kill -9 of ckrun while a large checkpoint is written: the next session removes the .partial once its writer is gone', async () => {
  const scope = new Scope('hygiene-kill');
  try {
    const dir = scope.ckptDir();
    // every image full, so that each checkpoint writes all 512 MiB
    const p = scope.launch({ program: exampleProgram('dirty', ['--mib', '512', '--steps', '100000']), dir, extra: ['--full-every', '1'] });
    await p.waitForStep(1);
    const g1 = await checkpoint(dir);
    let caught: string | undefined;
    for (let n = 2; n < 8 && !caught; n++) {
      await p.waitForStep(p.maxStep + 1);
      const request = ckrun(['checkpoint', '--dir', dir]);
      caught = await writerCaught(dir, n, 64 << 20);
      if (caught) {
        // only ckrun: its program follows it (parent-death signal, end of
        // its connection); the writer finishes on its own
        process.kill(p.pid, 'SIGKILL');
      }
      const r = await request;
      if (caught) assert.is.not(r.code, 0, `the interrupted checkpoint cannot have succeeded:\n${r.describe()}`);
    }
    assert.ok(caught, 'ckrun should have been killed while a writer was writing (every checkpoint completed before it was seen)');
    await p.waitExit();
    for (let i = 0; i < 300 && openersOf(dir).length > 0; i++) await sleep(50);
    assert.equal(openersOf(dir), [], 'the writer and the program have ended');
    const left = partials(dir);
    assert.is(left.length, 1, `the interrupted checkpoint left its .partial (${left.join(', ')})`);

    // a new session in the same directory: the restart of the newest complete generation
    const r = scope.restart({ dir, front: true, extra: ['-v'] });
    const abandoned = path.join(dir, left[0]!);
    await r.waitFor(() => r.stderr.includes(`removed ${abandoned}, left by an interrupted checkpoint`), 'the new session to say it removed the .partial');
    assert.equal(partials(dir), [], `the new session removed ${left.join(', ')} at its start`);
    await r.waitFor(() => r.lines.length >= 2, 'two lines of the restarted program');
    const g = await checkpoint(dir);
    assert.equal(partials(dir), [], 'no .partial after its first checkpoint');
    assert.ok(Number(path.basename(g)) > Number(/\d+/.exec(left[0]!)![0]), `numbering continues after the abandoned number (${g})`);
    assert.ok(fs.existsSync(g1), 'the complete generation is kept');
  } finally {
    await scope.cleanup();
  }
});

test('a .partial whose writer still holds its lock is left alone; stale ones go at the start of a session', async () => {
  const scope = new Scope('hygiene-alive');
  try {
    const dir = scope.ckptDir();
    const busyDir = path.join(dir, '.7.partial');
    const staleDir = path.join(dir, '.5.partial');
    fs.mkdirSync(busyDir, { mode: 0o700 });
    fs.mkdirSync(staleDir, { mode: 0o700 });
    const busy = path.join(busyDir, '4242.ckpt.tmp');
    fs.writeFileSync(busy, 'being written', { mode: 0o600 });
    fs.writeFileSync(path.join(staleDir, '4243.ckpt.tmp'), 'abandoned', { mode: 0o600 });
    // a writer still alive, as the shim's holds its image: flock(LOCK_EX)
    const holder = scope.track(new Proc('flock', ['--exclusive', busy, 'sleep', '600'], { label: 'flock holder' }));
    for (let i = 0; i < 200 && spawnSync('flock', ['--nonblock', busy, 'true']).status === 0; i++) await sleep(25);
    assert.is.not(spawnSync('flock', ['--nonblock', busy, 'true']).status, 0, 'the holder has the lock');

    const p = scope.launch({ program: exampleProgram('dirty', ['--mib', '8', '--steps', '100000']), dir });
    await p.waitForStep(2);
    assert.ok(!fs.existsSync(staleDir), 'the stale .5.partial is gone once the session started');
    const g8 = await checkpoint(dir);
    assert.is(path.basename(g8), '8', 'numbering continues after the partials');
    assert.ok(fs.existsSync(busy), 'the .partial a writer still writes is left alone');

    await scope.kill9(holder);
    const g9 = await checkpoint(dir);
    assert.is(path.basename(g9), '9');
    assert.equal(partials(dir), [], 'once its writer is gone, it goes before the next checkpoint');
    await scope.kill9(p);
  } finally {
    await scope.cleanup();
  }
});

test('--keep 3 over 10 incremental checkpoints leaves the 3 newest, each restartable, and the newest checkpointed again', async () => {
  if (process.geteuid?.() !== 0) throw new Error('incremental checkpoints need userfaultfd, which this test gets as root: run npm test as root');
  const scope = new Scope('hygiene-keep');
  try {
    const program = exampleProgram('dirty', ['--mib', '32', '--steps', '220']);
    const ref = (await runNative(program)).lines;
    const dir = scope.ckptDir();
    const p = scope.launch({ program, dir, extra: ['--keep', '3'] });
    const requested = new Map<number, number>();
    for (let i = 1; i <= 10; i++) {
      await p.waitForStep(4 + 3 * i);
      requested.set(i, p.lines.length);
      const g = await checkpoint(dir);
      assert.is(path.basename(g), String(i));
      assert.ok(generations(dir).length <= 3, `never more than 3 generations (after ${i}: ${generations(dir).join(', ')})`);
    }
    await scope.kill9(p);
    assert.equal(generations(dir), [8, 9, 10], 'exactly the 3 newest complete generations');
    assert.equal(partials(dir), [], 'nothing half-removed');
    for (const g of [8, 9, 10]) {
      const gen = path.join(dir, String(g));
      assert.ok(incremental(gen), `generation ${g} is incremental: it builds on generations that were removed`);
      assert.ok(fs.readdirSync(gen).some((f) => /^ref-\d+\.ckpt$/.test(f)), `generation ${g} holds the images it refers to`);
    }

    // each kept generation restarts and continues as the uninterrupted run
    for (const g of [8, 9]) {
      const r = scope.restart({ image: path.join(dir, String(g)) });
      await r.waitFor(() => r.lines.length >= 8, `8 lines from the restart of generation ${g}`);
      assertResumed({ beforeLines: p.lines, requestedAt: requested.get(g)!, after: r, ref, complete: false, what: `restart of generation ${g}` });
      await scope.kill9(r);
    }
    const r10 = scope.restart({ image: path.join(dir, '10'), extra: ['--keep', '3'] });
    await r10.waitFor(() => r10.lines.length >= 5, '5 lines from the restart of generation 10');
    const at10 = assertResumed({ beforeLines: p.lines, requestedAt: requested.get(10)!, after: r10, ref, complete: false, what: 'restart of generation 10' });
    const requested11 = at10 + r10.lines.length;
    const g11 = await checkpoint(dir);
    assert.is(path.basename(g11), '11');
    assert.equal(generations(dir), [9, 10, 11], 'the restarted session keeps 3 too');
    await r10.waitFor(() => r10.lines.length >= requested11 - at10 + 3, 'a few more lines');
    await scope.kill9(r10);

    const r11 = scope.restart({ dir });
    const ex = await r11.waitExit();
    assert.is(ex.code, 0, r11.describe());
    const before11 = [...ref.slice(0, at10), ...r10.lines];
    assertResumed({ beforeLines: before11, requestedAt: requested11, after: r11, ref, complete: true, what: 'restart of generation 11' });
    assert.is(lastLine(r11.lines), lastLine(ref), "the final state is an uninterrupted run's");
  } finally {
    await scope.cleanup();
  }
});

test('--full-every 3: every third image of a process is full, also across a restart', async () => {
  if (process.geteuid?.() !== 0) throw new Error('incremental checkpoints need userfaultfd, which this test gets as root: run npm test as root');
  const scope = new Scope('hygiene-full');
  try {
    const dir = scope.ckptDir();
    const p = scope.launch({ program: exampleProgram('dirty', ['--mib', '16', '--steps', '100000']), dir, extra: ['--full-every', '3'] });
    for (let i = 1; i <= 7; i++) {
      await p.waitForStep(2 + 2 * i);
      await checkpoint(dir);
    }
    const kinds = [1, 2, 3, 4, 5, 6, 7].map((g) => incremental(path.join(dir, String(g))));
    assert.equal(kinds, [false, true, true, false, true, true, false], 'full, incremental, incremental, full, …');
    const r = await ckrun(['inspect', path.join(dir, '4'), '--no-verify-data']);
    assert.match(r.stdout, /Incremental\s+no \(full image/, r.describe());
    await scope.kill9(p);

    // generation 5 is the second image of its chain: the restarted process's
    // next image is the third (incremental), the one after it full
    const rs = scope.restart({ image: path.join(dir, '5'), extra: ['--full-every', '3'] });
    await rs.waitFor(() => rs.lines.length >= 2, 'the restarted program runs');
    const g8 = await checkpoint(dir);
    const g9 = await checkpoint(dir);
    assert.equal([incremental(g8), incremental(g9)], [true, false], 'after a restart the chain goes on where it was');
    await scope.kill9(rs);
  } finally {
    await scope.cleanup();
  }
});

test.run();
