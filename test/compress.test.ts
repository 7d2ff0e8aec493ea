// Compressed checkpoints (issue 5, `--compress`): with --compress every
// image becomes `<pid>.ckpt.gz` once complete, full and self-contained;
// restart decompresses it into a hidden temporary file beside it, removed
// once the program runs again; a truncated or corrupted .gz is refused like
// any damaged image; a disk that fills up while compressing fails the
// checkpoint cleanly.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine, stepOf } from './lib/lines.js';
import { runNative } from './lib/proc.js';
import { findProcesses } from './lib/processes.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { generations, imagesOf, readImage, readManifest } from './lib/images.js';
import { assertPrefix, assertResumed } from './lib/spine.js';
import { checkTreeGeneration, kill9Session, treeProgram } from './lib/tree.js';

/** Every `.restore-*` temporary image below dir. */
function temporaries(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.name.startsWith('.restore-')) out.push(p);
    else if (e.isDirectory()) out.push(...temporaries(p));
  }
  return out;
}

/** Waits (briefly) until no temporary image is left below dir: ckrun removes it right after `restored`. */
async function assertNoTemporaries(dir: string, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (temporaries(dir).length && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.equal(temporaries(dir), [], `${what}: temporary images left behind`);
}

/**
 * A compressed generation holds the manifest and one `<pid>.ckpt.gz` and
 * nothing else (no uncompressed image, no hard links to older images); the
 * .gz decompresses to a valid image, smaller than it. Returns the image's
 * uncompressed and compressed sizes.
 */
function checkCompressed(scope: Scope, gen: string, what: string): { bytes: number; gz: number } {
  const m = readManifest(gen);
  const pid = Number(m.processes?.[0]?.pid);
  const name = `${pid}.ckpt.gz`;
  assert.equal(fs.readdirSync(gen).sort(), [name, 'manifest.cbor'].sort(), `${what}: ${gen} should hold only ${name} and the manifest`);
  assert.is(m.compressed, 'gzip', `${what}: the manifest says compressed: "gzip"`);
  assert.is(m.processes?.[0]?.image, name, `${what}: the manifest names the .ckpt.gz`);
  const file = path.join(gen, name);
  assert.is((fs.statSync(file).mode & 0o777).toString(8), '600', `${what}: image mode`);
  const gz = fs.statSync(file).size;
  const plain = path.join(scope.dir('unpacked'), `${path.basename(gen)}-${pid}.ckpt`);
  fs.writeFileSync(plain, gunzipSync(fs.readFileSync(file)));
  const img = readImage(plain);
  assert.ok(img.headerCrcOk && img.metaCrcOk, `${what}: the decompressed image has valid checksums`);
  assert.is(Number(img.header.file_length), img.size, `${what}: the decompressed image is complete`);
  assert.equal(img.meta.images, [], `${what}: a compressed image refers to no other image`);
  assert.ok(gz < img.size, `${what}: compressed (${gz} bytes) should be smaller than the image (${img.size} bytes)`);
  assert.is(Number(m.processes?.[0]?.bytes), img.size, `${what}: the manifest's bytes are the image's size`);
  return { bytes: img.size, gz };
}

test('--compress: compressed checkpoints restart exactly; the restarted program is checkpointed compressed again', async () => {
  const scope = new Scope('compress');
  try {
    const program = exampleProgram('counter');
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();

    const s1 = scope.launch({ dir: ckpt, program, extra: ['--compress'] });
    await s1.waitForStep(40);
    const req1 = s1.lines.length;
    const g1 = await checkpoint(ckpt);
    const sizes = checkCompressed(scope, g1, 'first checkpoint');
    await s1.waitForStep(s1.maxStep + 1); // it runs on
    await scope.kill9(s1);
    const ref = await refRun;
    assert.is(ref.code, 0, ref.stderr);
    assertPrefix(s1, ref.lines, 'the compressed run');

    // inspect reads .ckpt.gz files and generations holding them
    const gz = imagesOf(g1)[0]!;
    const ins = await ckrun(['inspect', gz]);
    assert.is(ins.code, 0, ins.describe());
    assert.match(ins.stdout, /compressed with gzip/, ins.stdout);
    assert.match(ins.stdout, /data checksums verified/, ins.stdout);
    const json = await ckrun(['inspect', g1, '--json']);
    assert.is(json.code, 0, json.describe());
    const parsed = JSON.parse(json.stdout) as { images: { path: string; compressed?: string; size: number; header: { file_length: number } }[] };
    assert.is(parsed.images[0]!.compressed, 'gzip');
    assert.is(parsed.images[0]!.path, gz);
    assert.is(parsed.images[0]!.size, sizes.gz);
    assert.is(parsed.images[0]!.header.file_length, sizes.bytes);
    assert.equal(temporaries(ckpt), [], 'inspect leaves no temporary image');

    // restart from it, compressing again
    const r1 = scope.restart({ dir: ckpt, extra: ['--compress'] });
    await r1.waitForStep(100);
    const k1 = assertResumed({ beforeLines: s1.lines, requestedAt: req1, after: r1, ref: ref.lines, complete: false, what: 'first restart' });
    await assertNoTemporaries(ckpt, 'after the first restart');
    const req2 = r1.lines.length;
    const g2 = await checkpoint(ckpt);
    checkCompressed(scope, g2, 'checkpoint of the restarted program');
    await r1.waitForStep(r1.maxStep + 1);
    await scope.kill9(r1);

    // restart the directly named .ckpt.gz, without --compress: it runs to the end
    const r2 = scope.restart({ image: imagesOf(g2)[0]! });
    const ex = await r2.waitExit();
    assert.is(ex.code, 0, r2.describe());
    const before2 = ref.lines.slice(0, k1).concat(r1.lines);
    assertResumed({ beforeLines: before2, requestedAt: k1 + req2, after: r2, ref: ref.lines, complete: true, what: 'second restart' });
    assert.is(lastLine(r2.lines), lastLine(ref.lines), "the final state is an uninterrupted run's");
    await assertNoTemporaries(ckpt, 'after the second restart');
    assert.equal(generations(ckpt), [1, 2]);
  } finally {
    await scope.cleanup();
  }
});

test('restart --compress from an uncompressed checkpoint: the next image is compressed and self-contained', async () => {
  const scope = new Scope('compress-mixed');
  try {
    const program = exampleProgram('dirty', ['--mib', '16', '--steps', '200']);
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const s1 = scope.launch({ dir: ckpt, program });
    await s1.waitForStep(20);
    const req1 = s1.lines.length;
    const g1 = await checkpoint(ckpt);
    assert.ok(imagesOf(g1)[0]!.endsWith('.ckpt'), 'without --compress the image is not compressed');
    await scope.kill9(s1);
    const ref = await refRun;

    // the restarted program maps most of its memory from g1's image: a plain
    // checkpoint would refer to that image; a compressed one holds it all
    const r1 = scope.restart({ dir: ckpt, extra: ['--compress=6'] });
    await r1.waitForStep(60);
    const k1 = assertResumed({ beforeLines: s1.lines, requestedAt: req1, after: r1, ref: ref.lines, complete: false, what: 'first restart' });
    const req2 = r1.lines.length;
    const g2 = await checkpoint(ckpt);
    checkCompressed(scope, g2, 'compressed checkpoint of a program restarted from a plain image');
    await scope.kill9(r1);

    fs.rmSync(g1, { recursive: true }); // g2 needs nothing from it
    const r2 = scope.restart({ dir: ckpt });
    const ex = await r2.waitExit();
    assert.is(ex.code, 0, r2.describe());
    assertResumed({
      beforeLines: ref.lines.slice(0, k1).concat(r1.lines),
      requestedAt: k1 + req2,
      after: r2,
      ref: ref.lines,
      complete: true,
      what: 'restart from the compressed image',
    });
    assert.is(lastLine(r2.lines), lastLine(ref.lines));
    await assertNoTemporaries(ckpt, 'after the restarts');
  } finally {
    await scope.cleanup();
  }
});

test('a family (parent, children, pipes, shared memory, zombie) checkpointed compressed restarts exactly, twice', async () => {
  const scope = new Scope('compress-family');
  try {
    const program = treeProgram('family');
    const refRun = runNative(program);
    const ckpt = scope.ckptDir();
    const checkGen = (gen: string, n: number, what: string): void => {
      const m = checkTreeGeneration(gen, n, 3, what);
      assert.is(readManifest(gen).compressed, 'gzip', `${what}: compressed`);
      assert.equal(
        fs.readdirSync(gen).sort(),
        [...m.processes.map((p) => `${p.pid}.ckpt.gz`), 'manifest.cbor'].sort(),
        `${what}: only compressed images and the manifest`,
      );
    };
    const s1 = scope.launch({ dir: ckpt, program, cwd: scope.dir('work'), extra: ['--compress'] });
    await s1.waitForStep(40);
    const req1 = s1.lines.length;
    checkGen(await checkpoint(ckpt), 1, 'first checkpoint');
    await s1.waitForStep(s1.maxStep + 1);
    await kill9Session(s1, ckpt, 'launched family');

    const r1 = scope.restart({ dir: ckpt, extra: ['--compress'] });
    await r1.waitFor(() => r1.lines.length >= 30, '30 lines from the restarted family');
    const req2 = r1.lines.length;
    await assertNoTemporaries(ckpt, 'after the family was restored');
    checkGen(await checkpoint(ckpt), 2, 'checkpoint of the restarted family');
    await r1.waitForStep(r1.maxStep + 1);
    await kill9Session(r1, ckpt, 'restarted family');

    const r2 = scope.restart({ dir: ckpt });
    const ex = await r2.waitExit();
    assert.is(ex.code, 0, r2.describe());
    const ref = (await refRun).lines;
    assertPrefix(s1, ref, 'family, launched run');
    const k1 = assertResumed({ beforeLines: s1.lines, requestedAt: req1, after: r1, ref, complete: false, what: 'family, first restart' });
    assertResumed({ beforeLines: ref.slice(0, k1).concat(r1.lines), requestedAt: k1 + req2, after: r2, ref, complete: true, what: 'family, second restart' });
    assert.is(lastLine(r2.lines), lastLine(ref));
    await assertNoTemporaries(ckpt, 'after the second restart');
  } finally {
    await scope.cleanup();
  }
});

test('a truncated or corrupted .ckpt.gz is refused with a clear message; nothing is left running or behind', async () => {
  const scope = new Scope('compress-bad');
  try {
    const program = exampleProgram('counter', ['--steps', '400']);
    const ckpt = scope.ckptDir();
    const s = scope.launch({ dir: ckpt, program, extra: ['--compress'] });
    await s.waitForStep(20);
    const g1 = await checkpoint(ckpt);
    await s.waitForStep(s.maxStep + 5);
    const g2 = await checkpoint(ckpt);
    await scope.kill9(s);
    const file = imagesOf(g2)[0]!;
    const good = fs.readFileSync(file);
    // ckrun restart names the directory or the image; the restore host a file in it
    const mine = (): number[] => findProcesses((p) => p.cmdline.some((a) => a.includes(ckpt))).map((p) => p.pid);

    const damage: [string, () => void][] = [
      ['truncated', () => fs.writeFileSync(file, good.subarray(0, Math.floor(good.length / 2)))],
      ['cut at its very end', () => fs.writeFileSync(file, good.subarray(0, good.length - 4))],
      [
        'corrupted',
        () => {
          const b = Buffer.from(good);
          b[Math.floor(b.length / 3)]! ^= 0x55;
          fs.writeFileSync(file, b);
        },
      ],
    ];
    for (const [how, spoil] of damage) {
      spoil();
      // restart --dir cannot use generation 2: it says so and restarts from 1 (issue 9)
      const fb = await ckrun(['restart', '--dir', ckpt], { timeout: 90_000 });
      const fbWhat = `${how}, ckrun restart --dir`;
      assert.is(fb.code, 0, `${fbWhat}: the program runs from generation 1 to its end:\n${fb.describe()}`);
      assert.ok(fb.stderr.includes(`cannot use generation ${g2}`) && fb.stderr.includes(path.basename(file)), `${fbWhat}: it says why it cannot use generation 2:\n${fb.describe()}`);
      assert.match(fb.stderr, /damaged|truncated|corrupt/i, `${fbWhat}: the reason:\n${fb.describe()}`);
      assert.ok(fb.stderr.includes(`restarting from ${g1} instead`), `${fbWhat}: it names generation 1:\n${fb.describe()}`);
      assert.match(fb.stdout, /^step \d+/m, `${fbWhat}: the program ran`);
      assert.equal(mine(), [], `${fbWhat}: nothing is left running`);
      assert.equal(temporaries(ckpt), [], `${fbWhat}: no temporary image is left behind`);
      for (const args of [['restart', file], ['restart', g2]]) {
        const r = await ckrun(args, { timeout: 60_000 });
        const what = `${how}, ckrun ${args.join(' ')}`;
        assert.ok(r.code !== 0 && r.code !== null, `${what}: restart must fail:\n${r.describe()}`);
        assert.ok(r.stderr.includes(path.basename(file)), `${what}: the message names the file:\n${r.describe()}`);
        assert.match(r.stderr, /damaged|truncated|corrupt/i, `${what}: the message says it is damaged:\n${r.describe()}`);
        assert.ok(r.stderr.includes(`ckrun restart ${g1}`) || r.stderr.includes(`${path.basename(path.dirname(g1))}/1`), `${what}: the message names the newest good generation:\n${r.describe()}`);
        assert.not.match(r.stderr, /internal error/, r.describe());
        assert.is(r.stdout, '', `${what}: the program did not run`);
        assert.equal(mine(), [], `${what}: nothing is left running`);
        assert.equal(temporaries(ckpt), [], `${what}: no temporary image is left behind`);
      }
      const i = await ckrun(['inspect', file]);
      assert.is(i.code, 1, i.describe());
      assert.ok(i.stderr.includes(path.basename(file)) && /damaged|truncated|corrupt/i.test(i.stderr), i.describe());
      assert.equal(temporaries(ckpt), [], `${how}: inspect leaves no temporary image`);
    }
    // the older generation still restarts
    fs.writeFileSync(file, good);
    const r = scope.restart({ image: g1 });
    await r.waitFor(() => r.lines.some((l) => stepOf(l) !== undefined), 'a step of the restarted program');
    await assertNoTemporaries(ckpt, 'after restarting the good generation');
    await scope.kill9(r);
  } finally {
    await scope.cleanup();
  }
});

test('a disk that fills up while an image is compressed fails the checkpoint cleanly', async () => {
  const scope = new Scope('compress-enospc');
  const ckpt = scope.ckptDir();
  try {
    // room for the image (17 MiB: 16 MiB of random data, whenever it is
    // taken) but not for it and its compressed copy (random data stays as big);
    // mode 0700: a checkpoint directory others may write to is refused
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m,mode=0700', 'tmpfs', ckpt], { stdio: 'ignore' });
  } catch (e) {
    await scope.cleanup();
    throw new Error(`this test needs a small tmpfs to fill up (mount -t tmpfs, as root), which failed: ${(e as Error).message}`);
  }
  try {
    const program = exampleProgram('dirty', ['--mib', '16', '--steps', '300']);
    const refRun = runNative(program);
    const s = scope.launch({ dir: ckpt, program, extra: ['--compress'] });
    await s.waitForStep(20);
    const r = await ckrun(['checkpoint', '--dir', ckpt]);
    assert.ok(r.code !== 0 && r.code !== null, `the checkpoint should fail on a full disk:\n${r.describe()}`);
    assert.match(r.stderr, /compress/i, `the message says compressing failed:\n${r.describe()}`);
    assert.match(r.stderr, /space|ENOSPC/i, `the message gives the reason:\n${r.describe()}`);
    assert.equal(fs.readdirSync(ckpt), [], 'nothing is left in the checkpoint directory');
    const exit = await s.waitExit();
    assert.is(exit.code, 0, s.describe());
    assert.equal(s.lines, (await refRun).lines, 'the program ran on unharmed');
  } finally {
    await scope.cleanup().catch(() => undefined);
    try {
      execFileSync('umount', ['-l', ckpt], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
    fs.rmSync(scope.root, { recursive: true, force: true });
  }
});

test('--compress=LEVEL: levels 1..9 only; help explains that compressed checkpoints are full', async () => {
  for (const bad of ['0', '10', 'x', '']) {
    const r = await ckrun([`--compress=${bad}`, '--', 'true']);
    assert.is(r.code, 2, r.describe());
    assert.match(r.stderr, /--compress/, r.describe());
  }
  for (const args of [['--help'], ['restart', '--help']]) {
    const r = await ckrun(args);
    assert.match(r.stdout, /--compress\[=LEVEL\]/, r.stdout);
    assert.match(r.stdout, /full, never\s+incremental/, r.stdout);
  }
  const i = await ckrun(['inspect', '--help']);
  assert.match(i.stdout, /\.ckpt\.gz/);
});

test.run();
