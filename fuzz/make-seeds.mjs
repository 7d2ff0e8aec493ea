#!/usr/bin/env node
// Seeds for the fuzz targets from real generations:
//   node fuzz/make-seeds.mjs OUTDIR GENERATION...
// writes OUTDIR/image/* (each image's metadata behind a sound header, and
// a small whole image file) and OUTDIR/manifest/* (each manifest as it is,
// and its map to be framed). The committed seeds in fuzz/corpus came from a
// counter (full and incremental), a python3 loop and a family.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

// The two lengths a CBOR head can carry here, and the [bytes, crc] pair.
function head(major, n) {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

/** Where the CBOR byte string that starts at off begins and ends. */
function bytesAt(buf, off) {
  const info = buf[off] & 31;
  const n = info < 24 ? info : info === 24 ? buf[off + 1] : info === 25 ? buf.readUInt16BE(off + 1) : buf.readUInt32BE(off + 1);
  const start = off + (info < 24 ? 1 : info === 24 ? 2 : info === 25 ? 3 : 5);
  return [start, start + n];
}

/** The value of an unsigned field of a small CBOR map (the image header). */
function field(map, name) {
  const key = Buffer.concat([head(3, name.length), Buffer.from(name)]);
  const at = map.indexOf(key) + key.length;
  const info = map[at] & 31;
  if (info < 24) return info;
  if (info === 24) return map[at + 1];
  if (info === 25) return map.readUInt16BE(at + 1);
  if (info === 26) return map.readUInt32BE(at + 1);
  return Number(map.readBigUInt64BE(at + 1));
}

const CRC_TABLE = Array.from({ length: 256 }, (_, i) => {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c >>> 0;
});
function crc32c(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A whole image with an empty data area around the metadata: [header, crc] padded to 4096, then the metadata. */
function smallImage(meta) {
  const kv = (k, v) => [head(3, k.length), Buffer.from(k), typeof v === 'string' ? Buffer.concat([head(3, v.length), Buffer.from(v)]) : head(0, v)];
  const map = Buffer.concat([
    head(5, 8),
    ...kv('magic', 'ckrun-image'),
    ...kv('version', 1),
    ...kv('data_offset', 4096),
    ...kv('data_length', 0),
    ...kv('meta_offset', 4096),
    ...kv('meta_length', meta.length),
    ...kv('meta_crc', crc32c(meta)),
    ...kv('file_length', 4096 + meta.length),
  ]);
  const block = Buffer.alloc(4096);
  Buffer.concat([Buffer.from([0x82]), head(2, map.length), map, head(0, crc32c(map))]).copy(block);
  return Buffer.concat([block, meta]);
}

const [out, ...gens] = process.argv.slice(2);
if (!out || gens.length === 0) {
  process.stderr.write('usage: node fuzz/make-seeds.mjs OUTDIR GENERATION...\n');
  process.exit(2);
}
mkdirSync(join(out, 'image'), { recursive: true });
mkdirSync(join(out, 'manifest'), { recursive: true });
for (const gen of gens) {
  const tag = gen.replace(/\/+$/, '').split('/').slice(-3).join('-');
  const manifest = readFileSync(join(gen, 'manifest.cbor'));
  writeFileSync(join(out, 'manifest', `${tag}-raw`), Buffer.concat([Buffer.from([0]), manifest]));
  if (manifest[0] === 0x82) {
    const [s, e] = bytesAt(manifest, 1);
    writeFileSync(join(out, 'manifest', `${tag}-framed`), Buffer.concat([Buffer.from([1]), manifest.subarray(s, e)]));
  }
  for (const f of readdirSync(gen).filter((n) => n.endsWith('.ckpt'))) {
    const img = readFileSync(join(gen, f));
    const [hs, he] = bytesAt(img, 1);
    const h = img.subarray(hs, he);
    const meta = img.subarray(field(h, 'meta_offset'), field(h, 'meta_offset') + field(h, 'meta_length'));
    const pages = Math.min(512, field(h, 'data_length') / 4096);
    writeFileSync(join(out, 'image', `${tag}-${f}-meta`), Buffer.concat([Buffer.from([1, pages >> 8, pages & 0xff]), meta]));
    writeFileSync(join(out, 'image', `${tag}-${f}-whole`), Buffer.concat([Buffer.from([0]), smallImage(meta)]));
  }
}
