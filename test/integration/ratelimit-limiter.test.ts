import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, type PgRedis } from '../../common/redis/connection.js';
import { redisKeys } from '../../common/redis/keys.js';
import { silentLogger } from '../../common/logger.js';
import {
  admitToAppLimit,
  deferredStats,
  DeferredQueueFullError,
  shardPlan,
  type AppLimitConfig,
  type DeferredEntry,
} from '../../common/ratelimit/app-limit.js';
import { AppLimitReleaser } from '../../common/ratelimit/releaser.js';
import { sleep, uniquePrefix, until } from '../support/gateway.js';

/**
 * The sharded per-app GCRA and its deferred queue as a library, on the run's real Redis, with
 * two releasers standing in for two gateways (each its own connection and lease owner).
 */
describe('per-app rate limit (sharded GCRA, deferred queue, releasers)', () => {
  const redisUrl = inject('redisUrl');
  let r1: PgRedis;
  let r2: PgRedis;
  const keys = redisKeys(uniquePrefix('rl-lib'));

  beforeAll(() => {
    r1 = createRedis(redisUrl);
    r2 = createRedis(redisUrl);
  });
  afterAll(async () => {
    await r1.quit();
    await r2.quit();
  });

  const body = (id: string) =>
    JSON.stringify({
      id,
      exp: Date.now() + 600_000,
      ttl: 600,
      priority: 'normal',
      sent: Date.now(),
      data: {},
    });

  it('an idle app gets exactly its burst at once, summed over its shards', async () => {
    const cfg: AppLimitConfig = { ratePerSecond: 20, burst: 40, maxDeferred: 10_000 };
    const devices = Array.from({ length: 400 }, (_, i) => `b-${i}`);
    const t0 = Date.now();
    const r = await admitToAppLimit(r1, keys, 'burst-app', cfg, devices, {
      exp: Date.now() + 600_000,
      body: body('m1'),
    });
    const elapsed = (Date.now() - t0) / 1000;
    // Every shard got more devices than its burst share, so each gave exactly its share.
    expect(r.now.length).toBeGreaterThanOrEqual(40);
    expect(r.now.length).toBeLessThanOrEqual(40 + Math.ceil(20 * elapsed) + 1);
    expect(r.deferred).toBe(400 - r.now.length);
    expect((await deferredStats(r1, keys, 'burst-app')).depth).toBe(r.deferred);
    // A later estimate: 360 deferred at 20/s is about 18 s out.
    expect(r.releaseAt - Date.now()).toBeGreaterThan(15_000);
    expect(r.releaseAt - Date.now()).toBeLessThan(20_000);
  });

  it('two releasers (two gateways) together release at the app rate, in order per device, losing nothing', async () => {
    const app = 'rate-app';
    const R = 100;
    const cfg: AppLimitConfig = { ratePerSecond: R, burst: R, maxDeferred: 100_000 };
    const configs = { get: (a: string) => (a === app ? cfg : undefined), apps: () => [app] };
    const released: { t: number; e: DeferredEntry }[] = [];
    const mk = (redis: PgRedis, owner: string) =>
      new AppLimitReleaser({
        redis,
        keys,
        configs,
        owner,
        log: silentLogger,
        scanIntervalMs: 200,
        store: async (_a, entries) => {
          const t = Date.now();
          for (const e of entries) released.push({ t, e });
        },
        expired: () => {},
      });
    const a = mk(r1, 'gw-a');
    const b = mk(r2, 'gw-b');
    a.start();
    b.start();
    // 5R/s for 3 s from "two gateways" (alternating connections), 400 devices.
    const total = 5 * R * 3;
    const t0 = Date.now();
    let now = 0;
    for (let i = 0; i < total; i++) {
      const dev = `dev-${i % 400}`;
      const redis = i % 2 ? r2 : r1;
      const res = await admitToAppLimit(redis, keys, app, cfg, [dev], {
        exp: Date.now() + 600_000,
        body: body(`m-${i}`),
      });
      now += res.now.length;
      const due = t0 + ((i + 1) * 1000) / (5 * R);
      if (due > Date.now()) await sleep(due - Date.now());
    }
    await until(() => released.length + now >= total, 30_000, 'all deferred released');
    await a.stop();
    await b.stop();
    // Nothing lost, nothing twice.
    const ids = released.map((x) => x.e.body);
    expect(new Set(ids).size).toBe(ids.length);
    expect(released.length + now).toBe(total);
    // Both releasers worked (leader-free), and together kept the app rate.
    const start = released[0]!.t;
    const end = released[released.length - 1]!.t;
    const perSecond: number[] = [];
    for (let s = start + 1000; s + 1000 <= end; s += 1000)
      perSecond.push(released.filter((x) => x.t >= s && x.t < s + 1000).length);
    expect(perSecond.length, JSON.stringify(perSecond)).toBeGreaterThanOrEqual(10);
    for (const n of perSecond)
      expect(Math.abs(n - R) / R, JSON.stringify(perSecond)).toBeLessThanOrEqual(0.1);
    const overall = (released.length - 1) / ((end - start) / 1000);
    expect(Math.abs(overall - R) / R).toBeLessThanOrEqual(0.05);
    // Per device, release order is acceptance order.
    const seqOf = (e: DeferredEntry) => Number(/"id":"m-(\d+)"/.exec(e.body)![1]);
    const lastPerDevice = new Map<string, number>();
    for (const { e } of released) {
      const prev = lastPerDevice.get(e.device) ?? -1;
      expect(seqOf(e)).toBeGreaterThan(prev);
      lastPerDevice.set(e.device, seqOf(e));
    }
  }, 60_000);

  it('an app whose devices fill few shards still gets its whole rate: idle shards lend, never beyond the rate', async () => {
    const app = 'skew-app';
    const R = 200; // 4 shards (one per 50 msg/s)
    const cfg: AppLimitConfig = { ratePerSecond: R, burst: 16, maxDeferred: 100_000 };
    const configs = { get: (a: string) => (a === app ? cfg : undefined), apps: () => [app] };
    const times: number[] = [];
    const rel = new AppLimitReleaser({
      redis: r1,
      keys,
      configs,
      owner: 'skew',
      log: silentLogger,
      scanIntervalMs: 200,
      store: async (_a, entries) => void times.push(...entries.map(() => Date.now())),
      expired: () => {},
    });
    // 3 devices (at most 3 of 4 shards): without lending they would get at most 3/4 of the rate.
    expect(shardPlan(cfg).shards).toBe(4);
    const devices = ['one', 'two', 'three'];
    const total = 1000;
    for (let i = 0; i < total; i++)
      await admitToAppLimit(r1, keys, app, cfg, [devices[i % 3]!], {
        exp: Date.now() + 600_000,
        body: body(`s-${i}`),
      });
    rel.start();
    await until(() => times.length >= 800, 20_000, 'released under skew');
    await rel.stop();
    const start = times[20]!;
    const span = (times[times.length - 1]! - start) / 1000;
    const rate = (times.length - 21) / span;
    expect(rate).toBeGreaterThan(0.85 * R);
    expect(rate).toBeLessThan(1.05 * R);
    expect(rel.counts.borrowed).toBeGreaterThan(0);
  }, 40_000);

  it('every shard releases, also shards whose burst share is one cell (rate 800, burst 30: shards 14 and 15)', async () => {
    const app = 'one-cell-app';
    const cfg: AppLimitConfig = { ratePerSecond: 800, burst: 30, maxDeferred: 100_000 };
    expect(
      shardPlan(cfg)
        .limits.map((l) => l.burst)
        .slice(13),
    ).toEqual([2, 1, 1]);
    const configs = { get: (a: string) => (a === app ? cfg : undefined), apps: () => [app] };
    let released = 0;
    const rel = new AppLimitReleaser({
      redis: r1,
      keys,
      configs,
      owner: 'one',
      log: silentLogger,
      scanIntervalMs: 200,
      store: async (_a, entries) => void (released += entries.length),
      expired: () => {},
    });
    const devices = Array.from({ length: 100 }, (_, i) => `dev-${i}`);
    let now = 0;
    for (let k = 0; k < 3; k++) {
      const r = await admitToAppLimit(r1, keys, app, cfg, devices, {
        exp: Date.now() + 600_000,
        body: body(`o-${k}`),
      });
      now += r.now.length;
    }
    rel.start();
    await until(() => released + now >= 300, 20_000, 'all 300 released at 800/s');
    await rel.stop();
    expect((await deferredStats(r1, keys, app)).depth).toBe(0);
  }, 30_000);

  it('a releaser that dies mid-batch loses nothing: the next lease holder stores the batch again', async () => {
    const app = 'crash-app';
    const cfg: AppLimitConfig = { ratePerSecond: 100, burst: 1, maxDeferred: 1000 };
    const configs = { get: (a: string) => (a === app ? cfg : undefined), apps: () => [app] };
    const devices = Array.from({ length: 50 }, (_, i) => `c-${i}`);
    const r = await admitToAppLimit(r1, keys, app, cfg, devices, {
      exp: Date.now() + 600_000,
      body: body('crash'),
    });
    expect(r.deferred).toBe(49);
    let dying = true;
    const seen: string[] = [];
    const doomed = new AppLimitReleaser({
      redis: r1,
      keys,
      configs,
      owner: 'doomed',
      log: silentLogger,
      leaseMs: 1000,
      scanIntervalMs: 100_000,
      store: async () => {
        if (dying) throw new Error('kill -9 (simulated): the batch was taken but never stored');
      },
      expired: () => {},
    });
    doomed.poke(app, 0);
    await until(() => doomed.counts.failures > 0, 5000, 'the doomed releaser took a batch');
    await doomed.stop();
    dying = false;
    const [, , releasing] = keys.appLimitShard(app, 0);
    expect(await r1.llen(releasing)).toBeGreaterThan(0);
    const heir = new AppLimitReleaser({
      redis: r2,
      keys,
      configs,
      owner: 'heir',
      log: silentLogger,
      leaseMs: 1000,
      scanIntervalMs: 200,
      store: async (_a, entries) => void seen.push(...entries.map((e) => e.device)),
      expired: () => {},
    });
    heir.start();
    await until(() => seen.length >= 49, 10_000, 'heir released everything');
    await heir.stop();
    expect(new Set(seen).size).toBe(49);
    expect(await r1.llen(releasing)).toBe(0);
  });

  it('a full deferred queue refuses (429 material) and keeps what it holds', async () => {
    const app = 'full-app';
    const cfg: AppLimitConfig = { ratePerSecond: 1, burst: 1, maxDeferred: 3, policy: 'ns/small' };
    const out: string[] = [];
    let refused: DeferredQueueFullError | undefined;
    for (let i = 0; i < 6; i++) {
      try {
        const r = await admitToAppLimit(r1, keys, app, cfg, ['only-device'], {
          exp: Date.now() + 600_000,
          body: body(`f-${i}`),
        });
        out.push(r.now.length ? 'now' : 'deferred');
      } catch (err) {
        if (!(err instanceof DeferredQueueFullError)) throw err;
        refused = err;
        out.push('full');
      }
    }
    expect(out).toEqual(['now', 'deferred', 'deferred', 'deferred', 'full', 'full']);
    expect(refused!.message).toMatch(/maxDeferred 3 of RateLimitPolicy ns\/small/);
    expect(refused!.retryAfterMs).toBeGreaterThan(0);
    expect((await deferredStats(r1, keys, app)).depth).toBe(3);
  });

  it('a Redis that forgot the limiter state allows at most one burst again, not more', async () => {
    const app = 'forget-app';
    const cfg: AppLimitConfig = { ratePerSecond: 1, burst: 10, maxDeferred: 1000 };
    const devs = Array.from({ length: 200 }, (_, i) => `x-${i}`);
    const first = await admitToAppLimit(r1, keys, app, cfg, devs, {
      exp: Date.now() + 600_000,
      body: body('f1'),
    });
    expect(first.now.length).toBe(10);
    // Forget the GCRA state (FLUSH, a restart without persistence): one fresh burst, no more;
    // the queue (which also held them) goes with it only if Redis lost it too.
    for (let s = 0; s < shardPlan(cfg).shards; s++) await r1.del(keys.appLimitShard(app, s)[0]);
    const second = await admitToAppLimit(r1, keys, app, cfg, devs, {
      exp: Date.now() + 600_000,
      body: body('f2'),
    });
    expect(second.now.length).toBe(0); // queues are not empty: nothing overtakes them
  });
});
