// Compressed images are self-contained. A shim image may refer to older
// images for unchanged pages (`images`, hard-linked beside it as
// `ref-<inode>.ckpt`): after a restart that mapped memory from the image
// (CKRUN_RESTORE_MAP=1, measurements only), that memory is referred to,
// not stored, even without a parent. Before
// such an image is compressed it is flattened: the referred pages are
// appended to its data area and the runs point there instead, so the
// `.ckpt.gz` needs nothing beside it. The flat image is assembled while it
// is compressed (from the image, the referred files and the new header and
// metadata), never written out uncompressed.
import { unlink, open, type FileHandle } from 'node:fs/promises';
import { GZIP_SUFFIX, gzipToFile, type ByteSource } from './compress.js';
import {
  asArray,
  asMap,
  asNumber,
  HEADER_BLOCK,
  headerBlockCrc,
  IMAGE_VERSION,
  PAGE_SIZE,
  readImage,
  referredImages,
  type CborMap,
  type CborValue,
} from './image.js';
import { crc32c, crc32cFile } from './native.js';

// ---------------------------------------------------------------------------
// CBOR, as the image format wants it: shortest integers, definite lengths.

function head(major: number, n: bigint, out: number[]): void {
  const m = major << 5;
  if (n < 24n) out.push(m | Number(n));
  else if (n < 0x100n) out.push(m | 24, Number(n));
  else if (n < 0x10000n) out.push(m | 25, Number(n >> 8n), Number(n & 0xffn));
  else if (n < 0x100000000n) {
    out.push(m | 26);
    for (let s = 24n; s >= 0n; s -= 8n) out.push(Number((n >> s) & 0xffn));
  } else if (n < 0x10000000000000000n) {
    out.push(m | 27);
    for (let s = 56n; s >= 0n; s -= 8n) out.push(Number((n >> s) & 0xffn));
  } else throw new RangeError(`integer ${n} does not fit in 64 bits`);
}

function encodeInto(v: CborValue, out: number[]): void {
  if (typeof v === 'number' && !Number.isInteger(v)) {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    out.push(0xfb, ...b);
    return;
  }
  if (typeof v === 'number' || typeof v === 'bigint') {
    const n = BigInt(v);
    if (n >= 0n) head(0, n, out);
    else head(1, -1n - n, out);
    return;
  }
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    head(3, BigInt(b.length), out);
    for (const x of b) out.push(x);
    return;
  }
  if (v instanceof Uint8Array) {
    head(2, BigInt(v.length), out);
    for (const x of v) out.push(x);
    return;
  }
  if (Array.isArray(v)) {
    head(4, BigInt(v.length), out);
    for (const x of v) encodeInto(x, out);
    return;
  }
  if (v === false) out.push(0xf4);
  else if (v === true) out.push(0xf5);
  else if (v === null) out.push(0xf6);
  else if (v === undefined) out.push(0xf7);
  else {
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null)
      throw new TypeError('the metadata holds a CBOR item this ckrun does not re-encode (a tag?)');
    const entries = Object.entries(v);
    head(5, BigInt(entries.length), out);
    for (const [k, x] of entries) {
      encodeInto(k, out);
      encodeInto(x, out);
    }
  }
}

/** One CBOR item: shortest integers, definite lengths, maps in key insertion order. */
export function encodeCbor(v: CborValue): Buffer {
  const out: number[] = [];
  encodeInto(v, out);
  return Buffer.from(out);
}

// ---------------------------------------------------------------------------
// The flat image, as a list of pieces.

type Piece = { at: number; length: number } & ({ bytes: Buffer } | { file: number; offset: number });

/** An image readable at any offset, possibly assembled from several files. */
export interface ImageSource extends ByteSource {
  /** The referred files the image no longer needs once flattened (empty when it referred to none). */
  readonly referred: string[];
  close(): Promise<void>;
}

class PieceSource implements ImageSource {
  constructor(
    readonly size: number,
    readonly referred: string[],
    private readonly pieces: Piece[],
    private readonly files: FileHandle[],
  ) {}

  /** Index of the piece holding offset `off`. */
  private find(off: number): number {
    let lo = 0;
    let hi = this.pieces.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.pieces[mid]!.at <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || offset + length > this.size) throw new RangeError(`read of ${length} bytes at ${offset} beyond ${this.size}`);
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    for (let i = this.find(offset); done < length; i++) {
      const p = this.pieces[i]!;
      const from = offset + done - p.at;
      const n = Math.min(p.length - from, length - done);
      if ('bytes' in p) p.bytes.copy(out, done, from, from + n);
      else {
        const fh = this.files[p.file]!;
        for (let got = 0; got < n; ) {
          const { bytesRead } = await fh.read(out, done + got, n - got, p.offset + from + got);
          if (bytesRead === 0) throw new Error(`an image file ended early (at ${p.offset + from + got} bytes)`);
          got += bytesRead;
        }
      }
      done += n;
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close().catch(() => undefined)));
  }
}

/**
 * Opens an image for compression: as it is when it refers to no other
 * image, else flattened (see above). The image is checked (header and
 * metadata) first; one that refers to others is verified in full, with
 * them (every data checksum), since the referred pages get checksums of
 * their own in the flat image.
 */
export async function openFlatImage(path: string): Promise<ImageSource> {
  const img = await readImage(path);
  const refs = referredImages(img);
  if (refs.length > 0) await readImage(path, { verifyData: true });
  const files: FileHandle[] = [];
  try {
    files.push(await open(path, 'r'));
    const h = img.header;
    if (refs.length === 0) return new PieceSource(h.file_length, [], [{ at: 0, length: h.file_length, file: 0, offset: 0 }], files);
    for (const r of refs) files.push(await open(r, 'r'));

    const meta: CborMap = img.meta; // ours to change: img goes no further
    const dataEnd = h.data_offset + h.data_length;
    const appended: Piece[] = [];
    let end = dataEnd;
    let pages = 0;
    for (const region of asArray(meta['memory'])) {
      const r = asMap(region);
      let regionBytes = asNumber(r['bytes']) ?? 0;
      r['runs'] = asArray(r['runs']).map((run) => {
        const a = asArray(run);
        if (a.length !== 5) return run;
        const n = asNumber(a[1]) ?? 0;
        const off = asNumber(a[2]) ?? 0;
        const which = asNumber(a[4]) ?? -1;
        const ref = refs[which];
        if (ref === undefined) throw new Error(`a run refers to image ${which} of ${refs.length}`);
        const length = n * PAGE_SIZE;
        const piece: Piece = { at: end, length, file: which + 1, offset: off };
        const prev = appended[appended.length - 1];
        if (prev && !('bytes' in prev) && prev.file === piece.file && prev.offset + prev.length === off && prev.at + prev.length === end)
          prev.length += length;
        else appended.push(piece);
        const run4: CborValue[] = [a[0], a[1], end, crc32cFile(ref, off, length)];
        end += length;
        pages += n;
        regionBytes += length;
        return run4;
      });
      r['bytes'] = regionBytes;
    }
    meta['images'] = [];
    if (meta['image_ids'] !== undefined) meta['image_ids'] = [];
    const stats = asMap(meta['stats']);
    if (meta['stats'] !== undefined) {
      stats['pages'] = (asNumber(stats['pages']) ?? 0) + pages;
      stats['bytes'] = (asNumber(stats['bytes']) ?? 0) + pages * PAGE_SIZE;
    }
    const metaBytes = encodeCbor(meta);
    const header = encodeCbor({
      magic: 'ckrun-image',
      version: IMAGE_VERSION,
      data_offset: HEADER_BLOCK,
      data_length: end - HEADER_BLOCK,
      meta_offset: end,
      meta_length: metaBytes.length,
      meta_crc: crc32c(metaBytes),
      file_length: end + metaBytes.length,
    });
    const block = Buffer.alloc(HEADER_BLOCK);
    encodeCbor([header, crc32c(header)]).copy(block);
    const pieces: Piece[] = [
      { at: 0, length: HEADER_BLOCK, bytes: block },
      { at: HEADER_BLOCK, length: h.data_length, file: 0, offset: HEADER_BLOCK },
      ...appended,
      { at: end, length: metaBytes.length, bytes: metaBytes },
    ].filter((p) => p.length > 0);
    return new PieceSource(end + metaBytes.length, refs, pieces, files);
  } catch (e) {
    await Promise.all(files.map((f) => f.close().catch(() => undefined)));
    throw e;
  }
}

export interface CompressedImage {
  /** `<image>.gz` */
  path: string;
  /** Its size. */
  bytes: number;
  /** The size of the image it holds (flattened: with the pages it referred to). */
  imageBytes: number;
  /** Files the uncompressed image referred to, which the compressed one does not need. */
  referred: string[];
  /** The CRC of the header block of the image it holds (for the manifest). */
  headerCrc: number;
}

/**
 * Compresses a complete image `<pid>.ckpt` into a self-contained
 * `<pid>.ckpt.gz` (fsync'd) and removes `<pid>.ckpt`. The referred files
 * (hard links) are left for the caller to remove: another image of the
 * generation may refer to them too.
 */
export async function compressImage(path: string, level: number): Promise<CompressedImage> {
  const source = await openFlatImage(path);
  let bytes: number;
  let headerCrc: number | undefined;
  try {
    headerCrc = headerBlockCrc(await source.read(0, HEADER_BLOCK));
    if (headerCrc === undefined) throw new Error(`the header block of ${path} cannot be read`);
    bytes = await gzipToFile(source, path + GZIP_SUFFIX, level);
  } finally {
    await source.close();
  }
  await unlink(path);
  return { path: path + GZIP_SUFFIX, bytes, imageBytes: source.size, referred: source.referred, headerCrc };
}
