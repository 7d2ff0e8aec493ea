// Reading checkpoint directories, manifests and images on our own
// (docs/image-format.md), and damaging images on purpose.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cborDecode, cborEncode, crc32c, toPlain, type Cbor } from './cbor.js';

export const HEADER_BLOCK = 4096;

export interface ImageHeader {
  magic: string;
  version: number;
  data_offset: number;
  data_length: number;
  meta_offset: number;
  meta_length: number;
  meta_crc: number;
  file_length: number;
  [k: string]: Cbor;
}

export interface HeaderBlock {
  header: ImageHeader;
  headerBytes: Buffer;
  crc: number;
  crcOk: boolean;
}

function readAt(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    const n = fs.readSync(fd, b, 0, length, offset);
    return b.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** Decode the header block `[h'<header map>', crc32c]` at the start of an image. */
export function readHeaderBlock(file: string): HeaderBlock {
  const block = readAt(file, 0, HEADER_BLOCK);
  const { value } = cborDecode(block);
  if (!Array.isArray(value) || value.length !== 2 || !Buffer.isBuffer(value[0]))
    throw new Error(`${file}: header block is not [bytes, crc]`);
  const headerBytes = value[0];
  const crc = Number(value[1]);
  const header = toPlain(cborDecode(headerBytes).value) as ImageHeader;
  return { header, headerBytes, crc, crcOk: crc32c(headerBytes) === crc };
}

/** Re-encode the header map (after mutate), with a correct CRC, padded to the 4096-byte block. */
export function rewriteHeader(file: string, mutate: (h: ImageHeader) => void): void {
  const { header } = readHeaderBlock(file);
  mutate(header);
  const bytes = cborEncode(header as unknown as Cbor);
  const block = cborEncode([bytes, crc32c(bytes)]);
  if (block.length > HEADER_BLOCK) throw new Error('header block too large');
  const padded = Buffer.alloc(HEADER_BLOCK);
  block.copy(padded);
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, padded, 0, HEADER_BLOCK, 0);
  } finally {
    fs.closeSync(fd);
  }
}

/** Flip all bits of the byte at offset. */
export function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    if (fs.readSync(fd, b, 0, 1, offset) !== 1) throw new Error(`${file}: no byte at ${offset}`);
    b[0] ^= 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

export interface Image {
  file: string;
  size: number;
  header: ImageHeader;
  headerCrcOk: boolean;
  metaCrcOk: boolean;
  /** the metadata map, bigints kept where they do not fit a double exactly */
  meta: Record<string, unknown>;
}

/** Read header and metadata of an image (checksums reported, not enforced). */
export function readImage(file: string): Image {
  const hb = readHeaderBlock(file);
  const h = hb.header;
  const metaBytes = readAt(file, Number(h.meta_offset), Number(h.meta_length));
  const meta = toPlain(cborDecode(metaBytes).value) as Record<string, unknown>;
  return {
    file,
    size: fs.statSync(file).size,
    header: h,
    headerCrcOk: hb.crcOk,
    metaCrcOk: crc32c(metaBytes) === Number(h.meta_crc),
    meta,
  };
}

export interface Run {
  address: number | bigint;
  pages: number;
  offset: number;
  crc: number;
}

/** The saved page runs of every memory region of an image. */
export function runsOf(img: Image): Run[] {
  const out: Run[] = [];
  for (const r of (img.meta.memory as Record<string, unknown>[] | undefined) ?? []) {
    for (const run of (r.runs as unknown[][] | undefined) ?? []) {
      out.push({
        address: run[0] as number | bigint,
        pages: Number(run[1]),
        offset: Number(run[2]),
        crc: Number(run[3]),
      });
    }
  }
  return out;
}

/** Bytes of the file at [offset, offset+length). */
export function readBytes(file: string, offset: number, length: number): Buffer {
  return readAt(file, offset, length);
}

/** Complete generations in DIR (numbered directories holding manifest.cbor), ascending. */
export function generations(dir: string): number[] {
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+$/.test(e) && fs.existsSync(path.join(dir, e, 'manifest.cbor')))
    .map(Number)
    .sort((a, b) => a - b);
}

export interface Manifest {
  format?: string;
  version?: number;
  generation?: number;
  root?: number;
  argv?: string[];
  cwd?: string;
  processes?: { pid: number; image: string; bytes?: number; pause_ns?: number }[];
  [k: string]: unknown;
}

/** The manifest of a generation: version 2 is framed as `[h'<map>', crc32c]` (checked here), version 1 the bare map. */
export function readManifest(genDir: string): Manifest {
  const buf = fs.readFileSync(path.join(genDir, 'manifest.cbor'));
  const v = cborDecode(buf).value;
  if (Array.isArray(v)) {
    if (v.length !== 2 || !Buffer.isBuffer(v[0]) || crc32c(v[0]) !== Number(v[1])) throw new Error(`${genDir}: the manifest's frame or checksum is bad`);
    return toPlain(cborDecode(v[0]).value) as Manifest;
  }
  return toPlain(v) as Manifest;
}

/** The image files of a generation (from its manifest, else every *.ckpt in it). */
export function imagesOf(genDir: string): string[] {
  try {
    const m = readManifest(genDir);
    if (Array.isArray(m.processes) && m.processes.length)
      return m.processes.map((p) => path.join(genDir, String(p.image)));
  } catch {
    /* fall back */
  }
  return fs
    .readdirSync(genDir)
    .filter((f) => f.endsWith('.ckpt'))
    .map((f) => path.join(genDir, f));
}
