// A generation as one byte stream (docs/image-format.md, "Streams"):
// `ckrun checkpoint --stream` and `ckrun migrate` write one, `ckrun restart -`
// reads one into new generations of its checkpoint directory. The stream
// carries every file of each generation (images, the older images an
// incremental one refers to, the written files' tables and data, the
// manifest last), each with its size and CRC-32C; a file sent earlier in
// the same stream (a hard link of a later generation to an earlier one's
// image) is sent as a reference to it. Nothing counts until the stream's
// end record: a stream cut anywhere is refused as a whole.
import { closeSync, constants, fchmodSync, openSync, writeSync } from 'node:fs';
import { lstat, link, mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  completeGeneration,
  createPartialGeneration,
  encodeManifest,
  fsyncDir,
  MANIFEST,
  parseManifest,
} from './generations.js';
import { crc32c } from './native.js';

export const STREAM_MAGIC = Buffer.from('CKRSTRM\n', 'latin1');
export const STREAM_VERSION = 1;

/** What `ckrun restart -` says on stderr once the program runs again (`ckrun migrate` waits for it). */
export const RUNNING_LINE = 'ckrun restart: running';

/** Record tags. */
const GEN = 0x47; // 'G'
const FILE = 0x46; // 'F'
const LINK = 0x4c; // 'L'
const GEN_END = 0x45; // 'E'
const STREAM_END = 0x5a; // 'Z'

const CHUNK = 4 << 20;
/** Names inside a generation: `<pid>.ckpt`, `ref-<ino>.ckpt`, `manifest.cbor`, `files/<k>.tab`, `carried/<sha256>`... */
const NAME = /^((files|carried)\/|dirs\/[A-Za-z0-9_][A-Za-z0-9._-]{0,200}\/)?[A-Za-z0-9_][A-Za-z0-9._-]{0,200}$/;
/** The subdirectories a generation may have (saved files; a portable generation's copies of mapped files; --snapshot-dir trees, one level deeper). */
const SUBDIRS = ['files', 'carried', 'dirs'];
/** The directory a name lies in inside the generation (`dirs/0` for `dirs/0/list`), or undefined. */
const subdirOf = (name: string): string | undefined => (name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : undefined);
const MAX_FILES = 1 << 20;
const MAX_GENERATIONS = 1 << 16;

/** The stream is damaged, truncated or not a stream; the message says which and where. */
export class StreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamError';
  }
}

function mib(n: number): string {
  return n < 1 << 20 ? `${n} bytes` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

// ---- writing ---------------------------------------------------------------

/** Where a stream goes: a function that resolves once the bytes are taken (backpressure). */
export type Sink = (bytes: Buffer) => Promise<void>;

/** A sink over a writable stream (process.stdout, a child's stdin). */
export function sinkOf(out: NodeJS.WritableStream): Sink {
  return (bytes) =>
    new Promise<void>((res, rej) => {
      const onError = (e: Error): void => rej(e);
      out.once('error', onError);
      const ok = out.write(bytes, (e) => {
        out.off('error', onError);
        if (e) rej(e);
        else if (ok) res();
      });
      if (!ok) out.once('drain', () => res());
    });
}

/** Every file of a generation directory, relative names, the manifest last (hidden entries are restart's temporaries). */
async function generationFiles(genDir: string): Promise<string[]> {
  const names: string[] = [];
  for (const top of (await readdir(genDir)).sort()) {
    if (top.startsWith('.') || top === MANIFEST) continue;
    const st = await lstat(join(genDir, top));
    if (st.isDirectory() && top === 'dirs') {
      for (const d of (await readdir(join(genDir, top))).sort())
        if (!d.startsWith('.')) for (const f of (await readdir(join(genDir, top, d))).sort()) if (!f.startsWith('.')) names.push(`${top}/${d}/${f}`);
    } else if (st.isDirectory() && SUBDIRS.includes(top)) {
      for (const f of (await readdir(join(genDir, top))).sort()) if (!f.startsWith('.')) names.push(`${top}/${f}`);
    } else names.push(top);
  }
  names.push(MANIFEST);
  return names;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
function named(name: string): Buffer {
  const b = Buffer.from(name, 'utf8');
  return Buffer.concat([u16(b.length), b]);
}

/** What one stream writer sent: its size, for the figures migrate reports. */
export interface SentGeneration {
  path: string;
  files: number;
  linked: number;
  bytes: number;
}

/**
 * Writes generations into one stream, in order. A file already sent in this
 * stream (the same inode: an incremental generation's hard link to an
 * older image) goes as a reference, not again.
 */
export class StreamWriter {
  private readonly sent = new Map<string, { index: number; name: string }>();
  private generations = 0;
  private started = false;

  constructor(private readonly sink: Sink) {}

  private async begin(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.sink(Buffer.concat([STREAM_MAGIC, u32(STREAM_VERSION)]));
  }

  /** Sends every file of the complete generation in genDir. */
  async generation(genDir: string): Promise<SentGeneration> {
    await this.begin();
    const index = this.generations++;
    const names = await generationFiles(genDir);
    await this.sink(Buffer.concat([Buffer.from([GEN]), u32(index)]));
    let bytes = 0;
    let linked = 0;
    for (const name of names) {
      const path = join(genDir, name);
      const st = await lstat(path);
      if (!st.isFile()) throw new StreamError(`${path} is not a regular file: a generation holds only files`);
      const key = `${st.dev}:${st.ino}`;
      const before = this.sent.get(key);
      if (before) {
        await this.sink(Buffer.concat([Buffer.from([LINK]), named(name), u32(before.index), named(before.name)]));
        linked++;
        continue;
      }
      bytes += await this.file(path, name);
      this.sent.set(key, { index, name });
    }
    await this.sink(Buffer.concat([Buffer.from([GEN_END]), u32(names.length)]));
    return { path: genDir, files: names.length, linked, bytes };
  }

  private async file(path: string, name: string): Promise<number> {
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const size = (await fh.stat()).size;
      await this.sink(Buffer.concat([Buffer.from([FILE]), named(name), u64(size)]));
      let crc = 0;
      let done = 0;
      while (done < size) {
        const want = Math.min(CHUNK, size - done);
        const buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await fh.read(buf, 0, want, done);
        if (bytesRead !== want) throw new StreamError(`${path} changed while it was sent (it became shorter)`);
        crc = crc32c(buf, crc);
        await this.sink(buf);
        done += want;
      }
      await this.sink(u32(crc));
      return size;
    } finally {
      await fh.close();
    }
  }

  /** The end record: without it a reader takes nothing. */
  async end(): Promise<void> {
    await this.begin();
    await this.sink(Buffer.concat([Buffer.from([STREAM_END]), u32(this.generations)]));
  }
}

/** Writes one complete generation as a whole stream to `out` (`ckrun checkpoint --stream`). */
export async function streamGeneration(genDir: string, out: NodeJS.WritableStream): Promise<SentGeneration> {
  const w = new StreamWriter(sinkOf(out));
  const sent = await w.generation(genDir);
  await w.end();
  return sent;
}

// ---- reading ---------------------------------------------------------------

/** Exact reads from an async stream of chunks. */
class Input {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  consumed = 0;

  constructor(private readonly chunks: AsyncIterator<Buffer | string>) {}

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.chunks.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const c = typeof r.value === 'string' ? Buffer.from(r.value, 'latin1') : r.value;
    this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
    return true;
  }

  /** n bytes, or undefined when the stream ends first. */
  async take(n: number): Promise<Buffer | undefined> {
    while (this.buf.length < n) if (!(await this.more())) return undefined;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.consumed += n;
    return out;
  }

  /** Up to n bytes of what is there (reading more when nothing is); an empty buffer at the end. */
  async some(n: number): Promise<Buffer> {
    if (this.buf.length === 0 && !(await this.more())) return Buffer.alloc(0);
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    this.consumed += out.length;
    return out;
  }

  /** True when nothing follows. */
  async atEnd(): Promise<boolean> {
    return this.buf.length === 0 && !(await this.more());
  }
}

/** One generation received: where it is now, and its number in the stream's source. */
export interface ReceivedGeneration {
  path: string;
  number: number;
  files: number;
  bytes: number;
}

interface Reading {
  input: Input;
  /** Checks a generation once it is complete (a throw is a StreamError or ends the reading). */
  onGeneration?: (g: ReceivedGeneration) => Promise<void>;
  /** For messages: `standard input`. */
  what: string;
  dir: string;
  received: ReceivedGeneration[];
}

function truncated(r: Reading, where: string): StreamError {
  return new StreamError(`the stream on ${r.what} is truncated: it ends ${where} (after ${mib(r.input.consumed)})`);
}

function damaged(r: Reading, why: string): StreamError {
  return new StreamError(`the stream on ${r.what} is damaged: ${why} (at byte ${r.input.consumed})`);
}

async function need(r: Reading, n: number, where: string): Promise<Buffer> {
  const b = await r.input.take(n);
  if (!b) throw truncated(r, where);
  return b;
}

async function readName(r: Reading, where: string): Promise<string> {
  const len = (await need(r, 2, where)).readUInt16LE();
  const name = (await need(r, len, where)).toString('utf8');
  if (!NAME.test(name) || name.includes('..')) throw damaged(r, `a file is named ${JSON.stringify(name.slice(0, 80))}, which no generation holds`);
  return name;
}

async function receiveFile(r: Reading, genPath: string, gen: number): Promise<number> {
  const name = await readName(r, `in a file's name in generation ${gen}`);
  const size = Number((await need(r, 8, `in the size of ${name}`)).readBigUInt64LE());
  if (!Number.isSafeInteger(size)) throw damaged(r, `${name} claims ${size} bytes`);
  const sub = subdirOf(name);
  if (sub) await mkdirOnce(genPath, sub);
  let fd: number;
  try {
    fd = openSync(join(genPath, name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw damaged(r, `generation ${gen} holds ${name} twice`);
    throw e;
  }
  try {
    let crc = 0;
    let done = 0;
    while (done < size) {
      const part = await r.input.some(Math.min(CHUNK, size - done));
      if (part.length === 0) throw truncated(r, `inside ${name} of generation ${gen} (expected ${mib(size)}, found ${mib(done)})`);
      crc = crc32c(part, crc);
      // written at once: a pipe's chunks are small, and a round trip through libuv's pool per chunk is slow on a busy machine
      writeAll(fd, part, done);
      done += part.length;
    }
    const want = (await need(r, 4, `after ${name} of generation ${gen}, before its checksum`)).readUInt32LE();
    if (want !== crc >>> 0) throw damaged(r, `${name} of generation ${gen} does not match its checksum`);
    // not fsync'd here: the program waits for no disk (syncReceived, once it runs)
    // a carried copy is mapped as the program's executable or library: it must be executable (as the sender's is)
    if (subdirOf(name) === 'carried') fchmodSync(fd, 0o500);
  } finally {
    closeSync(fd);
  }
  return size;
}

function writeAll(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, position + off);
}

/** Makes sub (one or two checked names) inside the fresh generation directory. */
async function mkdirOnce(genPath: string, sub: string): Promise<void> {
  let at = genPath;
  for (const part of sub.split('/')) {
    at = join(at, part);
    await mkdir(at, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}

async function receiveLink(r: Reading, genPath: string, gen: number): Promise<void> {
  const name = await readName(r, `in a reference of generation ${gen}`);
  const index = (await need(r, 4, `in the reference ${name}`)).readUInt32LE();
  const from = await readName(r, `in the reference ${name}`);
  const source = r.received[index];
  if (!source) throw damaged(r, `${name} of generation ${gen} refers to a generation the stream has not sent`);
  const sub = subdirOf(name);
  if (sub) await mkdirOnce(genPath, sub);
  await link(join(source.path, from), join(genPath, name)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw damaged(r, `${name} of generation ${gen} refers to ${from}, which the stream has not sent`);
    if (e.code === 'EEXIST') throw damaged(r, `generation ${gen} holds ${name} twice`);
    throw e;
  });
}

/**
 * The manifest names the generation it belongs to; a received generation
 * gets the next free number of the directory it goes to, so its manifest
 * is written again with that number (the same manifest otherwise).
 */
async function renumber(r: Reading, partial: string, number: number, sourceNumber: number): Promise<void> {
  const path = join(partial, MANIFEST);
  let m;
  try {
    m = parseManifest(path, await readFile(path));
  } catch (e) {
    throw damaged(r, `the manifest of generation ${sourceNumber} is damaged: ${(e as Error).message}`);
  }
  if (m.generation === number) return;
  await rm(path);
  await writeFile(path, await encodeManifest({ ...m, generation: number }), { mode: 0o600, flag: 'wx' });
  const fh = await open(path, constants.O_RDONLY);
  await fh.sync().finally(() => fh.close());
}

async function receiveGeneration(r: Reading): Promise<ReceivedGeneration> {
  const index = (await need(r, 4, 'in a generation record')).readUInt32LE();
  if (index !== r.received.length) throw damaged(r, `generation ${index} comes where ${r.received.length} was expected`);
  const { number, path: partial } = await createPartialGeneration(r.dir);
  try {
    let files = 0;
    let bytes = 0;
    let sourceNumber = index + 1;
    for (;;) {
      const tag = (await need(r, 1, `inside generation ${index + 1} of the stream, after ${files} files`))[0];
      if (tag === FILE) {
        bytes += await receiveFile(r, partial, index + 1);
        files++;
      } else if (tag === LINK) {
        await receiveLink(r, partial, index + 1);
        files++;
      } else if (tag === GEN_END) {
        const count = (await need(r, 4, `in the end of generation ${index + 1}`)).readUInt32LE();
        if (count !== files) throw damaged(r, `generation ${index + 1} should hold ${count} files, the stream carried ${files}`);
        break;
      } else throw damaged(r, `an unknown record (0x${(tag ?? 0).toString(16)}) inside generation ${index + 1}`);
      if (files > MAX_FILES) throw damaged(r, `generation ${index + 1} holds more than ${MAX_FILES} files`);
    }
    const m = await readFile(join(partial, MANIFEST)).catch(() => undefined);
    if (!m) throw damaged(r, `generation ${index + 1} has no manifest`);
    try {
      sourceNumber = parseManifest(join(partial, MANIFEST), m).generation;
    } catch (e) {
      throw damaged(r, `the manifest of generation ${index + 1}: ${(e as Error).message}`);
    }
    await renumber(r, partial, number, sourceNumber);
    const path = await completeGeneration(r.dir, number, partial);
    return { path, number: sourceNumber, files, bytes };
  } catch (e) {
    await rm(partial, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

/**
 * Reads a whole stream into new generations of `dir` (already vetted: the
 * caller's own, writable by nobody else), each `dir/N` with the next free
 * number, and resolves with them in stream order. Any fault (a stream cut
 * short, a checksum that does not match, an unknown record, anything after
 * the end) removes every generation this stream made and rejects with a
 * StreamError naming it.
 */
export async function receiveStream(
  chunks: AsyncIterable<Buffer | string>,
  dir: string,
  opts: { what?: string; onGeneration?: (g: ReceivedGeneration) => Promise<void> } = {},
): Promise<ReceivedGeneration[]> {
  const what = opts.what ?? 'standard input';
  const r: Reading = { input: new Input(chunks[Symbol.asyncIterator]()), what, dir, received: [], onGeneration: opts.onGeneration };
  try {
    const head = await r.input.take(STREAM_MAGIC.length + 4);
    if (!head) throw new StreamError(`${what} holds no ckrun stream (it ends after ${r.input.consumed} bytes); give it the output of ckrun checkpoint --stream`);
    if (!head.subarray(0, STREAM_MAGIC.length).equals(STREAM_MAGIC))
      throw new StreamError(`${what} is not a ckrun stream (it does not begin with CKRSTRM); give it the output of ckrun checkpoint --stream`);
    const version = head.readUInt32LE(STREAM_MAGIC.length);
    if (version !== STREAM_VERSION)
      throw new StreamError(`the stream on ${what} is of version ${version}; this ckrun reads version ${STREAM_VERSION} (use the same ckrun on both ends)`);
    for (;;) {
      const tag = (await need(r, 1, `after ${r.received.length} complete generations, before the end record`))[0];
      if (tag === GEN) {
        if (r.received.length >= MAX_GENERATIONS) throw damaged(r, `more than ${MAX_GENERATIONS} generations`);
        const g = await receiveGeneration(r);
        r.received.push(g);
        await r.onGeneration?.(g);
      } else if (tag === STREAM_END) {
        const count = (await need(r, 4, 'in the end record')).readUInt32LE();
        if (count !== r.received.length) throw damaged(r, `the end record counts ${count} generations, the stream carried ${r.received.length}`);
        if (r.received.length === 0) throw new StreamError(`the stream on ${what} holds no generation`);
        if (!(await r.input.atEnd())) throw damaged(r, 'bytes follow its end record');
        await fsyncDir(dir);
        return r.received;
      } else throw damaged(r, `an unknown record (0x${(tag ?? 0).toString(16)}) between generations`);
    }
  } catch (e) {
    await removeReceived(r.received);
    throw e;
  }
}

/**
 * Flushes every file of the received generations to disk. A received
 * generation is not flushed before the restart (the program would wait for
 * the disk); a crash before this leaves files whose checksums a later
 * restart checks (and refuses).
 */
export async function syncReceived(gens: ReceivedGeneration[]): Promise<void> {
  for (const g of gens) {
    const names = await generationFiles(g.path);
    for (const name of names) {
      const fh = await open(join(g.path, name), constants.O_RDONLY | constants.O_NOFOLLOW);
      await fh.sync().finally(() => fh.close());
    }
    await fsyncDir(g.path);
  }
}

/** Removes generations a stream made (newest first: an older one may hold what a newer one links). */
export async function removeReceived(gens: ReceivedGeneration[]): Promise<void> {
  for (const g of [...gens].reverse()) await rm(g.path, { recursive: true, force: true }).catch(() => undefined);
}
