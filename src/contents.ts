// Mapped files identified by their content (docs/design.md, "Files
// identified by content").
//
// An image names each file it maps privately (executable, libraries, data
// files) by path, device, inode, size and modification time; the restore
// host takes the file at that path only when size and modification time are
// those. A copy of the same bytes (another host, a reinstall, `cp` and
// rename) has other times and another inode. So at each checkpoint ckrun
// records the SHA-256 of every such file in the manifest (`contents`), and a
// restart that finds a file whose time differs hashes it: the same size and
// the same SHA-256 is the same file for the program (every byte, so every
// mapped offset, is the same); anything else is refused by name, as before.
//
// Hashing is done by ckrun, after the program runs on again, never in the
// pause; each file is hashed once per identity (device, inode, size,
// modification and change time) for the life of the ckrun process.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeLeasedFiles } from './files.js';
import { asArray, asBigInt, asMap, asString, type CborMap, type CborValue, type Image } from './image.js';

/** One file a generation's images map privately, with its content's SHA-256 (manifest `contents`). */
export interface ContentEntry {
  path: string;
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtime_ns: bigint;
  ctime_ns: bigint;
  sha256: Uint8Array;
}

/** A file as an image names it (region `file`). */
interface MappedFile {
  path: string;
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtime_ns: bigint;
}

/** Files larger than this are not hashed: a restart then needs them with their times (documented). */
export const CONTENT_HASH_MAX = 1n << 30n;

const CHUNK = 1 << 20;
const cache = new Map<string, Uint8Array>();

function cacheKey(id: { dev: bigint; ino: bigint; size: bigint; mtime_ns: bigint; ctime_ns: bigint }): string {
  return `${id.dev}:${id.ino}:${id.size}:${id.mtime_ns}:${id.ctime_ns}`;
}

/** The private file mappings of an image's metadata, once per file. */
export function mappedFiles(meta: CborMap): MappedFile[] {
  const out = new Map<string, MappedFile>();
  for (const r of asArray(meta['memory'])) {
    const m = asMap(r);
    if (m['shared'] === true || m['file'] === undefined) continue;
    const f = asMap(m['file']);
    const path = asString(f['path']);
    const dev = asBigInt(f['dev']);
    const ino = asBigInt(f['ino']);
    const size = asBigInt(f['size']);
    const mtime_ns = asBigInt(f['mtime_ns']);
    if (!path?.startsWith('/') || dev === undefined || ino === undefined || size === undefined || mtime_ns === undefined) continue;
    out.set(`${dev}:${ino}:${path}`, { path, dev, ino, size, mtime_ns });
  }
  return [...out.values()];
}

type Identity = { dev: bigint; ino: bigint; size: bigint; mtime_ns: bigint; ctime_ns: bigint };

function identityOf(st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): Identity {
  return { dev: st.dev, ino: st.ino, size: st.size, mtime_ns: st.mtimeNs, ctime_ns: st.ctimeNs };
}

function sameIdentity(a: Identity, b: Identity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtime_ns === b.mtime_ns && a.ctime_ns === b.ctime_ns;
}

/**
 * The SHA-256 of the regular file at `path` and the identity it had while
 * it was read (unchanged from before the first read to after the last), or
 * undefined when it is not a regular file, is too large, cannot be read or
 * changed meanwhile. `accept` may refuse the identity before anything is read.
 */
export async function hashFile(path: string, accept: (id: Identity) => boolean = () => true): Promise<{ id: Identity; sha256: Uint8Array } | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile() || st.size > CONTENT_HASH_MAX) return undefined;
    const id = identityOf(st);
    if (!accept(id)) return undefined;
    const known = cache.get(cacheKey(id));
    if (known) return { id, sha256: known };
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    let total = 0n;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      total += BigInt(bytesRead);
    }
    const after = identityOf(await fh.stat({ bigint: true }));
    if (total !== id.size || !sameIdentity(id, after)) return undefined;
    const sha256 = new Uint8Array(h.digest());
    cache.set(cacheKey(id), sha256);
    return { id, sha256 };
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

/**
 * The `contents` of a generation: every file its images map privately that
 * is still the file the image names (same device, inode, size and
 * modification time), hashed. A file that changed since is left out (a
 * restart then needs it as the image names it, which it no longer is).
 */
export async function recordContents(images: CborMap[]): Promise<{ entries: ContentEntry[]; hashed: bigint; ms: number }> {
  const t0 = performance.now();
  const seen = new Map<string, MappedFile>();
  for (const meta of images) for (const f of mappedFiles(meta)) seen.set(`${f.dev}:${f.ino}:${f.path}`, f);
  const entries: ContentEntry[] = [];
  let hashed = 0n;
  // opening a file under a write lease breaks it (the program is signalled): such a file is left out, like a changed one
  const leased = writeLeasedFiles();
  for (const f of seen.values()) {
    if (leased.has(`${f.dev}:${f.ino}`)) continue;
    const cached = { hit: true };
    const r = await hashFile(f.path, (id) => {
      cached.hit = cache.has(cacheKey(id));
      return id.dev === f.dev && id.ino === f.ino && id.size === f.size && id.mtime_ns === f.mtime_ns;
    });
    if (!r) continue;
    entries.push({ path: f.path, ...r.id, sha256: r.sha256 });
    if (!cached.hit) hashed += r.id.size;
  }
  return { entries, hashed, ms: performance.now() - t0 };
}

/**
 * A restart: the files the images map whose times (or inode) differ from
 * the image's, but whose content is the checkpoint's, as the restore host's
 * CKRUN_FILES_SAME ("dev:ino:size:mtime_ns:ctime_ns,...": the identity each
 * had when it was hashed; a file changed after that is not accepted). With
 * `carried` (the `carried/` of a portable generation): a file that is gone
 * or holds other bytes is replaced by the generation's copy, whose content
 * is checked here too: CKRUN_FILES_CARRIED ("dev:ino:size:mtime_ns:sha256,...":
 * the region's file and the copy's name). Also seeds the cache with the
 * checkpoint's entries that still hold.
 */
export async function acceptedCopies(
  images: Image[],
  contents: ContentEntry[] | undefined,
  carried?: string,
): Promise<{ same: string; carried: string }> {
  if (!contents || contents.length === 0) return { same: '', carried: '' };
  for (const c of contents) if (!cache.has(cacheKey(c))) cache.set(cacheKey(c), c.sha256);
  const byPath = new Map<string, ContentEntry[]>();
  for (const c of contents) byPath.set(c.path, [...(byPath.get(c.path) ?? []), c]);
  const same = new Set<string>();
  const substitutes = new Set<string>();
  const idText = (id: Identity): string => `${id.dev}:${id.ino}:${id.size}:${id.mtime_ns}:${id.ctime_ns}`;
  const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));
  for (const img of images) {
    for (const f of mappedFiles(img.meta)) {
      const entry = byPath.get(f.path)?.find((c) => c.dev === f.dev && c.ino === f.ino && c.size === f.size && c.mtime_ns === f.mtime_ns);
      if (!entry) continue;
      let fits = false;
      const r = await hashFile(f.path, (id) => {
        fits = id.size === entry.size && id.mtime_ns === entry.mtime_ns;
        return id.size === entry.size && !fits;
      });
      if (fits) continue; // the restore host takes it as it is
      if (r && sameBytes(r.sha256, entry.sha256)) {
        same.add(idText(r.id));
        continue;
      }
      if (!carried) continue; // refused by the restore host, by name
      const copy = await hashFile(join(carried, hex(entry.sha256)));
      if (copy && copy.id.size === entry.size && sameBytes(copy.sha256, entry.sha256)) {
        same.add(idText(copy.id));
        substitutes.add(`${f.dev}:${f.ino}:${f.size}:${f.mtime_ns}:${hex(entry.sha256)}`);
      }
    }
  }
  return { same: [...same].join(','), carried: [...substitutes].join(',') };
}

/**
 * The manifest's `contents` (its types checked by the schema). An entry
 * that is not a usable one (a relative path, a hash of another length) is
 * left out, not refused: without it a restart needs that file with its
 * times, as the restore host, which does not read `contents`, always would.
 */
export function parseContents(v: CborValue): ContentEntry[] | string {
  if (!Array.isArray(v)) return 'contents is not an array';
  const out: ContentEntry[] = [];
  for (const e of v) {
    const m = asMap(e);
    const path = asString(m['path']);
    const nums = ['dev', 'ino', 'size', 'mtime_ns', 'ctime_ns'].map((k) => asBigInt(m[k]));
    const sha = m['sha256'];
    if (!path?.startsWith('/') || nums.some((n) => n === undefined || n < 0n) || !(sha instanceof Uint8Array) || sha.length !== 32) continue;
    const [dev, ino, size, mtime_ns, ctime_ns] = nums as bigint[];
    out.push({ path, dev: dev!, ino: ino!, size: size!, mtime_ns: mtime_ns!, ctime_ns: ctime_ns!, sha256: sha });
  }
  return out;
}

/** Where a portable generation keeps its copies of the mapped files: `carried/<sha256 hex>`. */
export const CARRIED = 'carried';

function hex(sha: Uint8Array): string {
  return Buffer.from(sha).toString('hex');
}

/**
 * Copies the file of `e` to `dest` if it is still that file (identity and
 * content): written beside, checked by its SHA-256, renamed into place.
 */
async function copyChecked(e: ContentEntry, dest: string): Promise<boolean> {
  const tmp = `${dest}.tmp${process.pid}`;
  let src;
  try {
    src = await open(e.path, 'r');
  } catch {
    return false;
  }
  let out;
  try {
    if (!sameIdentity(identityOf(await src.stat({ bigint: true })), e)) return false;
    out = await open(tmp, 'wx', 0o500); // executable: the executable link may name it (PR_SET_MM_MAP)
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await src.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      await out.write(buf, 0, bytesRead);
    }
    await out.sync();
    if (!h.digest().equals(Buffer.from(e.sha256)) || !sameIdentity(identityOf(await src.stat({ bigint: true })), e)) return false;
    await rename(tmp, dest);
    return true;
  } catch {
    return false;
  } finally {
    await src.close();
    await out?.close();
    await rm(tmp, { force: true });
  }
}

/**
 * `--portable`: a copy of every file in `entries` in the generation
 * (`carried/<sha256>`), hard-linked from `previous` (an older generation's
 * `carried/`) when it has it. True when every mapped file of the images
 * (`mapped` of them) has its copy: the generation is portable.
 */
export async function carryFiles(genPath: string, entries: ContentEntry[], mapped: number, previous: string | undefined): Promise<{ portable: boolean; copied: bigint }> {
  const dir = join(genPath, CARRIED);
  await mkdir(dir, { mode: 0o700 });
  let carried = 0;
  let copied = 0n;
  for (const e of entries) {
    const dest = join(dir, hex(e.sha256));
    if (existsSync(dest)) {
      carried++;
      continue;
    }
    if (previous) {
      try {
        await link(join(previous, hex(e.sha256)), dest);
        carried++;
        continue;
      } catch {
        // not there (pruned): copied
      }
    }
    if (await copyChecked(e, dest)) {
      carried++;
      copied += e.size;
    }
  }
  return { portable: carried === mapped, copied };
}

/** The number of distinct files the images map privately. */
export function mappedCount(images: CborMap[]): number {
  const seen = new Set<string>();
  for (const meta of images) for (const f of mappedFiles(meta)) seen.add(`${f.dev}:${f.ino}:${f.path}`);
  return seen.size;
}
