// The session socket: its name, line framing, and a one-request client.
import { closeSync, realpathSync } from 'node:fs';
import { Socket } from 'node:net';
import { resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { isNativeError, native, type PeerCred } from './native.js';

/** Default checkpoint directory. */
export const DEFAULT_DIR = 'ckpt';

/** Absolute, symlink-free form of DIR (just absolute when it does not exist). */
export function canonicalDir(dir: string): string {
  const abs = resolve(dir);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

/**
 * `ckrun-<16 hex digits of FNV-1a 64 of realpath DIR>`, without the leading
 * NUL (the restore host names it the same way: preload/front.c).
 */
export function socketNameFor(canonical: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(canonical, 'utf8')) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return 'ckrun-' + h.toString(16).padStart(16, '0');
}

/**
 * Connects to the abstract socket `name`. Node 20's net module pads
 * abstract names to the full 108 bytes of sun_path, which is a different
 * address than the shim's exact-length one, so the addon makes the socket.
 * Throws NoSessionError when nothing listens there, and
 * UntrustedSessionError when the listener is neither this user's nor
 * root's: anyone can bind an abstract name, and what it would answer (or
 * be sent) is not for another user.
 */
export function connectAbstract(name: string, dirForErrors: string): Socket {
  let fd: number;
  try {
    fd = native().unixConnect(name);
  } catch (e) {
    if (isNativeError(e) && (e.code === 'ECONNREFUSED' || e.code === 'ENOENT')) throw new NoSessionError(dirForErrors, e.code);
    throw e;
  }
  let holder: PeerCred;
  try {
    holder = native().peerCred(fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const me = process.geteuid?.() ?? 0;
  if (holder.uid !== me && holder.uid !== 0) {
    closeSync(fd);
    throw new UntrustedSessionError(dirForErrors, name, holder);
  }
  return new Socket({ fd, readable: true, writable: true });
}

export const MAX_LINE = 1 << 20;

/** Calls onLine for every `\n`-terminated line; onOverflow when a line grows past MAX_LINE. */
export function readLines(sock: Socket, onLine: (line: string) => void, onOverflow: () => void): void {
  const dec = new StringDecoder('utf8');
  let buf = '';
  sock.on('data', (chunk: Buffer) => {
    buf += dec.write(chunk);
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
      if (sock.destroyed) return;
    }
    if (buf.length > MAX_LINE) {
      buf = '';
      onOverflow();
    }
  });
}

/** First word and the rest of a protocol line. */
export function splitLine(line: string): [string, string] {
  const t = line.replace(/\r$/, '');
  const i = t.indexOf(' ');
  return i < 0 ? [t, ''] : [t.slice(0, i), t.slice(i + 1)];
}

/** Protocol lines are single lines: newlines in messages become spaces. */
export function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').trim();
}

export class NoSessionError extends Error {
  constructor(
    readonly dir: string,
    readonly reason: string,
  ) {
    super(`no session is writing to ${dir} (is ckrun running with --dir ${dir}?)`);
    this.name = 'NoSessionError';
  }
}

/** The session socket of a directory is held by another user (not root): ckrun does not talk to it. */
export class UntrustedSessionError extends Error {
  constructor(
    readonly dir: string,
    readonly socketName: string,
    readonly holder: PeerCred,
  ) {
    super(
      `the session socket of ${dir} (@${socketName}) is held by user ${holder.uid} (PID ${holder.pid || 'in another PID namespace'}), ` +
        `not by you or root: ckrun does not talk to it`,
    );
    this.name = 'UntrustedSessionError';
  }
}

/** The session turned the request away (it answered `refused <why>`): not its user, not root. */
export class RefusedError extends Error {
  constructor(
    readonly dir: string,
    readonly why: string,
  ) {
    super(`the session writing to ${dir} refused the request: ${why}`);
    this.name = 'RefusedError';
  }
}

/** The session closed the connection, or it broke, before an answer came (the session ended). */
export class SessionLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SessionLostError';
  }
}

export interface RequestOptions {
  /** Give up when nothing answers within this time (default: wait forever). */
  timeoutMs?: number;
}

/**
 * Connects to the session of `canonical` (a canonical directory), sends one
 * request line and resolves with the first answer line.
 */
export function request(canonical: string, line: string, opts: RequestOptions = {}): Promise<string> {
  const name = socketNameFor(canonical);
  return new Promise((resolvePromise, reject) => {
    let settled = false;
    let sock: Socket;
    try {
      sock = connectAbstract(name, canonical);
    } catch (e) {
      reject(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const done = (err: Error | null, answer?: string): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolvePromise(answer ?? '');
    };
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(
            () => done(new Error(`the session writing to ${canonical} did not answer within ${opts.timeoutMs} ms`)),
            opts.timeoutMs,
          )
        : undefined;
    sock.on('error', (e: NodeJS.ErrnoException) => {
      done(new SessionLostError(`lost the connection to the session writing to ${canonical} before it answered (${e.message}): the session ended`));
    });
    sock.on('close', () => {
      done(new SessionLostError(`the session writing to ${canonical} ended before it answered (its program exited, or ckrun was killed)`));
    });
    sock.write(line + '\n');
    readLines(
      sock,
      (answer) => {
        const [word, rest] = splitLine(answer);
        if (word === 'refused') done(new RefusedError(canonical, rest || 'no reason given'));
        else done(null, answer);
      },
      () => done(new Error('the session sent an overlong answer')),
    );
  });
}

/** What a session answers to `status`. */
export interface SessionStatus {
  pid: number;
  dir: string;
  argv: string[];
  root: number | null;
  processes: number[];
  checkpointing: boolean;
  lastGeneration: number | null;
  restoredFrom: string | null;
}

/** Asks the session writing to DIR for its status; undefined when none answers. */
export async function querySession(canonical: string, timeoutMs = 2000): Promise<SessionStatus | undefined> {
  let answer: string;
  try {
    answer = await request(canonical, 'status', { timeoutMs });
  } catch (e) {
    if (e instanceof NoSessionError) return undefined;
    throw e;
  }
  const [word, rest] = splitLine(answer);
  if (word !== 'ok') throw new Error(`the session writing to ${canonical} answered '${answer}' to status`);
  return JSON.parse(rest) as SessionStatus;
}
