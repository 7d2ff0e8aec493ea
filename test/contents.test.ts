// Mapped files identified by content (docs/design.md, "Files identified by
// content"): a program checkpointed, its executable, its library and the
// data file it maps replaced by copies (another inode, another time, the
// same bytes), kill -9, restart works — twice; a copy with one byte changed
// is refused by name and nothing runs. The same for a python3 interpreter
// (a copy of the system's, in the test's directory) replaced by a copy.
// With --portable, the generation's own copies stand in for files that are
// gone or changed.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { python3 } from './lib/examples.js';
import { EXAMPLES } from './lib/paths.js';
import type { Proc } from './lib/proc.js';
import { Scope } from './lib/scope.js';
import { readManifest } from '../src/generations.js';

const STEPS = 160;

/** examples/mapped.c and its library, built into dir (the library beside the executable, found by $ORIGIN). */
function buildMapped(dir: string): { exe: string; lib: string; data: string } {
  const gcc = (args: string[]): void => {
    try {
      execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`building examples/mapped failed (gcc is required):\n${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
    }
  };
  const lib = path.join(dir, 'libmapped.so');
  const exe = path.join(dir, 'mapped');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(EXAMPLES, 'mapped-lib.c')]);
  gcc(['-o', exe, path.join(EXAMPLES, 'mapped.c'), `-L${dir}`, '-lmapped', '-Wl,-rpath,$ORIGIN']);
  const data = path.join(dir, 'data.bin');
  const bytes = Buffer.alloc(16 * 4096);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + (i >> 12) * 7 + 3) & 0xff;
  fs.writeFileSync(data, bytes);
  return { exe, lib, data };
}

/**
 * Puts a copy of `file` in its place (written beside it, renamed over it):
 * another inode and a modification time a day older; with `flip`, one byte
 * of the copy changed (the same size).
 */
function replaceByCopy(file: string, flip?: number): void {
  const before = fs.statSync(file);
  const bytes = fs.readFileSync(file);
  if (flip !== undefined) bytes[flip] ^= 0x01;
  const tmp = `${file}.copy`;
  fs.writeFileSync(tmp, bytes, { mode: before.mode & 0o7777 });
  fs.chmodSync(tmp, before.mode & 0o7777);
  const old = new Date(before.mtimeMs - 86_400_000);
  fs.utimesSync(tmp, old, old);
  fs.renameSync(tmp, file);
  const after = fs.statSync(file);
  if (after.ino === before.ino || after.mtimeMs === before.mtimeMs) throw new Error(`test setup: ${file} was not replaced by another file`);
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** The restarted program's step lines must be the uninterrupted run's. */
function sameSteps(p: Proc, ref: string[], what: string): void {
  const step = (l: string): string | undefined => /^step (\d+) /.exec(l)?.[1];
  const refStep = new Map(ref.map((l) => [step(l), l]));
  for (const line of p.lines) {
    const n = step(line);
    if (n !== undefined && refStep.get(n) !== line)
      throw new Error(`${what}: step ${n} printed ${JSON.stringify(line)}, the uninterrupted run ${JSON.stringify(refStep.get(n))}\n${p.describe()}`);
  }
}

test('mapped files: an executable, its library and a mapped data file replaced by copies restart; a changed copy is refused by name', async () => {
  const scope = new Scope('contents');
  try {
    const work = scope.dir('work');
    const ckpt = scope.ckptDir('ckpt');
    const { exe, lib, data } = buildMapped(work);
    // the uninterrupted run, meanwhile (not a stray of a refused restart; on a slow machine it still runs then)
    const uninterrupted = promisify(execFile)(exe, [data, String(STEPS)], { encoding: 'utf8' });
    uninterrupted.catch(() => undefined); // awaited below; a failure before that must not end the whole file
    const reference = uninterrupted.child.pid;
    let p = scope.launch({ dir: ckpt, program: [exe, data, String(STEPS)], cwd: work, label: 'ckrun mapped' });
    const restarted: Proc[] = [];
    for (const stage of [1, 2] as const) {
      await p.waitForStep(p.maxStep + 15);
      const gen = await checkpoint(ckpt);
      const contents = (await readManifest(gen)).contents ?? [];
      for (const f of [exe, lib, data]) {
        const c = contents.find((e) => e.path === f);
        if (!c) throw new Error(`the manifest of ${gen} has no content entry for ${f}: ${contents.map((e) => e.path).join(', ')}`);
        if (Buffer.from(c.sha256).toString('hex') !== sha256(f)) throw new Error(`the manifest's SHA-256 of ${f} is not its content's`);
      }
      await p.waitForStep(p.maxStep + 2);
      await scope.kill9(p);
      for (const f of [exe, lib, data]) replaceByCopy(f);
      // the first through the fast start (which leaves a copy to node), the second through node
      p = scope.restart({ dir: ckpt, cwd: work, front: stage === 1, label: `restart ${stage} of mapped` });
      restarted.push(p);
      await p.waitForStep(p.maxStep + 5);
    }
    // a copy with one byte changed: refused, naming it, and nothing runs
    await checkpoint(ckpt);
    await scope.kill9(p);
    const good = fs.readFileSync(lib);
    replaceByCopy(lib);
    const v = await ckrun(['verify', ckpt]);
    if (v.code !== 0) throw new Error(`ckrun verify must find the generation restorable on copies\n${v.describe()}`);
    replaceByCopy(lib, 100);
    const bad = await ckrun(['verify', ckpt]);
    if (bad.code === 0 || !bad.stdout.includes(`${lib} changed since the checkpoint`))
      throw new Error(`ckrun verify must name ${lib}, changed\n${bad.describe()}`);
    const r = await ckrun(['restart', '--dir', ckpt], { front: true });
    if (r.code === 0 || !r.stderr.includes(`${lib} changed since the checkpoint`))
      throw new Error(`a restart with a changed ${lib} must be refused naming it\n${r.describe()}`);
    const strays = scope.strays().filter((s) => s.pid !== reference);
    if (strays.length) throw new Error(`the refused restart left processes: ${strays.map((s) => `${s.pid} ${s.cmdline.join(' ')}`).join('; ')}`);
    // the same bytes again (yet another inode and time): restarts and runs to its end
    fs.writeFileSync(`${lib}.good`, good, { mode: 0o755 });
    fs.renameSync(`${lib}.good`, lib);
    p = scope.restart({ dir: ckpt, cwd: work, label: 'restart 3 of mapped' });
    restarted.push(p);
    await p.waitForLine(/^mapped: done /);
    const exit = await p.waitExit();
    const ref = (await uninterrupted).stdout.trim().split('\n');
    restarted.forEach((r, i) => sameSteps(r, ref, `restart ${i + 1}`));
    if (p.lines[p.lines.length - 1] !== ref[ref.length - 1] || exit.code !== 0)
      throw new Error(`the restarted program should end as the uninterrupted run (${ref[ref.length - 1]}) with status 0\n${p.describe()}`);
  } finally {
    await scope.cleanup();
  }
});

test('--portable: the executable changed, its library and data file gone: the generation\'s copies restart it; checkpoint --portable, twice', async () => {
  const scope = new Scope('contents-portable');
  try {
    const work = scope.dir('work');
    const ckpt = scope.ckptDir('ckpt');
    const { exe, lib, data } = buildMapped(work);
    const uninterrupted = promisify(execFile)(exe, [data, String(STEPS)], { encoding: 'utf8' });
    let p = scope.launch({ dir: ckpt, program: [exe, data, String(STEPS)], cwd: work, extra: ['--portable'], label: 'ckrun --portable mapped' });
    const restarted: Proc[] = [];
    await p.waitForStep(15);
    await checkpoint(ckpt);
    await p.waitForStep(p.maxStep + 2);
    await scope.kill9(p);
    fs.renameSync(lib, `${lib}.away`);
    fs.renameSync(data, `${data}.away`);
    replaceByCopy(exe, 200);
    const shown = await ckrun(['inspect', ckpt]);
    if (!/^Portable: yes/m.test(shown.stdout)) throw new Error(`ckrun inspect must say the generation is portable\n${shown.describe()}`);
    p = scope.restart({ dir: ckpt, cwd: work, front: true, label: 'restart 1 of --portable mapped' });
    restarted.push(p);
    await p.waitForStep(p.maxStep + 10);
    // this one checkpoint portable; the restarted program maps generation 1's copies, which then go
    const r = await ckrun(['checkpoint', '--dir', ckpt, '--portable']);
    if (r.code !== 0) throw new Error(`ckrun checkpoint --portable failed\n${r.describe()}`);
    const gen2 = r.stdout.trim();
    if ((await readManifest(gen2)).portable !== true) throw new Error(`${gen2} is not portable`);
    await p.waitForStep(p.maxStep + 2);
    await scope.kill9(p);
    fs.rmSync(path.join(ckpt, '1'), { recursive: true });
    p = scope.restart({ dir: ckpt, cwd: work, label: 'restart 2 of --portable mapped' });
    restarted.push(p);
    await p.waitForLine(/^mapped: done /);
    const exit = await p.waitExit();
    const ref = (await uninterrupted).stdout.trim().split('\n');
    restarted.forEach((r, i) => sameSteps(r, ref, `portable restart ${i + 1}`));
    if (p.lines[p.lines.length - 1] !== ref[ref.length - 1] || exit.code !== 0)
      throw new Error(`the restarted program should end as the uninterrupted run (${ref[ref.length - 1]}) with status 0\n${p.describe()}`);
  } finally {
    await scope.cleanup();
  }
});

test('python3: a copy of the interpreter in place of the one checkpointed restarts, twice', async () => {
  const scope = new Scope('contents-python');
  try {
    const work = scope.dir('work');
    const ckpt = scope.ckptDir('ckpt');
    const py = path.join(work, 'python3');
    fs.copyFileSync(fs.realpathSync(python3()), py);
    fs.chmodSync(py, 0o755);
    const script = path.join(EXAMPLES, 'loop.py');
    const uninterrupted = promisify(execFile)(py, [script], { encoding: 'utf8' });
    let p = scope.launch({ dir: ckpt, program: [py, script], cwd: work, label: 'ckrun python3 copy' });
    const restarted: Proc[] = [];
    for (const stage of [1, 2] as const) {
      await p.waitForStep(p.maxStep + 20);
      await checkpoint(ckpt);
      await p.waitForStep(p.maxStep + 2);
      await scope.kill9(p);
      replaceByCopy(py);
      p = scope.restart({ dir: ckpt, cwd: work, label: `restart ${stage} of python3` });
      restarted.push(p);
      await p.waitForStep(p.maxStep + 5);
    }
    await p.waitForLine(/^loop\.py: done /);
    const exit = await p.waitExit();
    const ref = (await uninterrupted).stdout.trim().split('\n');
    restarted.forEach((r, i) => sameSteps(r, ref, `python3 restart ${i + 1}`));
    if (p.lines[p.lines.length - 1] !== ref[ref.length - 1] || exit.code !== 0)
      throw new Error(`the restarted python3 should end as the uninterrupted run with status 0\n${p.describe()}`);
  } finally {
    await scope.cleanup();
  }
});

test.run();
