import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../common/logger.js';
import { encodeStoredMessage, type StoredMessage } from '../../common/protocol/server-frames.js';
import { AppRateLimiter } from '../../common/ratelimit/app-limiter.js';
import { DeferredQueueFullError, type AppLimitConfig } from '../../common/ratelimit/app-limit.js';
import { DAY_MS, DeviceCapFullError, nextUtcDay, utcDay } from '../../common/ratelimit/device-cap.js';
import { publishAppLimits } from '../../common/ratelimit/releaser.js';
import { createRedis, type PgRedis } from '../../common/redis/connection.js';
import { deviceBucket, redisKeys } from '../../common/redis/keys.js';
import { createMessageStatus, getMessageStatus } from '../../common/redis/messages.js';
import { uniquePrefix, until } from '../support/gateway.js';

/**
 * RateLimitPolicy's per-device daily cap (spec.perDevice) as the gateway and the dispatcher use
 * it (AppRateLimiter, the admission of common/push/accept.ts), on the run's real Redis, with the
 * cap's clock injected so a test crosses 00:00 UTC without waiting a day.
 */
describe('per-device daily cap (UTC day, held for the next day, never dropped)', () => {
  const redisUrl = inject('redisUrl');
  let redis: PgRedis;
  const limiters: AppRateLimiter[] = [];

  beforeAll(() => {
    redis = createRedis(redisUrl);
  });
  afterEach(async () => {
    await Promise.all(limiters.splice(0).map((l) => l.stop()));
  });
  afterAll(async () => {
    await redis.quit();
  });

  /** A limiter with an injected clock, recording what it stores (the deliver step). */
  async function setup(app: string, cfg: AppLimitConfig) {
    const keys = redisKeys(uniquePrefix('rl-cap'));
    await publishAppLimits(redis, keys, { [app]: cfg });
    const clock = { now: Date.now() };
    const stored: { device: string; id: string; i: number; at: number }[] = [];
    const limiter = new AppRateLimiter(
      redis,
      keys,
      async (_app, devices, m) => {
        for (const device of devices)
          stored.push({ device, id: m.id, i: (m.data as { i: number }).i, at: clock.now });
      },
      {
        deferred: () => {},
        released: () => {},
        expired: () => {},
        refused: () => {},
      },
      silentLogger,
      { now: () => clock.now, refreshMs: 200, scanIntervalMs: 100 },
    );
    limiters.push(limiter);
    await limiter.start();
    let seq = 0;
    /** Accepts one message as common/push/accept.ts does: status, admission, store of what may go now. */
    const send = async (devices: string[], opts: { ttl?: number; priority?: 'high' | 'normal' } = {}) => {
      const i = seq++;
      const sent = Date.now();
      const m: StoredMessage = {
        id: `m${i}-${Math.random().toString(36).slice(2, 8)}`,
        exp: sent + (opts.ttl ?? 3 * 86_400) * 1000,
        ttl: opts.ttl ?? 3 * 86_400,
        priority: opts.priority ?? 'normal',
        sent,
        data: { i },
      };
      await createMessageStatus(redis, keys, {
        id: m.id,
        app,
        target: '{}',
        createdAt: sent,
        expiresAt: m.exp,
      });
      const r = (await limiter.admit(app, devices, m, encodeStoredMessage(m)))!;
      for (const k of r.now) stored.push({ device: devices[k]!, id: m.id, i, at: clock.now });
      await redis.hset(keys.messageStatus(m.id), {
        recipients: devices.length,
        deferred: r.deferred + r.capped,
        capped: r.capped,
        capRefused: r.capRefused,
        state: 'accepted',
      });
      return { m, r };
    };
    return { keys, clock, stored, limiter, send };
  }

  const cfg = (perDay: number, extra: Partial<AppLimitConfig> = {}): AppLimitConfig => ({
    ratePerSecond: 10_000,
    burst: 10_000,
    maxDeferred: 100_000,
    perDevice: { messagesPerDay: perDay },
    ...extra,
  });

  it('message N+1 waits for the next UTC day, counted; it goes out after 00:00 UTC, in order, against the new day', async () => {
    const app = 'cap-app';
    const { clock, stored, send, keys } = await setup(app, cfg(3));
    // Ten minutes before midnight UTC (the cap's clock).
    clock.now = nextUtcDay(Date.now()) - 600_000;
    const results = [];
    for (let k = 0; k < 5; k++) results.push(await send(['phone']));
    expect(results.map((x) => x.r.now.length)).toEqual([1, 1, 1, 0, 0]);
    expect(results.map((x) => x.r.capped)).toEqual([0, 0, 0, 1, 1]);
    expect(results[3]!.r.capReleaseAt).toBe(nextUtcDay(clock.now));
    expect(results[3]!.r.releaseAt).toBe(0); // the rate limit holds nothing back
    // Another device is not affected.
    expect((await send(['tablet'])).r.now).toEqual([0]);
    const st = await getMessageStatus(redis, keys, results[3]!.m.id);
    expect(st).toMatchObject({ deferred: 1, capped: 1, released: 0, delivery: 'deferred' });
    // Still the same day: nothing more goes out.
    await new Promise((r) => setTimeout(r, 500));
    expect(stored.filter((s) => s.device === 'phone').map((s) => s.i)).toEqual([0, 1, 2]);
    // Cross midnight UTC: the two held go out, in acceptance order, and count against the new day.
    clock.now += 600_000 + 1000;
    await until(
      () => stored.filter((s) => s.device === 'phone').length === 5,
      5000,
      'held messages released',
    );
    expect(stored.filter((s) => s.device === 'phone').map((s) => s.i)).toEqual([0, 1, 2, 3, 4]);
    expect(await getMessageStatus(redis, keys, results[3]!.m.id)).toMatchObject({ released: 1 });
    expect(await getMessageStatus(redis, keys, results[4]!.m.id)).toMatchObject({ released: 1 });
    // The new day allows 3: two are used by the released ones, one more goes now, the next waits.
    expect((await send(['phone'])).r.now).toEqual([0]);
    expect((await send(['phone'])).r.capped).toBe(1);
  });

  it('a held message whose TTL runs out before its day expires, counted', async () => {
    const app = 'cap-ttl';
    const { clock, send, keys } = await setup(app, cfg(1));
    clock.now = nextUtcDay(Date.now()) - 1000;
    await send(['d1']);
    const { m, r } = await send(['d1'], { ttl: 1 });
    expect(r.capped).toBe(1);
    await new Promise((res) => setTimeout(res, 1200)); // its TTL (real time) runs out
    clock.now += 2000; // and its day comes (the releaser looks every 100 ms)
    let st = await getMessageStatus(redis, keys, m.id);
    const deadline = Date.now() + 5000;
    while (st?.expired !== 1 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      st = await getMessageStatus(redis, keys, m.id);
    }
    expect(st).toMatchObject({ deferred: 1, capped: 1, released: 0, expired: 1, delivery: 'expired' });
  });

  it('high-priority messages have their own, smaller cap within the daily one', async () => {
    const app = 'cap-high';
    const { send } = await setup(
      app,
      cfg(3, { perDevice: { messagesPerDay: 3, highPriorityMessagesPerDay: 1 } }),
    );
    expect((await send(['d'], { priority: 'high' })).r.now).toEqual([0]);
    expect((await send(['e'], { priority: 'high' })).r.now).toEqual([0]);
    expect((await send(['d'], { priority: 'high' })).r.capped).toBe(1);
    // A device holding something holds what follows too (nothing overtakes what waits).
    expect((await send(['d'])).r.capped).toBe(1);
    expect((await send(['e'])).r.now).toEqual([0]);
  });

  it('an app hammering one device keeps at most two days of it: then the push is refused (429 material) and nothing of it is written', async () => {
    const app = 'cap-hammer';
    const { send, keys, clock } = await setup(app, cfg(5));
    const codes: string[] = [];
    for (let k = 0; k < 14; k++) {
      try {
        const { r } = await send(['victim']);
        codes.push(r.now.length ? 'now' : 'held');
      } catch (err) {
        expect(err).toBeInstanceOf(DeviceCapFullError);
        expect((err as DeviceCapFullError).retryAfterMs).toBe(nextUtcDay(clock.now) - clock.now);
        codes.push('refused');
      }
    }
    expect(codes).toEqual([...Array(5).fill('now'), ...Array(5).fill('held'), ...Array(4).fill('refused')]);
    const [, held] = keys.deviceCap(app, deviceBucket('victim'), utcDay(clock.now));
    expect(await redis.llen(held)).toBe(5);
    // In a fan-out the refused recipient is named in the answer; the others go.
    const { r } = await send(['victim', 'someone-else']);
    expect(r.capRefused).toBe(1);
    expect(r.now.length).toBe(1);
  });

  it('a device id flood makes counters that expire after their day (bounded by the day, one hash per device bucket)', async () => {
    const app = 'cap-flood';
    const { send, keys, clock } = await setup(app, cfg(2));
    const devices = Array.from({ length: 3000 }, (_, i) => `flood-${i}`);
    for (let k = 0; k < devices.length; k += 1000) await send(devices.slice(k, k + 1000));
    const day = utcDay(clock.now);
    const buckets = new Set(devices.map(deviceBucket));
    let fields = 0;
    for (const b of buckets) {
      const [count] = keys.deviceCap(app, b, day);
      fields += await redis.hlen(count);
      const ttl = await redis.pttl(count);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual((day + 1) * DAY_MS + 3_600_000 - Date.now() + 1000);
    }
    expect(fields).toBe(devices.length);
    expect(buckets.size).toBeLessThanOrEqual(1024);
  });

  it('a push the rate limit refuses (queue full) leaves nothing of itself in the daily cap', async () => {
    const app = 'cap-undo';
    const { send, keys, clock } = await setup(app, cfg(10, { ratePerSecond: 1, burst: 1, maxDeferred: 1 }));
    await send(['u']); // takes the burst
    await send(['u']); // the one deferred place
    await expect(send(['u'])).rejects.toBeInstanceOf(DeferredQueueFullError);
    const [count] = keys.deviceCap(app, deviceBucket('u'), utcDay(clock.now));
    expect(await redis.hget(count, 'u')).toBe('2');
  });
});
