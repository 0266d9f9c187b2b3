/**
 * Whether an error from a Redis call means "storage is not available right now" (retry later)
 * rather than a bug: a command that timed out (a frozen or overloaded server, see
 * --redis-command-timeout-ms), a connection that is down or closed, or a server that answers
 * but cannot serve (loading its data, a busy script, a replica or cluster without a master).
 * The push API answers these with 503 and Retry-After instead of 500.
 */
const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;

export function isStorageUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError' || err.name === 'StorageUnavailableError') return true;
  if (err.message === 'Command timed out') return true;
  if (/^(Connection is closed|Stream isn't writeable)/.test(err.message)) return true;
  if ((err as { code?: string }).code === 'ECONNREFUSED') return true;
  return UNAVAILABLE_REPLIES.test(err.message);
}

/** Storage is down or stalled (the health check says so): nothing was done; retry later. */
export class StorageUnavailableError extends Error {
  override name = 'StorageUnavailableError';
}

/**
 * Redis health as a gateway's health check sees it (a short round trip every quarter second). The
 * push API runs its work through `guard`: refused at once while storage is unhealthy, and cut
 * short the moment it turns unhealthy, so a caller hears 503 within about the check's timeout
 * even when single commands may take longer (a large fan-out on a loaded Redis must not be cut
 * off by a short per-command timeout; a frozen Redis must not hold callers for it).
 */
export class StorageHealth {
  private okAt = 0;
  private failing: string | undefined = 'not checked yet';
  private readonly waiters = new Set<(err: Error) => void>();

  constructor(private readonly staleMs: number) {}

  ok(now = Date.now()): void {
    this.okAt = now;
    this.failing = undefined;
  }

  failed(reason: string): void {
    this.failing = reason;
    const err = new StorageUnavailableError(`storage unavailable: ${reason}`);
    for (const reject of this.waiters) reject(err);
    this.waiters.clear();
  }

  /**
   * This process stalled for `gapMs` (a long GC, CPU starvation, a frozen VM): no check could run,
   * which says nothing about Redis. The stalled time does not count towards staleness, so a
   * request read right after the stall is not refused before the next check had a chance.
   */
  stalled(gapMs: number): void {
    if (this.okAt > 0 && gapMs > 0) this.okAt += gapMs;
  }

  healthy(now = Date.now()): boolean {
    return this.failing === undefined && now - this.okAt < this.staleMs;
  }

  async guard<T>(work: () => Promise<T>): Promise<T> {
    if (!this.healthy())
      throw new StorageUnavailableError(`storage unavailable: ${this.failing ?? 'no answer'}`);
    let reject!: (err: Error) => void;
    const broken = new Promise<never>((_, r) => (reject = r));
    this.waiters.add(reject);
    const running = work();
    running.catch(() => {}); // it may settle after we answered 503
    try {
      return await Promise.race([running, broken]);
    } finally {
      this.waiters.delete(reject);
    }
  }
}
