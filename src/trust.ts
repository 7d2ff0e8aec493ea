// Who may restart what (docs/design.md, "Who a restarted program runs
// as"). A restart runs the program an image holds, with the credentials the
// image says it had: so ckrun restarts only checkpoints of the user who
// runs it (unless they say --trust-owner), and never gives a program
// credentials its restarter does not hold. The restore host checks the
// same before it changes anything (preload/process.c, ck_creds_check); the
// checks here come first and give the full message.
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { capabilityNames } from './capabilities.js';
import { credentials, referredImages, threadCredentials, type Credentials, type Image } from './image.js';
import { displayPath } from './output.js';

/** The restart cannot be allowed; the message names the thing, the reason and the way out. */
export class TrustError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustError';
  }
}

/** What the user running the restart holds (from /proc/self/status). */
export interface Restarter {
  uid: number;
  gid: number;
  groups: number[];
  permitted: bigint;
  inheritable: bigint;
  bounding: bigint;
  noNewPrivs: boolean;
  securebits: number;
}

function statusField(status: string, name: string): string {
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
}

/** The credentials of this process (ckrun, which runs the restart). */
export function restarter(): Restarter {
  const status = readFileSync('/proc/self/status', 'utf8');
  const hex = (name: string): bigint => BigInt('0x' + (statusField(status, name) || '0'));
  return {
    uid: process.geteuid?.() ?? -1,
    gid: process.getegid?.() ?? -1,
    groups: statusField(status, 'Groups').split(/\s+/).filter(Boolean).map(Number),
    permitted: hex('CapPrm'),
    inheritable: hex('CapInh'),
    bounding: hex('CapBnd'),
    noNewPrivs: statusField(status, 'NoNewPrivs') === '1',
    // not in /proc: no program sets them for ckrun; a restore host that
    // finds some locked says so (preload/process.c)
    securebits: 0,
  };
}

let names: Map<number, string> | undefined;

/** "nobody (uid 65534)", "root (uid 0)", or "uid 1234" for a user /etc/passwd does not name. */
export function describeUser(uid: number): string {
  if (!names) {
    names = new Map();
    try {
      for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
        const [name, , id] = line.split(':');
        if (name && id !== undefined && /^[0-9]+$/.test(id) && !names.has(Number(id))) names.set(Number(id), name);
      }
    } catch {
      // no names then
    }
  }
  const name = names.get(uid);
  return name ? `${name} (uid ${uid})` : `uid ${uid}`;
}

export type OwnedKind = 'checkpoint directory' | 'generation' | 'manifest' | 'image';

export interface Owned {
  what: OwnedKind;
  path: string;
}

/** The user who owns what path names (a symbolic link: its target's owner, whose contents a restart uses). */
async function ownerOf(p: Owned): Promise<number> {
  try {
    return (await stat(p.path)).uid;
  } catch (e) {
    throw new TrustError(`cannot check who owns the ${p.what} ${displayPath(p.path)}: ${(e as Error).message}`);
  }
}

const WAY_OUT =
  'a restart runs the program a checkpoint holds, so ckrun restarts only checkpoints of the user who runs it; ' +
  'if you trust this one, say so with --trust-owner (ckrun restart --trust-owner ...): the program then runs as the user its image says';

/**
 * Every path must belong to the user running the restart, unless
 * trustOwner; returns the owner of each (for checkCredentials).
 */
export async function checkOwners(paths: Owned[], trustOwner: boolean): Promise<Map<string, number>> {
  const me = process.geteuid?.() ?? -1;
  const owners = new Map<string, number>();
  for (const p of paths) {
    const uid = await ownerOf(p);
    owners.set(p.path, uid);
    if (uid !== me && !trustOwner)
      throw new TrustError(
        `the ${p.what} ${displayPath(p.path)} is owned by ${describeUser(uid)}, not by ${describeUser(me)}, who runs this restart: ${WAY_OUT}`,
      );
  }
  return owners;
}

/** The image and the images it refers to: the files whose owners checkCredentials compares. */
export function imageFiles(img: Image): Owned[] {
  return [img.path, ...referredImages(img)].map((path) => ({ what: 'image' as const, path }));
}

function idsText(ids: readonly number[]): string {
  return ids.every((x) => x === ids[0]) ? String(ids[0]) : `${ids[0]} (real), ${ids[1]} (effective), ${ids[2]} (saved), ${ids[3]} (filesystem)`;
}

function anyCapability(c: Credentials): bigint {
  return c.caps.permitted | c.caps.effective | c.caps.inheritable | c.caps.ambient;
}

function sorted(xs: number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

function sameList(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Groups as a program in a user namespace of ckrun's sees them: only gid maps to itself. */
function groupsThroughMap(groups: number[], gid: number): number[] {
  let overflow = 65534;
  try {
    overflow = Number(readFileSync('/proc/sys/kernel/overflowgid', 'utf8').trim()) || overflow;
  } catch {
    // the kernel's default
  }
  return groups.map((g) => (g === gid ? g : overflow));
}

/** Whose credentials a check is about: the image's process, or one of its threads with credentials of its own. */
interface Subject {
  name: string;
  tid?: number;
}

function ranAs(s: Subject): string {
  return s.tid ? `thread ${s.tid} of image ${s.name} ran as` : `image ${s.name} is of a process that ran as`;
}

function had(s: Subject): string {
  return s.tid ? `thread ${s.tid} of image ${s.name} had` : `image ${s.name} is of a process with`;
}

/**
 * One set of credentials (the process's, or a thread's own) is one this
 * restart may give: every thread of the restored process sets its own,
 * starting from the restarter's.
 */
function checkOne(img: Image, s: Subject, c: Credentials, owners: Map<string, number>, r: Restarter): void {
  const name = s.name;
  if (c.caps.effective & ~c.caps.permitted || c.caps.ambient & ~(c.caps.permitted & c.caps.inheritable))
    throw new TrustError(`image ${name} is corrupted: ${s.tid ? `the capability sets of its thread ${s.tid}` : 'its capability sets'} are inconsistent`);
  for (const f of imageFiles(img)) {
    const owner = owners.get(f.path);
    if (owner === undefined || owner === r.uid || owner === 0) continue;
    // trusted, but no process of that user can have had other credentials
    if (c.uid.some((u) => u !== owner) || anyCapability(c) !== 0n)
      throw new TrustError(
        `image ${displayPath(f.path)} is owned by ${describeUser(owner)} but holds a process that ran as ${describeUser(c.uid[1])}` +
          `${anyCapability(c) ? ` with capabilities (${capabilityNames(anyCapability(c))})` : ''}${s.tid ? ` (in thread ${s.tid})` : ''}: ` +
          `no process of ${describeUser(owner)} can have written it (it was made or changed by hand); ckrun refuses it even with --trust-owner`,
      );
  }
  if (r.noNewPrivs && !c.noNewPrivs)
    throw new TrustError(
      `this restart runs with no_new_privs, which cannot be undone, and ${s.tid ? `thread ${s.tid} of image ${name}` : `the process of image ${name}`} ` +
        'did not: restart it from a process without no_new_privs',
    );
  if (r.uid === 0) {
    const missing = (c.caps.permitted & ~r.permitted) | (c.caps.inheritable & ~(r.inheritable | r.permitted));
    if (missing)
      throw new TrustError(
        `${had(s)} capabilities this restart does not have (${capabilityNames(missing)}): ` +
          'ckrun never gives a program more than its restarter holds; restart it where they are available',
      );
    const unbounded = c.caps.bounding & ~r.bounding;
    if (unbounded)
      throw new TrustError(
        `${s.tid ? `thread ${s.tid} of image ${name} had a capability bounding set that holds` : `image ${name} is of a process whose capability bounding set holds`} ` +
          `${capabilityNames(unbounded)}, which this restart's lacks (a program could gain them by running a program with file capabilities): ` +
          'ckrun never gives a program more than its restarter holds; restart it where they are available',
      );
    return;
  }
  // an ordinary user: a user namespace of their own maps only their user and group
  const own = `an ordinary user restarts only their own processes, as themselves (${describeUser(r.uid)}, gid ${r.gid})`;
  if (c.uid.some((u) => u !== r.uid)) throw new TrustError(`${ranAs(s)} uid ${idsText(c.uid)}: ${own}; root can restart it`);
  if (c.gid.some((g) => g !== r.gid)) throw new TrustError(`${ranAs(s)} gid ${idsText(c.gid)}: ${own}; root can restart it`);
  if (anyCapability(c))
    throw new TrustError(
      `${had(s)} capabilities (${capabilityNames(anyCapability(c))}), which an ordinary user's restart ` +
        'cannot give (it runs in a user namespace of its own, where capabilities are not the ones the program had); root can restart it',
    );
  // the bounding set and securebits are set again inside the user
  // namespace (its bounding set is full), where they limit only the program
  // setgroups is denied in the user namespace: every thread keeps the
  // restarter's groups (seen there as the overflow GID, except the user's own)
  const theirs = sorted(c.groups);
  if (!sameList(theirs, sorted(r.groups)) && !sameList(theirs, sorted(groupsThroughMap(r.groups, r.gid))))
    throw new TrustError(
      `${had(s)} the supplementary groups ${theirs.join(', ') || 'none'}, but ${describeUser(r.uid)} ` +
        `has ${sorted(r.groups).join(', ') || 'none'}: an ordinary user's restart keeps the user's own groups; ` +
        'restart it as that user with those groups, or as root',
    );
}

/**
 * The image's credentials are ones this restart may give its program, and
 * so are those of each of its threads that had its own: recorded at all;
 * consistent with the owner of the image's files when the restarter trusts
 * another owner; held by the restarter (root: every user and group, the
 * capabilities it has; an ordinary user, who restarts in a user namespace
 * of their own: only their own user, group and groups, no capabilities).
 * Returns the process's.
 */
export function checkCredentials(img: Image, owners: Map<string, number>, r: Restarter = restarter()): Credentials {
  const name = displayPath(img.path);
  const c = credentials(img.meta);
  if (!c)
    throw new TrustError(
      `image ${name} does not say which user and capabilities its process ran with (an older ckrun took it); ` +
        'ckrun restores no process with credentials it did not have: restart it with the ckrun that took it',
    );
  checkOne(img, { name }, c, owners, r);
  for (const t of threadCredentials(img.meta)) {
    if (!t.creds) throw new TrustError(`image ${name} is corrupted: the credentials of its thread ${t.tid} are incomplete`);
    checkOne(img, { name, tid: t.tid }, t.creds, owners, r);
  }
  if (r.uid !== 0 && c.dumpable === 2)
    throw new TrustError(
      `image ${name} is of a process whose dumpable setting was 2 (fs.suid_dumpable), which an ordinary user's restart cannot give it again; root can restart it`,
    );
  return c;
}
