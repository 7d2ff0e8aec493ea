// `ckrun inspect` of a generation with several processes: the tree (who is
// whose parent, process groups, sessions), the open file descriptions the
// processes share, and which image stores each shared memory object.
import { asArray, asMap, asNumber, asString, files, type CborMap, type Image } from './image.js';
import type { Inspection } from './inspect-read.js';
import { formatBytes } from './output.js';

export interface FamilyProcess {
  pid: number;
  ppid: number | null;
  pgid: number | null;
  sid: number | null;
  /** Depth in the tree (0: its parent is not in the generation). */
  depth: number;
  command: string;
  image: string;
  /** The image's size on disk. */
  size: number;
  /** Children that had exited and were not reaped yet: [pid, wait status as wait() reports it]. */
  zombies: [number, number][];
}

export interface FamilySharedFile {
  members: { pid: number; fd: number }[];
  /** What the first member's descriptor is, from its image. */
  kind: string;
  what: string;
}

export interface FamilySharedMemory {
  dev: number;
  ino: number;
  /** The process whose image stores the contents. */
  owner: number;
  /** Every process that maps it. */
  mappedBy: number[];
  name: string;
  /** Size of the owner's mapping of it. */
  bytes: number;
}

export interface Family {
  /** Processes in tree order (parents before their children). */
  processes: FamilyProcess[];
  sharedFiles: FamilySharedFile[];
  sharedMemory: FamilySharedMemory[];
}

function field(entry: number | undefined, meta: CborMap, key: string): number | null {
  return entry ?? asNumber(meta[key]) ?? null;
}

/** The shared memory objects an image maps: "dev:ino" → [name, bytes]. */
function shmOf(meta: CborMap): Map<string, [string, number]> {
  const out = new Map<string, [string, number]>();
  for (const r of asArray(meta['memory'])) {
    const m = asMap(r);
    const shm = asArray(m['shm']);
    const dev = asNumber(shm[0]);
    const ino = asNumber(shm[1]);
    if (dev === undefined || ino === undefined) continue;
    const size = Number((asNumber(m['end']) ?? 0) - (asNumber(m['start']) ?? 0));
    const key = `${dev}:${ino}`;
    const had = out.get(key);
    out.set(key, [had?.[0] || asString(m['name']) || '(shared memory)', (had?.[1] ?? 0) + size]);
  }
  return out;
}

const STDIO = ['stdin', 'stdout', 'stderr'];

/** The family of an inspected generation, or undefined for a single process. */
export function familyOf(i: Inspection): Family | undefined {
  const g = i.generation;
  if (!g || g.manifest.processes.length < 2) return undefined;
  const m = g.manifest;
  const byPid = new Map<number, { entry: (typeof m.processes)[number]; img: Image }>();
  m.processes.forEach((p, k) => byPid.set(p.pid, { entry: p, img: i.images[k]! }));

  const procs: FamilyProcess[] = [];
  const info = (pid: number, depth: number): FamilyProcess => {
    const { entry, img } = byPid.get(pid)!;
    return {
      pid,
      ppid: field(entry.ppid, img.meta, 'ppid'),
      pgid: field(entry.pgid, img.meta, 'pgid'),
      sid: field(entry.sid, img.meta, 'sid'),
      depth,
      command: asArray(img.meta['cmdline'])
        .map((a) => asString(a) ?? '')
        .join(' '),
      image: entry.image,
      size: img.size,
      zombies: asArray(img.meta['children']).flatMap((c) => {
        const cm = asMap(c);
        const zp = asNumber(cm['pid']);
        return cm['zombie'] === true && zp !== undefined ? [[zp, asNumber(cm['status']) ?? 0] as [number, number]] : [];
      }),
    };
  };
  const children = new Map<number, number[]>();
  const roots: number[] = [];
  for (const pid of [...byPid.keys()].sort((a, b) => a - b)) {
    const p = info(pid, 0);
    if (p.ppid !== null && byPid.has(p.ppid) && p.ppid !== pid) {
      const list = children.get(p.ppid) ?? [];
      list.push(pid);
      children.set(p.ppid, list);
    } else roots.push(pid);
  }
  // the root ckrun started first
  roots.sort((a, b) => Number(b === m.root) - Number(a === m.root) || a - b);
  const seen = new Set<number>();
  const walk = (pid: number, depth: number): void => {
    if (seen.has(pid)) return;
    seen.add(pid);
    procs.push(info(pid, depth));
    for (const c of children.get(pid) ?? []) walk(c, depth + 1);
  };
  for (const r of roots) walk(r, 0);
  for (const pid of byPid.keys()) walk(pid, 0); // a cycle (a damaged manifest) still shows everyone

  const sharedFiles: FamilySharedFile[] = (m.shared_files ?? []).map((group) => {
    const members = group.map(([pid, fd]) => ({ pid, fd }));
    const first = members[0];
    const img = first ? byPid.get(first.pid)?.img : undefined;
    const f = img ? files(img.meta).find((x) => x.fd === first!.fd) : undefined;
    const what = !f ? '?' : f.stdio !== undefined ? `session ${STDIO[f.stdio] ?? f.stdio} (was ${f.path})` : f.path;
    return { members, kind: f?.kind ?? '?', what };
  });

  const maps = new Map<number, Map<string, [string, number]>>();
  for (const [pid, { img }] of byPid) maps.set(pid, shmOf(img.meta));
  const sharedMemory: FamilySharedMemory[] = (m.shm_owners ?? []).map(([dev, ino, owner]) => {
    const key = `${dev}:${ino}`;
    const mappedBy = [...maps.entries()].filter(([, objs]) => objs.has(key)).map(([pid]) => pid).sort((a, b) => a - b);
    const mine = maps.get(owner)?.get(key);
    return { dev, ino, owner, mappedBy, name: mine?.[0] ?? '?', bytes: mine?.[1] ?? 0 };
  });
  return { processes: procs, sharedFiles, sharedMemory };
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string =>
    '  ' +
    cells
      .map((x, c) => (c === cells.length - 1 ? x : x.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** A wait status as words: "exited 3", "killed by signal 9". */
function waitStatus(st: number): string {
  return (st & 0x7f) === 0 ? `exited ${(st >> 8) & 0xff}` : `killed by signal ${st & 0x7f}`;
}

function shorten(text: string, max = 60): string {
  return text.length <= max ? text : text.slice(0, max - 1) + '…';
}

/** The tree, the shared files and the shared memory, as text. */
export function formatFamily(f: Family): string {
  const out: string[] = [];
  out.push(`Process tree (${f.processes.length} processes)\n`);
  const n = (x: number | null): string => (x === null ? '?' : String(x));
  out.push(
    table(
      ['PID', 'PPID', 'PGID', 'SID', 'IMAGE', 'COMMAND'],
      f.processes.map((p) => [
        `${'  '.repeat(p.depth)}${p.depth > 0 ? '└ ' : ''}${p.pid}`,
        n(p.ppid),
        n(p.pgid),
        n(p.sid),
        formatBytes(p.size),
        shorten(p.command) + (p.zombies.length ? ` (zombies: ${p.zombies.map(([z, st]) => `${z} ${waitStatus(st)}`).join(', ')})` : ''),
      ]),
    ),
  );
  out.push(`\nShared open files (${f.sharedFiles.length})\n`);
  if (f.sharedFiles.length === 0) out.push('  none\n');
  else
    out.push(
      table(
        ['DESCRIPTORS (PID:FD)', 'KIND', 'WHAT'],
        f.sharedFiles.map((s) => [s.members.map((m) => `${m.pid}:${m.fd}`).join(' '), s.kind, s.what]),
      ),
    );
  out.push(`\nShared memory (${f.sharedMemory.length})\n`);
  if (f.sharedMemory.length === 0) out.push('  none\n');
  else
    out.push(
      table(
        ['OBJECT (DEV:INO)', 'SIZE', 'STORED BY', 'MAPPED BY', 'NAME'],
        f.sharedMemory.map((s) => [`${s.dev}:${s.ino}`, formatBytes(s.bytes), String(s.owner), s.mappedBy.join(' '), s.name]),
      ),
    );
  return out.join('');
}
