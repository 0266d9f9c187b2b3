/**
 * The in-process token bucket: `perSecond` tokens a second, at most `burst` saved. The same
 * concept as the shared GCRA in `./gcra.ts` (which a fleet of processes uses through Redis),
 * for limits that one process enforces alone: accepted connections per gateway, frames per
 * device connection, retries of the operator's work queue.
 *
 * The state is two numbers on any object, so a limit per connection costs no object of its
 * own (the gateway keeps them on the socket, see gateway/hub/session.ts).
 */
export interface TokenState {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  tokensAt: number;
}

export interface TokenRate {
  perSecond: number;
  burst: number;
}

export function checkRate(rate: TokenRate): void {
  if (!(rate.perSecond > 0) || !(rate.burst >= 1))
    throw new Error(
      `token bucket: perSecond must be > 0 and burst >= 1 (got ${rate.perSecond}, ${rate.burst})`,
    );
}

/** A full bucket as of `now`. */
export function fullBucket(rate: TokenRate, now: number): TokenState {
  return { tokens: rate.burst, tokensAt: now };
}

function refill(s: TokenState, rate: TokenRate, now: number): void {
  s.tokens = Math.min(rate.burst, s.tokens + ((now - s.tokensAt) * rate.perSecond) / 1000);
  s.tokensAt = now;
}

/** Takes one token if there is one; false (and nothing taken) when the bucket is empty. */
export function takeToken(s: TokenState, rate: TokenRate, now: number): boolean {
  refill(s, rate, now);
  if (s.tokens < 1) return false;
  s.tokens -= 1;
  return true;
}

/**
 * Takes one token now, going into debt when there is none, and returns how long (ms) the
 * caller must wait before using it (0 when a token was there), like client-go's
 * BucketRateLimiter.
 */
export function reserveToken(s: TokenState, rate: TokenRate, now: number): number {
  refill(s, rate, now);
  s.tokens -= 1;
  return s.tokens >= 0 ? 0 : Math.ceil((-s.tokens / rate.perSecond) * 1000);
}

/** A token bucket that owns its state and clock (for one limit per process, not per connection). */
export class TokenBucket {
  private readonly state: TokenState;
  private readonly rate: TokenRate;

  constructor(
    readonly qps: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.rate = { perSecond: qps, burst };
    checkRate(this.rate);
    this.state = fullBucket(this.rate, now());
  }

  /** See reserveToken. */
  reserve(): number {
    return reserveToken(this.state, this.rate, this.now());
  }

  /** See takeToken. */
  tryTake(): boolean {
    return takeToken(this.state, this.rate, this.now());
  }
}
