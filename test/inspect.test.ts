// Images: they follow docs/image-format.md (read with the harness's own
// CBOR/CRC code), `ckrun inspect` shows what they hold, and bad images
// (truncated, a flipped byte in header, metadata or data, wrong version)
// make `ckrun restart` fail with a message naming the image and the
// problem, leaving no process behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXAMPLE_BIN } from './lib/paths.js';
import { buildExamples, exampleProgram, inputBytes } from './lib/examples.js';
import { type NativeRun, runNative } from './lib/proc.js';
import { findProcesses } from './lib/processes.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { cborDecode, crc32c } from './lib/cbor.js';
import {
  HEADER_BLOCK,
  type Image,
  type Manifest,
  flipByte,
  imagesOf,
  readBytes,
  readHeaderBlock,
  readImage,
  readManifest,
  rewriteHeader,
  runsOf,
} from './lib/images.js';
import { assertResumed } from './lib/spine.js';

interface Taken {
  gen: string;
  image: string;
  manifest: Manifest;
  img: Image;
  lines: string[];
  requestedAt: number;
}

const scope = new Scope('inspect');
let counterCopy: string; // a private copy of the counter binary: its path identifies our processes
let refCounter: NativeRun;
let counter: Taken;
let files: Taken;
let threads: Taken;
const work = () => path.join(scope.root, 'files-work');

async function take(name: string, program: string[], step: number, cwd?: string): Promise<Taken> {
  const ckpt = scope.ckptDir(`ckpt-${name}`);
  const s = scope.launch({ dir: ckpt, program, cwd, label: `ckrun ${name}` });
  await s.waitForStep(step);
  const requestedAt = s.lines.length;
  const gen = await checkpoint(ckpt);
  await scope.kill9(s);
  const image = imagesOf(gen)[0];
  return { gen, image, manifest: readManifest(gen), img: readImage(image), lines: s.lines, requestedAt };
}

// Set up lazily and once: uvu swallows errors thrown by before() hooks, so
// every test awaits this instead (a failure then fails each test loudly).
let setup: Promise<void> | undefined;
function ready(): Promise<void> {
  setup ??= prepare();
  return setup;
}

async function prepare(): Promise<void> {
  buildExamples();
  counterCopy = path.join(scope.root, 'counter-inspect');
  fs.copyFileSync(path.join(EXAMPLE_BIN, 'counter'), counterCopy);
  fs.chmodSync(counterCopy, 0o755);
  fs.mkdirSync(work(), { recursive: true });
  fs.writeFileSync(path.join(work(), 'input.bin'), inputBytes());
  [counter, files, threads, refCounter] = await Promise.all([
    take('counter', [counterCopy], 30),
    take('files', exampleProgram('files', [path.join(work(), 'app.log'), path.join(work(), 'input.bin')]), 30, work()),
    take('threads', exampleProgram('threads'), 20),
    runNative([counterCopy]),
  ]);
  assert.is(refCounter.code, 0, refCounter.stderr);
}

test.after(async () => {
  await scope.cleanup();
});

// ------------------------------------------------------------ the format

function checkImage(t: Taken, what: string): void {
  const { img, image, manifest } = t;
  const h = img.header;
  assert.is((fs.statSync(image).mode & 0o777).toString(8), '600', `${what}: image mode`);
  assert.is(h.magic, 'ckrun-image', `${what}: magic`);
  assert.is(h.version, 1, `${what}: version`);
  assert.ok(img.headerCrcOk, `${what}: header CRC`);
  assert.ok(img.metaCrcOk, `${what}: meta_crc`);
  assert.is(Number(h.data_offset), HEADER_BLOCK, `${what}: data_offset`);
  assert.is(Number(h.data_length) % 4096, 0, `${what}: data_length is a multiple of 4096`);
  assert.is(Number(h.file_length), img.size, `${what}: file_length is the file's size`);
  assert.ok(Number(h.meta_offset) >= HEADER_BLOCK + Number(h.data_length), `${what}: metadata after the data area`);
  assert.ok(Number(h.meta_offset) + Number(h.meta_length) <= img.size, `${what}: metadata inside the file`);
  const block = readBytes(image, 0, HEADER_BLOCK);
  const used = cborDecode(block).end;
  assert.ok(block.subarray(used).every((b) => b === 0), `${what}: header block is zero-padded`);

  const m = img.meta;
  assert.is(m.version, 1, `${what}: metadata version`);
  assert.type(m.pid, 'number');
  assert.ok(Array.isArray(m.cmdline) && (m.cmdline as string[]).length > 0, `${what}: cmdline`);
  const threads = m.threads as Record<string, unknown>[];
  assert.ok(threads.some((th) => th.tid === m.pid), `${what}: the main thread has tid == pid`);
  assert.is(threads.filter((th) => th.leader === true).length, 1, `${what}: exactly one leader thread`);
  for (const th of threads) {
    const regs = th.regs as Record<string, unknown>;
    for (const r of ['rip', 'rsp', 'rax', 'eflags']) assert.ok(regs && regs[r] !== undefined, `${what}: thread ${th.tid} lacks register ${r}`);
    assert.ok(th.fs_base !== undefined && th.fs_base !== 0, `${what}: thread ${th.tid} has no thread pointer`);
  }
  // memory: address order, no overlap, runs inside the data area with correct CRCs
  const mem = m.memory as Record<string, unknown>[];
  let prevEnd = 0n;
  for (const r of mem) {
    const start = BigInt(r.start as number | bigint);
    const end = BigInt(r.end as number | bigint);
    assert.ok(start >= prevEnd && end > start, `${what}: regions out of order or overlapping at ${start.toString(16)}`);
    prevEnd = end;
  }
  assert.ok(mem.some((r) => r.kind === 'heap'), `${what}: no heap region`);
  assert.ok(mem.some((r) => r.kind === 'stack'), `${what}: no stack region`);
  assert.not.ok(mem.some((r) => r.name === '[vsyscall]'), `${what}: [vsyscall] must not be saved`);
  const dataEnd = HEADER_BLOCK + Number(h.data_length);
  let stored = 0;
  for (const run of runsOf(img)) {
    assert.is(run.offset % 4096, 0, `${what}: run at ${run.offset} not page-aligned`);
    assert.ok(run.offset >= HEADER_BLOCK && run.offset + run.pages * 4096 <= dataEnd, `${what}: run outside the data area`);
    assert.is(crc32c(readBytes(image, run.offset, run.pages * 4096)), run.crc, `${what}: run CRC at ${run.offset}`);
    stored += run.pages * 4096;
  }
  assert.ok(stored <= Number(h.data_length), `${what}: runs exceed the data area`);
  // descriptors: the session's stdio
  const fds = m.files as Record<string, unknown>[];
  for (const n of [0, 1, 2]) assert.ok(fds.some((f) => f.fd === n), `${what}: descriptor ${n} missing`);
  assert.ok(fds.filter((f) => f.kind === 'stdio').length >= 2, `${what}: stdout/stderr should be the session's stdio`);
  // the manifest
  assert.is(manifest.format, 'ckrun-session', `${what}: manifest format`);
  assert.is(manifest.version, 2, `${what}: manifest version`);
  assert.is(manifest.generation, 1, `${what}: manifest generation`);
  assert.ok(manifest.processes?.some((p) => p.pid === m.pid && p.image === path.basename(image)), `${what}: manifest lists the image`);
}

test('images follow docs/image-format.md', async () => {
  await ready();
  checkImage(counter, 'counter');
  checkImage(files, 'files');
  checkImage(threads, 'threads');
});

test('what the images hold: untouched pages are not stored, threads and descriptors are all there', async () => {
  await ready();
  // counter at step ~30 has written ~30/200 of its 64 MiB buffer
  const big = (counter.img.meta.memory as Record<string, unknown>[]).find(
    (r) => Number(BigInt(r.end as number | bigint) - BigInt(r.start as number | bigint)) >= 64 << 20,
  );
  assert.ok(big, 'counter: no region of 64 MiB');
  const size = Number(BigInt(big.end as number | bigint) - BigInt(big.start as number | bigint));
  assert.ok(Number(big.bytes) < size / 2, `counter: ${big.bytes} bytes stored for a ${size}-byte region mostly never touched`);
  assert.ok(Number(big.bytes) > 0, 'counter: the written part of the buffer is stored');

  assert.is((threads.img.meta.threads as unknown[]).length, 5, 'threads: main + 4 workers');
  const names = (threads.img.meta.threads as { comm?: string }[]).map((t) => t.comm).sort();
  assert.equal(names.slice(1), ['worker-0', 'worker-1', 'worker-2', 'worker-3'], 'threads: names');

  const fds = files.img.meta.files as Record<string, unknown>[];
  const log = fds.find((f) => String(f.path).endsWith('/app.log'));
  assert.ok(log, `files: the log is not among the descriptors: ${JSON.stringify(fds.map((f) => f.path))}`);
  assert.ok(Number(log.flags) & 0o2000, 'files: the log is O_APPEND');
  const input = fds.filter((f) => String(f.path).endsWith('/input.bin'));
  assert.is(input.length, 2, 'files: the input and its dup');
  assert.ok(input.some((f) => f.same_as !== undefined), 'files: the dup shares the open file description (same_as)');
  assert.ok(input.every((f) => Number(f.offset) > 0 && Number(f.offset) % 37 === 0), 'files: input offset');
  assert.ok(fds.some((f) => f.kind === 'deleted'), 'files: the deleted scratch file');
  assert.ok(fds.some((f) => f.kind === 'dir'), 'files: the directory descriptor');
  assert.is(files.img.meta.cwd, fs.realpathSync(work()), 'files: cwd');
  assert.is(files.img.meta.umask, 0o027, 'files: umask');
});

// ------------------------------------------------------------ ckrun inspect

function hex(v: unknown): string {
  return BigInt(v as number | bigint).toString(16);
}

test('ckrun inspect IMAGE shows program, pid, threads, regions, descriptors', async () => {
  await ready();
  for (const t of [files, threads]) {
    const r = await ckrun(['inspect', t.image]);
    assert.is(r.code, 0, r.describe());
    const out = r.stdout.toLowerCase();
    const m = t.img.meta;
    assert.ok(out.includes(String(m.pid)), `no pid ${m.pid} in:\n${r.stdout}`);
    assert.ok(out.includes(path.basename(String(m.exe)).toLowerCase()), `no program name in:\n${r.stdout}`);
    for (const th of m.threads as { tid: number }[]) assert.ok(out.includes(String(th.tid)), `thread ${th.tid} not shown`);
    for (const reg of m.memory as { start: number | bigint }[]) assert.ok(out.includes(hex(reg.start)), `region at ${hex(reg.start)} not shown`);
    assert.match(out, /r[w-][x-]|read|prot/, 'protections shown');
  }
  const r = await ckrun(['inspect', files.image]);
  assert.ok(r.stdout.includes(path.join(fs.realpathSync(work()), 'app.log')), `the log descriptor is not shown:\n${r.stdout}`);
  assert.ok(r.stdout.includes('input.bin'), 'the input descriptor is not shown');
});

/** The first value under one of the keys (searched breadth-first). */
function findKey(obj: unknown, keys: string[], pred: (v: unknown) => boolean = () => true): unknown {
  const queue: unknown[] = [obj];
  while (queue.length) {
    const o = queue.shift();
    if (!o || typeof o !== 'object') continue;
    for (const [k, v] of Object.entries(o)) if (keys.includes(k) && pred(v)) return v;
    for (const v of Object.values(o)) if (v && typeof v === 'object') queue.push(v);
  }
  return undefined;
}

test('ckrun inspect --json has pid, threads, regions, descriptors', async () => {
  await ready();
  for (const t of [counter, files, threads]) {
    const r = await ckrun(['inspect', t.image, '--json']);
    assert.is(r.code, 0, r.describe());
    let j: unknown;
    try {
      j = JSON.parse(r.stdout);
    } catch (e) {
      assert.unreachable(`--json output is not JSON (${e}):\n${r.stdout.slice(0, 500)}`);
    }
    const m = t.img.meta;
    const pid = findKey(j, ['pid'], (v) => typeof v === 'number' || typeof v === 'string');
    assert.is(Number(pid), m.pid, 'pid');
    const arr = (keys: string[]) => findKey(j, keys, Array.isArray) as unknown[] | undefined;
    assert.is(arr(['threads'])?.length, (m.threads as unknown[]).length, 'threads');
    assert.is(arr(['memory', 'regions', 'mappings'])?.length, (m.memory as unknown[]).length, 'regions');
    assert.is(arr(['files', 'descriptors', 'fds'])?.length, (m.files as unknown[]).length, 'descriptors');
  }
});

test('ckrun inspect on a missing or corrupt file: non-zero status, names the file', async () => {
  const missing = path.join(scope.root, 'no-such.ckpt');
  const r = await ckrun(['inspect', missing]);
  assert.ok(r.code !== 0 && r.code !== null, r.describe());
  assert.ok(r.stderr.includes('no-such.ckpt'), r.describe());
  const bad = path.join(scope.root, 'garbage.ckpt');
  fs.writeFileSync(bad, Buffer.alloc(10000, 0x41));
  const g = await ckrun(['inspect', bad]);
  assert.ok(g.code !== 0 && g.code !== null, g.describe());
  assert.ok(g.stderr.includes('garbage.ckpt'), g.describe());
});

// ------------------------------------------------------------ bad images

interface Variant {
  name: string;
  make: (file: string) => void;
  problem: RegExp;
}

const variants: Variant[] = [
  { name: 'truncated-half', make: (f) => fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2)), problem: /truncat|short|size|length|incomplete/i },
  { name: 'truncated-header', make: (f) => fs.truncateSync(f, 1000), problem: /truncat|short|size|length|incomplete|header/i },
  {
    name: 'flipped-header',
    make: (f) => {
      const hb = readHeaderBlock(f);
      const block = readBytes(f, 0, HEADER_BLOCK);
      const at = block.indexOf(hb.headerBytes) + Math.floor(hb.headerBytes.length / 2);
      flipByte(f, at);
    },
    problem: /header|checksum|crc|corrupt/i,
  },
  {
    name: 'flipped-metadata',
    make: (f) => {
      const { header } = readHeaderBlock(f);
      flipByte(f, Number(header.meta_offset) + Math.floor(Number(header.meta_length) / 2));
    },
    problem: /meta|checksum|crc|corrupt/i,
  },
  {
    name: 'flipped-data',
    make: (f) => {
      const runs = runsOf(readImage(f)).sort((a, b) => b.pages - a.pages);
      flipByte(f, runs[0].offset + Math.floor((runs[0].pages * 4096) / 2) + 17);
    },
    problem: /data|checksum|crc|corrupt|page/i,
  },
  {
    name: 'version-99',
    make: (f) =>
      rewriteHeader(f, (h) => {
        h.version = 99;
      }),
    problem: /version.*99|99.*version/i,
  },
];

function leftovers(image: string): string[] {
  return findProcesses((p) => p.exe === counterCopy || p.cmdline.some((a) => a.includes(image) || a.includes(counterCopy))).map(
    (p) => `${p.pid} ${p.exe} ${p.cmdline.join(' ')}`,
  );
}

async function expectRefused(args: string[], image: string, problem: RegExp, what: string, front = false): Promise<void> {
  const r = await ckrun(['restart', ...args], { timeout: 30_000, front });
  const left = leftovers(image);
  for (const l of left) process.kill(Number(l.split(' ')[0]), 'SIGKILL');
  assert.not.ok(r.timedOut, `${what}: restart hung\n${r.describe()}`);
  assert.not.ok(/^step \d+/m.test(r.stdout), `${what}: the program ran from a bad image\n${r.describe()}`);
  assert.ok(r.code !== 0 && r.code !== null, `${what}: restart should fail\n${r.describe()}`);
  assert.ok(r.stderr.includes(path.basename(image)), `${what}: the message should name the image ${path.basename(image)}\n${r.describe()}`);
  assert.match(r.stderr, problem, `${what}: the message should say what is wrong (${problem})\n${r.describe()}`);
  assert.equal(left, [], `${what}: processes left behind`);
}

test('bad images: ckrun restart IMAGE fails, names the image and the problem, leaves no process', async () => {
  await ready();
  const bad = scope.dir('bad');
  for (const v of variants) {
    const f = path.join(bad, `${v.name}.ckpt`);
    fs.copyFileSync(counter.image, f);
    v.make(f);
    await expectRefused([f], f, v.problem, v.name);
  }
});

test('bad images: ckrun restart --dir with a corrupted newest generation fails the same way', async () => {
  await ready();
  for (const v of [variants[0], variants[4]]) {
    const dir = scope.dir(`bad-dir-${v.name}`);
    const gen = path.join(dir, '1');
    fs.cpSync(counter.gen, gen, { recursive: true });
    const f = path.join(gen, path.basename(counter.image));
    v.make(f);
    await expectRefused(['--dir', dir], f, v.problem, `--dir, ${v.name}`);
  }
});

test('bad images through bin/ckrun (whose restore host starts the restart): the same refusals, nothing left running', async () => {
  await ready();
  for (const v of variants) {
    const dir = scope.dir(`bad-front-${v.name}`);
    const gen = path.join(dir, '1');
    fs.cpSync(counter.gen, gen, { recursive: true });
    const f = path.join(gen, path.basename(counter.image));
    v.make(f);
    await expectRefused(['--dir', dir], f, v.problem, `bin/ckrun restart --dir, ${v.name}`, true);
    await expectRefused([gen], f, v.problem, `bin/ckrun restart GENERATION, ${v.name}`, true);
  }
});

test('the untouched image restarts (ignoring a partial generation) and the program finishes as if never stopped', async () => {
  await ready();
  const dir = path.dirname(counter.gen);
  // a half-written generation must be ignored
  fs.mkdirSync(path.join(dir, '.9.partial'), { recursive: true });
  fs.writeFileSync(path.join(dir, '.9.partial', '1.ckpt.tmp'), 'garbage');
  const r = scope.restart({ dir });
  const exit = await r.waitExit();
  assert.is(exit.code, 0, r.describe());
  assertResumed({ beforeLines: counter.lines, requestedAt: counter.requestedAt, after: r, ref: refCounter.lines, complete: true, what: 'restart of the good image' });
  assert.equal(leftovers(counter.image), []);
});

test.run();
