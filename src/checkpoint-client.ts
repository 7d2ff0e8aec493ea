// `ckrun checkpoint`: ask the session writing to DIR for a checkpoint.
import { readManifest } from './generations.js';
import { canonicalDir, DEFAULT_DIR, NoSessionError, querySession, request, splitLine, type SessionStatus } from './protocol.js';

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/**
 * Asks the session writing to DIR (default ./ckpt) for a checkpoint, waits
 * until it is complete and on disk, and resolves with the generation
 * directory's absolute path. Rejects with NoSessionError when no session
 * answers, CheckpointError when the checkpoint failed, SessionLostError
 * when the session ended before it answered, UntrustedSessionError when
 * another user holds the socket, RefusedError when the session refused
 * (the caller is neither its user nor root).
 */
export async function requestCheckpoint(dir: string = DEFAULT_DIR, o: { portable?: boolean } = {}): Promise<string> {
  const canonical = canonicalDir(dir);
  const answer = await request(canonical, o.portable ? 'checkpoint portable' : 'checkpoint');
  const [word, rest] = splitLine(answer);
  if (word === 'ok' && rest !== '') {
    // a session of an older ckrun takes "checkpoint portable" for a plain one
    if (o.portable && (await readManifest(rest).catch(() => undefined))?.portable !== true)
      throw new CheckpointError(`the session wrote ${rest}, but not portable (a session of an older ckrun, or a file it maps changed while it was copied)`);
    return rest;
  }
  if (word === 'error') throw new CheckpointError(rest || 'the checkpoint failed');
  throw new CheckpointError(`unexpected answer from the session: '${answer}'`);
}

/** The status of the session writing to DIR, or undefined when none answers. */
export async function sessionStatus(dir: string = DEFAULT_DIR): Promise<SessionStatus | undefined> {
  return querySession(canonicalDir(dir));
}

export { NoSessionError };
