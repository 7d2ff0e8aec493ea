// A generation is one verified unit, and every check runs before any
// process exists (issue 9):
//
// - crafted images whose checksums are valid (a flipped bit in the header
//   block's padding, a pid of 2^64-1 or one that truncates to the real
//   pid in 32 bits, data_length 2^63, a negative run checksum, data or
//   metadata beyond the end of the file, format version 2^32+1) are
//   refused with a message, through bin/ckrun restart (whose restore host
//   restores before node starts) and through node's restart alike: no
//   crash, no hang, no process left running;
// - a family generation with one image swapped for another generation's,
//   with a flipped bit in its manifest, with an empty or no manifest, is
//   refused when named, and `restart --dir` says on stderr that it cannot
//   use it and which older generation it uses instead;
// - `ckrun verify` reports a corrupted base image once, with every
//   incremental generation it makes unrestorable.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXAMPLE_BIN } from './lib/paths.js';
import { buildExamples } from './lib/examples.js';
import { sleep } from './lib/proc.js';
import { alive, findProcesses } from './lib/processes.js';
import { type CliResult, checkpoint, ckrun } from './lib/ckrun.js';
import { Scope } from './lib/scope.js';
import { HEADER_BLOCK, generations, imagesOf, readHeaderBlock, readManifest, runsOf, readImage } from './lib/images.js';
import { editMeta, firstOwnRun, flipBit, headerEnd, resealManifest, rewriteHeader } from './lib/craft.js';
import { sessionByEnv, treeProgram, until } from './lib/tree.js';

const scope = new Scope('integrity');
let counterCopy: string; // a private copy of the counter binary: its path identifies our processes
let counterCkpt: string; // generations 1..3 of the counter: full, incremental, incremental
let counterPid: number;

let setup: Promise<void> | undefined;
function ready(): Promise<void> {
  setup ??= prepare();
  return setup;
}

async function prepare(): Promise<void> {
  buildExamples();
  counterCopy = path.join(scope.root, 'counter-integrity');
  fs.copyFileSync(path.join(EXAMPLE_BIN, 'counter'), counterCopy);
  fs.chmodSync(counterCopy, 0o755);
  counterCkpt = scope.ckptDir('counter');
  const s = scope.launch({ dir: counterCkpt, program: [counterCopy, '--steps', '100000'], label: 'ckrun counter' });
  await s.waitForStep(20);
  await checkpoint(counterCkpt);
  await s.waitForStep(s.maxStep + 5);
  await checkpoint(counterCkpt);
  await s.waitForStep(s.maxStep + 5);
  await checkpoint(counterCkpt);
  await scope.kill9(s);
  counterPid = readManifest(path.join(counterCkpt, '1')).processes![0]!.pid;
  const refs = fs.readdirSync(path.join(counterCkpt, '3')).filter((f) => f.startsWith('ref-'));
  assert.ok(refs.length > 0, `generation 3 is incremental: it refers to older images (${fs.readdirSync(path.join(counterCkpt, '3')).join(' ')})`);
}

test.after(async () => {
  await scope.cleanup();
});

/** Copies generation n of the counter into a fresh checkpoint directory of its own; returns the generation. */
function copyGeneration(name: string, n = 1): string {
  const dir = scope.ckptDir(name);
  execFileSync('cp', ['-a', path.join(counterCkpt, String(n)), path.join(dir, String(n))]);
  return path.join(dir, String(n));
}

/** Processes a refused restart may have left: the counter, or anything of the two sessions. */
function leftovers(dirs: string[]): string[] {
  const byExe = findProcesses((p) => p.exe === counterCopy).map((p) => p.pid);
  const byEnv = dirs.flatMap((d) => sessionByEnv(d));
  const pids = [...new Set([...byExe, ...byEnv, ...(alive(counterPid) && isCounter(counterPid) ? [counterPid] : [])])];
  return pids.map((pid) => `${pid} ${describe(pid)}`);
}

function isCounter(pid: number): boolean {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`) === counterCopy;
  } catch {
    return false;
  }
}

function describe(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '(gone)';
  }
}

/** Nothing of it may be running; whatever is (a failure) is killed so that the next case starts clean. */
async function assertNothingLeft(dirs: string[], what: string): Promise<void> {
  let left = leftovers(dirs);
  for (let i = 0; i < 20 && left.length; i++) {
    await sleep(100);
    left = leftovers(dirs);
  }
  for (const l of left) {
    try {
      process.kill(Number(l.split(' ')[0]), 'SIGKILL');
    } catch {
      // gone
    }
  }
  assert.equal(left, [], `${what}: processes left running after the refusal`);
}

function assertRefused(r: CliResult, names: string[], problem: RegExp, what: string): void {
  assert.not.ok(r.timedOut, `${what}: restart hung\n${r.describe()}`);
  assert.is(r.signal, null, `${what}: restart died of a signal\n${r.describe()}`);
  assert.ok(r.code !== 0 && r.code !== null, `${what}: restart must be refused\n${r.describe()}`);
  assert.not.match(r.stdout, /^step \d+/m, `${what}: the program ran\n${r.describe()}`);
  assert.not.match(r.stderr, /internal error/, `${what}\n${r.describe()}`);
  for (const n of names) assert.ok(r.stderr.includes(n), `${what}: the message names ${n}\n${r.describe()}`);
  assert.match(r.stderr, problem, `${what}: the message says what is wrong (${problem})\n${r.describe()}`);
}

/** `bin/ckrun restart GEN` (as root: its restore host restores before node starts) and `node bin/ckrun.js restart GEN`. */
async function expectRefusedBoth(gen: string, problem: RegExp, what: string): Promise<void> {
  assert.is(process.geteuid?.(), 0, 'these tests run as root (the fast restart in C takes root)');
  const image = path.basename(imagesOf(gen)[0]!);
  for (const front of [true, false]) {
    const how = `${what}, ${front ? 'bin/ckrun restart' : 'node bin/ckrun.js restart'}`;
    const r = await ckrun(['restart', gen], { front, timeout: 60_000 });
    const left = leftovers([path.dirname(gen), counterCkpt]);
    await assertNothingLeft([path.dirname(gen), counterCkpt], how);
    assertRefused(r, [image], problem, how);
    assert.equal(left, [], `${how}: processes left running`);
  }
}

// ------------------------------------------------------------ crafted images

interface Craft {
  name: string;
  make(image: string): void;
  problem: RegExp;
}

/** Crafted images, in groups: each group is one test (and fails on a ckrun without these checks). */
const crafts: Record<string, Craft[]> = {
  'a flipped bit in the header block padding': [
    {
      name: 'a flipped bit in the header block padding',
      make: (f) => flipBit(f, headerEnd(f) + 100, 3),
      problem: /padding|header/i,
    },
  ],
  'a pid out of range (2^64-1; 2^32 + the real pid)': [
    {
      name: 'pid 2^64-1',
      make: (f) =>
        editMeta(f, (m) => {
          m.pid = 2n ** 64n - 1n;
        }),
      problem: /pid|corrupt/i,
    },
    {
      name: 'a pid that is the real one in its low 32 bits',
      make: (f) =>
        editMeta(f, (m) => {
          m.pid = 2 ** 32 + Number(m.pid);
        }),
      problem: /pid|corrupt/i,
    },
  ],
  'data_length 2^63': [
    {
      name: 'data_length 2^63',
      make: (f) =>
        rewriteHeader(f, (h) => {
          (h as Record<string, unknown>).data_length = 2n ** 63n;
        }),
      problem: /layout|truncat|corrupt/i,
    },
  ],
  'a negative run checksum': [
    {
      name: 'a negative run checksum',
      make: (f) =>
        editMeta(f, (m) => {
          firstOwnRun(m)[3] = -5;
        }),
      problem: /run|corrupt|malformed/i,
    },
  ],
  'data or metadata beyond the end of the file': [
    {
      name: 'the data area beyond the end of the file',
      make: (f) =>
        rewriteHeader(f, (h) => {
          h.data_length = Number(h.data_length) + (1 << 20);
        }),
      problem: /layout|truncat|corrupt/i,
    },
    {
      name: 'the metadata beyond the end of the file',
      make: (f) =>
        rewriteHeader(f, (h) => {
          h.meta_offset = Number(h.file_length) + HEADER_BLOCK;
        }),
      problem: /layout|truncat|corrupt/i,
    },
  ],
  'format version 2^32+1': [
    {
      name: 'format version 2^32+1',
      make: (f) =>
        rewriteHeader(f, (h) => {
          h.version = 2 ** 32 + 1;
        }),
      problem: /version 4294967297/,
    },
  ],
};

for (const [group, cases] of Object.entries(crafts))
  test(`a crafted image (${group}) is refused with a message, through the C front and node alike; nothing runs, nothing crashes`, async () => {
    await ready();
    for (const c of cases) {
      const gen = copyGeneration(`craft-${c.name.replace(/[^a-z0-9]+/gi, '-')}`);
      c.make(imagesOf(gen)[0]!);
      // the manifest names the crafted image: what is tested are the checks behind the checksums
      resealManifest(gen);
      await expectRefusedBoth(gen, c.problem, c.name);
    }
  });

// ------------------------------------------------------------ a family generation as a unit

let familyCkpt: string | undefined;
/** A family checkpointed twice; generations 1 and 2 (kept pristine: each case works on a copy). */
async function family(): Promise<string> {
  if (familyCkpt) return familyCkpt;
  const ckpt = scope.ckptDir('family');
  const s = scope.launch({ dir: ckpt, program: treeProgram('family', ['--steps', '100000']), cwd: scope.dir('family-work'), label: 'ckrun family' });
  await s.waitForStep(20);
  await checkpoint(ckpt);
  await until(s, () => s.maxStep >= 40, 'step 40');
  await checkpoint(ckpt);
  await scope.kill9(s);
  for (const pid of sessionByEnv(ckpt)) process.kill(pid, 'SIGKILL');
  assert.ok((readManifest(path.join(ckpt, '2')).processes ?? []).length >= 2, 'the family has at least two processes');
  familyCkpt = ckpt;
  return ckpt;
}

/** A copy of the family's checkpoint directory (hard links kept). */
function familyCopy(ckpt: string, name: string): string {
  const dir = scope.ckptDir(name);
  fs.rmSync(dir, { recursive: true, force: true });
  execFileSync('cp', ['-a', ckpt, dir]);
  return dir;
}

/** The family must not run: nothing of either session, no process with a PID of the family. */
async function assertFamilyGone(dirs: string[], pids: number[], what: string): Promise<void> {
  let left: number[] = [];
  for (let i = 0; i < 20; i++) {
    left = [...new Set([...dirs.flatMap((d) => sessionByEnv(d)), ...pids.filter((p) => alive(p) && /family/.test(describe(p)))])];
    if (left.length === 0) break;
    await sleep(100);
  }
  for (const p of left) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
  assert.equal(left.map((p) => `${p} ${describe(p)}`), [], `${what}: processes of the family left running`);
}

interface Damage {
  name: string;
  spoil(gen: string): void;
  problem: RegExp;
}

const damages: Damage[] = [
  {
    name: "one image swapped for generation 1's",
    spoil: (gen) => {
      const m = readManifest(gen);
      const child = m.processes!.find((p) => p.pid !== m.root)!;
      fs.copyFileSync(path.join(gen, '..', '1', child.image), path.join(gen, child.image));
    },
    problem: /not the image generation .*2 was made with|replaced|mixed/,
  },
  {
    name: 'a flipped bit in the manifest',
    spoil: (gen) => {
      const f = path.join(gen, 'manifest.cbor');
      flipBit(f, Math.floor(fs.statSync(f).size / 2), 2);
    },
    problem: /manifest/,
  },
  {
    name: 'an empty manifest',
    spoil: (gen) => fs.writeFileSync(path.join(gen, 'manifest.cbor'), ''),
    problem: /manifest.*empty/,
  },
  {
    name: 'no manifest',
    spoil: (gen) => fs.rmSync(path.join(gen, 'manifest.cbor')),
    problem: /manifest/,
  },
];

for (const d of damages)
  test(`a family generation with ${d.name}: refused when named; restart --dir says it cannot use it and uses generation 1`, async () => {
    await ready();
    const pristine = await family();
    const pids = (readManifest(path.join(pristine, '2')).processes ?? []).map((p) => p.pid);
    const dir = familyCopy(pristine, `family-${d.name.replace(/[^a-z0-9]+/gi, '-')}`);
    const gen = path.join(dir, '2');
    d.spoil(gen);
    for (const front of [true, false]) {
      const how = `${d.name}, ${front ? 'bin/ckrun' : 'node bin/ckrun.js'} restart ${gen}`;
      const r = await ckrun(['restart', gen], { front, timeout: 60_000 });
      await assertFamilyGone([dir, pristine], pids, how);
      assertRefused(r, [path.basename(dir)], d.problem, how);
    }
    for (const front of [true, false]) {
      const how = `${d.name}, ${front ? 'bin/ckrun' : 'node bin/ckrun.js'} restart --dir`;
      const r = scope.restart({ dir, front, cwd: scope.dir('family-work'), label: how });
      try {
        await r.waitFor(() => r.lines.length >= 3, 'three lines of the family restarted from generation 1');
        assert.match(r.stderr, new RegExp(`cannot use generation \\S*${path.basename(dir)}/2: .*(?:${d.problem.source})`), `${how}: it says why it cannot use generation 2\n${r.describe()}`);
        assert.match(r.stderr, new RegExp(`restarting from \\S*${path.basename(dir)}/1 instead`), `${how}: it says which generation it uses\n${r.describe()}`);
      } finally {
        await scope.kill9(r);
        await assertFamilyGone([dir, pristine], pids, `${how}, after kill -9`);
      }
    }
  });

// ------------------------------------------------------------ ckrun verify

test('ckrun verify: every generation restorable; a corrupted base image is reported once, with every generation it breaks', async () => {
  await ready();
  const dir = scope.ckptDir('verify');
  fs.rmSync(dir, { recursive: true, force: true });
  execFileSync('cp', ['-a', counterCkpt, dir]);
  const good = await ckrun(['verify', dir]);
  assert.is(good.code, 0, good.describe());
  for (const n of [1, 2, 3]) assert.match(good.stdout, new RegExp(`/${n}: restorable`), good.describe());

  // a bit of the pages of generation 1's image, which 2 and 3 refer to (hard links)
  const base = imagesOf(path.join(dir, '1'))[0]!;
  const run = runsOf(readImage(base)).sort((a, b) => b.pages - a.pages)[0]!;
  flipBit(base, run.offset + 4096 + 7, 5);
  const bad = await ckrun(['verify', dir]);
  assert.is(bad.code, 1, `verify exits 1 when a generation cannot be restored\n${bad.describe()}`);
  for (const n of [1, 2, 3]) assert.match(bad.stdout, new RegExp(`/${n}: NOT restorable: .*(checksum|corrupt)`), bad.describe());
  const damaged = bad.stdout.split('\n').filter((l) => l.startsWith('damaged:'));
  assert.is(damaged.length, 1, `the damaged file is reported once\n${bad.stdout}`);
  assert.ok(damaged[0]!.includes(path.basename(base)), `it is named: ${damaged[0]}`);
  assert.match(damaged[0]!, /unrestorable: 1, 2, 3$/, 'with every generation it breaks');
  const json = await ckrun(['verify', dir, '--json']);
  const rep = JSON.parse(json.stdout) as { generations: { restorable: boolean }[]; damaged: { generations: number[] }[] };
  assert.equal(rep.generations.map((g) => g.restorable), [false, false, false]);
  assert.equal(rep.damaged.map((d) => d.generations), [[1, 2, 3]]);

  // restart --dir has no generation to fall back to: refused, naming the image
  for (const front of [true, false]) {
    const r = await ckrun(['restart', '--dir', dir], { front, timeout: 60_000 });
    await assertNothingLeft([dir, counterCkpt], 'restart --dir with every generation broken');
    assertRefused(r, [path.basename(base)], /no older checkpoint .* verifies either/, `restart --dir (front: ${front})`);
  }
});

test('ckrun verify of one generation, of a damaged manifest, of an empty directory: status and message', async () => {
  await ready();
  const one = await ckrun(['verify', path.join(counterCkpt, '2')]);
  assert.is(one.code, 0, one.describe());
  assert.match(one.stdout, /1 of 1 generation restorable/, one.describe());
  const gen = copyGeneration('verify-manifest', 1);
  fs.writeFileSync(path.join(gen, 'manifest.cbor'), Buffer.from([0x82, 0x41, 0x00, 0x00]));
  const bad = await ckrun(['verify', path.dirname(gen)]);
  assert.is(bad.code, 1, bad.describe());
  assert.match(bad.stdout, /NOT restorable: manifest .* (checksum|damaged)/, bad.describe());
  const empty = scope.dir('verify-empty');
  const none = await ckrun(['verify', empty]);
  assert.is(none.code, 1, none.describe());
  assert.match(none.stdout, /holds no generation/, none.describe());
  assert.ok(generations(counterCkpt).length === 3);
  assert.ok(readHeaderBlock(imagesOf(path.join(counterCkpt, '1'))[0]!).crcOk);
});

test.run();
