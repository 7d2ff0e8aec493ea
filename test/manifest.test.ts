// The manifest's encoding: every integer an integer of the shortest form,
// also beyond 32 bits (a checkpoint that paused a program for seconds, an
// image of gigabytes): cbor-x writes such numbers as floats, which the
// strict reader refuses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeManifest, parseManifest, type Manifest } from '../src/generations.js';

test('a manifest with values beyond 32 bits encodes and reads back', async () => {
  const m: Manifest = {
    format: 'ckrun-session',
    version: 2,
    generation: 3,
    created_ns: 1796574157439000000n,
    argv: ['prog'],
    cwd: '/',
    root: 42,
    processes: [
      { pid: 42, image: '42.ckpt', bytes: 5 * 2 ** 30, pause_ns: 6913638469, chain: 1, header_crc: 0xffffffff },
      { pid: 43, image: '43.ckpt', bytes: 2 ** 32, pause_ns: 2 ** 32 - 1, header_crc: 0 },
    ],
  };
  const back = parseManifest('manifest.cbor', await encodeManifest(m), '3');
  assert.is(back.processes[0]!.bytes, 5 * 2 ** 30);
  assert.is(back.processes[0]!.pause_ns, 6913638469);
  assert.is(back.processes[1]!.bytes, 2 ** 32);
  assert.is(back.processes[1]!.pause_ns, 2 ** 32 - 1);
  assert.is(back.created_ns, 1796574157439000000n);
});

test.run();
