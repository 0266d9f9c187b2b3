import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BODY_GRACE_MS, STORE_ONCE_RECIPIENTS } from '../../common/redis/bodies.js';
import { createRedis } from '../../common/redis/connection.js';
import {
  deliverMessage,
  encodeChannelMessage,
  parseChannelMessage,
  type RoutedDelivery,
} from '../../common/redis/delivery.js';
import { redisKeys } from '../../common/redis/keys.js';
import { readInbox } from '../../common/redis/offline-store.js';
import { publishAppLimits } from '../../common/ratelimit/releaser.js';
import { encodeStoredMessage, type StoredMessage } from '../../common/protocol/server-frames.js';
import {
  APP,
  pushApi,
  RecordingDevice,
  sleep,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';

const msg = (id: string, extra: Partial<StoredMessage> = {}): StoredMessage => ({
  id,
  exp: Date.now() + 60_000,
  ttl: 60,
  priority: 'normal',
  sent: Date.now(),
  data: { id, text: 'x'.repeat(1500) },
  ...extra,
});

/** A message body stored once for many inboxes (common/redis/bodies.ts), on a real Redis. */
describe('message bodies stored once', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('bodies');
  const keys = redisKeys(prefix);
  const writer = createRedis(redisUrl);
  afterAll(() => writer.disconnect());
  const limits = { maxPerDevice: 100, keyTtlMs: 60_000, route: () => {} };
  /** A reader with its own (empty) body cache, as another gateway would be. */
  async function readFresh(device: string) {
    const reader = createRedis(redisUrl);
    try {
      return await readInbox(reader, keys, 'a', device, 0, 100);
    } finally {
      reader.disconnect();
    }
  }

  it('a large audience gets references in its inboxes and one body that lives until expiry', async () => {
    const devices = Array.from({ length: STORE_ONCE_RECIPIENTS }, (_, i) => `big-${i}`);
    const m = msg('big1');
    const routed: RoutedDelivery[] = [];
    const counts = await deliverMessage(writer, keys, 'a', devices, m, {
      ...limits,
      route: (_gw, d) => routed.push(...d),
    });
    expect(counts.stored).toBe(devices.length);
    const entry = await writer.hget(keys.deviceMessages('a', 'big-7'), 'big1');
    expect(entry).not.toContain('xxxx');
    expect(JSON.parse(entry!)).toEqual({ ref: 1, exp: m.exp });
    expect(await writer.get(keys.messageBody('big1'))).toBe(encodeStoredMessage(m));
    const pttl = await writer.pttl(keys.messageBody('big1'));
    expect(pttl).toBeGreaterThan(m.exp - Date.now() + BODY_GRACE_MS - 5000);
    expect(pttl).toBeLessThanOrEqual(m.exp - Date.now() + BODY_GRACE_MS + 1000);
    const page = await readFresh('big-7');
    expect(page.messages).toEqual([{ seq: 1, body: encodeStoredMessage(m) }]);
    expect(page.missing).toBeUndefined();
  });

  it('a small audience keeps a copy in the inbox unless the sender asks for one body', async () => {
    await deliverMessage(writer, keys, 'a', ['small'], msg('s1'), limits);
    expect(await writer.hget(keys.deviceMessages('a', 'small'), 's1')).toContain('xxxx');
    expect(await writer.exists(keys.messageBody('s1'))).toBe(0);
    await deliverMessage(writer, keys, 'a', ['small'], msg('s2'), { ...limits, storeOnce: true });
    expect(await writer.hget(keys.deviceMessages('a', 'small'), 's2')).not.toContain('xxxx');
    const page = await readFresh('small');
    expect(page.messages.map((x) => JSON.parse(x.body) as StoredMessage).map((x) => [x.id, x.data])).toEqual([
      ['s1', { id: 's1', text: 'x'.repeat(1500) }],
      ['s2', { id: 's2', text: 'x'.repeat(1500) }],
    ]);
  });

  it('collapse, the inbox bound and expiry work on references', async () => {
    const once = { ...limits, maxPerDevice: 2, storeOnce: true };
    await deliverMessage(writer, keys, 'a', ['refs'], msg('r1', { collapse: 'k' }), once);
    const c = await deliverMessage(writer, keys, 'a', ['refs'], msg('r2', { collapse: 'k' }), once);
    expect(c.replacedIds).toEqual(['r1']);
    await deliverMessage(writer, keys, 'a', ['refs'], msg('r3'), once);
    const e = await deliverMessage(writer, keys, 'a', ['refs'], msg('r4'), once);
    expect(e.evictedIds).toEqual(['r2']);
    expect(await writer.hget(keys.deviceCollapse('a', 'refs'), 'k')).toBeNull();
    const page = await readFresh('refs');
    expect(page.messages.map((x) => (JSON.parse(x.body) as StoredMessage).id)).toEqual(['r3', 'r4']);
    await deliverMessage(writer, keys, 'a', ['refs-exp'], msg('r5', { exp: Date.now() - 1 }), once);
    await deliverMessage(writer, keys, 'a', ['refs-exp'], msg('r6'), once);
    const exp = await readFresh('refs-exp');
    expect(exp.expired).toBe(1);
    expect(exp.messages.map((x) => (JSON.parse(x.body) as StoredMessage).id)).toEqual(['r6']);
  });

  it('an entry whose body is gone is dropped and counted, with its collapse mapping; the rest is read', async () => {
    const once = { ...limits, storeOnce: true };
    await deliverMessage(writer, keys, 'a', ['gone'], msg('g1', { collapse: 'k' }), once);
    await deliverMessage(writer, keys, 'a', ['gone'], msg('g2'), limits);
    await writer.del(keys.messageBody('g1'));
    const page = await readFresh('gone');
    expect(page).toMatchObject({ missing: 1, scanned: 2, expired: 0 });
    expect(page.messages.map((x) => x.seq)).toEqual([2]);
    expect(await writer.zrange(keys.deviceInbox('a', 'gone'), 0, -1)).toEqual(['g2']);
    expect(await writer.hget(keys.deviceCollapse('a', 'gone'), 'k')).toBeNull();
    const again = await readFresh('gone');
    expect(again.missing).toBeUndefined();
    expect(again.messages.map((x) => x.seq)).toEqual([2]);
  });

  it('a channel message carries each distinct body once', () => {
    const body = encodeStoredMessage(msg('c1'));
    const other = encodeStoredMessage(msg('c2'));
    const d: RoutedDelivery[] = Array.from({ length: 50 }, (_, i) => ['a', `dev-${i}`, i + 1, 5, body]);
    d.push(['a', 'dev-x', 9, 6, other]);
    const text = encodeChannelMessage({ d, r: [['a', 'dev-r']] });
    expect(text.length).toBeLessThan(2 * body.length + 50 * 40);
    expect(parseChannelMessage(text)).toEqual({ d, r: [['a', 'dev-r']] });
    // A publisher that sends bodies inline is still understood.
    expect(parseChannelMessage(JSON.stringify({ d: [['a', 'dev', 1, 5, body]] }))).toEqual({
      d: [['a', 'dev', 1, 5, body]],
    });
  });
});

describe('gateways deliver bodies stored once', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('bodies-gw');
  const keys = redisKeys(prefix);
  const redis = createRedis(redisUrl);
  let a: GatewayProcess;
  let b: GatewayProcess;
  const devices: RecordingDevice[] = [];
  const fleetSize = STORE_ONCE_RECIPIENTS + 8;

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startGatewayProcess({ redisUrl, prefix, id: 'gw-a' }),
      startGatewayProcess({ redisUrl, prefix, id: 'gw-b' }),
    ]);
    for (let i = 0; i < fleetSize; i++) {
      const d = new RecordingDevice({
        device: `f${i}`,
        tags: ['fleet'],
        endpoints: [i % 2 ? b.wsUrl : a.wsUrl],
      });
      devices.push(d);
      await d.client.start();
    }
  });

  afterAll(async () => {
    for (const d of devices) d.client.stop();
    await Promise.all([stopGateway(a), stopGateway(b)]);
    redis.disconnect();
  });

  it('a fan-out to a large audience reaches every device, on both gateways, with its body', async () => {
    const data = { text: 'y'.repeat(1500) };
    const r = await pushApi(a.httpUrl, { to: { tag: 'fleet' }, data });
    expect(r.status).toBe(202);
    const id = r.body.id as string;
    expect(await redis.exists(keys.messageBody(id))).toBe(1);
    await until(() => devices.every((d) => d.ids().includes(id)), 10_000, 'fan-out to every device');
    for (const d of devices) expect(d.pushes.find((p) => p.id === id)!.data).toEqual(data);
  });

  it("a large fan-out over its app's rate limit queues references to one body, and every device still gets the body", async () => {
    await publishAppLimits(redis, keys, { [APP]: { ratePerSecond: 10, burst: 5, maxDeferred: 10_000 } });
    try {
      await sleep(1500); // gateways reread the published limits once a second
      const data = { text: 'z'.repeat(1500) };
      const r = await pushApi(a.httpUrl, { to: { tag: 'fleet' }, data });
      expect(r.status).toBe(202);
      expect(r.body.state).toBe('deferred');
      const id = r.body.id as string;
      const [, q, rel] = keys.appLimitShard(APP, 0);
      const queued = [...(await redis.lrange(q!, 0, -1)), ...(await redis.lrange(rel!, 0, -1))];
      expect(queued.length).toBeGreaterThan(0);
      for (const e of queued) {
        expect(e).toContain(`"id":"${id}","ref":1`);
        expect(e).not.toContain('zzzz');
      }
      await until(
        () => devices.every((d) => d.ids().includes(id)),
        20_000,
        'deferred fan-out to every device',
      );
      for (const d of devices) expect(d.pushes.find((p) => p.id === id)!.data).toEqual(data);
    } finally {
      await publishAppLimits(redis, keys, {}, [APP]);
      await sleep(1500);
    }
  });

  it('replay resolves references; a reference whose body is gone is dropped, logged, and the inbox moves on', async () => {
    const late = devices[0]!;
    late.client.stop();
    for (let i = 0; i < 50 && (await redis.hget(keys.deviceMeta(APP, 'f0'), 'gw')); i++) await sleep(100);
    expect(await redis.hget(keys.deviceMeta(APP, 'f0'), 'gw')).toBeNull();
    late.pushes.length = 0;
    const once = { maxPerDevice: 100, keyTtlMs: 60_000, route: () => {}, storeOnce: true };
    await deliverMessage(redis, keys, APP, ['f0'], msg('lost1'), once);
    await deliverMessage(redis, keys, APP, ['f0'], msg('kept1'), once);
    await redis.del(keys.messageBody('lost1'));
    await late.client.start();
    await until(() => late.ids().includes('kept1'), 10_000, 'kept1 replayed');
    expect(late.ids()).not.toContain('lost1');
    expect(late.pushes.find((p) => p.id === 'kept1')!.data).toEqual({ id: 'kept1', text: 'x'.repeat(1500) });
    // (The log line travels a pipe: it may trail the frame.)
    await until(
      () => a.logs.some((l) => l.includes('shared message body is gone')),
      5000,
      'body_missing log',
    );
    expect(await redis.zrange(keys.deviceInbox(APP, 'f0'), 0, -1)).not.toContain('lost1');
    // Not stuck: the next push arrives live.
    const r = await pushApi(b.httpUrl, { to: { device: 'f0' }, data: 'after' });
    await until(() => late.ids().includes(r.body.id as string), 10_000, 'live push after the drop');
  });
});
