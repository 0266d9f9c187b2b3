/**
 * Delay policies, pure so they can be table-tested: exponential backoff per item (and for
 * watch restarts). The token bucket for the queue's global rate is common/ratelimit's.
 */

/** base * 2^attempt, capped at max; attempt 0 gives base. */
export function exponentialDelay(attempt: number, baseMs: number, maxMs: number): number {
  if (attempt <= 0) return Math.min(baseMs, maxMs);
  // 2^attempt overflows to Infinity for big attempts; Math.min keeps the cap.
  return Math.min(baseMs * 2 ** attempt, maxMs);
}

/** Adds up to ±`fraction` random jitter so many clients that failed together do not retry together. */
export function withJitter(ms: number, fraction = 0.2, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 + fraction * (2 * random() - 1))));
}

/** Per-item exponential backoff: each failure of a key doubles its delay until forget(key). */
export class ItemBackoff {
  private failures = new Map<string, number>();

  constructor(
    readonly baseMs: number,
    readonly maxMs: number,
  ) {}

  next(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return exponentialDelay(n, this.baseMs, this.maxMs);
  }

  attempts(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}
