// The test harness's own pieces (no ckrun needed): CRC-32C, the CBOR codec
// used to read and rewrite images, line bookkeeping, killing a process tree.
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findSlice, stepOf } from './lib/lines.js';
import { type Proc } from './lib/proc.js';
import { cborDecode, cborEncode, crc32c, toPlain } from './lib/cbor.js';
import { assertResumed, stepReachedBefore } from './lib/spine.js';
import { descendants, findProcesses, killTree } from './lib/processes.js';
import { sleep } from './lib/proc.js';

test('crc32c matches the Castagnoli check values', () => {
  assert.is(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.is(crc32c(Buffer.alloc(32)), 0x8a9136aa);
  assert.is(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  assert.is(crc32c(Buffer.alloc(0)), 0);
  // incremental
  const b = Buffer.from('hello, checkpoint');
  assert.is(crc32c(b.subarray(5), crc32c(b.subarray(0, 5))), crc32c(b));
});

test('cbor round trip of a header-like map, shortest integers', () => {
  const h = { magic: 'ckrun-image', version: 1, data_offset: 4096, data_length: 2 ** 33, meta_crc: 0xffffffff, big: 2n ** 63n + 5n, neg: -300 };
  const enc = cborEncode(h);
  assert.is(enc[0], 0xa7); // map of 7
  const { value, end } = cborDecode(enc);
  assert.is(end, enc.length);
  assert.equal(value, h);
  assert.equal(cborEncode(1), Buffer.from([0x01]));
  assert.equal(cborEncode(24), Buffer.from([0x18, 24]));
  assert.equal(cborEncode(4096), Buffer.from([0x19, 0x10, 0x00]));
  assert.equal(cborEncode(-1), Buffer.from([0x20]));
});

test('cbor decodes indefinite lengths, nested arrays, byte strings, trailing bytes', () => {
  // [_ 1, h'0102', {_ "a": [2, 3]}] followed by padding
  const b = Buffer.from([0x9f, 0x01, 0x42, 0x01, 0x02, 0xbf, 0x61, 0x61, 0x82, 0x02, 0x03, 0xff, 0xff, 0, 0, 0]);
  const { value, end } = cborDecode(b);
  assert.is(end, 13);
  assert.equal(toPlain(value), [1, Buffer.from([1, 2]), { a: [2, 3] }]);
  assert.throws(() => cborDecode(Buffer.from([0x82, 0x01])), /truncated/);
  // uint64 above 2^53 stays exact
  const big = cborDecode(Buffer.from([0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])).value;
  assert.is(big, 2n ** 64n - 1n);
});

test('line bookkeeping', () => {
  assert.is(stepOf('step 17 chunk=1'), 17);
  assert.is(stepOf('stepper 1'), undefined);
  assert.is(findSlice(['a', 'b', 'c', 'd'], ['c', 'd']), 2);
  assert.is(findSlice(['a', 'b', 'c', 'd'], ['c', 'x']), -1);
});

test('continuation check: accepts a true continuation, rejects starting over, skipping, older state, divergence', () => {
  const ref = ['demo: start', ...Array.from({ length: 20 }, (_, i) => `step ${i + 1} x=${i * i}`), 'demo: done'];
  const fake = (lines: string[]) => ({ lines, describe: () => lines.join('\n') }) as unknown as Proc;
  const before = ref.slice(0, 12); // printed up to step 11, checkpoint requested after line 8
  const check = (after: string[], complete = false) =>
    assertResumed({ beforeLines: before, requestedAt: 8, after: fake(after), ref, complete, what: 'demo' });
  assert.is(check(ref.slice(10, 15)), 10);
  assert.is(check(ref.slice(9), true), 9);
  assert.is(check(ref.slice(7, 9)), 7); // a line whose flush the checkpoint interrupted
  assert.throws(() => check(ref.slice(0, 5)), /initialization again/);
  assert.throws(() => check(ref.slice(15, 18)), /beyond what the checkpointed run ever printed/);
  assert.throws(() => check(ref.slice(3, 6)), /older than the checkpoint/);
  assert.throws(() => check([...ref.slice(10, 12), 'step 12 x=0']), /differs/);
  assert.throws(() => check(ref.slice(10, 15), true), /stopped early/);
  assert.throws(() => check([]), /printed nothing/);
  assert.is(stepReachedBefore(ref, 10), 9);
});

test('killTree: a master that respawns its workers at once leaves nothing behind', async () => {
  // three workers, each started again the moment it ends, each with two children
  const marker = `killtree-${process.pid}-${Date.now()}`;
  const master = spawn('bash', ['-c', `for i in 1 2 3; do (while :; do (sleep 1000 & sleep 1000 & wait; : ${marker}); done) & done; wait`], {
    stdio: 'ignore',
  });
  try {
    for (let i = 0; i < 100 && descendants(master.pid!).length < 9; i++) await sleep(20);
    assert.ok(descendants(master.pid!).length >= 9, 'the master started its workers');
    await killTree(master.pid!);
    await sleep(300);
    const left = findProcesses((p) => p.cmdline.some((a) => a.includes(marker)));
    assert.equal(left, [], 'no worker escaped the kill');
  } finally {
    for (const p of findProcesses((q) => q.cmdline.some((a) => a.includes(marker)))) process.kill(p.pid, 'SIGKILL');
  }
});

test.run();
