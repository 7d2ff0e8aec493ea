// Who may talk to a session (docs/design.md, "Who may talk to a session").
// The session socket is an abstract name: anyone on the machine can
// connect to it. So a connection is judged by what the kernel recorded of
// the process that made it (SO_PEERCRED), never by what it says:
//  - a client (`checkpoint`, `status`) must run as the session's user or root;
//  - a shim (`hello`, `restored`) must be a process below ckrun, and the PID
//    it says must be its own PID as it sees it.
// A process of the session that changed its user ID stays a member: membership
// is by descent, not by user.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { peerAlive, peerCredOf, type PeerCred } from './native.js';
import { describeProcess, nsPids } from './proctree.js';

/** A process's parent in this PID namespace (0 for a process whose parent is outside it); undefined when it is gone. */
function parentOf(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const close = text.lastIndexOf(')');
  const ppid = Number(text.slice(close + 2).split(' ')[1]);
  return Number.isSafeInteger(ppid) ? ppid : undefined;
}

/**
 * Whether pid is below ancestor by parent links (ckrun is a child
 * subreaper: its family stays below it). A parent that exits while the
 * chain is read re-parents its children (to ckrun, a subreaper or a
 * namespace's init below it): the chain is then read again.
 */
export function isDescendant(pid: number, ancestor: number): boolean {
  for (let attempt = 0; attempt < 5; attempt++) {
    const found = parentChainReaches(pid, ancestor);
    if (found !== undefined) return found;
  }
  return false;
}

/** true or false, or undefined when a process of the chain (not pid itself) vanished meanwhile. */
function parentChainReaches(pid: number, ancestor: number): boolean | undefined {
  let p = pid;
  // PIDs are finite; the bound only guards against a loop read mid-change
  for (let hops = 0; hops < 1 << 16; hops++) {
    const parent = parentOf(p);
    if (parent === undefined) return p === pid ? false : undefined;
    if (parent === ancestor) return true;
    if (parent <= 0) return false; // the top of this PID namespace
    p = parent;
  }
  return false;
}

/** What ckrun knows of a connection's peer from the moment it accepted it. */
export interface Peer {
  /** SO_PEERCRED; undefined when it could not be read. */
  cred: PeerCred | undefined;
  /** It was below ckrun, checked while it still ran (only asked of a peer that is no client). */
  descendant: boolean;
  /** It had exited already when it was accepted. */
  goneAtAccept: boolean;
}

/** Reads who made the connection: right when it is accepted. */
export function examinePeer(sock: Socket, owner: number, self: number): Peer {
  const cred = peerCredOf(sock);
  const below = cred !== undefined && cred.pid > 0 && clientRefusal(cred, owner) !== undefined && isDescendant(cred.pid, self);
  // after /proc was read: it was about this very process
  const alive = peerAlive(sock);
  return { cred, descendant: below && alive, goneAtAccept: !alive };
}

/** Whether the peer may send client requests: the session's user (ckrun's effective UID) or root. */
export function clientRefusal(cred: PeerCred | undefined, owner: number): string | undefined {
  if (!cred) return 'its credentials cannot be read';
  if (cred.uid === owner || cred.uid === 0) return undefined;
  return `user ${cred.uid} is neither the session's user (${owner}) nor root`;
}

/**
 * Why a connection is turned away as soon as it is accepted, or undefined:
 * it may be a client (the session's user or root) or a member (below
 * ckrun). Which one it is, its first line tells; that line is checked then.
 */
export function connectionRefusal(peer: Peer, owner: number): string | undefined {
  if (clientRefusal(peer.cred, owner) === undefined || peer.descendant) return undefined;
  if (!peer.cred) return 'its credentials cannot be read';
  return `user ${peer.cred.uid} is neither the session's user (${owner}) nor root, and PID ${peer.cred.pid || '?'} is not a process of this session`;
}

/** The verdict on a `hello` or `restored` line. */
export type JoinCheck =
  | { verdict: 'member' }
  | { verdict: 'refused'; why: string }
  /** The process exited before it could be checked: its line only counts as news that it ran. */
  | { verdict: 'gone' };

/**
 * Whether the peer of sock may join the session as process `claimed`
 * (hello / restored): it is below ckrun, and `claimed` is its own PID as
 * it sees itself (the last of its NSpid; a restored family lives in a PID
 * namespace of its own). Checked while the peer still runs, so /proc was
 * about that very process and not about a later one that got its PID. A
 * process that said its line and exited before ckrun read it (a program
 * that forks a daemon and exits, a restored program that ends at once)
 * cannot be checked any more, nor stopped: `gone`, when its connection
 * passed the check at accept.
 */
export function checkJoin(sock: Socket, peer: Peer, claimed: number, owner: number, self: number): JoinCheck {
  const cred = peer.cred;
  if (!cred) return { verdict: 'refused', why: 'its credentials cannot be read' };
  const alive = !peer.goneAtAccept && peerAlive(sock);
  if (!alive) return connectionRefusal(peer, owner) === undefined ? { verdict: 'gone' } : { verdict: 'refused', why: 'its process exited' };
  if (cred.pid <= 0) return { verdict: 'refused', why: "its process is not visible in ckrun's PID namespace" };
  if (!isDescendant(cred.pid, self)) {
    // it may have exited (and been reaped) after the first look: then /proc no longer knew it
    if (!peerAlive(sock)) return connectionRefusal(peer, owner) === undefined ? { verdict: 'gone' } : { verdict: 'refused', why: 'its process exited' };
    return { verdict: 'refused', why: `PID ${cred.pid} is not a process of this session (it is not below ckrun)` };
  }
  const own = nsPids(cred.pid).at(-1);
  if (!peerAlive(sock)) return { verdict: 'gone' };
  if (own !== claimed) return { verdict: 'refused', why: `it says it is process ${claimed}, but it is process ${own ?? '?'}` };
  return { verdict: 'member' };
}

/** "PID 123 (user 65534, python3)" for log lines. */
export function describePeer(cred: PeerCred | undefined): string {
  if (!cred) return 'an unknown process';
  // a process names itself: no control characters from it reach the terminal
  const comm = (cred.pid > 0 ? describeProcess(cred.pid).comm : '?').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return `PID ${cred.pid || '?'} (user ${cred.uid}, ${comm === '?' ? 'exited' : comm})`;
}

/**
 * Log lines about refused connections, at most `burst` per window: a
 * flood of connections must not flood ckrun's stderr. What was left out
 * is counted in one line when the window ends.
 */
export class RefusalLog {
  private windowStart = 0;
  private count = 0;
  private suppressed = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: (line: string) => void,
    private readonly burst = 10,
    private readonly windowMs = 60_000,
  ) {}

  note(line: string): void {
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) this.rollOver(now);
    if (this.count < this.burst) {
      this.count++;
      this.log(line);
      return;
    }
    this.suppressed++;
    if (!this.timer) {
      this.timer = setTimeout(() => this.rollOver(Date.now()), this.windowStart + this.windowMs - now);
      this.timer.unref();
    }
  }

  /** Says what was left out so far (the session ends). */
  flush(): void {
    this.rollOver(Date.now());
  }

  private rollOver(now: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed > 0)
      this.log(
        `${this.suppressed} more connection${this.suppressed === 1 ? ' was' : 's were'} refused or closed ` +
          `(not logged one by one: at most ${this.burst} lines every ${this.windowMs / 1000} s)`,
      );
    this.windowStart = now;
    this.count = 0;
    this.suppressed = 0;
  }
}
