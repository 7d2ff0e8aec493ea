// Vetting a checkpoint directory before ckrun writes a program's memory into
// it (the way sshd's StrictModes vets authorized_keys). The path is resolved
// one component at a time with lstat, from /:
//
//   - a symbolic link is followed only when it is owned by root or the
//     caller (its directory has passed the rule below already): anyone else
//     could point it anywhere, at any time;
//   - every directory on the way is owned by root or the caller and is not
//     writable by group or others unless it is sticky (like /tmp: others may
//     add names there but cannot rename or remove ours);
//   - the checkpoint directory itself is owned by the caller and writable by
//     nobody else.
//
// Then nobody but root and the caller can change what the resolved path
// names, so ckrun may use it by name afterwards. A missing directory is
// created 0700 (its missing parents too, each checked the same way).
import { lstatSync, mkdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { constants } from 'node:fs';
import { join, resolve, sep } from 'node:path';

/** The directory cannot be trusted; the message names it, says why and how to get out. */
export class DirectoryTrustError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DirectoryTrustError';
  }
}

/** Symbolic links followed at most (the kernel's own limit). */
const MAX_LINKS = 40;

/** `nobody (uid 65534)`, or `uid 1001` when /etc/passwd does not name it. */
export function describeUser(uid: number): string {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length > 2 && Number(f[2]) === uid && f[2] !== '') return `${f[0]} (uid ${uid})`;
    }
  } catch {
    // no passwd file: the number says it
  }
  return `uid ${uid}`;
}

function modeText(st: Stats): string {
  return `mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}`;
}

/** "writable by others" / "by its group" / "by its group and others", or '' when neither may write. */
function writableBy(st: Stats): string {
  const g = (st.mode & constants.S_IWGRP) !== 0;
  const o = (st.mode & constants.S_IWOTH) !== 0;
  return g && o ? 'its group and others' : o ? 'others' : g ? 'its group' : '';
}

function isSticky(st: Stats): boolean {
  return (st.mode & 0o1000) !== 0 // S_ISVTX (not in node:fs constants);
}

/** "permission denied" of "EACCES: permission denied, mkdir '/x'". */
function errnoText(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return /^[A-Z0-9]+: ([^,]+)/.exec(message)?.[1] ?? message;
}

interface Walk {
  /** The directory as given (absolute), for messages. */
  shown: string;
  uid: number;
  create: boolean;
  /** What the directory is, and the option that names it (messages). */
  label: string;
  flag: string;
}

function refuse(w: Walk, why: string, wayOut: string): never {
  throw new DirectoryTrustError(`refusing ${w.label} ${w.shown}: ${why}; ${wayOut.replace('--dir', w.flag)}`);
}

/** A directory on the way (not the checkpoint directory itself). */
function checkAncestor(w: Walk, path: string, st: Stats): void {
  if (st.uid !== 0 && st.uid !== w.uid)
    refuse(
      w,
      `${path} on its path is owned by ${describeUser(st.uid)}, not by you or root, who can rename what it holds and put something else there`,
      'choose a --dir whose every directory belongs to you or root',
    );
  const who = writableBy(st);
  if (who && !isSticky(st))
    refuse(
      w,
      `${path} on its path is writable by ${who} (${modeText(st)}) and not sticky, so they can rename what it holds and put something else there`,
      `chmod go-w ${path} (or chmod +t it) or choose another --dir`,
    );
}

/** The checkpoint directory itself. */
function checkFinal(w: Walk, st: Stats): void {
  if (st.uid !== w.uid)
    refuse(
      w,
      `it is owned by ${describeUser(st.uid)}, not by you (uid ${w.uid}), so that user can rename your checkpoints and plant their own`,
      'use a directory you own',
    );
  const who = writableBy(st);
  if (who)
    refuse(
      w,
      `it is writable by ${who} (${modeText(st)}), who could rename your checkpoints and plant their own`,
      `chmod go-w it or choose another --dir`,
    );
}

/** lstat, creating the directory (0700) when it is missing and creation is allowed. */
function lstatOrCreate(w: Walk, path: string, last: boolean): Stats {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') refuse(w, `${last ? 'it' : path} cannot be examined (${errnoText(e)})`, 'choose another --dir');
    if (!w.create) refuse(w, `${last ? 'it' : path} does not exist`, 'create it or choose another --dir');
  }
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (e) {
    // made meanwhile by someone else: judged below like any other
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      refuse(w, `${last ? 'it' : path} cannot be created (${errnoText(e)})`, 'create it yourself or choose another --dir');
  }
  return lstatSync(path);
}

function components(path: string): string[] {
  return path.split(sep).filter((c) => c !== '' && c !== '.');
}

/**
 * Resolves `dir` (relative to the current directory) component by component
 * and returns its canonical path once every rule above holds; throws a
 * DirectoryTrustError naming the path, the reason and the way out otherwise.
 * Missing directories are created (mode 0700) unless `create` is false.
 */
export function trustCheckpointDir(dir: string, opts: { create?: boolean; uid?: number; label?: string; flag?: string } = {}): string {
  const uid = opts.uid ?? process.geteuid?.() ?? 0;
  const w: Walk = { shown: resolve(dir), uid, create: opts.create ?? true, label: opts.label ?? 'checkpoint directory', flag: opts.flag ?? '--dir' };
  const rootSt = lstatSync('/');
  const todo = components(w.shown);
  if (todo.length === 0) {
    checkFinal(w, rootSt);
    return '/';
  }
  checkAncestor(w, '/', rootSt);
  let at = '/';
  let links = 0;
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === '..') {
      // `at` is a real directory already checked, and so is its parent
      at = resolve(at, '..');
      if (todo.length === 0) checkFinal(w, lstatSync(at));
      continue;
    }
    const path = join(at, name);
    const last = todo.length === 0;
    const st = lstatOrCreate(w, path, last);
    if (st.isSymbolicLink()) {
      if (st.uid !== 0 && st.uid !== uid)
        refuse(
          w,
          `${last ? 'it is' : `its path goes through ${path},`} a symbolic link owned by ${describeUser(st.uid)}, not by you or root, which that user can point anywhere`,
          'use a directory you own',
        );
      if (++links > MAX_LINKS) refuse(w, `resolving it follows more than ${MAX_LINKS} symbolic links (a loop?)`, 'choose another --dir');
      const target = readlinkSync(path);
      if (target.startsWith('/')) at = '/';
      todo.unshift(...components(target));
      if (todo.length === 0) checkFinal(w, lstatSync(at)); // a link to /
      continue;
    }
    if (!st.isDirectory())
      refuse(w, `${last ? 'it' : path} is not a directory`, 'choose another --dir');
    if (last) checkFinal(w, st);
    else checkAncestor(w, path, st);
    at = path;
  }
  return at;
}
