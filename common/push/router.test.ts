import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PgRedis } from '../redis/connection.js';
import { redisKeys } from '../redis/keys.js';
import { parseChannelMessage, type RoutedDelivery } from '../redis/delivery.js';
import { PublishRouter } from './router.js';

/** A Redis whose PUBLISH can be switched off; records what was published (as a gateway reads it). */
function fakeRedis() {
  const published: { channel: string; msg: unknown }[] = [];
  const r = {
    up: true,
    published,
    publish: async (channel: string, text: string) => {
      if (!r.up) throw new Error('connection is closed');
      published.push({ channel, msg: parseChannelMessage(text) });
      return 1;
    },
  };
  return r;
}

function setup(maxSweepDevices = 10_000) {
  const redis = fakeRedis();
  const seen = { failed: 0, swept: 0, abandoned: 0 };
  const router = new PublishRouter(
    redis as unknown as PgRedis,
    redisKeys('t'),
    {
      stored: () => {},
      routeFailed: (_g, n) => void (seen.failed += n),
      routeSwept: (_g, n) => void (seen.swept += n),
      routeAbandoned: (_g, n) => void (seen.abandoned += n),
    },
    { sweepIntervalMs: 1000, maxSweepDevices },
  );
  return { redis, seen, router };
}

const d = (device: string, seq = 1): RoutedDelivery => ['app', device, seq, 0, '{"id":"m"}'];
const flush = () => new Promise((r) => setTimeout(r, 0));

describe('PublishRouter', () => {
  afterEach(() => vi.useRealTimers());

  it('publishes deliveries to the gateway channel', async () => {
    const t = setup();
    t.router.route('gw-1', [d('a'), d('b')]);
    await flush();
    expect(t.redis.published).toEqual([{ channel: 't:chan:gw:gw-1', msg: { d: [d('a'), d('b')] } }]);
    expect(t.router.pending().size).toBe(0);
  });

  it('counts a failed publish, keeps its devices (once each), and sweeps them as one resync notice', async () => {
    const t = setup();
    t.redis.up = false;
    t.router.route('gw-1', [d('a'), d('b')]);
    t.router.route('gw-1', [d('a', 2)]);
    t.router.route('gw-2', [d('c')]);
    await flush();
    expect(t.seen.failed).toBe(4);
    expect([...t.router.pending()]).toEqual([
      ['gw-1', 2],
      ['gw-2', 1],
    ]);
    await t.router.sweep(); // still down: kept
    expect(t.router.pending().size).toBe(2);
    t.redis.up = true;
    await t.router.sweep();
    expect(t.redis.published.map((p) => p.msg)).toEqual([
      {
        r: [
          ['app', 'a'],
          ['app', 'b'],
        ],
      },
      { r: [['app', 'c']] },
    ]);
    expect(t.seen.swept).toBe(3);
    expect(t.router.pending().size).toBe(0);
    t.router.close();
  });

  it('bounds what it keeps per gateway and counts the rest abandoned', async () => {
    const t = setup(2);
    t.redis.up = false;
    t.router.route('gw-1', [d('a'), d('b'), d('c'), d('d')]);
    await flush();
    expect(t.seen).toMatchObject({ failed: 4, abandoned: 2 });
    expect(t.router.pending().get('gw-1')).toBe(2);
    t.router.close();
  });

  it('sweeps on its own timer while something is kept, and stops the timer when all is swept', async () => {
    vi.useFakeTimers();
    const t = setup();
    t.redis.up = false;
    t.router.route('gw-1', [d('a')]);
    await vi.advanceTimersByTimeAsync(0);
    t.redis.up = true;
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.seen.swept).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
