// The session socket: its name, line framing, and a one-request client.
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

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

/** `ckrun-<16 hex digits of sha256(realpath DIR)>`, without the leading NUL. */
export function socketNameFor(canonical: string): string {
  return 'ckrun-' + createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

/** The address Node's net module needs for an abstract socket. */
export function abstractAddress(name: string): string {
  return '\0' + name;
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
    let connected = false;
    const sock = connect({ path: abstractAddress(name) });
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
            () =>
              done(
                connected
                  ? new Error(`the session writing to ${canonical} did not answer within ${opts.timeoutMs} ms`)
                  : new NoSessionError(canonical, 'connection timed out'),
              ),
            opts.timeoutMs,
          )
        : undefined;
    sock.on('connect', () => {
      connected = true;
      sock.write(line + '\n');
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) done(new NoSessionError(canonical, e.code ?? e.message));
      else done(new Error(`lost the connection to the session writing to ${canonical}: ${e.message}`));
    });
    sock.on('close', () => {
      done(
        connected
          ? new Error(`the session writing to ${canonical} closed the connection without answering (did it exit?)`)
          : new NoSessionError(canonical, 'closed'),
      );
    });
    readLines(
      sock,
      (answer) => done(null, answer),
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
