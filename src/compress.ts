// Optional gzip compression of images (`--compress`): a complete image
// `<pid>.ckpt` becomes `<pid>.ckpt.gz`, and restart or inspect decompress it
// into a hidden temporary `.restore-<pid>-<random>.ckpt` beside it.
//
// Node's zlib does the work in libuv's thread pool, so the coordinator keeps
// answering while an image is compressed. The image is cut into 1 MiB
// segments, each compressed by its own gzip stream (several at once: every
// core works) and written in order: the result is one gzip file of several
// members, which every gunzip reads as one stream (RFC 1952, section 2.2).
// Memory is often incompressible (random or already compressed data): a
// segment whose samples do not shrink is stored (deflate level 0, at memory
// speed) instead of being compressed for nothing.
import { randomBytes } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip, createGzip, deflateRaw } from 'node:zlib';

/** The suffix of a compressed image: `<pid>.ckpt.gz`. */
export const GZIP_SUFFIX = '.gz';
/** The compression `--compress` uses without a level: fastest. */
export const DEFAULT_COMPRESS_LEVEL = 1;
/** Bytes of the image each gzip member holds. */
const SEGMENT = 1 << 20;
/** Buffer size of zlib's output chunks and of the streams. */
const CHUNK = 1 << 20;
/** A segment is tried on this many samples of this many bytes first... */
const PROBE_SAMPLES = 8;
const PROBE_BYTES = 2048;
/** ...and compressed only if they shrink below this fraction at level 1. */
const PROBE_RATIO = 0.9;

const deflateRawAsync = promisify(deflateRaw);

/** True for a compressed image's name (`*.ckpt.gz`). */
export function isCompressedImage(path: string): boolean {
  return path.endsWith('.ckpt' + GZIP_SUFFIX);
}

/** The level `compress` asks for (true: the default), or undefined when it is off; throws RangeError if invalid. */
export function compressLevel(compress: boolean | number | undefined): number | undefined {
  if (compress === undefined || compress === false) return undefined;
  if (compress === true) return DEFAULT_COMPRESS_LEVEL;
  if (!Number.isInteger(compress) || compress < 1 || compress > 9)
    throw new RangeError(`the compression level must be an integer from 1 (fastest) to 9 (smallest), not ${compress}`);
  return compress;
}

/** Bytes to compress, read at any offset (an image file, or an image assembled from several). */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Whether samples spread over the segment shrink when compressed (in the thread pool too). */
async function looksCompressible(data: Buffer): Promise<boolean> {
  if (data.length < 4 * PROBE_SAMPLES * PROBE_BYTES) return true;
  const step = Math.floor((data.length - PROBE_BYTES) / (PROBE_SAMPLES - 1));
  const samples = Buffer.concat(Array.from({ length: PROBE_SAMPLES }, (_, i) => data.subarray(i * step, i * step + PROBE_BYTES)));
  const out = await deflateRawAsync(samples, { level: 1 });
  return out.length < samples.length * PROBE_RATIO;
}

/** Compresses one segment with a gzip stream of its own (stored when it would not shrink); resolves with the member. */
async function gzipSegment(data: Buffer, level: number): Promise<Buffer> {
  return gzipMember(data, (await looksCompressible(data)) ? level : 0);
}

function gzipMember(data: Buffer, level: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const gz = createGzip({ level, chunkSize: CHUNK });
    const parts: Buffer[] = [];
    gz.on('data', (b: Buffer) => parts.push(b));
    gz.once('error', reject);
    gz.once('end', () => resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts)));
    gz.end(data);
  });
}

async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done);
    done += bytesWritten;
  }
}

/**
 * Writes `source` gzip-compressed to `dst` (as `dst.tmp`, fsync'd, renamed;
 * mode 0600) and returns the compressed size. The caller fsyncs the
 * directory. On failure nothing is left behind; the error is a CompressError.
 */
export async function gzipToFile(source: ByteSource, dst: string, level: number = DEFAULT_COMPRESS_LEVEL): Promise<number> {
  const tmp = dst + '.tmp';
  let output: FileHandle | undefined;
  let created = false;
  try {
    // a new file, never one found there or a link's target
    output = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    created = true;
    const size = source.size;
    const segments = Math.max(1, Math.ceil(size / SEGMENT));
    // enough segments under way to keep every core (and libuv's 4 threads) busy
    const width = Math.max(1, Math.min(2 * Math.min(availableParallelism(), 4) + 2, segments));
    const pending: (Promise<Buffer> | undefined)[] = [];
    let next = 0;
    const startNext = (): void => {
      if (next >= segments) return;
      const off = next * SEGMENT;
      const p = source.read(off, Math.min(SEGMENT, size - off)).then((b) => gzipSegment(b, level));
      p.catch(() => undefined); // awaited below, in order
      pending[next++] = p;
    };
    for (let i = 0; i < width; i++) startNext();
    let written = 0;
    try {
      for (let i = 0; i < segments; i++) {
        const member = await pending[i]!;
        pending[i] = undefined;
        startNext();
        await writeAll(output, member);
        written += member.length;
      }
    } finally {
      // after a failure, let what still runs finish before anything is closed
      await Promise.allSettled(pending.filter((p) => p !== undefined));
    }
    await output.sync();
    await output.close();
    output = undefined;
    await rename(tmp, dst);
    return written;
  } catch (e) {
    await output?.close().catch(() => undefined);
    // a file that was there already is not ours to remove
    if (created) await rm(tmp, { force: true }).catch(() => undefined);
    throw new CompressError(`compressing ${basename(dst.replace(/\.gz$/, ''))} failed: ${errorMessage(e)}`);
  }
}

/** Compressing an image failed (disk full, …). */
export class CompressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CompressError';
  }
}

/** What went wrong while decompressing: the compressed file is damaged, or it could not be read or written. */
export type DecompressProblem = 'truncated' | 'corrupt' | 'unreadable' | 'unwritable';

export class DecompressError extends Error {
  constructor(
    readonly problem: DecompressProblem,
    message: string,
  ) {
    super(message);
    this.name = 'DecompressError';
  }
}

/** The hidden temporary name a compressed image is decompressed to: `.restore-<pid>-<random>.ckpt`. */
export function temporaryImageName(gzPath: string, pid?: number): string {
  const stem = pid !== undefined ? String(pid) : basename(gzPath).replace(/\.ckpt\.gz$/, '').replace(/[^\w.-]/g, '_') || 'image';
  return `.restore-${stem}-${randomBytes(6).toString('hex')}.ckpt`;
}

/** True for a name temporaryImageName makes. */
export function isTemporaryImageName(name: string): boolean {
  return /^\.restore-.+-[0-9a-f]{12}\.ckpt$/.test(name);
}

/**
 * Decompresses `gzPath` into a new hidden file in `dir` (default: the same
 * directory, where an image's hard-linked references are), mode 0600,
 * streamed; returns its path. The caller removes it. On failure nothing is
 * left behind and a DecompressError says whether the compressed file is
 * damaged or could not be read or written.
 */
export async function decompressImageFile(gzPath: string, opts: { dir?: string; pid?: number } = {}): Promise<string> {
  const dir = opts.dir ?? dirname(gzPath);
  const tmp = join(dir, temporaryImageName(gzPath, opts.pid));
  let input: FileHandle;
  try {
    input = await open(gzPath, 'r');
  } catch (e) {
    throw new DecompressError('unreadable', `cannot be opened: ${errorMessage(e)}`);
  }
  let output: FileHandle;
  try {
    output = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    await input.close().catch(() => undefined);
    throw new DecompressError('unwritable', `cannot be decompressed into ${dir}: ${errorMessage(e)}`);
  }
  const reader = createReadStream('', { fd: input, highWaterMark: CHUNK });
  const gunzip = createGunzip({ chunkSize: CHUNK });
  const writer = createWriteStream('', { fd: output, highWaterMark: CHUNK });
  // who failed: the reader, zlib or the writer
  let failed: DecompressError | undefined;
  reader.once('error', (e) => (failed ??= new DecompressError('unreadable', `cannot be read: ${e.message}`)));
  gunzip.once('error', (e: NodeJS.ErrnoException) => (failed ??= damaged(e)));
  writer.once('error', (e) => (failed ??= new DecompressError('unwritable', `cannot be decompressed into ${dir}: ${e.message}`)));
  try {
    await pipeline(reader, gunzip, writer);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw failed ?? new DecompressError('unreadable', `cannot be decompressed: ${errorMessage(e)}`);
  }
  return tmp;
}

function damaged(e: NodeJS.ErrnoException): DecompressError {
  if (e.code === 'Z_BUF_ERROR')
    return new DecompressError('truncated', `is damaged: its compressed data ends too early (the file is truncated: ${e.message})`);
  return new DecompressError('corrupt', `is damaged: its compressed data is corrupted (gzip: ${e.message})`);
}
