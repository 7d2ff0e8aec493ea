// `ckrun migrate --to COMMAND`: moves the program of a session to wherever
// COMMAND runs `ckrun restart -` (docs/design.md, "Migration"). Iterative
// pre-copy: checkpoints while the program runs, each streamed to COMMAND as
// it completes (an incremental one carries only the pages written since the
// one before; what the target has already is sent as a reference), until a
// round no longer shrinks; then one checkpoint that keeps the program
// stopped, streamed with the end record. The program is killed here only
// once the target says it runs there (its `ckrun restart: running` line);
// if the target fails first, it runs on here unharmed.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { requestCheckpoint } from './checkpoint-client.js';
import { canonicalDir, connectAbstract, DEFAULT_DIR, NoSessionError, querySession, readLines, socketNameFor, splitLine } from './protocol.js';
import { trace } from './output.js';
import { RUNNING_LINE, sinkOf, StreamWriter, type SentGeneration } from './stream.js';

/** The migration did not happen; the program runs on where it was. */
export class MigrateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrateError';
  }
}

export interface MigrateOptions {
  dir?: string;
  /** A shell command that runs `ckrun restart -` where the program goes (its stdin is the stream). */
  to: string;
  /** Pre-copy rounds at most before the stop (default 6). */
  maxRounds?: number;
  /** A round of at most this many bytes is small enough to stop after (default 8 MiB). */
  smallBytes?: number;
  /** Told each round as it completes. */
  onRound?: (r: Round) => void;
}

export interface Round {
  round: number;
  generation: string;
  /** Bytes of files sent (references to files sent before are not counted). */
  bytes: number;
  linked: number;
  ms: number;
}

export interface MigrateReport {
  rounds: Round[];
  /** The last round, taken while the program stood still. */
  final: Round;
  /** From the request of the last checkpoint until the target said the program runs: an upper bound of the time it stood still. */
  stoodStillMs: number;
  /** Resolves with the target command's exit status once it ends (the program ends there). */
  targetExit: Promise<number>;
}

/** The target command, its stderr passed on line by line, watched for the line that says the program runs. */
interface Target {
  child: ChildProcess;
  running: Promise<void>;
  exited: Promise<number>;
}

function startTarget(command: string): Target {
  const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'inherit', 'pipe'] });
  let sawRunning = false;
  let onRunning!: () => void;
  let onFailed!: (e: Error) => void;
  const running = new Promise<void>((res, rej) => {
    onRunning = res;
    onFailed = rej;
  });
  running.catch(() => undefined);
  let partial = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk);
    partial += chunk.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    if (!sawRunning && lines.some((l) => l.startsWith(RUNNING_LINE))) {
      sawRunning = true;
      onRunning();
    }
  });
  child.stdin!.on('error', () => undefined); // a target that went: its exit says so
  const exited = new Promise<number>((res) => {
    child.on('error', (e) => {
      onFailed(new MigrateError(`cannot run the target command '${command}': ${e.message}`));
      res(127);
    });
    child.on('exit', (code, signal) => {
      const status = code ?? 128 + (signal ? 9 : 0);
      if (!sawRunning)
        onFailed(
          new MigrateError(
            `the target command '${command}' ${signal ? `was killed by ${signal}` : `exited with status ${code}`} before it said the program runs there`,
          ),
        );
      res(status);
    });
  });
  return { child, running, exited };
}

/** A connection holding a checkpoint's processes stopped (`checkpoint hold`): `resume` or `kill` ends the hold, closing it resumes. */
class Hold {
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;

  private constructor(private readonly sock: Socket) {
    readLines(
      sock,
      (l) => {
        this.lines.push(l);
        this.waiter?.();
      },
      () => sock.destroy(),
    );
    sock.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    sock.on('error', () => undefined);
  }

  static open(canonical: string): Hold {
    return new Hold(connectAbstract(socketNameFor(canonical), canonical));
  }

  async ask(line: string): Promise<string> {
    this.sock.write(line + '\n');
    while (this.lines.length === 0) {
      if (this.closed) throw new MigrateError('the session ended before it answered (its program exited, or ckrun was killed)');
      await new Promise<void>((res) => (this.waiter = res));
    }
    return this.lines.shift()!;
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * Why the migration failed: a write into a target that went fails first
 * (EPIPE), so its exit, once seen, says it better. The target is ended.
 */
async function failure(target: Target, e: unknown): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((res) => (timer = setTimeout(res, 2000)));
  const ended = await Promise.race([target.exited.then(() => true), late.then(() => false)]);
  clearTimeout(timer);
  if (!ended) target.child.kill('SIGKILL');
  const why = await target.running.then(
    () => undefined,
    (f: unknown) => (f instanceof Error ? f.message : String(f)),
  );
  return ended && why ? why : e instanceof Error ? e.message : String(e);
}

function answerPath(answer: string): string {
  const [word, rest] = splitLine(answer);
  if (word === 'ok' && rest !== '') return rest;
  throw new MigrateError(word === 'error' ? `the checkpoint failed: ${rest}` : `unexpected answer from the session: '${answer}'`);
}

/**
 * Moves the program of the session writing to `dir` to the `ckrun restart -`
 * that `to` runs. Resolves once the program runs there and is ended here;
 * rejects with MigrateError (the program runs on here) otherwise.
 */
export async function migrate(o: MigrateOptions): Promise<MigrateReport> {
  const dir = o.dir ?? DEFAULT_DIR;
  const canonical = canonicalDir(dir);
  if (!(await querySession(canonical))) throw new NoSessionError(canonical, 'none');
  const target = startTarget(o.to);
  const writer = new StreamWriter(sinkOf(target.child.stdin!));
  // a target that fails ends the migration at once, whatever it was doing
  const failed = target.running.then(
    () => new Promise<never>(() => undefined),
    (e: unknown) => Promise.reject(e),
  );
  failed.catch(() => undefined);
  const race = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);
  const maxRounds = o.maxRounds ?? 6;
  const small = o.smallBytes ?? 8 << 20;
  const rounds: Round[] = [];
  const send = async (round: number, gen: string, t0: number): Promise<Round> => {
    const s: SentGeneration = await race(writer.generation(gen));
    return { round, generation: gen, bytes: s.bytes, linked: s.linked, ms: Date.now() - t0 };
  };
  try {
    for (let i = 1; i <= maxRounds; i++) {
      const t0 = Date.now();
      const r = await send(i, await race(requestCheckpoint(dir)), t0);
      rounds.push(r);
      o.onRound?.(r);
      const before = rounds[rounds.length - 2];
      if (r.bytes <= small || (before && r.bytes > before.bytes / 2)) break; // small enough, or no longer shrinking
    }
  } catch (e) {
    throw new MigrateError(`${await failure(target, e)}; the program runs on here`);
  }
  // the last round: the program stays stopped from here until it runs there, or runs on here
  const hold = Hold.open(canonical);
  const t0 = Date.now();
  let final: Round;
  try {
    trace('migrate: the last checkpoint asked for (the program stops)');
    const held = answerPath(await race(hold.ask('checkpoint hold')));
    trace('migrate: the last checkpoint written, the program held');
    final = await send(rounds.length + 1, held, t0);
    await race(writer.end());
    target.child.stdin!.end();
    trace('migrate: the last round streamed');
    await race(target.running);
    trace('migrate: the target said the program runs');
  } catch (e) {
    // resumed by the session (also when the answer never comes: closing the connection resumes)
    await hold.ask('resume').catch(() => undefined);
    hold.close();
    throw new MigrateError(`${await failure(target, e)}; the program runs on here`);
  }
  const stoodStillMs = Date.now() - t0;
  o.onRound?.(final);
  const killed = await hold.ask('kill').catch((e: unknown) => `error ${(e as Error).message}`);
  hold.close();
  if (killed !== 'ok')
    throw new MigrateError(`the program runs on the target, but ending it here failed (${killed}): end the session writing to ${canonical} yourself`);
  return { rounds, final, stoodStillMs, targetExit: target.exited };
}
