import type { PgRedis } from '../redis/connection.js';
import type { RedisKeys } from '../redis/keys.js';

/**
 * The shared rate limit (GCRA, the standard leaky bucket; the Lua is `pgGcra` in
 * common/redis/scripts.ts) on the Redis clock, for limits that many processes enforce together: `ratePerSecond`
 * sustained, `burst` cells at once. The campaign dispatcher (per tag task) and RateLimitPolicy
 * (per app, or per app+device hash) use it; callers that are refused wait `retryAfterMs` and
 * try again: throttled work is queued, never dropped.
 */
export interface RateDecision {
  allowed: boolean;
  retryAfterMs: number;
  /** Cells that could still be taken at once. */
  remaining: number;
}

export async function takeRate(
  redis: PgRedis,
  keys: RedisKeys,
  bucket: string,
  limit: { ratePerSecond: number; burst: number },
  cost = 1,
): Promise<RateDecision> {
  if (!(limit.ratePerSecond > 0)) throw new Error(`ratePerSecond must be > 0, got ${limit.ratePerSecond}`);
  const [allowed, retryAfterMs, remaining] = await redis.pgGcra(
    keys.rateLimit(bucket),
    1000 / limit.ratePerSecond,
    Math.max(1, limit.burst),
    cost,
  );
  return { allowed: allowed === 1, retryAfterMs: Number(retryAfterMs), remaining: Number(remaining) };
}
