// Reading and verifying a process image (docs/image-format.md).
import { Decoder } from 'cbor-x/decode';
import { closeSync, openSync, readSync } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { DecompressError, decompressImageFile, isCompressedImage } from './compress.js';
import { crc32c, crc32cFile, isNativeError } from './native.js';
import { displayPath, formatBytes, hex } from './output.js';

export const IMAGE_VERSION = 1;
export const HEADER_BLOCK = 4096;
export const PAGE_SIZE = 4096;

/** A decoded CBOR value as cbor-x hands it out (maps as plain objects). */
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | CborValue[]
  | { [key: string]: CborValue };
export type CborMap = { [key: string]: CborValue };

export interface ImageHeader {
  magic: string;
  version: number;
  data_offset: number;
  data_length: number;
  meta_offset: number;
  meta_length: number;
  meta_crc: number;
  file_length: number;
}

export interface Image {
  /** Absolute path of the image: its .ckpt file, or its .ckpt.gz. */
  path: string;
  /** Its size on disk (for a .ckpt.gz the compressed size; header.file_length is the image's). */
  size: number;
  /** 'gzip' for a `.ckpt.gz` (decompressed to be read), undefined for a `.ckpt`. */
  compressed: 'gzip' | undefined;
  header: ImageHeader;
  /** The metadata map, as decoded (see the accessors below for typed views). */
  meta: CborMap;
  /** True when every data chunk was checked against its CRC. */
  dataVerified: boolean;
}

/**
 * What is wrong. 'unwritable': a compressed image could not be decompressed
 * beside itself (disk full, read-only directory); the image may be fine.
 */
export type ImageProblem = 'missing' | 'unreadable' | 'unwritable' | 'truncated' | 'corrupt' | 'version' | 'not-image';

/** A bad image. The message names the image and the problem. */
export class ImageError extends Error {
  constructor(
    readonly path: string,
    readonly problem: ImageProblem,
    readonly detail: string,
  ) {
    super(`image ${displayPath(path)} ${detail}`);
    this.name = 'ImageError';
  }
}

const decoder = new Decoder({ mapsAsObjects: true, useRecords: false });

function isMap(v: CborValue): v is CborMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** A CBOR integer as a JS number; undefined when it is not a safe integer. */
export function asNumber(v: CborValue): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
  return undefined;
}

/** A CBOR integer as a bigint; undefined when it is not an integer. */
export function asBigInt(v: CborValue): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  return undefined;
}

export function asString(v: CborValue): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function asArray(v: CborValue): CborValue[] {
  return Array.isArray(v) ? v : [];
}

export function asMap(v: CborValue): CborMap {
  return isMap(v) ? v : {};
}

/** Decodes exactly one CBOR item (trailing bytes are an error). */
export function decodeCbor(bytes: Uint8Array): CborValue {
  return decoder.decode(bytes) as CborValue;
}

/**
 * Where the CBOR item starting at `off` ends (definite-length integers,
 * strings and arrays only: what a header block holds). undefined if malformed.
 */
function cborItemEnd(b: Uint8Array, off: number): number | undefined {
  if (off >= b.length) return undefined;
  const major = b[off]! >> 5;
  const info = b[off]! & 31;
  let p = off + 1;
  let arg: number;
  if (info < 24) arg = info;
  else if (info <= 27) {
    const n = 1 << (info - 24);
    if (p + n > b.length) return undefined;
    arg = 0;
    for (let i = 0; i < n; i++) arg = arg * 256 + b[p + i]!;
    p += n;
  } else return undefined;
  switch (major) {
    case 0:
    case 1:
      return p;
    case 2:
    case 3:
      return p + arg <= b.length ? p + arg : undefined;
    case 4:
      for (let i = 0; i < arg; i++) {
        const e = cborItemEnd(b, p);
        if (e === undefined) return undefined;
        p = e;
      }
      return p;
    default:
      return undefined;
  }
}

const HEADER_FIELDS = ['data_offset', 'data_length', 'meta_offset', 'meta_length', 'meta_crc', 'file_length'] as const;

function parseHeader(path: string, block: Buffer, size: number): ImageHeader {
  if (block.every((b) => b === 0))
    throw new ImageError(path, 'corrupt', 'is incomplete: its header block is empty (the image was never finished)');
  const end = cborItemEnd(block, 0);
  let arr: CborValue;
  try {
    if (end === undefined) throw new Error('malformed');
    arr = decodeCbor(block.subarray(0, end));
  } catch {
    throw new ImageError(path, 'not-image', 'is corrupted or not a ckrun image (its first block is not a CBOR header)');
  }
  if (!Array.isArray(arr) || arr.length !== 2 || !(arr[0] instanceof Uint8Array) || asNumber(arr[1]) === undefined)
    throw new ImageError(path, 'not-image', 'is corrupted or not a ckrun image (its first block is not a [header, crc] pair)');
  if (!block.subarray(end).every((x) => x === 0))
    throw new ImageError(path, 'corrupt', 'is corrupted: stray bytes in the padding of its header block');
  const bytes = arr[0];
  const want = asNumber(arr[1]);
  let map: CborValue;
  try {
    map = decodeCbor(bytes);
  } catch {
    map = undefined;
  }
  const h = asMap(map);
  const claimed = asNumber(h['version']);
  if (crc32c(bytes) !== want) {
    const extra =
      claimed !== undefined && claimed !== IMAGE_VERSION
        ? `; it claims format version ${claimed}, this ckrun reads version ${IMAGE_VERSION}`
        : '';
    throw new ImageError(path, 'corrupt', `is corrupted: the header checksum does not match${extra}`);
  }
  if (!isMap(map) || h['magic'] !== 'ckrun-image')
    throw new ImageError(path, 'not-image', "is not a ckrun image (its header has no 'ckrun-image' magic)");
  if (claimed !== IMAGE_VERSION)
    throw new ImageError(
      path,
      'version',
      `has format version ${String(h['version'])}; this ckrun reads version ${IMAGE_VERSION} (restart it with the ckrun that wrote it)`,
    );
  const out: Partial<ImageHeader> = { magic: 'ckrun-image', version: IMAGE_VERSION };
  for (const k of HEADER_FIELDS) {
    const v = asNumber(h[k]);
    if (v === undefined || v < 0) throw new ImageError(path, 'corrupt', `is corrupted: header field '${k}' is missing or invalid`);
    out[k] = v;
  }
  const hdr = out as ImageHeader;
  if (size < hdr.file_length)
    throw new ImageError(
      path,
      'truncated',
      `is truncated (expected ${formatBytes(hdr.file_length)}, found ${formatBytes(size)})`,
    );
  if (size > hdr.file_length)
    throw new ImageError(
      path,
      'corrupt',
      `is corrupted: it is ${formatBytes(size)} long but its header says ${formatBytes(hdr.file_length)}`,
    );
  if (
    hdr.data_offset !== HEADER_BLOCK ||
    hdr.data_length % PAGE_SIZE !== 0 ||
    hdr.meta_offset < hdr.data_offset + hdr.data_length ||
    hdr.meta_offset + hdr.meta_length > hdr.file_length
  )
    throw new ImageError(path, 'corrupt', 'is corrupted: its header describes an impossible layout');
  return hdr;
}

export interface ReadImageOptions {
  /** Also check every data chunk's CRC (reads the whole file). Default false. */
  verifyData?: boolean;
  /**
   * For a `.ckpt.gz`: the file it was decompressed to already
   * (decompressImage). Without it, readImage decompresses it into a
   * temporary file of its own and removes it before returning.
   */
  decompressed?: string;
}

/**
 * Reads an image's header and metadata and verifies the header CRC, the
 * metadata CRC, the version and the length (and with verifyData every data
 * chunk). A `.ckpt.gz` is decompressed first. Throws ImageError with a
 * message naming the image and the problem.
 */
export async function readImage(path: string, opts: ReadImageOptions = {}): Promise<Image> {
  const verifyData = opts.verifyData === true;
  if (!isCompressedImage(path)) {
    const img = await loadImage(path, verifyData);
    await checkReferredImages(img, verifyData);
    return img;
  }
  const file = opts.decompressed ?? (await decompressForReading(path));
  try {
    const img = await loadImage(file, verifyData, path);
    await checkReferredImages(img, verifyData);
    return img;
  } finally {
    if (opts.decompressed === undefined) await rm(file, { force: true });
  }
}

/**
 * Decompresses a `.ckpt.gz` into a hidden temporary file beside it
 * (`.restore-<pid>-<random>.ckpt`, mode 0600) and returns its path; the
 * caller removes it. A damaged file gives an ImageError naming it.
 */
export async function decompressImage(path: string, opts: { pid?: number; dir?: string } = {}): Promise<string> {
  try {
    await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ImageError(path, 'missing', 'does not exist');
    throw new ImageError(path, 'unreadable', `cannot be read: ${(e as Error).message}`);
  }
  try {
    return await decompressImageFile(path, opts);
  } catch (e) {
    if (e instanceof DecompressError) throw new ImageError(path, e.problem, e.message);
    throw e;
  }
}

/** For reading only: beside the image, else (a directory we may not write to) in the temporary directory. */
async function decompressForReading(path: string): Promise<string> {
  try {
    return await decompressImage(path);
  } catch (e) {
    if (!(e instanceof ImageError) || e.problem !== 'unwritable') throw e;
    return await decompressImage(path, { dir: tmpdir() });
  }
}

/**
 * Reads and checks one image file, not the images it refers to. `name`:
 * the image as errors and Image.path name it (a .ckpt.gz whose contents
 * are in `file`).
 */
async function loadImage(file: string, verifyData: boolean, name: string = file): Promise<Image> {
  const path = name;
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new ImageError(path, 'not-image', 'is not a regular file');
    size = st.size;
  } catch (e) {
    if (e instanceof ImageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ImageError(path, 'missing', 'does not exist');
    throw new ImageError(path, 'unreadable', `cannot be read: ${(e as Error).message}`);
  }
  const compressed = name !== file;
  const what = compressed ? ' once decompressed' : '';
  if (size === 0) throw new ImageError(path, 'truncated', `is empty${what} (truncated to 0 bytes)`);
  if (size < HEADER_BLOCK)
    throw new ImageError(path, 'truncated', `is truncated${what} (expected at least ${formatBytes(HEADER_BLOCK)}, found ${formatBytes(size)})`);
  const fh = await open(file, 'r').catch((e: Error) => {
    throw new ImageError(path, 'unreadable', `cannot be opened: ${e.message}`);
  });
  try {
    const block = Buffer.alloc(HEADER_BLOCK);
    await fh.read(block, 0, HEADER_BLOCK, 0);
    const header = parseHeader(path, block, size);
    const metaBytes = Buffer.alloc(header.meta_length);
    const { bytesRead } = await fh.read(metaBytes, 0, header.meta_length, header.meta_offset);
    if (bytesRead !== header.meta_length)
      throw new ImageError(path, 'truncated', `is truncated (its metadata ends at ${formatBytes(header.meta_offset + bytesRead)})`);
    if (crc32c(metaBytes) !== header.meta_crc)
      throw new ImageError(path, 'corrupt', 'is corrupted: the metadata checksum does not match');
    let meta: CborValue;
    try {
      meta = decodeCbor(metaBytes);
    } catch (e) {
      throw new ImageError(path, 'corrupt', `is corrupted: its metadata is not valid CBOR (${(e as Error).message})`);
    }
    if (!isMap(meta)) throw new ImageError(path, 'corrupt', 'is corrupted: its metadata is not a map');
    if (asNumber(meta['version']) !== header.version)
      throw new ImageError(path, 'corrupt', `is corrupted: metadata version ${String(meta['version'])} differs from the header's`);
    if (asNumber(meta['pid']) === undefined) throw new ImageError(path, 'corrupt', 'is corrupted: its metadata has no pid');
    const onDisk = compressed ? await stat(name).then((s) => s.size, () => size) : size;
    const img: Image = { path, size: onDisk, compressed: compressed ? 'gzip' : undefined, header, meta, dataVerified: false };
    if (verifyData) verifyImageData(img, file);
    return img;
  } finally {
    await fh.close();
  }
}

/** The older images an incremental image refers to (hard links beside it). */
export function referredImages(img: Image): string[] {
  return asArray(img.meta['images']).map((n) => join(dirname(img.path), asString(n) ?? '?'));
}

/**
 * Every image a (flattened) incremental chain refers to must be there and
 * intact: header and metadata always, their own data with verifyData.
 */
async function checkReferredImages(img: Image, verifyData: boolean): Promise<void> {
  const refs = referredImages(img);
  for (const [k, run] of regions(img.meta).flatMap((r) => r.runs.map((x) => [r, x] as const)))
    if (run.image !== undefined && run.image >= refs.length)
      throw new ImageError(img.path, 'corrupt', `is corrupted: the pages at ${hex(run.address)} of region ${hex(k.start)} refer to image ${run.image} of ${refs.length}`);
  for (const ref of refs) {
    try {
      await loadImage(ref, verifyData);
    } catch (e) {
      if (e instanceof ImageError)
        throw new ImageError(img.path, e.problem, `refers to ${basename(ref)} for unchanged pages, which ${e.detail}`);
      throw e;
    }
  }
}

/** One stored chunk of the data area, with what it belongs to. */
export interface DataChunk {
  what: string;
  offset: number;
  length: number;
  crc: number;
}

/** `[offset, length, crc]` with three non-negative safe integers. */
function chunkTriple(v: CborValue): [number, number, number] | undefined {
  if (!Array.isArray(v) || v.length !== 3) return undefined;
  const t = v.map(asNumber);
  if (t.some((x) => x === undefined || x < 0)) return undefined;
  return t as [number, number, number];
}

/** Every `data: [offset, length, crc]` below a metadata value (saved file, pipe, … contents). */
function findDataTriples(v: CborValue, where: string, out: DataChunk[]): void {
  if (Array.isArray(v)) {
    v.forEach((x, i) => findDataTriples(x, `${where}[${i}]`, out));
    return;
  }
  if (!isMap(v)) return;
  for (const [k, x] of Object.entries(v)) {
    const t = k === 'data' ? chunkTriple(x) : undefined;
    if (t) out.push({ what: `the saved contents of ${where}`, offset: t[0], length: t[1], crc: t[2] });
    else findDataTriples(x, `${where}.${k}`, out);
  }
}

/**
 * Every chunk of the data area that carries a CRC: the page runs of the
 * memory regions, and every `data: [offset, length, crc]` elsewhere
 * (deleted files' contents, pipe buffers, …).
 */
export function dataChunks(img: Image): DataChunk[] {
  const out: DataChunk[] = [];
  for (const r of regions(img.meta)) {
    for (const run of r.runs) {
      if (run.image !== undefined) continue; // in an older image, checked as part of it
      out.push({
        what: `the pages at ${hex(run.address)} of region ${hex(r.start)}-${hex(r.end)}${r.name ? ` (${r.name})` : ''}`,
        offset: run.offset,
        length: run.pages * PAGE_SIZE,
        crc: run.crc,
      });
    }
  }
  for (const f of asArray(img.meta['files'])) {
    const m = asMap(f);
    const fd = asNumber(m['fd']);
    const path = asString(m['path']);
    findDataTriples(f, `descriptor ${fd ?? '?'}${path ? ` (${path})` : ''}`, out);
  }
  for (const [k, v] of Object.entries(img.meta)) if (k !== 'memory' && k !== 'files') findDataTriples(v, k, out);
  return out;
}

/** Throws unless bytes [from, to) of the file are all zero. */
function checkZero(img: Image, fd: number, from: number, to: number, what: string): void {
  const buf = Buffer.alloc(Math.min(1 << 20, Math.max(0, to - from)));
  for (let pos = from; pos < to; ) {
    const want = Math.min(buf.length, to - pos);
    const n = readSync(fd, buf, 0, want, pos);
    if (n === 0) throw new ImageError(img.path, 'truncated', `is truncated at ${formatBytes(pos)}`);
    if (!buf.subarray(0, n).every((x) => x === 0))
      throw new ImageError(img.path, 'corrupt', `is corrupted: stray bytes in ${what} (offset ${pos} to ${pos + n})`);
    pos += n;
  }
}

/**
 * Checks every data chunk against its CRC, and that nothing but zeros
 * follows the data area and the metadata; throws ImageError naming the
 * first bad place. (Padding inside the data area is not checked: it
 * carries nothing a restore reads.) `file`: where the image's bytes are
 * (for a compressed image, the file it was decompressed to).
 */
export function verifyImageData(img: Image, file: string = img.path): void {
  if (img.compressed && file === img.path)
    throw new ImageError(img.path, 'unreadable', 'is compressed: its data can only be verified once decompressed (readImage does both)');
  const { data_offset, data_length, meta_offset, meta_length, file_length } = img.header;
  const chunks = dataChunks(img);
  for (const c of chunks) {
    if (c.offset < data_offset || c.offset + c.length > data_offset + data_length)
      throw new ImageError(img.path, 'corrupt', `is corrupted: ${c.what} lie outside the data area`);
    let got: number;
    try {
      got = crc32cFile(file, c.offset, c.length);
    } catch (e) {
      if (isNativeError(e) && e.code === 'ERR_CKRUN_SHORT_FILE')
        throw new ImageError(img.path, 'truncated', `is truncated: ${c.what} are missing`);
      throw new ImageError(img.path, 'unreadable', `cannot be read: ${(e as Error).message}`);
    }
    if (got !== c.crc) throw new ImageError(img.path, 'corrupt', `is corrupted: ${c.what} do not match their checksum`);
  }
  const fd = openSync(file, 'r');
  try {
    checkZero(img, fd, data_offset + data_length, meta_offset, 'the gap between the data area and the metadata');
    checkZero(img, fd, meta_offset + meta_length, file_length, 'the padding after the metadata');
  } finally {
    closeSync(fd);
  }
  img.dataVerified = true;
}

// ---------------------------------------------------------------------------
// Typed views of the metadata (tolerant: missing fields become defaults).

export interface ThreadInfo {
  tid: number;
  leader: boolean;
  comm: string;
  rip: bigint | undefined;
  rsp: bigint | undefined;
  fsBase: bigint | undefined;
  sigmask: bigint;
  pending: bigint;
}

export function threads(meta: CborMap): ThreadInfo[] {
  return asArray(meta['threads']).map((t) => {
    const m = asMap(t);
    const regs = asMap(m['regs']);
    return {
      tid: asNumber(m['tid']) ?? -1,
      leader: m['leader'] === true,
      comm: asString(m['comm']) ?? '',
      rip: asBigInt(regs['rip']),
      rsp: asBigInt(regs['rsp']),
      fsBase: asBigInt(m['fs_base']),
      sigmask: asBigInt(m['sigmask']) ?? 0n,
      pending: asBigInt(m['pending']) ?? 0n,
    };
  });
}

export interface RunInfo {
  address: bigint;
  pages: number;
  offset: number;
  crc: number;
  /** For a run an incremental image refers to: index into its `images` (the run is in that file). */
  image?: number;
}

export interface RegionInfo {
  start: bigint;
  end: bigint;
  prot: number;
  shared: boolean;
  kind: string;
  name: string;
  file: { path: string; offset: bigint } | undefined;
  runs: RunInfo[];
  bytes: number;
}

export function regions(meta: CborMap): RegionInfo[] {
  return asArray(meta['memory']).map((r) => {
    const m = asMap(r);
    const f = m['file'];
    const fm = asMap(f);
    return {
      start: asBigInt(m['start']) ?? 0n,
      end: asBigInt(m['end']) ?? 0n,
      prot: asNumber(m['prot']) ?? 0,
      shared: m['shared'] === true,
      kind: asString(m['kind']) ?? '?',
      name: asString(m['name']) ?? '',
      file: isMap(f) ? { path: asString(fm['path']) ?? '?', offset: asBigInt(fm['offset']) ?? 0n } : undefined,
      runs: asArray(m['runs']).map((x) => {
        const a = asArray(x);
        return {
          address: asBigInt(a[0]) ?? 0n,
          pages: asNumber(a[1]) ?? 0,
          offset: asNumber(a[2]) ?? 0,
          crc: asNumber(a[3]) ?? 0,
          ...(a.length === 5 ? { image: asNumber(a[4]) ?? 0 } : {}),
        };
      }),
      bytes: asNumber(m['bytes']) ?? 0,
    };
  });
}

export interface FileInfo {
  fd: number;
  kind: string;
  path: string;
  flags: number;
  cloexec: boolean;
  offset: bigint;
  size: bigint | undefined;
  stdio: number | undefined;
  sameAs: number | undefined;
  data: { offset: number; length: number; crc: number } | undefined;
  /** what an event descriptor holds (timerfd, signalfd, inotify, pidfd, eventfd, epoll), in words */
  state: string | undefined;
}

/** A duration in nanoseconds, for people. */
function nsText(ns: bigint): string {
  if (ns % 1_000_000_000n === 0n) return `${ns / 1_000_000_000n} s`;
  if (ns >= 1_000_000n) return `${Number(ns) / 1e6} ms`;
  return `${ns} ns`;
}

function signalList(mask: bigint): string {
  const out: string[] = [];
  for (let i = 0n; i < 64n; i++) if ((mask >> i) & 1n) out.push(String(i + 1n));
  return out.length ? out.join(',') : 'none';
}

const CLOCKS: Record<number, string> = {
  0: 'REALTIME', 1: 'MONOTONIC', 2: 'PROCESS_CPUTIME', 3: 'THREAD_CPUTIME', 7: 'BOOTTIME', 8: 'REALTIME_ALARM', 9: 'BOOTTIME_ALARM',
};

export function clockName(id: number): string {
  return CLOCKS[id] ?? `clock ${id}`;
}

function eventState(m: CborMap): string | undefined {
  const t = m['timerfd'];
  if (t !== undefined) {
    const tm = asMap(t);
    const value = asBigInt(tm['value_ns']) ?? 0n, interval = asBigInt(tm['interval_ns']) ?? 0n, ticks = asBigInt(tm['ticks']) ?? 0n;
    const when = tm['deadline_ns'] !== undefined ? `at ${new Date(Number((asBigInt(tm['deadline_ns']) ?? 0n) / 1_000_000n)).toISOString()}` : value ? `in ${nsText(value)}` : 'disarmed';
    return `${clockName(asNumber(tm['clock']) ?? -1)}, fires ${when}` + (interval ? `, then every ${nsText(interval)}` : '') + (ticks ? `, ${ticks} expirations unread` : '');
  }
  if (m['signalfd'] !== undefined) return `signals ${signalList(asBigInt(asMap(m['signalfd'])['mask']) ?? 0n)}`;
  if (m['inotify'] !== undefined) {
    const i = asMap(m['inotify']);
    const ws = asArray(i['watches']).map((w) => {
      const a = asArray(w);
      return `${asNumber(a[0])}:${asString(a[2])} mask ${hex(asBigInt(a[1]) ?? 0n)}`;
    });
    const queued = asNumber(i['queued']) ?? 0;
    return `watches ${ws.length ? ws.join(', ') : 'none'}` + (queued ? ` (${queued} bytes of unread events, not restored)` : '');
  }
  if (m['pidfd'] !== undefined) {
    const p = asMap(m['pidfd']);
    return `process ${asNumber(p['pid'])} (${asString(p['relation']) ?? '?'})`;
  }
  if (m['eventfd'] !== undefined) {
    const e = asMap(m['eventfd']);
    return `count ${asBigInt(e['count']) ?? 0n}` + (e['semaphore'] === true ? ', semaphore' : '');
  }
  if (m['epoll'] !== undefined) {
    const l = asArray(m['epoll']).map((x) => {
      const a = asArray(x);
      return `fd ${asNumber(a[0])} events ${hex(asBigInt(a[1]) ?? 0n)}`;
    });
    return `interest ${l.length ? l.join(', ') : 'none'}`;
  }
  return undefined;
}

export function files(meta: CborMap): FileInfo[] {
  return asArray(meta['files']).map((x) => {
    const m = asMap(x);
    const d = m['data'];
    const da = asArray(d);
    return {
      fd: asNumber(m['fd']) ?? -1,
      kind: asString(m['kind']) ?? '?',
      path: asString(m['path']) ?? '',
      flags: asNumber(m['flags']) ?? 0,
      cloexec: m['cloexec'] === true,
      offset: asBigInt(m['offset']) ?? 0n,
      size: asBigInt(m['size']),
      stdio: asNumber(m['stdio']),
      sameAs: asNumber(m['same_as']),
      data: Array.isArray(d) ? { offset: asNumber(da[0]) ?? 0, length: asNumber(da[1]) ?? 0, crc: asNumber(da[2]) ?? 0 } : undefined,
      state: eventState(m),
    };
  });
}

export interface SignalAction {
  signal: number;
  handler: bigint;
  flags: bigint;
  restorer: bigint;
  mask: bigint;
}

export interface SignalsInfo {
  actions: SignalAction[];
  pending: bigint;
  itimers: { interval_us: bigint; value_us: bigint }[];
  /** POSIX timers (timer_create) */
  timers: { id: number; clock: number; notify: string; signal: number; tid: number; remaining_ns: bigint; interval_ns: bigint }[];
}

export function signalsOf(meta: CborMap): SignalsInfo {
  const s = asMap(meta['signals']);
  return {
    actions: asArray(s['actions']).map((x) => {
      const a = asArray(x);
      return {
        signal: asNumber(a[0]) ?? 0,
        handler: asBigInt(a[1]) ?? 0n,
        flags: asBigInt(a[2]) ?? 0n,
        restorer: asBigInt(a[3]) ?? 0n,
        mask: asBigInt(a[4]) ?? 0n,
      };
    }),
    pending: asBigInt(s['pending']) ?? 0n,
    itimers: asArray(s['itimers']).map((x) => {
      const a = asArray(x);
      return { interval_us: asBigInt(a[0]) ?? 0n, value_us: asBigInt(a[1]) ?? 0n };
    }),
    timers: asArray(s['timers']).map((x) => {
      const t = asMap(x);
      return {
        id: asNumber(t['id']) ?? -1,
        clock: asNumber(t['clock']) ?? -1,
        notify: asString(t['notify']) ?? '?',
        signal: asNumber(t['signal']) ?? 0,
        tid: asNumber(t['tid']) ?? 0,
        remaining_ns: asBigInt(t['remaining_ns']) ?? 0n,
        interval_ns: asBigInt(t['interval_ns']) ?? 0n,
      };
    }),
  };
}

/** The image's PID and every thread's TID. */
export function imagePid(img: Image): number {
  return asNumber(img.meta['pid']) ?? -1;
}

export function imageTids(img: Image): number[] {
  return threads(img.meta).map((t) => t.tid).filter((t) => t > 0);
}

/** A capability set: bit n is capability n (CAP_CHOWN is 0). */
export interface CapabilitySets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  bounding: bigint;
  ambient: bigint;
}

/** Who the process ran as (the image's `creds`, docs/image-format.md). */
export interface Credentials {
  /** Real, effective, saved and filesystem user ID. */
  uid: [number, number, number, number];
  /** Real, effective, saved and filesystem group ID. */
  gid: [number, number, number, number];
  /** Supplementary groups. */
  groups: number[];
  caps: CapabilitySets;
  securebits: number;
  noNewPrivs: boolean;
  /** PR_GET_DUMPABLE: 0, 1, or 2 (fs.suid_dumpable's "root"). */
  dumpable: number;
}

function fourIds(v: CborValue): [number, number, number, number] | undefined {
  const ids = asArray(v).map(asNumber);
  if (ids.length !== 4 || ids.some((x) => x === undefined || x < 0 || x > 0xffffffff)) return undefined;
  return ids as [number, number, number, number];
}

/**
 * The credentials the image's process ran with; undefined when the image
 * does not record them (an older ckrun took it) or they are incomplete.
 */
export function credentials(meta: CborMap): Credentials | undefined {
  if (!isMap(meta['creds'])) return undefined;
  const c = meta['creds'];
  const uid = fourIds(c['uid']);
  const gid = fourIds(c['gid']);
  const groups = asArray(c['groups']).map(asNumber);
  const caps = asMap(c['caps']);
  const sets = (['effective', 'permitted', 'inheritable', 'bounding', 'ambient'] as const).map((k) => asBigInt(caps[k]));
  const securebits = asNumber(c['securebits']);
  const dumpable = asNumber(c['dumpable']);
  if (!uid || !gid || groups.some((g) => g === undefined) || sets.some((s) => s === undefined || s < 0n)) return undefined;
  if (securebits === undefined || typeof c['no_new_privs'] !== 'boolean' || dumpable === undefined) return undefined;
  const [effective, permitted, inheritable, bounding, ambient] = sets as bigint[];
  return {
    uid,
    gid,
    groups: groups as number[],
    caps: { effective: effective!, permitted: permitted!, inheritable: inheritable!, bounding: bounding!, ambient: ambient! },
    securebits,
    noNewPrivs: c['no_new_privs'],
    dumpable,
  };
}

const CAP_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
];

function capName(b: number): string {
  return b < CAP_NAMES.length ? `CAP_${CAP_NAMES[b]}` : `capability ${b}`;
}

/**
 * "CAP_CHOWN, CAP_NET_BIND_SERVICE" for a capability set ("none" when
 * empty; "every capability but CAP_SYS_RESOURCE" when it holds most).
 */
export function capabilityNames(set: bigint): string {
  const has = (b: number): boolean => ((set >> BigInt(b)) & 1n) === 1n;
  const names: string[] = [];
  for (let b = 0; b < 64; b++) if (has(b)) names.push(capName(b));
  const lacking = CAP_NAMES.map((_, b) => b).filter((b) => !has(b));
  if (names.length > CAP_NAMES.length / 2) {
    const unknown = names.filter((n) => n.startsWith('capability'));
    return `every capability${lacking.length ? ` but ${lacking.map(capName).join(', ')}` : ''}${unknown.length ? ` (and ${unknown.join(', ')})` : ''}`;
  }
  return names.length ? names.join(', ') : 'none';
}
