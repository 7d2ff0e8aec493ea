// `ckrun restart -`: a generation (or the generations of a migration) read
// from standard input into new generations of the checkpoint directory,
// verified like any generation, then restarted (src/stream.ts, src/restart.ts).
import { openSync, closeSync } from 'node:fs';
import { displayPath, trace, writeErr } from './output.js';
import { canonicalDir, DEFAULT_DIR, querySession } from './protocol.js';
import { restart, RestartError } from './restart.js';
import type { RestartedSession, RestartOptions } from './restart-host.js';
import { checkpointDirFor } from './session.js';
import { VerifyCache } from './image.js';
import { receiveStream, removeReceived, RUNNING_LINE, StreamError, syncReceived, type ReceivedGeneration } from './stream.js';
import { isIntegrityError, verifyGeneration } from './verify.js';

/**
 * Receives the stream on `input` into `opts.dir` (default ./ckpt: vetted
 * like any checkpoint directory, created mode 0700 when missing), then
 * restarts its last generation. The program's standard input is
 * /dev/null (its own was the stream). A stream cut short or damaged, or a
 * generation that does not verify, is refused before any process exists,
 * and what the stream wrote is removed.
 */
export async function restartFromStream(opts: RestartOptions, input: AsyncIterable<Buffer | string>): Promise<RestartedSession> {
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
