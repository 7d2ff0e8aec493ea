// Files the program opened for writing, as its shim told them ("wrote",
// preload/written.c). A checkpoint saves the ones no process has open any
// more along with those still open (src/files.ts), so that a file written,
// closed and written again after the checkpoint (a log a job appends to in
// every iteration) is rolled back at restart like an open one.
import { lstatSync, readFileSync, type Stats } from 'node:fs';
import type { PeerCred } from './native.js';

/** One file a process of the session opened for writing. */
export interface WrittenFile {
  path: string;
  dev: number;
  ino: number;
  /**
   * How the program opened it for writing: 'append' (every open O_APPEND:
   * a log, only cut back at restart), 'truncate' (every open O_TRUNC: the
   * program writes it whole again), 'inplace' (otherwise).
   */
  how: 'append' | 'truncate' | 'inplace';
}

const HOW = { a: 'append', t: 'truncate', w: 'inplace' } as const;

/** `wrote a|t|w DEV INO PATH` (the rest of the line after the word). */
export function parseWrote(rest: string): WrittenFile | undefined {
  const m = /^([atw]) ([0-9]+) ([0-9]+) (\/.*)$/s.exec(rest);
  if (!m) return undefined;
  const dev = Number(m[2]);
  const ino = Number(m[3]);
  if (!Number.isSafeInteger(dev) || !Number.isSafeInteger(ino)) return undefined;
  return { path: m[4]!, dev, ino, how: HOW[m[1] as keyof typeof HOW] };
}

/** `moveq DEV INO FROM\0TO`: an entry about to be renamed (the rest of the line after the word). */
export function parseMove(rest: string): { dev: number; ino: number; from: string; to: string } | undefined {
  const m = /^([0-9]+) ([0-9]+) (\/[^\0]*)\0(\/[^\0]*)$/s.exec(rest);
  if (!m) return undefined;
  const dev = Number(m[1]);
  const ino = Number(m[2]);
  if (!Number.isSafeInteger(dev) || !Number.isSafeInteger(ino)) return undefined;
  return { dev, ino, from: m[3]!, to: m[4]! };
}

/** By (dev, ino); a file leaves when a checkpoint finds its path gone or another file's. */
export class WrittenFiles {
  private readonly files = new Map<string, WrittenFile>();

  note(f: WrittenFile): void {
    const key = `${f.dev}:${f.ino}`;
    const had = this.files.get(key);
    // the latest path (renamed, or another link); opened in two ways: in place; last in the list: the newest told
    this.files.delete(key);
    this.files.set(key, { ...f, how: !had || had.how === f.how ? f.how : 'inplace' });
  }

  forget(key: string): void {
    this.files.delete(key);
  }

  /** Oldest told first. */
  list(): WrittenFile[] {
    return [...this.files.values()];
  }

  get size(): number {
    return this.files.size;
  }
}

/** What f's path names now, when that is still f's entry (never through a link). */
function sameEntry(f: WrittenFile): Stats | undefined {
  let st;
  try {
    st = lstatSync(f.path);
  } catch {
    return undefined;
  }
  return st.dev === f.dev && st.ino === f.ino ? st : undefined;
}

/** Whether by may write a file with these owner, group and mode. */
function writableBy(st: Stats, by: PeerCred): boolean {
  if (st.uid === by.uid || (st.mode & 0o002) !== 0) return true;
  return (st.mode & 0o020) !== 0 && groupsOf(by).includes(st.gid);
}

/**
 * Whether the process that told of f could write it: root, the file's
 * owner, or a writer by its group or by everyone. A process that dropped
 * its privileges (a web server's worker) must not make a restart by root
 * put back a file it could not write itself.
 */
export function mayHaveWritten(f: WrittenFile, by: PeerCred | undefined): boolean {
  if (!by) return false;
  if (by.uid === 0) return true;
  const st = sameEntry(f);
  return st !== undefined && st.isFile() && writableBy(st, by);
}

/**
 * Whether the process by could have made the entry f names: a file it may
 * write, or another entry (a directory, link, FIFO, device node) that is its
 * user's, as the one who makes an entry owns it.
 */
export function mayHaveMade(f: WrittenFile, by: PeerCred | undefined): boolean {
  if (!by) return false;
  if (by.uid === 0) return true;
  const st = sameEntry(f);
  if (!st) return false;
  return st.isFile() ? writableBy(st, by) : st.uid === by.uid;
}

function groupsOf(by: PeerCred): number[] {
  const groups = [by.gid];
  if (by.pid <= 0) return groups;
  try {
    const m = /^Groups:\s*(.*)$/m.exec(readFileSync(`/proc/${by.pid}/status`, 'utf8'));
    if (m) groups.push(...m[1]!.trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    // exited: its group only
  }
  return groups;
}
