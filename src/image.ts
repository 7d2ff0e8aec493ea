// Reading and verifying a process image (docs/image-format.md).
import { Decoder } from 'cbor-x/decode';
import { open, rm, stat } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { DecompressError, decompressImageFile, isCompressedImage } from './compress.js';
import { wellFormed } from './cbor-check.js';
import { checkRecord, SHIM_ABI } from './image-schema.js';
import { crc32c, crc32cFileRanges, isNativeError } from './native.js';
import { displayPath, formatBytes, hex } from './output.js';

export const IMAGE_VERSION = 1;
export const HEADER_BLOCK = 4096;
export const PAGE_SIZE = 4096;
/** Larger metadata is damage (preload/restore.h: CK_IMAGE_META_MAX). */
export const META_MAX = 2 ** 30;
/** No PID or TID is larger (PID_MAX_LIMIT). */
export const PID_MAX = 4194304;
/** Files one image may refer to (preload/ckrun.h: CK_MAX_IMAGES). */
export const MAX_IMAGES = 64;
const CRC_MAX = 0xffffffff;

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
  /** The CRC-32C of the header block: the image's identity (it covers meta_crc, hence everything). */
  headerCrc: number;
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
  /** The file that is damaged: the image itself, or an image it refers to. */
  readonly file: string;
  constructor(
    readonly path: string,
    readonly problem: ImageProblem,
    readonly detail: string,
    file?: string,
  ) {
    super(`image ${displayPath(path)} ${detail}`);
    this.name = 'ImageError';
    this.file = file ?? path;
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

/**
 * The header block: `[h'<header map>', crc32c]`, then zeros to its end
 * (the whole block is covered: a flipped bit in the padding is damage).
 * The same checks, in the same order, as the restore host's
 * (preload/image.c, ck_image_load). Returns the header and its CRC.
 */
function parseHeader(path: string, block: Buffer, size: number): { header: ImageHeader; crc: number } {
  if (block.every((b) => b === 0))
    throw new ImageError(path, 'corrupt', 'is incomplete: its header block is empty (the image was never finished)');
  const end = cborItemEnd(block, 0);
  let arr: CborValue;
  try {
    if (end === undefined) throw new Error('malformed');
    arr = decodeCbor(block.subarray(0, end));
  } catch {
    throw new ImageError(path, 'not-image', 'is corrupted or not a ckrun image (its first block is not a [header, crc] pair)');
  }
  const want = asNumber(Array.isArray(arr) ? arr[1] : undefined);
  if (!Array.isArray(arr) || arr.length !== 2 || !(arr[0] instanceof Uint8Array) || want === undefined || want < 0 || want > CRC_MAX)
    throw new ImageError(path, 'not-image', 'is corrupted or not a ckrun image (its first block is not a [header, crc] pair)');
  if (!block.subarray(end).every((x) => x === 0))
    throw new ImageError(path, 'corrupt', 'is corrupted: stray bytes in the padding of its header block');
  const bytes = arr[0];
  if (crc32c(bytes) !== want) throw new ImageError(path, 'corrupt', 'is corrupted: the header checksum does not match');
  let map: CborValue;
  try {
    map = wellFormed(bytes) ? decodeCbor(bytes) : undefined;
  } catch {
    map = undefined;
  }
  const h = asMap(map);
  if (!isMap(map) || h['magic'] !== 'ckrun-image')
    throw new ImageError(path, 'not-image', "is not a ckrun image (its header has no 'ckrun-image' magic)");
  const version = asBigInt(h['version']);
  if (version === undefined || version < 0n)
    throw new ImageError(path, 'version', `has no format version; this ckrun reads version ${IMAGE_VERSION}`);
  if (version !== BigInt(IMAGE_VERSION))
    throw new ImageError(
      path,
      'version',
      `has format version ${version}; this ckrun reads version ${IMAGE_VERSION} (restart it with the ckrun that wrote it)`,
    );
  const out: Partial<ImageHeader> = { magic: 'ckrun-image', version: IMAGE_VERSION };
  for (const k of HEADER_FIELDS) {
    const v = asNumber(h[k]);
    if (v === undefined || v < 0 || (k === 'meta_crc' && v > CRC_MAX))
      throw new ImageError(path, 'corrupt', `is corrupted: header field '${k}' is missing or invalid`);
    out[k] = v;
  }
  const unfit = checkRecord(h, 'header');
  if (unfit) throw new ImageError(path, 'corrupt', `does not keep to the image schema: its header: ${unfit}`);
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
  // The layout is fixed: the metadata right after the data, the file ending with it.
  if (
    hdr.data_offset !== HEADER_BLOCK ||
    hdr.data_length % PAGE_SIZE !== 0 ||
    hdr.meta_offset !== hdr.data_offset + hdr.data_length ||
    hdr.meta_length > META_MAX ||
    hdr.meta_offset + hdr.meta_length !== hdr.file_length
  )
    throw new ImageError(path, 'corrupt', 'is corrupted: its header describes an impossible layout');
  return { header: hdr, crc: want };
}

/**
 * The identity a manifest names an image by: its header CRC and its length,
 * from its header block (checked as a restart checks it: a broken image
 * gives an ImageError).
 */
export async function imageIdentity(path: string): Promise<{ headerCrc: number; bytes: number }> {
  const fh = await open(path, 'r').catch((e: Error) => {
    throw new ImageError(path, 'unreadable', `cannot be opened: ${e.message}`);
  });
  try {
    const size = (await fh.stat()).size;
    if (size < HEADER_BLOCK) throw new ImageError(path, 'truncated', `is truncated (found ${formatBytes(size)})`);
    const block = Buffer.alloc(HEADER_BLOCK);
    await fh.read(block, 0, HEADER_BLOCK, 0);
    const { header, crc } = parseHeader(path, block, size);
    return { headerCrc: crc, bytes: header.file_length };
  } finally {
    await fh.close();
  }
}

/** The CRC of a header block (the `crc` of its `[header, crc]` pair), unchecked; undefined when it is none. */
export function headerBlockCrc(block: Uint8Array): number | undefined {
  const end = cborItemEnd(block, 0);
  if (end === undefined) return undefined;
  try {
    const v = decodeCbor(block.subarray(0, end));
    return Array.isArray(v) && v.length === 2 ? asNumber(v[1]) : undefined;
  } catch {
    return undefined;
  }
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
  /** Images already read (by inode): one that several images refer to is read once. */
  cache?: VerifyCache;
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
    const img = await loadCached(path, verifyData, opts.cache);
    await checkReferredImages(img, verifyData, opts.cache);
    return img;
  }
  const file = opts.decompressed ?? (await decompressForReading(path));
  try {
    const img = await loadImage(file, verifyData, path);
    await checkReferredImages(img, verifyData, opts.cache);
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
    const { header, crc: headerCrc } = parseHeader(path, block, size);
    const metaBytes = Buffer.alloc(header.meta_length);
    const { bytesRead } = await fh.read(metaBytes, 0, header.meta_length, header.meta_offset);
    if (bytesRead !== header.meta_length)
      throw new ImageError(path, 'truncated', `is truncated (its metadata ends at ${formatBytes(header.meta_offset + bytesRead)})`);
    if (crc32c(metaBytes) !== header.meta_crc)
      throw new ImageError(path, 'corrupt', 'is corrupted: the metadata checksum does not match');
    if (!wellFormed(metaBytes)) throw new ImageError(path, 'corrupt', 'is corrupted: its metadata is not well-formed CBOR');
    let meta: CborValue;
    try {
      meta = decodeCbor(metaBytes);
    } catch (e) {
      throw new ImageError(path, 'corrupt', `is corrupted: its metadata is not valid CBOR (${(e as Error).message})`);
    }
    if (!isMap(meta)) throw new ImageError(path, 'corrupt', 'is corrupted: its metadata cannot be read (it is not a map)');
    if (asNumber(meta['version']) !== header.version)
      throw new ImageError(path, 'corrupt', `is corrupted: metadata version ${String(meta['version'])} differs from the header's`);
    // (an image of another shim ABI has other keys: a restart refuses it as such)
    const abi = asNumber(meta['shim_abi']);
    const unfit = abi === undefined || abi === SHIM_ABI ? checkRecord(meta, 'meta') : undefined;
    if (unfit) throw new ImageError(path, 'corrupt', `does not keep to the image schema: ${unfit}`);
    const pid = asNumber(meta['pid']);
    if (pid === undefined || pid < 1 || pid > PID_MAX) throw new ImageError(path, 'corrupt', 'is corrupted: its metadata has no pid');
    const onDisk = compressed ? await stat(name).then((s) => s.size, () => size) : size;
    const img: Image = { path, size: onDisk, compressed: compressed ? 'gzip' : undefined, header, headerCrc, meta, dataVerified: false };
    checkMetadata(img);
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

/** `image_ids`: what each referred image must be, `[track_id, header_crc]`; undefined in images of older shims. */
export function referredIdentities(img: Image): { trackId: bigint; headerCrc: number }[] | undefined {
  if (img.meta['image_ids'] === undefined) return undefined;
  return asArray(img.meta['image_ids']).map((x) => {
    const a = asArray(x);
    return { trackId: asBigInt(a[0]) ?? -1n, headerCrc: asNumber(a[1]) ?? -1 };
  });
}

/**
 * Every image an incremental image refers to must be there and intact
 * (header and metadata always, their own data with verifyData), be the
 * very image it was taken against (image_ids), and hold the pages the
 * runs refer to inside its data area. The same checks as the restore
 * host's (preload/restore.c, check_refs and check_chunks).
 */
async function checkReferredImages(img: Image, verifyData: boolean, cache?: VerifyCache): Promise<void> {
  const refs = referredImages(img);
  const ids = referredIdentities(img);
  const loaded: Image[] = [];
  for (const [i, ref] of refs.entries()) {
    let r: Image;
    try {
      r = await loadCached(ref, verifyData, cache);
    } catch (e) {
      if (e instanceof ImageError)
        throw new ImageError(img.path, e.problem, `refers to ${basename(ref)} for unchanged pages, which ${e.detail}`, e.file);
      throw e;
    }
    const id = ids?.[i];
    if (id && (r.headerCrc !== id.headerCrc || asBigInt(r.meta['track_id']) !== id.trackId))
      throw new ImageError(
        img.path,
        'corrupt',
        `refers to ${basename(ref)} for unchanged pages, but that file is not the image it was taken against ` +
          `(header checksum ${hex8(r.headerCrc)}, expected ${hex8(id.headerCrc)}): it was replaced`,
        ref,
      );
    loaded.push(r);
  }
  for (const c of dataChunks(img)) {
    if (c.ref === undefined) continue;
    const r = loaded[c.ref]!; // the index was checked with the image (checkMetadata)
    if (!inDataArea(r.header, c.offset, c.length))
      throw new ImageError(img.path, 'corrupt', `is corrupted: ${c.what} lie outside the data area of ${basename(r.path)}`);
  }
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

/** Images already read (by device and inode), so that one shared by several generations is read once. */
export class VerifyCache {
  readonly results = new Map<string, Promise<Image>>();
}

async function loadCached(file: string, verifyData: boolean, cache: VerifyCache | undefined): Promise<Image> {
  if (!cache) return loadImage(file, verifyData);
  let key: string;
  try {
    const st = await stat(file);
    key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${verifyData}`;
  } catch {
    return loadImage(file, verifyData);
  }
  let p = cache.results.get(key);
  if (!p) {
    p = loadImage(file, verifyData);
    cache.results.set(key, p);
  }
  try {
    return { ...(await p), path: file };
  } catch (e) {
    // read under another name (a hard link): the error names this one
    if (e instanceof ImageError && e.path !== file) throw new ImageError(file, e.problem, e.detail);
    throw e;
  }
}

/** One stored chunk of the data area, with what it belongs to. */
export interface DataChunk {
  what: string;
  offset: number;
  length: number;
  crc: number;
  /** For pages an incremental image holds elsewhere: the index into its `images` (then crc is -1). */
  ref?: number;
}

/** Whether [offset, offset+length) lies in the data area (starting on a page). */
function inDataArea(h: ImageHeader, offset: number, length: number): boolean {
  return offset >= h.data_offset && offset % PAGE_SIZE === 0 && length <= h.data_length && offset - h.data_offset <= h.data_length - length;
}

/** A page run's chunk: what it is said only when a message needs it (an image has many runs). */
class RunChunk implements DataChunk {
  constructor(
    private readonly addr: CborValue,
    private readonly where: string,
    readonly offset: number,
    readonly length: number,
    readonly crc: number,
    readonly ref?: number,
  ) {}

  get what(): string {
    return `the pages at ${hex(asBigInt(this.addr) ?? 0n)} of ${this.where}`;
  }
}

/** A non-negative integer of up to 64 bits as a number; Infinity when it is beyond a safe integer (beyond any file). */
function size64(v: CborValue): number | undefined {
  // most values are small numbers: no bigint for them (an image's runs are many)
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  const b = asBigInt(v);
  if (b === undefined || b < 0n || b >= 1n << 64n) return undefined;
  return b > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(b);
}

/** The chunk keys of the metadata and where they are, or a malformed entry (docs/image-format.md). */
class ChunkWalk {
  readonly chunks: DataChunk[] = [];
  bad: string | undefined;

  private triple(v: CborValue, what: string): void {
    const a = Array.isArray(v) && v.length === 3 ? v.map(size64) : undefined;
    if (!a || a.some((x) => x === undefined) || a[2]! > CRC_MAX) {
      this.bad ??= `the entry for ${what} is malformed`;
      return;
    }
    this.chunks.push({ what, offset: a[0]!, length: a[1]!, crc: a[2]! });
  }

  private datagrams(v: CborValue, what: string): void {
    if (!Array.isArray(v)) {
      this.bad ??= `the datagrams of ${what} are malformed`;
      return;
    }
    v.forEach((d, i) => {
      const a = Array.isArray(d) && d.length === 5 ? d : undefined;
      const nums = a?.slice(1).map(size64);
      const addr = a?.[0];
      if (!a || !nums || nums.some((x) => x === undefined) || !(addr instanceof Uint8Array) || (addr.length !== 4 && addr.length !== 16) || nums[0]! > 65535 || nums[3]! > CRC_MAX) {
        this.bad ??= `datagram ${i} of ${what} is malformed`;
        return;
      }
      this.chunks.push({ what: `datagram ${i} of ${what}`, offset: nums[1]!, length: nums[2]!, crc: nums[3]! });
    });
  }

  private runs(v: CborValue, region: CborMap): void {
    const where = `region ${hex(asBigInt(region['start']) ?? 0n)}-${hex(asBigInt(region['end']) ?? 0n)}${asString(region['name']) ? ` (${asString(region['name'])})` : ''}`;
    if (!Array.isArray(v)) {
      this.bad ??= `the runs of ${where} are malformed`;
      return;
    }
    for (const run of v) {
      const a = Array.isArray(run) && (run.length === 4 || run.length === 5) ? run : undefined;
      const addr = a ? size64(a[0]) : undefined;
      const npages = a ? size64(a[1]) : undefined;
      const offset = a ? size64(a[2]) : undefined;
      const c = a?.[3];
      const crc = typeof c === 'number' && Number.isInteger(c) ? c : typeof c === 'bigint' && c >= -1n && c <= BigInt(CRC_MAX) ? Number(c) : undefined;
      const ref = a?.length === 5 ? size64(a[4]) : undefined;
      const ok =
        a !== undefined &&
        addr !== undefined &&
        npages !== undefined &&
        offset !== undefined &&
        crc !== undefined &&
        (a.length === 4 ? crc >= 0 && crc <= CRC_MAX : crc === -1 && ref !== undefined && ref <= MAX_IMAGES) &&
        npages <= Number.MAX_SAFE_INTEGER / PAGE_SIZE;
      if (!ok) {
        this.bad ??= `a page run of ${where} is malformed`;
        return;
      }
      this.chunks.push(new RunChunk(a[0]!, where, offset, npages * PAGE_SIZE, crc, a.length === 5 ? ref : undefined));
    }
  }

  walk(v: CborValue, where: string, inMemory: boolean, region?: CborMap): void {
    if (this.bad) return;
    if (Array.isArray(v)) {
      v.forEach((x, i) => this.walk(x, `${where}[${i}]`, inMemory, region));
      return;
    }
    if (!isMap(v)) return;
    for (const [k, x] of Object.entries(v)) {
      if (this.bad) return;
      const here = where === 'files' ? descriptorName(v) : where;
      if (k === 'data' || k === 'queue' || k === 'recv_queue' || k === 'unsent_queue' || k === 'send_queue')
        this.triple(x, k === 'data' ? `the saved contents of ${here}` : `the ${k.replace('_', ' ')} of ${here}`);
      else if (k === 'datagrams') this.datagrams(x, here);
      else if (inMemory && k === 'runs') this.runs(x, v);
      else this.walk(x, where === '' ? k : `${here}.${k}`, inMemory || k === 'memory', region);
    }
  }
}

function descriptorName(m: CborMap): string {
  const fd = asNumber(m['fd']);
  const path = asString(m['path']);
  return `descriptor ${fd ?? '?'}${path ? ` (${path})` : ''}`;
}

/** Walks the metadata for its chunks; the message of a malformed one, or the chunks. */
function walkChunks(meta: CborMap): { chunks: DataChunk[]; bad: string | undefined } {
  const w = new ChunkWalk();
  // the descriptors by name: `files` is walked with each entry named
  for (const [k, v] of Object.entries(meta)) {
    if (w.bad) break;
    if (k === 'files' && Array.isArray(v)) v.forEach((f) => w.walk(f, 'files', false));
    else if (k === 'data' || k === 'queue' || k === 'recv_queue' || k === 'unsent_queue' || k === 'send_queue' || k === 'datagrams') w.walk({ [k]: v }, '', false);
    else w.walk(v, k, k === 'memory');
  }
  return { chunks: w.chunks, bad: w.bad };
}

/**
 * Every chunk of the data area the metadata names, found by key wherever
 * it is (as the restore host finds them, preload/image.c ck_meta_chunks):
 * `data`, `queue`, `recv_queue`, `unsent_queue`, `send_queue`, `datagrams` and the page
 * runs of the memory regions (those held by an older image with `ref`).
 */
export function dataChunks(img: Image): DataChunk[] {
  return walkChunks(img.meta).chunks;
}

/**
 * What can be checked from the image alone, as the restore host checks it
 * (preload/restore.c: parse_metadata, check_chunks, check_structure):
 * every chunk is well formed and lies in the data area, runs held
 * elsewhere name an image of `images`, PIDs and TIDs are in range, the
 * threads are distinct and one is the process's own, the regions are page
 * aligned, ordered and their runs inside them.
 */
function checkMetadata(img: Image): void {
  const { meta, path } = img;
  const fail = (detail: string): never => {
    throw new ImageError(path, 'corrupt', `is corrupted: ${detail}`);
  };
  const pid = asNumber(meta['pid'])!;
  for (const k of ['ppid', 'pgid', 'sid'] as const) {
    if (meta[k] === undefined) continue;
    const v = asNumber(meta[k]);
    if (v === undefined || v < 0 || v > PID_MAX) fail(`its ${k} is out of range`);
  }
  for (const c of asArray(meta['children'])) {
    // (as the restore host reads it: an unsigned integer there must be a PID)
    const v = asBigInt(asMap(c)['pid']);
    if (v !== undefined && v >= 0n && (v < 1n || v > BigInt(PID_MAX))) fail('a child PID is out of range');
  }
  const images = meta['images'];
  if (images !== undefined) {
    if (!Array.isArray(images) || images.length >= MAX_IMAGES || images.some((n) => typeof n !== 'string' || n.includes('/') || n.includes('\0')))
      fail('its list of referred images is malformed');
  }
  const ids = meta['image_ids'];
  if (ids !== undefined) {
    const ok =
      Array.isArray(ids) &&
      ids.every((x) => Array.isArray(x) && x.length === 2 && (asBigInt(x[0]) ?? -1n) >= 0n && (asBigInt(x[0]) ?? -1n) < 1n << 64n && (asNumber(x[1]) ?? -1) >= 0 && (asNumber(x[1]) ?? -1) <= CRC_MAX);
    if (!ok) fail('its list of referred images\' identities is malformed');
    const n = asArray(ids).length;
    if (n !== asArray(images).length) fail(`it names ${asArray(images).length} referred images but ${n} identities`);
  }
  const nimages = asArray(images).length;
  const { chunks, bad } = walkChunks(meta);
  if (bad) fail(bad);
  for (const c of chunks) {
    if (c.ref !== undefined) {
      if (c.ref >= nimages) fail(`${c.what} refer to image ${c.ref} of ${nimages}`);
    } else if (!inDataArea(img.header, c.offset, c.length)) fail(`${c.what} lie outside the data area`);
  }
  const tids = asArray(meta['threads']).map((t) => asMap(t)['tid']);
  const seen = new Set<number>();
  for (const t of tids) {
    const v = asNumber(t);
    if (v === undefined || v < 1 || v > PID_MAX) fail('a thread ID is out of range');
    if (seen.has(v!)) fail(`thread ID ${v} appears twice`);
    seen.add(v!);
  }
  if (tids.length > 0 && !seen.has(pid)) fail(`no thread has the process's own ID ${pid}`);
  let prevEnd = 0n;
  for (const r of asArray(meta['memory'])) {
    const m = asMap(r);
    const start = m['start'] === undefined ? 0n : asBigInt(m['start']);
    const end = m['end'] === undefined ? 0n : asBigInt(m['end']);
    if (start === undefined || end === undefined || start < 0n || end <= start || start % 4096n !== 0n || end % 4096n !== 0n)
      fail(`region ${hex(start ?? 0n)}-${hex(end ?? 0n)} is not page aligned`);
    if (start! < prevEnd) fail(`region ${hex(start!)}-${hex(end!)} overlaps the one before it`);
    prevEnd = end!;
    for (const run of asArray(m['runs'])) {
      const a = asArray(run);
      const addr = asBigInt(a[0]) ?? -1n;
      const pages = asBigInt(a[1]) ?? 0n;
      if (addr % 4096n !== 0n || addr < start! || pages > (end! - addr) / 4096n)
        fail(`a page run of region ${hex(start!)}-${hex(end!)} lies outside it`);
    }
  }
}

/**
 * Checks every chunk of the image's own data area against its CRC (the
 * pages it holds in older images are checked as part of them); throws
 * ImageError naming the first bad place. (Padding inside the data area is
 * not checked: it carries nothing a restore reads.) `file`: where the
 * image's bytes are (for a compressed image, the file it was decompressed
 * to).
 */
export function verifyImageData(img: Image, file: string = img.path): void {
  if (img.compressed && file === img.path)
    throw new ImageError(img.path, 'unreadable', 'is compressed: its data can only be verified once decompressed (readImage does both)');
  const own = dataChunks(img).filter((c) => c.ref === undefined);
  for (const c of own)
    if (!inDataArea(img.header, c.offset, c.length))
      throw new ImageError(img.path, 'corrupt', `is corrupted: ${c.what} lie outside the data area`);
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw new ImageError(img.path, 'unreadable', `cannot be read: ${(e as Error).message}`);
  }
  const short = own.find((c) => c.offset + c.length > size);
  if (short) throw new ImageError(img.path, 'truncated', `is truncated: ${short.what} are missing`);
  const ranges = new Float64Array(own.length * 2);
  own.forEach((c, i) => {
    ranges[2 * i] = c.offset;
    ranges[2 * i + 1] = c.length;
  });
  let got: Uint32Array;
  try {
    got = crc32cFileRanges(file, ranges);
  } catch (e) {
    if (isNativeError(e) && e.code === 'ERR_CKRUN_SHORT_FILE') throw new ImageError(img.path, 'truncated', `is truncated: ${(e as Error).message}`);
    throw new ImageError(img.path, 'unreadable', `cannot be read: ${(e as Error).message}`);
  }
  const bad = own.findIndex((c, i) => got[i] !== c.crc);
  if (bad >= 0) throw new ImageError(img.path, 'corrupt', `is corrupted: ${own[bad]!.what} do not match their checksum`);
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
  /** hugetlb memory: its page size in bytes */
  hugePage?: number;
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
      ...(asNumber(m['huge_page']) !== undefined ? { hugePage: asNumber(m['huge_page']) } : {}),
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
}

export function files(meta: CborMap): FileInfo[] {
  return asArray(meta['files']).map((x) => fileInfo(asMap(x)));
}

/** One entry of the metadata's `files`. */
export function fileInfo(m: CborMap): FileInfo {
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
  };
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

/** Every PID and TID a restart of these images needs: processes, threads, and the zombies their parents had not reaped. */
export function imageIds(images: Image[]): number[] {
  const ids = new Set<number>();
  for (const img of images) {
    ids.add(imagePid(img));
    for (const t of imageTids(img)) ids.add(t);
    const zombies = asArray(img.meta['children']).map(asMap).filter((cm) => cm['zombie'] === true);
    const zombiePids = new Set(zombies.map((cm) => asNumber(cm['pid'])));
    for (const cm of zombies) {
      const pid = asNumber(cm['pid']);
      if (pid !== undefined) ids.add(pid);
      // the placeholder leader of a zombie's group whose leader was reaped (ck_zombie_placeholder, preload/restore.c)
      const pgid = asNumber(cm['pgid']);
      if (pgid !== undefined && pgid > 0 && pgid !== pid && pgid !== asNumber(img.meta['pgid']) && pgid !== asNumber(cm['sid']) && !zombiePids.has(pgid))
        ids.add(pgid);
    }
  }
  return [...ids].sort((a, b) => a - b);
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

/** A creds map: the process's (with dumpable) or a thread's own (without: dumpable is the process's). */
function credsOf(v: CborValue, dumpableOf: number | undefined): Credentials | undefined {
  if (!isMap(v)) return undefined;
  const c = v;
  const uid = fourIds(c['uid']);
  const gid = fourIds(c['gid']);
  const groups = asArray(c['groups']).map(asNumber);
  const caps = asMap(c['caps']);
  const sets = (['effective', 'permitted', 'inheritable', 'bounding', 'ambient'] as const).map((k) => asBigInt(caps[k]));
  const securebits = asNumber(c['securebits']);
  const dumpable = dumpableOf ?? asNumber(c['dumpable']);
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

/**
 * The credentials the image's process ran with; undefined when the image
 * does not record them (an older ckrun took it) or they are incomplete.
 */
export function credentials(meta: CborMap): Credentials | undefined {
  return credsOf(meta['creds'], undefined);
}

/**
 * The threads whose credentials are their own (a thread's `creds`): each
 * with its TID; creds undefined when the record is incomplete. The other
 * threads have the process's.
 */
export function threadCredentials(meta: CborMap): { tid: number; creds: Credentials | undefined }[] {
  const dumpable = credentials(meta)?.dumpable ?? 0;
  return asArray(meta['threads'])
    .map(asMap)
    .filter((t) => t['creds'] !== undefined)
    .map((t) => ({ tid: asNumber(t['tid']) ?? 0, creds: credsOf(t['creds'], dumpable) }));
}
