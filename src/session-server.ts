// The session's protocol server: the connections to the session socket, who
// made each (src/peers.ts), the lines they send, and the processes of the
// program among them (those whose shim said hello or restored, checked to
// be themselves). Joins and clients' requests go on to the session
// (src/session.ts); the checkpoint barrier talks to the processes through
// send, sendWithImage and expect.
import { closeSync, constants as fsConstants, openSync, unlinkSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { errorMessage, SessionError } from './errors.js';
import { parseMove, parseWrote, type WrittenFile } from './files-written.js';
import { isNativeError, sendWithFd, socketFd, type PeerCred } from './native.js';
import {
  checkJoin,
  clientRefusal,
  connectionRefusal,
  describePeer,
  examinePeer,
  RefusalLog,
  type JoinCheck,
  type Peer,
} from './peers.js';
import { ProcessGoneError } from './proctree.js';
import { oneLine, readLines, splitLine, type SessionStatus } from './protocol.js';

/** How the root process joins: a launched program says hello, a restored one says restored. */
export type JoinKind = 'hello' | 'restored';

export interface Pending {
  /** First words of the answers awaited; an `error` line always answers. */
  words: readonly string[];
  answer(line: string): void;
  fail(err: Error): void;
}

/** A process of the session, connected (its shim said hello or restored). */
export interface Proc {
  sock: Socket;
  /** PID as the program sees it. */
  pid: number;
  /** Its parent's, as hello said it (older shims say none; the barrier reads it from /proc). */
  ppid: number | null;
  restored: boolean;
  /** The connection closed: the process exited, or exec'd and came back on a new one. */
  gone: boolean;
  pending: Pending | undefined;
}

/** Text from another process, safe to print on a terminal (no control characters). */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** What the server passes on to the session. */
export interface ServerEvents {
  /** A process of the session joined: it said hello or restored and is who it says. */
  joined(word: JoinKind, pid: number): void;
  /** A process said hello or restored and exited before it could be checked. */
  joinedUnchecked(word: JoinKind, pid: number): void;
  /** A client's `checkpoint` (`checkpoint portable`: --portable): answered `ok <path>`, or `error <why>`. */
  checkpoint(o: { portable?: boolean }): Promise<{ path: string }>;
  /** A client's `checkpoint hold`: the processes stay stopped until the client says `resume` or `kill` (or goes). */
  checkpointHeld(): Promise<{ path: string; release(how: 'resume' | 'kill'): void }>;
  /** A client's `status`. */
  status(): SessionStatus;
  /** A process of the session opened a regular file for writing (its shim's `wrote`). */
  wrote(f: WrittenFile, by: PeerCred | undefined): void;
  /** A process of the session made a file since the last checkpoint (its shim's `made` or `madeq`): noted when it settles. */
  made(f: WrittenFile, by: PeerCred | undefined): Promise<void>;
  /** A process of the session is about to move an entry to a new name (its shim's `moveq`): noted when it settles. */
  moved(m: { dev: number; ino: number; from: string; to: string; link?: true }, by: PeerCred | undefined): Promise<void>;
  /** A process of the session is about to open an existing file for writing (its shim's `keep`): the answer. */
  keep(f: WrittenFile, by: PeerCred | undefined): Promise<'kept' | 'kept none'>;
  /**
   * A process of the session standing stopped for a checkpoint cannot read
   * a TCP send queue itself (no CAP_NET_ADMIN; its shim's `sendq FD`): the
   * queue as ckrun reads it, or why not.
   */
  sendQueue(pid: number, fd: number): { end: number; unsent: number; data: Buffer } | string;
}

export class SessionServer {
  private readonly conns = new Set<Socket>();
  /** Who made each connection (SO_PEERCRED, read when it was accepted). */
  private readonly peers = new Map<Socket, Peer>();
  /** Connections turned away: nothing they send is read any more. */
  private readonly refused = new WeakSet<Socket>();
  private readonly refusals: RefusalLog;
  /** The session's user: ckrun's effective UID. Clients must be this user or root. */
  private readonly owner = process.geteuid?.() ?? 0;
  private readonly procs = new Map<Socket, Proc>();
  /**
   * Processes that exec'd after a checkpoint resumed them, before their
   * image's writer answered: it answers on the old connection, which it
   * holds; that connection serves only that answer.
   */
  private readonly leaving = new Map<Socket, Proc>();
  /** Clients holding a checkpoint's processes stopped (`checkpoint hold`). */
  private readonly holders = new Map<Socket, (how: 'resume' | 'kill') => void>();
  private shut = false;

  constructor(
    /** Listening on the session socket already. */
    private readonly server: Server,
    /** The shim's internal signal (named when a process does not answer `stop`). */
    private readonly internalSignal: number,
    private readonly events: ServerEvents,
    log: (line: string) => void,
    private readonly verbose: (line: string) => void,
  ) {
    this.refusals = new RefusalLog(log);
    server.on('connection', (sock) => this.onConnection(sock));
  }

  /** The server is shut down: no connection is served any more. */
  get closed(): boolean {
    return this.shut;
  }

  /** Every process connected right now. */
  processes(): Proc[] {
    return [...this.procs.values()];
  }

  private onConnection(sock: Socket): void {
    if (this.shut) {
      sock.destroy();
      return;
    }
    this.conns.add(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => this.onClose(sock));
    // read once: the kernel's record of who connected (see src/peers.ts)
    const peer = examinePeer(sock, this.owner, process.pid);
    this.peers.set(sock, peer);
    const why = connectionRefusal(peer, this.owner);
    if (why) {
      if (peer.goneAtAccept) {
        // nobody to answer: its process has exited (it may have been a member that changed its user ID)
        this.refused.add(sock);
        this.refusals.note(`closed a connection from ${describePeer(peer.cred)}: its process exited before ckrun could check it`);
        sock.destroy();
      } else this.refuse(sock, why);
      return;
    }
    readLines(
      sock,
      (line) => this.onLine(sock, line),
      () => {
        this.verbose('a connection sent an overlong line; closing it');
        sock.destroy();
      },
    );
  }

  /**
   * Turns a connection away: `refused <why>` (a shim then runs on as if
   * there were no coordinator, a client reports it), closed, logged on
   * stderr whatever -v says (a flood is summed up), never acted on.
   */
  private refuse(sock: Socket, why: string, line?: string): void {
    if (this.refused.has(sock)) return;
    this.refused.add(sock);
    const sent = line === undefined ? '' : ` (it sent '${printable(oneLine(line).slice(0, 80))}')`;
    this.refusals.note(`refused a connection from ${describePeer(this.peers.get(sock)?.cred)}: ${why}${sent}`);
    if (!sock.destroyed) sock.end(`refused ${oneLine(why)}\n`);
    setTimeout(() => sock.destroy(), 200).unref();
  }

  /**
   * `sendq FD` from a process of the session, on a connection of its own:
   * `sendq END UNSENT LEN` and LEN bytes, or `sendq no WHY`. Only the
   * process's own descriptor, only while it is one of the session's (the
   * process that connected, as the kernel says: SO_PEERCRED).
   */
  private answerSendQueue(sock: Socket, rest: string): void {
    const pid = this.peers.get(sock)?.cred?.pid ?? 0;
    const fd = /^\d{1,7}$/.test(rest.trim()) ? Number(rest.trim()) : -1;
    const member = [...this.procs.values()].some((p) => p.pid === pid);
    const q = fd < 0 ? 'a malformed line' : !member ? `process ${pid} is not one of the session's` : this.events.sendQueue(pid, fd);
    if (typeof q === 'string') {
      this.send(sock, `sendq no ${oneLine(q)}`);
      return;
    }
    this.send(sock, `sendq ${q.end} ${q.unsent} ${q.data.length}`);
    if (!sock.destroyed) sock.write(q.data);
  }

  send(sock: Socket, line: string): void {
    if (!sock.destroyed) sock.write(line + '\n');
  }

  private onLine(sock: Socket, line: string): void {
    if (this.refused.has(sock)) return;
    const [word, rest] = splitLine(line);
    if (word === 'wrote') {
      // from a process of the session (its connection, or one a forked child made for the line), never answered
      const f = parseWrote(rest);
      if (f) this.events.wrote(f, this.peers.get(sock)?.cred);
      else this.verbose(`a malformed wrote line '${printable(oneLine(line).slice(0, 80))}'`);
      return;
    }
    if (word === 'made') {
      // like wrote: a file made since the checkpoint, never answered
      const f = parseWrote(`w ${rest}`);
      if (f) void this.events.made(f, this.peers.get(sock)?.cred);
      else this.verbose(`a malformed made line '${printable(oneLine(line).slice(0, 80))}'`);
      return;
    }
    if (word === 'madeq') {
      // the same, on a connection of its own, answered once noted: the shim
      // goes on only then (a ckrun that dies first never answers)
      const f = parseWrote(`w ${rest}`);
      if (!f) this.verbose(`a malformed madeq line '${printable(oneLine(line).slice(0, 80))}'`);
      const noted = f ? this.events.made(f, this.peers.get(sock)?.cred) : Promise.resolve();
      noted.then(
        () => this.send(sock, 'noted'),
        () => this.send(sock, 'noted'),
      );
      return;
    }
    if (word === 'moveq' || word === 'linkq') {
      // before a rename (or link), answered once noted: the shim renames only then
      const parsed = parseMove(rest);
      const m = parsed && word === 'linkq' ? { ...parsed, link: true as const } : parsed;
      if (!m) this.verbose(`a malformed ${word} line '${printable(oneLine(line).slice(0, 80))}'`);
      const noted = m ? this.events.moved(m, this.peers.get(sock)?.cred) : Promise.resolve();
      noted.then(
        () => this.send(sock, 'noted'),
        () => this.send(sock, 'noted'),
      );
      return;
    }
    if (word === 'keep') {
      // the shim waits for the answer before it opens the file; a malformed line is answered too
      const f = parseWrote(rest);
      if (!f) this.verbose(`a malformed keep line '${printable(oneLine(line).slice(0, 80))}'`);
      if (!f) this.send(sock, 'kept');
      else
        this.events.keep(f, this.peers.get(sock)?.cred).then(
          (a) => this.send(sock, a),
          () => this.send(sock, 'kept'),
        );
      return;
    }
    if (word === 'sendq') {
      this.answerSendQueue(sock, rest);
      return;
    }
    const proc = this.procs.get(sock) ?? this.leaving.get(sock);
    if (proc) {
      if (word === 'ok' || word === 'error' || word === 'stopped' || word === 'saved' || word === 'frozen') {
        const p = proc.pending;
        if (p && (word === 'error' || p.words.includes(word))) {
          proc.pending = undefined;
          p.answer(line);
        } else this.verbose(`process ${proc.pid} answered '${oneLine(line)}' to no request`);
        if (this.leaving.delete(sock)) {
          proc.gone = true;
          sock.destroy();
        }
        return;
      }
      if (this.leaving.has(sock)) return;
      if (word === 'hello' || word === 'restored') {
        this.join(sock, word, rest, line);
        return;
      }
      this.verbose(`process ${proc.pid} sent an unknown line '${oneLine(line)}'`);
      return;
    }
    if (word === 'hello' || word === 'restored') {
      this.join(sock, word, rest, line);
      return;
    }
    // everything else is a client's request: the session's user's or root's only
    const why = clientRefusal(this.peers.get(sock)?.cred, this.owner);
    if (why) {
      this.refuse(sock, why, line);
      return;
    }
    switch (word) {
      case 'checkpoint':
        if (rest.trim() === 'hold') {
          this.holdFor(sock);
          return;
        }
        if (rest.trim() !== '' && rest.trim() !== 'portable') {
          this.send(sock, `error unknown checkpoint option '${oneLine(rest).slice(0, 80)}'`);
          return;
        }
        this.events.checkpoint({ portable: rest.trim() === 'portable' }).then(
          (r) => this.send(sock, `ok ${r.path}`),
          (e: unknown) => this.send(sock, `error ${oneLine(errorMessage(e))}`),
        );
        return;
      case 'status':
        this.send(sock, `ok ${JSON.stringify(this.events.status())}`);
        return;
      case 'resume':
      case 'kill': {
        const release = this.holders.get(sock);
        if (!release) {
          this.send(sock, 'error nothing is held');
          return;
        }
        this.holders.delete(sock);
        release(word);
        this.send(sock, 'ok');
        return;
      }
      default:
        this.send(sock, `error unknown request '${oneLine(line).slice(0, 80)}'`);
        return;
    }
  }

  private join(sock: Socket, word: JoinKind, rest: string, line: string): void {
    // "hello <pid> <ppid>" (older shims: "hello <pid>"), "restored <pid>"
    const [pidText, ppidText] = rest.trim().split(/\s+/);
    const pid = Number(pidText);
    const ppid = ppidText === undefined ? null : Number(ppidText);
    if (!Number.isSafeInteger(pid) || pid <= 0 || (ppid !== null && !(Number.isSafeInteger(ppid) && ppid >= 0))) {
      this.refuse(sock, `a malformed ${word} line`, line);
      return;
    }
    // before anything is acted on: only a process of this session joins, as itself
    const peer = this.peers.get(sock);
    const check: JoinCheck = peer ? checkJoin(sock, peer, pid, this.owner, process.pid) : { verdict: 'refused', why: 'it is unknown' };
    if (check.verdict === 'refused') {
      this.refuse(sock, check.why, line);
      return;
    }
    if (check.verdict === 'gone') {
      this.verbose(`process ${pid} said ${word} and exited before ckrun could check it`);
      this.events.joinedUnchecked(word, pid);
      return;
    }
    // A process that exec'd comes back with the same PID on a new
    // connection; the old one is stale.
    for (const [s, p] of this.procs) {
      if (p.pid === pid && s !== sock) {
        if (p.pending?.words.includes('ok')) {
          // resumed, its image still being written by its writer, which answers on the old connection
          this.procs.delete(s);
          this.leaving.set(s, p);
          this.verbose(`process ${pid} started over (exec) before its image was complete: its writer's answer is awaited on its old connection`);
          continue;
        }
        this.dropProc(s, p, `process ${pid} started over (exec) during the checkpoint`);
        s.destroy();
      }
    }
    const existing = this.procs.get(sock);
    const proc: Proc = existing ?? { sock, pid, ppid, restored: false, gone: false, pending: undefined };
    proc.pid = pid;
    if (ppid !== null) proc.ppid = ppid;
    proc.restored = word === 'restored';
    this.procs.set(sock, proc);
    this.verbose(word === 'hello' ? `process ${pid} joined${ppid ? ` (child of ${ppid})` : ''}` : `process ${pid} restored`);
    this.events.joined(word, pid);
  }

  private dropProc(sock: Socket, proc: Proc, why: string): void {
    this.procs.delete(sock);
    proc.gone = true;
    const p = proc.pending;
    proc.pending = undefined;
    if (p) p.fail(new ProcessGoneError(proc.pid, why));
  }

  /** `checkpoint hold`: answered `ok <path>` while every process stays stopped; a client that goes lets them run on. */
  private holdFor(sock: Socket): void {
    this.events.checkpointHeld().then(
      (r) => {
        if (sock.destroyed) {
          r.release('resume');
          return;
        }
        this.holders.set(sock, (how) => r.release(how));
        this.send(sock, `ok ${r.path}`);
      },
      (e: unknown) => this.send(sock, `error ${oneLine(errorMessage(e))}`),
    );
  }

  private onClose(sock: Socket): void {
    const holder = this.holders.get(sock);
    this.holders.delete(sock);
    holder?.('resume');
    this.conns.delete(sock);
    this.peers.delete(sock);
    const proc = this.procs.get(sock) ?? this.leaving.get(sock);
    this.leaving.delete(sock);
    if (proc) {
      this.dropProc(sock, proc, `process ${proc.pid} closed its connection during the checkpoint (it exited or exec'd)`);
      this.verbose(`process ${proc.pid} left`);
    }
  }

  /**
   * `save` goes with the process's image file, created here, empty, mode
   * 0600 (SCM_RIGHTS): a process that changed its user ID may no longer be
   * able to create files in the checkpoint directory. The shim writes the
   * image into it in place (without it, it creates the file itself). Sent
   * only when nothing waits to be written before it: the line and its
   * descriptor arrive together, after everything sent before.
   */
  sendWithImage(sock: Socket, line: string, image: string): void {
    const fd = socketFd(sock);
    if (sock.destroyed || sock.writableLength > 0 || fd === undefined) return this.send(sock, line);
    const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fsConstants;
    const file = openSync(image, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    const text = Buffer.from(line + '\n');
    let sent = 0;
    try {
      sent = sendWithFd(fd, line + '\n', file);
    } catch (e) {
      if (!isNativeError(e)) throw e;
      unlinkSync(image); // the shim creates it itself
    } finally {
      closeSync(file);
    }
    if (sent === 0) this.send(sock, line);
    else if (sent < text.length) sock.write(text.subarray(sent));
  }

  /**
   * The next answer of p whose first word is one of `words` (`stopped`,
   * `saved`, `ok`). An `error` line, a timeout or the connection closing
   * (ProcessGoneError) rejects.
   */
  expect(proc: Proc, words: readonly string[], timeoutMs: number, what: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      if (proc.gone) {
        reject(new ProcessGoneError(proc.pid));
        return;
      }
      if (proc.pending) {
        reject(new SessionError(`process ${proc.pid} is still busy with an earlier checkpoint request`));
        return;
      }
      const timer = setTimeout(() => {
        if (proc.pending === pending) proc.pending = undefined;
        const hint = what === 'stop' ? ` (does it block signal ${this.internalSignal}?)` : '';
        reject(new SessionError(`process ${proc.pid} did not answer the ${what} request within ${+(timeoutMs / 1000).toFixed(1)} s${hint}`));
      }, timeoutMs);
      const pending: Pending = {
        words,
        answer: (line) => {
          clearTimeout(timer);
          const [word, rest] = splitLine(line);
          if (word === 'error') reject(new SessionError(`process ${proc.pid}: ${rest || 'unknown error'}`));
          else resolve(line);
        },
        fail: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      proc.pending = pending;
    });
  }

  /** Forgets the answer still awaited from p (the checkpoint was abandoned). */
  cancel(p: Proc): void {
    const pending = p.pending;
    p.pending = undefined;
    pending?.fail(new SessionError('the checkpoint was abandoned'));
  }

  /** Stops serving: the connections are ended (answers already written still reach their clients), the socket closed. */
  async shutdown(): Promise<void> {
    if (this.shut) return;
    this.shut = true;
    this.refusals.flush();
    // end() lets answers already written reach their clients.
    for (const s of this.conns) {
      s.end();
      setTimeout(() => s.destroy(), 200).unref();
    }
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}
