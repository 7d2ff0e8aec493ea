// Crafted and damaged images and manifests, for the integrity tests and
// scripts/corrupt-campaign.mjs: rewrite an image's metadata or header with
// valid checksums (so that the checks behind the checksums are what is
// tested), and seal a generation's manifest again after its images changed
// (in whatever version it is: version 1 has no identities, version 2 is
// framed with a CRC and names each image's size and header CRC).
// Independent of the project's code: the harness's own CBOR and CRC.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Cbor, cborDecode, cborEncode, crc32c, toPlain } from './cbor.js';
import { HEADER_BLOCK, readHeaderBlock, rewriteHeader } from './images.js';

export { rewriteHeader };

/** The metadata map of an image, as decoded (bigints kept where needed). */
export function readMeta(file: string): Record<string, Cbor> {
  const { header } = readHeaderBlock(file);
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(Number(header.meta_length));
    fs.readSync(fd, b, 0, b.length, Number(header.meta_offset));
    return cborDecode(b).value as Record<string, Cbor>;
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces the metadata of an image (the header follows: meta_length, meta_crc, file_length; the file is cut after it). */
export function writeMeta(file: string, meta: Record<string, Cbor>): void {
  const { header } = readHeaderBlock(file);
  const bytes = cborEncode(meta);
  const at = Number(header.meta_offset);
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, at);
    fs.ftruncateSync(fd, at + bytes.length);
  } finally {
    fs.closeSync(fd);
  }
  rewriteHeader(file, (h) => {
    h.meta_length = bytes.length;
    h.meta_crc = crc32c(bytes);
    h.file_length = at + bytes.length;
  });
}

/** Changes the metadata with `mutate`, checksums kept valid. */
export function editMeta(file: string, mutate: (m: Record<string, Cbor>) => void): void {
  const m = readMeta(file);
  mutate(m);
  writeMeta(file, m);
}

/** Flips one bit of the file. */
export function flipBit(file: string, offset: number, bit = 0): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    if (fs.readSync(fd, b, 0, 1, offset) !== 1) throw new Error(`${file}: no byte at ${offset}`);
    b[0]! ^= 1 << bit;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Where the header block's CBOR ends (its padding starts there). */
export function headerEnd(file: string): number {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(HEADER_BLOCK);
    fs.readSync(fd, b, 0, HEADER_BLOCK, 0);
    return cborDecode(b).end;
  } finally {
    fs.closeSync(fd);
  }
}

/** The raw manifest: its map, and whether it is framed (version 2). */
export function readRawManifest(genDir: string): { map: Record<string, Cbor>; framed: boolean } {
  const v = cborDecode(fs.readFileSync(path.join(genDir, 'manifest.cbor'))).value;
  if (Array.isArray(v) && Buffer.isBuffer(v[0])) return { map: cborDecode(v[0]).value as Record<string, Cbor>, framed: true };
  return { map: v as Record<string, Cbor>, framed: false };
}

/** Writes a manifest map back, framed with its CRC when `framed`. */
export function writeRawManifest(genDir: string, map: Record<string, Cbor>, framed: boolean): void {
  const bytes = cborEncode(map);
  fs.writeFileSync(path.join(genDir, 'manifest.cbor'), framed ? cborEncode([bytes, crc32c(bytes)]) : bytes);
}

/**
 * After the images of a generation changed: a version 2 manifest names
 * each image by the size and header CRC it has now (a consistent, crafted
 * generation); a version 1 manifest has nothing to update.
 */
export function resealManifest(genDir: string): void {
  const { map, framed } = readRawManifest(genDir);
  if (!framed) return;
  for (const p of map.processes as Record<string, Cbor>[]) {
    const file = path.join(genDir, String(p.image));
    const hb = readHeaderBlock(file);
    p.bytes = fs.statSync(file).size;
    p.header_crc = hb.crc;
  }
  writeRawManifest(genDir, map, framed);
}

/** The first page run of an image's memory stored in the image itself. */
export function firstOwnRun(meta: Record<string, Cbor>): Cbor[] {
  for (const r of meta.memory as Record<string, Cbor>[])
    for (const run of (r.runs as Cbor[][] | undefined) ?? []) if (run.length === 4) return run;
  throw new Error('the image stores no page run of its own');
}

export { toPlain };
