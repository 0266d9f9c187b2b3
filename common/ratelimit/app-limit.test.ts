import { describe, expect, it } from 'vitest';
import {
  APP_LIMIT_SHARDS,
  MIN_SHARD_RATE,
  appLimitShard,
  decodeDeferredEntry,
  encodeDeferredEntry,
  releaseBurst,
  shardPlan,
} from './app-limit.js';
import { redisKeys } from '../redis/keys.js';

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('shardPlan (the app budget split over device-hash shards)', () => {
  it.each([
    [10_000, 10_000, 100_000],
    [100, 50, 1000],
    [7, 3, 5],
    [1, 1, 0],
    [50_000, 17, 33],
    [123, 1_000_000, 7],
  ])('rate %d, burst %d, maxDeferred %d: the shards add up exactly', (rate, burst, maxDeferred) => {
    const plan = shardPlan({ ratePerSecond: rate, burst, maxDeferred });
    expect(plan.shards).toBe(
      Math.min(APP_LIMIT_SHARDS, burst, Math.max(1, Math.floor(rate / MIN_SHARD_RATE))),
    );
    expect(plan.limits).toHaveLength(plan.shards);
    // Rate: each shard emits one cell per intervalMs; the shards together emit `rate` a second.
    expect(sum(plan.limits.map((l) => 1000 / l.intervalMs))).toBeCloseTo(rate, 9);
    expect(sum(plan.limits.map((l) => l.burst))).toBe(burst);
    expect(sum(plan.limits.map((l) => l.maxDeferred))).toBe(maxDeferred);
    for (const l of plan.limits) expect(l.burst).toBeGreaterThanOrEqual(1);
    // Shares differ by at most one unit: no shard is a hot spot.
    const bursts = plan.limits.map((l) => l.burst);
    expect(Math.max(...bursts) - Math.min(...bursts)).toBeLessThanOrEqual(1);
  });

  it('shards only a rate worth sharding: one shard per 50 msg/s, never above the burst or 16', () => {
    expect(shardPlan({ ratePerSecond: 30, burst: 30, maxDeferred: 10 }).shards).toBe(1);
    expect(shardPlan({ ratePerSecond: 100, burst: 100, maxDeferred: 10 }).shards).toBe(2);
    expect(shardPlan({ ratePerSecond: 800, burst: 30, maxDeferred: 10 }).shards).toBe(16);
    expect(shardPlan({ ratePerSecond: 800, burst: 5, maxDeferred: 10 }).shards).toBe(5);
    expect(shardPlan({ ratePerSecond: 1_000_000, burst: 1000, maxDeferred: 10 }).shards).toBe(
      APP_LIMIT_SHARDS,
    );
  });

  it('refuses a rate that is not positive', () => {
    expect(() => shardPlan({ ratePerSecond: 0, burst: 1, maxDeferred: 1 })).toThrow(/ratePerSecond/);
  });

  it('spreads devices evenly over shards, whose keys sit on different Cluster hashtags', () => {
    const counts = new Array<number>(APP_LIMIT_SHARDS).fill(0);
    for (let i = 0; i < 16_000; i++) counts[appLimitShard(`device-${i}`, APP_LIMIT_SHARDS)]!++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
    const keys = redisKeys('pg');
    const tags = new Set(
      Array.from(
        { length: APP_LIMIT_SHARDS },
        (_, s) => /\{([^}]+)\}/.exec(keys.appLimitShard('demo', s)[0])![1],
      ),
    );
    expect(tags.size).toBe(APP_LIMIT_SHARDS);
    // All keys of one shard share its hashtag (one script touches them together).
    for (const k of keys.appLimitShard('demo', 3)) expect(k).toContain('{rl:demo:3}');
  });
});

describe('releaseBurst (a backlog goes out paced)', () => {
  it('takes at most 100 ms worth of cells at once, at least one, never above the burst', () => {
    expect(releaseBurst({ intervalMs: 1000 / 30, burst: 30 })).toBe(3);
    expect(releaseBurst({ intervalMs: 1000, burst: 30 })).toBe(1);
    expect(releaseBurst({ intervalMs: 0.1, burst: 500 })).toBe(500);
    expect(releaseBurst({ intervalMs: 0.1, burst: 5000 })).toBe(1000);
  });

  it("takes what accrued during the releaser's own round, up to 400 ms worth (a slow round loses no budget)", () => {
    const r30 = { intervalMs: 1000 / 30, burst: 30 };
    expect(releaseBurst(r30, 40)).toBe(3); // a fast round: the 100 ms floor
    expect(releaseBurst(r30, 300)).toBe(9); // a 300 ms round: 300 ms of cells
    expect(releaseBurst(r30, 5000)).toBe(12); // a stall: at most 400 ms of cells, not a burst
    expect(releaseBurst({ intervalMs: 1000 / 30, burst: 5 }, 5000)).toBe(5); // never above the burst
  });
});

describe('deferred entries', () => {
  it('round-trip, with a body that contains the separator', () => {
    const e = {
      exp: 1_700_000_000_000,
      acceptedAt: 1_699_999_999_000,
      device: 'd-1:x@y',
      body: '{"id":"a","data":"x|y|z"}',
    };
    expect(decodeDeferredEntry(encodeDeferredEntry(e))).toEqual(e);
    expect(() => decodeDeferredEntry('garbage')).toThrow(/malformed/);
  });
});
