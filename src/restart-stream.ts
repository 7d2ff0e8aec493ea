// `ckrun restart -`: a generation (or the generations of a migration) read
// from standard input into new generations of the checkpoint directory,
// verified like any generation, then restarted (src/stream.ts, src/restart.ts).
import { closeSync, fstatSync, openSync } from 'node:fs';
import { lchown, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describeUser } from './dirtrust.js';
import { displayPath, trace, writeErr } from './output.js';
import { canonicalDir, DEFAULT_DIR, querySession } from './protocol.js';
import { restart, RestartError } from './restart.js';
import type { RestartedSession, RestartOptions } from './restart-host.js';
import { checkpointDirFor } from './session.js';
import { VerifyCache } from './image.js';
import { receiveStream, removeReceived, RUNNING_LINE, StreamError, syncReceived, type ReceivedGeneration } from './stream.js';
import { isIntegrityError, verifyGeneration } from './verify.js';

/**
 * A stream is restarted as what it holds, so, like a checkpoint directory,
 * one that another user made is refused unless trusted: a file or a pipe
 * on standard input must be the restarter's (a pipe belongs to whoever
 * made it: the shell of `a | ckrun restart -`, the user's sshd session).
 */
function checkInputOwner(fd: number, trust: boolean): number {
  const st = fstatSync(fd);
  const me = process.geteuid?.() ?? 0;
  if (!(st.isFile() || st.isFIFO())) return me;
  if (trust || st.uid === me) return st.uid;
  throw new RestartError(
    `standard input is a ${st.isFile() ? 'file' : 'pipe'} owned by ${describeUser(st.uid)}, not by you: a stream runs the program it holds, ` +
      `so ckrun restart - refuses another user's (--trust-owner restarts it, as the credentials its images record)`,
  );
}

async function giveTo(gens: ReceivedGeneration[], uid: number): Promise<void> {
  for (const g of gens) {
    for (const e of await readdir(g.path, { recursive: true })) await lchown(join(g.path, e), uid, -1);
    await lchown(g.path, uid, -1);
  }
}

/**
 * Receives the stream on `input` into `opts.dir` (default ./ckpt: vetted
 * like any checkpoint directory, created mode 0700 when missing), then
 * restarts its last generation. The program's standard input is
 * /dev/null (its own was the stream). A stream cut short or damaged, or a
 * generation that does not verify, is refused before any process exists,
 * and what the stream wrote is removed.
 */
export async function restartFromStream(opts: RestartOptions, input: AsyncIterable<Buffer | string>, inputFd = 0): Promise<RestartedSession> {
  const owner = checkInputOwner(inputFd, opts.trustOwner === true);
  const dir = await checkpointDirFor(opts.dir ?? DEFAULT_DIR);
  // a session on DIR would take the generations half-written for stale ones
  const other = await querySession(canonicalDir(dir)).catch(() => undefined);
  if (other)
    throw new RestartError(`a ckrun session (PID ${other.pid}) writes to ${displayPath(dir)}; give ckrun restart - a --dir of its own`);
  let received: ReceivedGeneration[];
  // each generation is verified as it arrives (while the program still runs
  // on the source, for a migration's early rounds); the restart reads none twice
  const cache = new VerifyCache();
  const onGeneration = async (g: ReceivedGeneration): Promise<void> => {
    trace(`generation ${g.number} of the stream received`);
    try {
      await verifyGeneration(g.path, { verifyData: opts.verifyData ?? true, cache });
    } catch (e) {
      if (isIntegrityError(e)) throw new StreamError(`generation ${g.number} of the stream does not verify: ${e.message}`);
      throw e;
    }
  };
  try {
    received = await receiveStream(input, dir, { onGeneration });
    trace('stream complete, every generation verified');
  } catch (e) {
    if (e instanceof StreamError) throw new RestartError(`${e.message}; nothing was restarted and nothing of it kept`);
    throw e;
  }
  const last = received[received.length - 1]!;
  // another user's stream (trusted): its generations are that user's, so that
  // the restart's checks of whose images may record what apply to them as to
  // that user's checkpoint directory
  if (owner !== (process.geteuid?.() ?? 0)) await giveTo(received, owner);
  const devNull = openSync('/dev/null', 'r');
  let session: RestartedSession;
  try {
    session = await restart({ ...opts, image: last.path, dir, stdio: [devNull, 1, 2], verifyCache: cache });
  } catch (e) {
    closeSync(devNull);
    await removeReceived(received);
    throw e;
  }
  // devNull stays open: the session's checkpoints look at its stdio
  session.ready.then(
    () => {
      writeErr(`${RUNNING_LINE} (generation ${last.number} of the stream, now ${displayPath(last.path)})\n`);
      syncReceived(received).catch((e: unknown) =>
        writeErr(`ckrun restart: cannot flush the received generations to disk: ${(e as Error).message}\n`),
      );
    },
    () => undefined,
  );
  return session;
}
