/**
 * Typed reconcile errors. The runtime decides by type what happens next, and status shows
 * the reason and message a person can act on, never a flattened string:
 * - TerminalError: the spec asks for something that cannot be built; retrying cannot fix it.
 *   Recorded (status, a Warning event) and not retried until the object changes.
 * - anything else thrown is transient (API server down, a conflict): retried with backoff.
 * StepError names the reconcile step an error came from and keeps the error itself.
 */
export class TerminalError extends Error {
  override name = 'TerminalError';
  constructor(
    /** CamelCase, for the condition's reason (InvalidSpec, ApplyFailed...). */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class StepError extends Error {
  override name = 'StepError';
  constructor(
    readonly step: string,
    override readonly cause: unknown,
  ) {
    super(`step ${step}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/** The TerminalError behind `err` (directly, or as a step's cause), if it is one. */
export function terminalCause(err: unknown): TerminalError | undefined {
  if (err instanceof TerminalError) return err;
  if (err instanceof StepError && err.cause instanceof TerminalError) return err.cause;
  return undefined;
}

export const isTerminal = (err: unknown) => terminalCause(err) !== undefined;
