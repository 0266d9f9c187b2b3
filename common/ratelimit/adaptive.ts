import type { Logger } from '../logger.js';
import type { PgRedis } from '../redis/connection.js';
import type { RedisKeys } from '../redis/keys.js';
import type { AppLimitConfig } from './app-limit.js';

/**
 * Adaptive throttling (AIMD) of a RateLimitPolicy (spec.adaptive), measured in the data path.
 *
 * What "downstream" means in pushgate: the step after the rate limit lets a message go, storing
 * it in the recipients' inboxes and routing it to their gateways (deliverMessage). Each such
 * store, at acceptance or on release, is one outcome per recipient:
 *   - an error: the store failed (storage unavailable, a script error, a refused connection);
 *   - a timeout: the store succeeded but took longer than `timeoutMs` (default 1000 ms; a
 *     stalled or overloaded Redis, the thing that makes pushes pile up).
 * And each push a gateway writes to a connected device of the app is one more outcome:
 *   - a timeout when the device does not ack it within `ackTimeoutMs` (default 10 s, the
 *     gateway's --ack-timeout-ms), a success when it does (a resend after a reconnect that is
 *     acked in time counts as acked).
 * A message stored for an offline device is only its store's outcome. The ratios are taken over the policy's window, summed over every gateway (each adds
 * its counts in Redis about once a second, one script call per limited app). On a breach
 * (more than errorRatioPercent / timeoutRatioPercent of at least LEAST_SAMPLES outcomes) the
 * rate is cut by decreasePercent (multiplicative decrease, never below minRatePercent) and a
 * fresh window starts; while healthy it rises by recoveryPercent of the configured rate per
 * recoveryIntervalSeconds (additive increase) back to the configured rate. It changes at most
 * once per recovery interval. The factor is one entry of keys.appLimitAdaptive, beside the
 * published limits: every gateway reads it with them (AppLimitConfigs) and paces its releases
 * at configured x factor; the operator reads it for status (Effective, Throttled).
 */

/** A ratio over fewer outcomes than this is no evidence (no cut on 1 error out of 2). */
export const LEAST_SAMPLES = 20;
/** A store slower than this is a timeout (ms). */
export const DEFAULT_DOWNSTREAM_TIMEOUT_MS = 1000;
/** A push written to a device and not acked within this is a timeout (ms). */
export const DEFAULT_ACK_TIMEOUT_MS = 10_000;
/** Most pushes watched for their ack at once per process (beyond, new ones are not watched). */
const MAX_WATCHED = 200_000;

export interface AdaptiveState {
  /** Effective rate = configured x factor (minRatePercent/100 .. 1). */
  factor: number;
  /** Healthy, ErrorRatio, TimeoutRatio, Recovering, Disabled. */
  reason: string;
  changedAt: number;
}

export function parseAdaptiveState(s: string | undefined): AdaptiveState | undefined {
  if (!s) return undefined;
  const [f, c, r] = s.split('|');
  const factor = Number(f);
  if (!(factor > 0 && factor <= 1) || !r) return undefined;
  return { factor, reason: r, changedAt: Number(c) || 0 };
}

/** An observer of the steps (metrics, logs). */
export interface AdaptiveObserver {
  step(app: string, factor: number, reason: string, changed: boolean): void;
}

/**
 * This process's share of adaptive throttling: counts outcomes in memory (so a stalled Redis
 * is measured, not just suffered) and adds them in Redis with one step per limited app about
 * once a second (pgAdaptiveStep), which also moves the factor.
 */
export class AdaptiveThrottle {
  private readonly pending = new Map<string, { n: number; e: number; t: number }>();
  /** Pushes written and not acked yet: app \0 device \0 id -> written at (ms), oldest first. */
  private readonly unacked = new Map<string, number>();
  readonly ackTimeoutMs: number;
  private timer: NodeJS.Timeout | undefined;
  private stepping: Promise<void> | undefined;
  readonly timeoutMs: number;

  constructor(
    private readonly redis: PgRedis,
    private readonly keys: RedisKeys,
    private readonly configs: { get(app: string): AppLimitConfig | undefined; apps(): string[] },
    private readonly log: Logger,
    private readonly observer?: AdaptiveObserver,
    opts: { timeoutMs?: number; stepMs?: number; ackTimeoutMs?: number } = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_DOWNSTREAM_TIMEOUT_MS;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
    this.stepMs = opts.stepMs ?? 1000;
  }
  private readonly stepMs: number;

  /** One downstream outcome for `n` recipients of a limited app. */
  record(app: string, n: number, outcome: 'ok' | 'error', ms: number): void {
    if (n <= 0 || !this.configs.get(app)?.adaptive?.enabled) return;
    let p = this.pending.get(app);
    if (!p) this.pending.set(app, (p = { n: 0, e: 0, t: 0 }));
    p.n += n;
    if (outcome === 'error') p.e += n;
    else if (ms > this.timeoutMs) p.t += n;
  }

  /** A push was written to a device (the gateway's hub): watched for its ack, if the app adapts. */
  sent(app: string, device: string, id: string): void {
    if (this.unacked.size >= MAX_WATCHED || !this.configs.get(app)?.adaptive?.enabled) return;
    const k = `${app}\u0000${device}\u0000${id}`;
    if (!this.unacked.has(k)) this.unacked.set(k, Date.now());
  }

  /** The device acked these pushes: successes, if they were watched and not timed out yet. */
  acked(app: string, device: string, ids: readonly string[]): void {
    let n = 0;
    for (const id of ids) if (this.unacked.delete(`${app}\u0000${device}\u0000${id}`)) n++;
    if (n) this.record(app, n, 'ok', 0);
  }

  /** Pushes written longer than ackTimeoutMs ago and not acked: timeouts. */
  private expireUnacked(now = Date.now()): void {
    const byApp = new Map<string, number>();
    for (const [k, at] of this.unacked) {
      if (now - at < this.ackTimeoutMs) break; // oldest first
      this.unacked.delete(k);
      const app = k.slice(0, k.indexOf('\u0000'));
      byApp.set(app, (byApp.get(app) ?? 0) + 1);
    }
    for (const [app, n] of byApp) this.record(app, n, 'ok', Infinity);
  }

  /** Times a store and records its outcome. */
  async measure<T>(app: string, n: number, store: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      const r = await store();
      this.record(app, n, 'ok', performance.now() - t0);
      return r;
    } catch (err) {
      this.record(app, n, 'error', performance.now() - t0);
      throw err;
    }
  }

  start(): void {
    this.timer = setInterval(() => void this.step(), this.stepMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.stepping;
  }

  /** One step for every limited app with adaptive throttling (no-op while one runs). */
  step(): Promise<void> {
    this.stepping ??= this.stepAll().finally(() => (this.stepping = undefined));
    return this.stepping;
  }

  private async stepAll(): Promise<void> {
    this.expireUnacked();
    for (const app of this.configs.apps()) {
      const a = this.configs.get(app)?.adaptive;
      if (!a) continue;
      const p = this.pending.get(app) ?? { n: 0, e: 0, t: 0 };
      this.pending.delete(app);
      try {
        const [f, reason, changed] = await this.redis.pgAdaptiveStep(
          this.keys.appLimitOutcomes(app),
          this.keys.appLimitAdaptive(),
          app,
          p.n,
          p.e,
          p.t,
          a.enabled ? '1' : '0',
          a.windowSeconds,
          a.errorRatioPercent,
          a.timeoutRatioPercent,
          a.decreasePercent,
          a.recoveryPercent,
          a.recoveryIntervalSeconds * 1000,
          a.minRatePercent,
          LEAST_SAMPLES,
        );
        const factor = Number(f);
        if (Number(changed)) this.log.info({ app, factor, reason }, 'adaptive throttling moved the rate');
        this.observer?.step(app, factor, reason, Number(changed) === 1);
      } catch (err) {
        // Not lost: counted again next time (Redis was the thing failing, most likely).
        const q = this.pending.get(app) ?? { n: 0, e: 0, t: 0 };
        this.pending.set(app, { n: q.n + p.n, e: q.e + p.e, t: q.t + p.t });
        this.log.debug({ app, err: (err as Error).message }, 'adaptive step failed; counts kept');
      }
    }
  }
}
