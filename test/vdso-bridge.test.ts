// A restart on a kernel whose vdso differs sends the image's vdso entry
// points to this kernel's vdso (preload/vdso.c). A test machine has one
// kernel: CKRUN_TEST_VDSO_BRIDGE=1 (for tests only) makes the restore
// bridge an identical vdso, which runs the same code as for another one:
// the image's vdso bytes put back at its address with jumps at its entries,
// this kernel's vdso left where it is or moved out of the image's way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exampleProgram } from './lib/examples.js';
import { lastLine } from './lib/lines.js';
import { type Proc } from './lib/proc.js';
import { checkpoint, ckrun } from './lib/ckrun.js';
import { type Cbor, crc32c } from './lib/cbor.js';
import { editMeta, resealManifest } from './lib/craft.js';
import { imagesOf } from './lib/images.js';
import { Scope } from './lib/scope.js';

// 2: this kernel's vdso also moved out of the way, as when the image needs its place
const BRIDGE = [{ CKRUN_TEST_VDSO_BRIDGE: '1' }, { CKRUN_TEST_VDSO_BRIDGE: '2' }];

function assertNoFailure(p: Proc, what: string): void {
  const bad = [...p.lines, ...p.stderr.split('\n')].find((l) => l.startsWith('FAIL'));
  if (bad) throw new Error(`${what}: the program found its state wrong: ${bad}\n${p.describe(8)}`);
}

test("clock_gettime, gettimeofday, time and getcpu through the vdso agree with the system calls after restarts bridged to this kernel's vdso, twice", async () => {
  const scope = new Scope('vdso-bridge');
  try {
    const ckpt = scope.ckptDir();
    let p = scope.launch({ dir: ckpt, program: exampleProgram('vdsoclock', ['--steps', '70']), label: 'ckrun vdsoclock' });
    await p.waitForStep(3);
    await checkpoint(ckpt);
    await p.waitForStep(p.maxStep + 2);
    await scope.kill9(p);
    assertNoFailure(p, 'vdsoclock, launched');
    assert.not.ok(p.lines.includes('vdso bridged') || p.lines.includes('vdso moved'), 'launched, the program uses the kernel vdso itself');
    // the second restart bridges an image whose vdso entries already jump
    // (the bridge of the first is ordinary memory of the image by then)
    for (let round = 1; round <= 2; round++) {
      p = scope.restart({ dir: ckpt, env: BRIDGE[round - 1]!, label: `vdsoclock: restart ${round}, bridged` });
      // the kernel's vdso stays where the restore found it: not where the image had it
      await p.waitForLine('vdso moved');
      if (round === 1) await p.waitForLine('vdso bridged');
      await p.waitForStep(p.maxStep + 3);
      if (round === 1) {
        await checkpoint(ckpt);
        await p.waitForStep(p.maxStep + 2);
        await scope.kill9(p);
        assertNoFailure(p, `vdsoclock, restart ${round}`);
        continue;
      }
      const exit = await p.waitExit();
      assertNoFailure(p, `vdsoclock, restart ${round}`);
      assert.is(exit.code, 0, p.describe());
      assert.is(lastLine(p.lines), 'done', p.describe());
    }
  } finally {
    await scope.cleanup();
  }
});

/** The image's vdso made another kernel's: its bytes changed by `change`, its CRC theirs. */
function otherKernelsVdso(genDir: string, change: (text: Buffer) => void): void {
  for (const image of imagesOf(genDir))
    editMeta(image, (m) => {
      const v = m.vdso as Record<string, Cbor>;
      const text = Buffer.from(v.text as Buffer);
      change(text);
      v.text = text;
      v.vdso_crc = crc32c(text);
    });
  resealManifest(genDir);
}

test("an image whose vdso is another kernel's: bridged without being asked; refused, naming it, when it has a function this kernel's vdso lacks", async () => {
  const scope = new Scope('vdso-other');
  try {
    const ckpt = scope.ckptDir();
    const p = scope.launch({ dir: ckpt, program: exampleProgram('vdsoclock', ['--steps', '40']), label: 'ckrun vdsoclock' });
    await p.waitForStep(3);
    const gen = (await checkpoint(ckpt)).trim();
    await scope.kill9(p);
    // getcpu (and __vdso_getcpu, the same string's tail) named getcpX: no such function here
    otherKernelsVdso(gen, (t) => {
      const at = t.indexOf('getcpu\0');
      assert.ok(at > 0, "the image's vdso names getcpu");
      t.write('getcpX', at);
    });
    const r = await ckrun(['restart', gen]);
    assert.is.not(r.code, 0, r.describe());
    assert.match(r.stderr, /the image's vdso \(kernel [^)]*\) has (__vdso_)?getcpX, this kernel's vdso does not; restart it on a kernel whose vdso has it/, r.describe());
    // the same function names, other bytes (a byte of the padding after the ELF object): bridged by itself
    otherKernelsVdso(gen, (t) => {
      t.write('getcpu', t.indexOf('getcpX\0'));
      t[t.length - 1] ^= 0x5a;
    });
    // a thread stopped inside the vdso, past an entry: refused (its code there reads vvar pages that are not there)
    const setRip = (rip: (vdso: bigint, was: bigint) => bigint): void => {
      for (const image of imagesOf(gen))
        editMeta(image, (m) => {
          const at = BigInt((((m.vdso as Record<string, Cbor>).vdso as Cbor[])[0]) as number | bigint);
          const regs = ((m.threads as Cbor[])[0] as Record<string, Cbor>).regs as Record<string, Cbor>;
          regs.rip = rip(at, BigInt(regs.rip as number | bigint));
        });
      resealManifest(gen);
    };
    let saved = 0n;
    setRip((vdso, was) => ((saved = was), vdso + 0xb13n));
    const inside = await ckrun(['restart', gen]);
    assert.is.not(inside.code, 0, inside.describe());
    assert.match(inside.stderr, /thread \d+ was inside the vdso \([^)]*\) when the checkpoint was taken, and this kernel's vdso differs/, inside.describe());
    setRip(() => saved);
    const q = scope.restart({ dir: ckpt, label: 'vdsoclock: restart, another vdso' });
    await q.waitForLine('vdso moved');
    const exit = await q.waitExit();
    assertNoFailure(q, 'vdsoclock, restarted with another vdso');
    assert.is(exit.code, 0, q.describe());
    assert.is(lastLine(q.lines), 'done', q.describe());
  } finally {
    await scope.cleanup();
  }
});

test.run();
