// Fuzzing stays (issue 9). For a short bounded time each:
//
// - the libFuzzer targets of the restore host's parsers (fuzz/: the image
//   checks ck_image_read and the manifest checks ck_manifest_parse), built
//   with Debian's clang: no crash, no sanitizer report, no hang;
// - a property test of ckrun's own reader: random mutations of real images
//   (a counter, a python3 program, a family: bit flips, byte overwrites,
//   truncations, insertions; raw, and with the checksums made valid again
//   so that the checks behind them are reached) and of real manifests give
//   either a valid image or a clean ImageError / ManifestError, never
//   another exception or a hang;
// - the two readers agree where it matters: an image the restore host's
//   checks accept (`ckrun-restore --check`), ckrun's reader accepts too (the
//   fast restart in C runs the program before node reads the image).
//
// CKRUN_FUZZ_SECONDS (default 5) sets the time of each; README.md says how
// to fuzz longer.
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManifestError, parseManifest } from '../src/generations.js';
import { ImageError, readImage } from '../src/image.js';
import { EXAMPLE_BIN, ROOT } from './lib/paths.js';
import { buildExamples, exampleProgram } from './lib/examples.js';
import { checkpoint } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { cborDecode, crc32c } from './lib/cbor.js';
import { HEADER_BLOCK, imagesOf, readHeaderBlock, rewriteHeader } from './lib/images.js';
import { treeProgram, until } from './lib/tree.js';

const SECONDS = Number(process.env.CKRUN_FUZZ_SECONDS ?? 5);
const HOST = path.join(ROOT, 'build', 'Release', 'ckrun-restore');
const scope = new Scope('fuzz');

// ------------------------------------------------------------ libFuzzer targets

for (const target of ['image', 'manifest'])
  test(`libFuzzer: the restore host's ${target} parser survives ${SECONDS} s of fuzzing (no crash, no sanitizer report, no hang)`, () => {
    try {
      execFileSync('make', ['-C', path.join(ROOT, 'fuzz'), path.join(ROOT, 'build', 'fuzz', `fuzz-${target}`)], { stdio: 'pipe' });
    } catch (e) {
      const out = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e);
      throw new Error(`building the fuzz target failed (needs Debian's clang and libclang-rt-14-dev, test/lib/requirements.ts):\n${out}`);
    }
    let log = '';
    try {
      log = execFileSync('make', ['-s', '-C', path.join(ROOT, 'fuzz'), `run-${target}`, `SECONDS=${SECONDS}`], {
        stdio: 'pipe',
        timeout: (SECONDS + 120) * 1000,
        env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0:quarantine_size_mb=64' },
      }).toString();
    } catch (e) {
      const err = e as { stdout?: Buffer; stderr?: Buffer; signal?: string };
      const out = `${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}`;
      throw new Error(`the ${target} fuzz target found a problem${err.signal ? ` (${err.signal})` : ''}:\n${out.slice(-6000)}`);
    }
    assert.ok(true, log);
  });

// ------------------------------------------------------------ the TypeScript reader

/** A small deterministic PRNG (xorshift32): every failure prints its seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

interface Real {
  what: string;
  image: string;
  bytes: Buffer;
  manifest: Buffer;
}

let reals: Real[] | undefined;
async function realImages(): Promise<Real[]> {
  if (reals) return reals;
  buildExamples();
  const out: Real[] = [];
  const take = async (what: string, program: string[], enough: (lines: string[]) => boolean): Promise<void> => {
    const ckpt = scope.ckptDir(what);
    const s = scope.launch({ dir: ckpt, program, cwd: scope.dir(`${what}-work`), label: `ckrun ${what}` });
    await until(s, () => enough(s.lines), `${what} at work`);
    const gen = await checkpoint(ckpt);
    await scope.kill9(s);
    for (const image of imagesOf(gen))
      out.push({ what: `${what} ${path.basename(image)}`, image, bytes: fs.readFileSync(image), manifest: fs.readFileSync(path.join(gen, 'manifest.cbor')) });
  };
  await take('counter', [path.join(EXAMPLE_BIN, 'counter'), '--steps', '100000'], (l) => l.length >= 10);
  await take('python', exampleProgram('loop.py'), (l) => l.length >= 3);
  await take('family', treeProgram('family', ['--steps', '100000']), (l) => l.length >= 10);
  reals = out;
  return out;
}

type Mutation = { kind: string; at: number; apply(b: Buffer): Buffer };

/** One random change to the bytes of a file. */
function mutate(b: Buffer, r: () => number, from = 0, to = b.length): Mutation {
  const at = from + Math.floor(r() * Math.max(1, to - from));
  const k = Math.floor(r() * 5);
  if (k === 0) {
    const bit = Math.floor(r() * 8);
    return { kind: `flip bit ${bit}`, at, apply: (x) => (x[at] !== undefined && (x[at]! ^= 1 << bit), x) };
  }
  if (k === 1) {
    const v = Math.floor(r() * 256);
    return { kind: `byte := ${v}`, at, apply: (x) => (x[at] !== undefined && (x[at] = v), x) };
  }
  if (k === 2) {
    const v = [0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x3b, 0x5f, 0x7f, 0x9f, 0xbf, 0xff][Math.floor(r() * 13)]!;
    return { kind: `CBOR head := ${v}`, at, apply: (x) => (x[at] !== undefined && (x[at] = v), x) };
  }
  if (k === 3) return { kind: 'truncate', at, apply: (x) => x.subarray(0, at) };
  const n = 1 + Math.floor(r() * 16);
  return { kind: `insert ${n} bytes`, at, apply: (x) => Buffer.concat([x.subarray(0, at), Buffer.alloc(n, 0xa5), x.subarray(at)]) };
}

/** The image with its metadata changed and its checksums made valid again. */
function resealed(orig: Buffer, file: string, r: () => number): { bytes: Buffer; what: string } {
  fs.writeFileSync(file, orig);
  const { header } = readHeaderBlock(file);
  const off = Number(header.meta_offset);
  const meta = Buffer.from(orig.subarray(off));
  const m = mutate(meta, r);
  const changed = m.apply(Buffer.from(meta));
  fs.writeFileSync(file, Buffer.concat([orig.subarray(0, off), changed]));
  rewriteHeader(file, (h) => {
    h.meta_length = changed.length;
    h.meta_crc = crc32c(changed);
    h.file_length = off + changed.length;
  });
  return { bytes: fs.readFileSync(file), what: `metadata ${m.kind} at ${m.at}, checksums valid` };
}

/** The image with its header map changed and the header block's checksum made valid again. */
function resealedHeader(orig: Buffer, r: () => number): { bytes: Buffer; what: string } {
  const { value, end } = cborDecode(orig.subarray(0, HEADER_BLOCK));
  const map = (value as [Buffer, number])[0];
  const m = mutate(map, r);
  const changed = m.apply(Buffer.from(map));
  const pair = Buffer.concat([Buffer.from([0x82, 0x59, changed.length >> 8, changed.length & 0xff]), changed, Buffer.from([0x1a, 0, 0, 0, 0])]);
  pair.writeUInt32BE(crc32c(changed), pair.length - 4);
  if (pair.length > HEADER_BLOCK) return { bytes: Buffer.from(orig), what: 'nothing (header too long)' };
  const block = Buffer.alloc(HEADER_BLOCK);
  pair.copy(block);
  void end;
  return { bytes: Buffer.concat([block, orig.subarray(HEADER_BLOCK)]), what: `header map ${m.kind} at ${m.at}, checksum valid` };
}

/** readImage must settle within 20 s with an Image or an ImageError. */
async function readsCleanly(file: string, what: string): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`readImage hung on ${what}`)), 20_000);
  });
  try {
    await Promise.race([readImage(file, { verifyData: true }), hang]);
    return true;
  } catch (e) {
    if (e instanceof ImageError) return false;
    throw new Error(`readImage threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} on ${what} (not an ImageError)`);
  } finally {
    clearTimeout(timer);
  }
}

test(`ckrun's reader: random mutations of real images for ${SECONDS} s give a valid image or a clean ImageError`, async () => {
  const images = await realImages();
  const dir = scope.dir('mutated');
  const file = path.join(dir, 'm.ckpt');
  const seed = Number(process.env.CKRUN_FUZZ_SEED ?? Date.now() % 100000);
  const r = rng(seed);
  const end = Date.now() + SECONDS * 1000;
  let n = 0;
  let accepted = 0;
  while (Date.now() < end || n < 50) {
    const real = images[n % images.length]!;
    let bytes: Buffer;
    let what: string;
    if (r() < 0.5) {
      // anywhere, but the header block and the metadata more often than the (large) data area
      const { header } = readHeaderBlock(real.image);
      const region = Math.floor(r() * 3);
      const [from, to] = region === 0 ? [0, HEADER_BLOCK] : region === 1 ? [Number(header.meta_offset), real.bytes.length] : [0, real.bytes.length];
      const m = mutate(real.bytes, r, from, to);
      bytes = m.apply(Buffer.from(real.bytes));
      what = `${m.kind} at ${m.at}`;
    } else ({ bytes, what } = resealed(real.bytes, file, r));
    fs.writeFileSync(file, bytes);
    if (await readsCleanly(file, `${real.what}: ${what} (seed ${seed}, case ${n})`)) accepted++;
    n++;
  }
  assert.ok(n >= 50, `${n} mutations`);
  process.stdout.write(`  (${n} mutated images, ${accepted} still valid, seed ${seed})\n`);
});

test(`ckrun's reader: random mutations of real manifests for ${Math.ceil(SECONDS / 2)} s give a manifest or a clean ManifestError`, async () => {
  const images = await realImages();
  const seed = Number(process.env.CKRUN_FUZZ_SEED ?? Date.now() % 100000);
  const r = rng(seed + 1);
  const end = Date.now() + (SECONDS / 2) * 1000;
  let n = 0;
  while (Date.now() < end || n < 200) {
    const orig = images[n % images.length]!.manifest;
    // the framed map with a valid checksum half of the time: the checks behind it
    let bytes: Buffer;
    const m = mutate(orig, r);
    if (r() < 0.5) bytes = m.apply(Buffer.from(orig));
    else {
      const inner = cborDecode(orig).value as [Buffer, number];
      const changed = mutate(inner[0], r).apply(Buffer.from(inner[0]));
      bytes = Buffer.concat([Buffer.from([0x82, 0x5a]), Buffer.from([0, 0, 0, 0]), changed, Buffer.from([0x1a, 0, 0, 0, 0])]);
      bytes.writeUInt32BE(changed.length, 2);
      bytes.writeUInt32BE(crc32c(changed), bytes.length - 4);
    }
    try {
      parseManifest(`manifest of case ${n}`, bytes, '1');
    } catch (e) {
      if (!(e instanceof ManifestError))
        throw new Error(`parseManifest threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} (seed ${seed}, case ${n}, ${m.kind} at ${m.at})`);
    }
    n++;
  }
});

/** `ckrun-restore --check --no-verify-data FILE`: 0 when the restore host's checks accept it. */
function hostAccepts(file: string): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile(HOST, ['--check', '--no-verify-data', file], { timeout: 20_000 }, (err, _o, stderr) => resolve({ ok: !err, out: stderr }));
  });
}

test(`the restore host accepts no mutated image ckrun's reader refuses (${Math.ceil(SECONDS / 2)} s)`, async () => {
  const images = await realImages();
  const dir = scope.dir('differential');
  const seed = Number(process.env.CKRUN_FUZZ_SEED ?? Date.now() % 100000);
  const r = rng(seed + 2);
  const end = Date.now() + (SECONDS / 2) * 1000;
  let n = 0;
  let both = 0;
  while (Date.now() < end || n < 40) {
    const real = images[n % images.length]!;
    // beside the real image: the files it refers to are found as a restart finds them
    const file = path.join(path.dirname(real.image), `.mutated-${n}.ckpt`);
    const kind = r();
    let bytes: Buffer;
    let what: string;
    if (kind < 0.6) ({ bytes, what } = resealed(real.bytes, path.join(dir, 'tmp.ckpt'), r));
    else if (kind < 0.85) ({ bytes, what } = resealedHeader(real.bytes, r));
    else {
      const { header } = readHeaderBlock(real.image);
      const m = mutate(real.bytes, r, 0, r() < 0.5 ? HEADER_BLOCK : Number(header.meta_offset) + Number(header.meta_length));
      bytes = m.apply(Buffer.from(real.bytes));
      what = `${m.kind} at ${m.at}`;
    }
    fs.writeFileSync(file, bytes);
    try {
      const host = await hostAccepts(file);
      let reader = true;
      let why = '';
      try {
        await readImage(file, { verifyData: false });
      } catch (e) {
        if (!(e instanceof ImageError)) throw e;
        reader = false;
        why = e.message;
      }
      if (host.ok && !reader)
        throw new Error(`the restore host accepts an image ckrun's reader refuses (${real.what}: ${what}; seed ${seed}, case ${n}): ${why}`);
      if (host.ok) both++;
    } finally {
      fs.rmSync(file, { force: true });
    }
    n++;
  }
  process.stdout.write(`  (${n} mutations, ${both} accepted by both)\n`);
});

test.after(async () => {
  await scope.cleanup();
});

test.run();
