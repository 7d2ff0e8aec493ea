// The error a session and a restart fail with, below every module that
// throws it.

/** A session could not start, or a checkpoint failed. exitCode is what the command exits with. */
export class SessionError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'SessionError';
  }
}

/** The message of anything thrown. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
