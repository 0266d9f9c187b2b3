import type { PgRedis } from '../redis/connection.js';
import { deviceBucket, type RedisKeys } from '../redis/keys.js';

/**
 * The per-app rate limit of a RateLimitPolicy, shared by every gateway and dispatcher through
 * Redis, sharded the way vivo shards its per-app leaky bucket: the app's budget (rate and
 * burst) is split over up to APP_LIMIT_SHARDS shards by device hash, each shard a GCRA with its
 * own deferred queue under its own hashtag (`{rl:<app>:<shard>}`), so one app's traffic lands on
 * up to 16 Redis Cluster slots instead of one hot key. The shares add up exactly to the
 * configured rate and burst (shardPlan, unit-tested).
 *
 * A message over the limit is never dropped: it is queued in its device's shard (durably, in
 * Redis, in acceptance order) and released when the shard's budget allows (AppLimitReleaser).
 * Within a shard nothing overtakes what waits, so a device's messages keep acceptance order.
 */

/** Most shards an app's limit is split into (part of the key schema, like DEVICE_BUCKETS). */
export const APP_LIMIT_SHARDS = 16;

/** The limits in force for one app, as the operator publishes them (keys.appLimitConfig). */
export interface AppLimitConfig {
  /** Sustained messages per second (after adaptive throttling). */
  ratePerSecond: number;
  /** Messages an idle app may send at once. */
  burst: number;
  /** Most deferred messages the app may have waiting; beyond it the API answers 429. */
  maxDeferred: number;
  /** The RateLimitPolicy that set it (namespace/name), named in answers. */
  policy?: string;
  /** The configured rate before adaptive throttling (status and metrics; the shard plan follows it). */
  configuredRatePerSecond?: number;
  /** Per-device daily caps (RateLimitPolicy spec.perDevice); absent = none. */
  perDevice?: DeviceCapConfig;
  /** Adaptive throttling (RateLimitPolicy spec.adaptive); absent or disabled = the configured rate. */
  adaptive?: AdaptiveConfig;
}

/** Per-device daily caps as published (common/ratelimit/device-cap.ts). */
export interface DeviceCapConfig {
  messagesPerDay: number;
  /** Defaults to messagesPerDay. */
  highPriorityMessagesPerDay?: number;
}

/** Adaptive throttling as published (common/ratelimit/adaptive.ts); the policy's fields. */
export interface AdaptiveConfig {
  enabled: boolean;
  errorRatioPercent: number;
  timeoutRatioPercent: number;
  windowSeconds: number;
  decreasePercent: number;
  recoveryPercent: number;
  recoveryIntervalSeconds: number;
  minRatePercent: number;
}

export interface ShardLimit {
  /** Emission interval of the shard in ms (1000 x shards / rate). */
  intervalMs: number;
  burst: number;
  /** Deferred messages this shard may hold. */
  maxDeferred: number;
}

export interface ShardPlan {
  shards: number;
  limits: ShardLimit[];
}

/**
 * The least rate a shard carries. Sharding exists so that a fast app is not one hot key; a key
 * that sees 50 GCRA calls a second is nowhere near hot. Below that, more shards only coarsen the
 * release (each shard's cells are shards/rate apart) and unbalance it (a shard whose devices have
 * nothing waiting must lend its cells in time, or they are lost), which showed as seconds 20-30%
 * under the rate at 30 msg/s over 16 shards.
 */
export const MIN_SHARD_RATE = 50;

/**
 * Splits an app's limit over its shards: one per MIN_SHARD_RATE of rate, as many as the burst
 * allows (every shard needs at least one cell), at most APP_LIMIT_SHARDS. The rate is split evenly (the shares are
 * fractional, so they add up to the rate exactly); the burst and the deferred bound are split
 * in whole units, the remainder going to the first shards, so they add up exactly too.
 */
export function shardPlan(
  cfg: Pick<AppLimitConfig, 'ratePerSecond' | 'burst' | 'maxDeferred' | 'configuredRatePerSecond'>,
): ShardPlan {
  if (!(cfg.ratePerSecond > 0)) throw new Error(`ratePerSecond must be > 0, got ${cfg.ratePerSecond}`);
  const burst = Math.max(1, Math.floor(cfg.burst));
  // The shard count follows the configured rate, not the throttled one: adaptive throttling
  // changes the pace of every shard, never which shard a device is in (that would reorder).
  const byRate = Math.max(1, Math.floor((cfg.configuredRatePerSecond ?? cfg.ratePerSecond) / MIN_SHARD_RATE));
  const shards = Math.min(APP_LIMIT_SHARDS, burst, byRate);
  const maxDeferred = Math.max(0, Math.floor(cfg.maxDeferred));
  const limits: ShardLimit[] = [];
  for (let i = 0; i < shards; i++) {
    limits.push({
      intervalMs: (1000 * shards) / cfg.ratePerSecond,
      burst: Math.floor(burst / shards) + (i < burst % shards ? 1 : 0),
      maxDeferred: Math.floor(maxDeferred / shards) + (i < maxDeferred % shards ? 1 : 0),
    });
  }
  return { shards, limits };
}

/**
 * Deferred messages go out paced, not in bursts: a release call takes the cells that accrued
 * since the releaser's previous call, at least RELEASE_BURST_MS and at most
 * RELEASE_CATCH_UP_MS worth, never more than the shard's burst (the policy's burst is for
 * pushes answered at once, not for a backlog). A releaser's round (take, store, route, clear)
 * takes longer on a busy gateway: with a fixed 100 ms tolerance every round past 100 ms lost
 * budget for good (a gateway accepting 150 pushes/s released 10-26 of 30/s). Taking what its
 * own round let accrue keeps the rate and paces at the round's granularity; a stall longer
 * than RELEASE_CATCH_UP_MS still sends less that second instead of a burst above the rate.
 */
const RELEASE_BURST_MS = 100;
export const RELEASE_CATCH_UP_MS = 400;
export const releaseBurst = (lim: { intervalMs: number; burst: number }, sinceLastMs = 0): number => {
  const windowMs = Math.min(RELEASE_CATCH_UP_MS, Math.max(RELEASE_BURST_MS, sinceLastMs));
  return Math.min(lim.burst, Math.max(1, Math.ceil(windowMs / lim.intervalMs)));
};

/** The shard of a device: its device bucket modulo the plan's shard count (so a device stays in one shard while the plan does). */
export function appLimitShard(device: string, shards: number): number {
  return deviceBucket(device) % shards;
}

/** A deferred message as queued: `<exp>|<acceptedAt>|<device>|<stored body>`. Device ids never contain '|'. */
export interface DeferredEntry {
  exp: number;
  acceptedAt: number;
  device: string;
  body: string;
}

export function encodeDeferredEntry(e: DeferredEntry): string {
  return `${Math.trunc(e.exp)}|${Math.trunc(e.acceptedAt)}|${e.device}|${e.body}`;
}

export function decodeDeferredEntry(s: string): DeferredEntry {
  const a = s.indexOf('|');
  const b = s.indexOf('|', a + 1);
  const c = s.indexOf('|', b + 1);
  if (a < 0 || b < 0 || c < 0) throw new Error('malformed deferred entry');
  return {
    exp: Number(s.slice(0, a)),
    acceptedAt: Number(s.slice(a + 1, b)),
    device: s.slice(b + 1, c),
    body: s.slice(c + 1),
  };
}

/** The app's deferred queue is full: the API answers 429 with Retry-After. */
export class DeferredQueueFullError extends Error {
  override name = 'DeferredQueueFullError';
  constructor(
    readonly app: string,
    readonly maxDeferred: number,
    readonly retryAfterMs: number,
    readonly policy?: string,
  ) {
    super(
      `app '${app}' has its deferred queue full (maxDeferred ${maxDeferred}${policy ? ` of RateLimitPolicy ${policy}` : ''}); retry after ${Math.ceil(retryAfterMs / 1000)} s`,
    );
  }
}

export interface AdmitResult {
  /** Indexes (into the devices given) that may be stored now. */
  now: number[];
  /** How many were queued. */
  deferred: number;
  /** Estimated release of the last deferred one (ms since epoch), 0 = none deferred. */
  releaseAt: number;
  /** For the RateLimit-* headers: app limit, messages that could go at once now (estimate), seconds until the budget is full. */
  limit: number;
  remaining: number;
  resetSeconds: number;
  /** Shards that got deferred messages (the caller's releaser can look at them at once). */
  deferredShards: number[];
}

/**
 * Admits one message for `devices` under the app's limit. Devices whose shard has budget and no
 * queue go now (returned in `now`); the others are queued with `body` and released later.
 * When the deferred queue of any shard involved has no room, nothing is admitted and
 * DeferredQueueFullError is thrown (checked before anything is queued when a call spans several
 * shards, so a refused call queues nothing; two calls racing may overshoot the bound by at
 * most their own size, never drop anything).
 */
export async function admitToAppLimit(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  cfg: AppLimitConfig,
  devices: string[],
  message: { exp: number; body: string },
  acceptedAt = Date.now(),
  opts: { unbounded?: boolean } = {},
): Promise<AdmitResult> {
  const plan = shardPlan(cfg);
  const groups = new Map<number, number[]>();
  devices.forEach((d, i) => {
    const s = appLimitShard(d, plan.shards);
    let g = groups.get(s);
    if (!g) groups.set(s, (g = []));
    g.push(i);
  });
  // Already accepted (released by the daily cap): queued whatever the bound, never refused.
  const bounded = groups.size === 1 && !opts.unbounded;
  if (!bounded && !opts.unbounded && cfg.maxDeferred > 0) {
    // Several shards: check them all for room first, then admit without a bound.
    const lens = await Promise.all([...groups.keys()].map((s) => redis.llen(keys.appLimitShard(app, s)[1])));
    let i = 0;
    for (const [s, idx] of groups) {
      const lim = plan.limits[s]!;
      const len = lens[i++]!;
      if (len > 0 && len + idx.length > lim.maxDeferred)
        throw new DeferredQueueFullError(
          app,
          cfg.maxDeferred,
          (len + idx.length - lim.maxDeferred) * lim.intervalMs,
          cfg.policy,
        );
    }
  }
  const calls = [...groups].map(async ([s, idx]) => {
    const lim = plan.limits[s]!;
    const [tat, queue] = keys.appLimitShard(app, s);
    const entries = idx.map((i) =>
      encodeDeferredEntry({ exp: message.exp, acceptedAt, device: devices[i]!, body: message.body }),
    );
    const r = await redis.pgLimitAdmit(
      tat,
      queue,
      lim.intervalMs,
      lim.burst,
      releaseBurst(lim),
      bounded ? Math.max(1, lim.maxDeferred) : 0,
      entries.length,
      ...entries,
    );
    return { s, idx, lim, r: r.map(Number) };
  });
  const results = await Promise.all(calls);
  const out: AdmitResult = {
    now: [],
    deferred: 0,
    releaseAt: 0,
    limit: cfg.ratePerSecond,
    remaining: 0,
    resetSeconds: 0,
    deferredShards: [],
  };
  let remaining = 0;
  let resetMs = 0;
  for (const { s, idx, r } of results) {
    const [allowed, deferred, , eta, retryMs, rem, reset, redisNow] = r as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    if (allowed < 0) throw new DeferredQueueFullError(app, cfg.maxDeferred, retryMs, cfg.policy);
    for (let k = 0; k < allowed; k++) out.now.push(idx[k]!);
    out.deferred += deferred;
    if (deferred > 0) {
      out.deferredShards.push(s);
      // The Redis clock dates the estimate; carry it over to ours.
      out.releaseAt = Math.max(out.releaseAt, acceptedAt + Math.max(0, eta - redisNow));
    }
    remaining += rem * plan.shards; // this shard's share, scaled to the app (an estimate)
    resetMs = Math.max(resetMs, reset);
  }
  out.remaining = Math.max(0, Math.min(cfg.burst, Math.floor(remaining / Math.max(1, results.length))));
  out.resetSeconds = Math.ceil(resetMs / 1000);
  out.now.sort((a, b) => a - b);
  return out;
}

/** Deferred depth and oldest deferred age of an app (status and metrics): one pipeline over its shards. */
export async function deferredStats(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  now = Date.now(),
): Promise<{ depth: number; oldestAgeSeconds: number }> {
  let depth = 0;
  let oldest = now;
  const per = await Promise.all(
    Array.from({ length: APP_LIMIT_SHARDS }, async (_, s) => {
      const [, q, rel] = keys.appLimitShard(app, s);
      const [len, relLen, head] = await Promise.all([redis.llen(q), redis.llen(rel), redis.lindex(q, 0)]);
      return { len: len + relLen, head };
    }),
  );
  for (const { len, head } of per) {
    depth += len;
    if (head) oldest = Math.min(oldest, decodeDeferredEntry(head).acceptedAt);
  }
  return { depth, oldestAgeSeconds: Math.max(0, Math.round((now - oldest) / 1000)) };
}
