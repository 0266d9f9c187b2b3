import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis } from '../../common/redis/connection.js';
import { PublishRouter, silentObserver } from '../../common/push/index.js';
import { deliverMessage } from '../../common/redis/delivery.js';
import type { StoredMessage } from '../../common/protocol/server-frames.js';
import { deviceBucket, redisKeys } from '../../common/redis/keys.js';
import { CloseCode } from '../../common/protocol/close-codes.js';
import {
  APP,
  basicAuth,
  pushApi,
  RecordingDevice,
  sleep,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';

/**
 * Two real gateway processes on one real Redis, devices on both (client library over real
 * WebSockets): pushes accepted by either gateway reach exactly the devices they name, and
 * offline devices get their stored messages on reconnect.
 */
describe('gateway delivery across two gateways', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('delivery');
  let a: GatewayProcess;
  let b: GatewayProcess;
  const devices: RecordingDevice[] = [];

  // device -> tags, alias; even on gateway A, odd on gateway B
  const fleet: [string, string[], string | null][] = [
    ['d0', ['vip', 'bj'], 'alice'],
    ['d1', ['vip', 'sh'], 'bob'],
    ['d2', ['bj'], null],
    ['d3', ['vip', 'bj', 'churned'], null],
    ['d4', ['sh'], 'alice'],
    ['d5', [], null],
  ];

  const byId = (id: string) => devices.find((d) => d.device === id)!;
  const reset = () => devices.forEach((d) => (d.pushes.length = 0));
  /** Waits until `expected` devices have the message, then a little longer to catch strays. */
  async function receivers(id: string, expected: string[]): Promise<string[]> {
    await until(
      () => expected.every((d) => byId(d).ids().includes(id)),
      10_000,
      `${id} at ${expected.join(',')}`,
    );
    await sleep(300);
    return devices
      .filter((d) => d.ids().includes(id))
      .map((d) => d.device)
      .sort();
  }

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startGatewayProcess({ redisUrl, prefix, id: 'gw-a' }),
      startGatewayProcess({ redisUrl, prefix, id: 'gw-b' }),
    ]);
    for (const [i, [device, tags, alias]] of fleet.entries()) {
      const d = new RecordingDevice({ device, tags, alias, endpoints: [i % 2 === 0 ? a.wsUrl : b.wsUrl] });
      devices.push(d);
      const w = await d.client.start();
      expect(w.gateway).toBe(i % 2 === 0 ? 'gw-a' : 'gw-b');
    }
  });

  afterAll(async () => {
    for (const d of devices) d.client.stop();
    await Promise.all([stopGateway(a), stopGateway(b)]);
  });

  it('pushes to one device, accepted by the other gateway, reach only that device', async () => {
    reset();
    const r = await pushApi(a.httpUrl, { to: { device: 'd1' }, data: { n: 1 } });
    expect(r.status).toBe(202);
    expect(r.body.recipients).toBe(1);
    expect(await receivers(r.body.id as string, ['d1'])).toEqual(['d1']);
    const p = byId('d1').pushes[0]!;
    expect(p).toMatchObject({ t: 'push', id: r.body.id, data: { n: 1 }, priority: 'normal', ttl: 86400 });
    expect(p.seq).toBeGreaterThan(0);
  });

  it('pushes to an alias reach every device with that alias', async () => {
    reset();
    const r = await pushApi(b.httpUrl, { to: { alias: 'alice' }, data: 'hi alice' });
    expect(r.status).toBe(202);
    expect(await receivers(r.body.id as string, ['d0', 'd4'])).toEqual(['d0', 'd4']);
  });

  it('pushes to a tag expression reach exactly the matching devices', async () => {
    reset();
    const r = await pushApi(a.httpUrl, { to: { tag: 'vip && (bj || sh) && !churned' }, data: 1 });
    expect(r.status).toBe(202);
    expect(await receivers(r.body.id as string, ['d0', 'd1'])).toEqual(['d0', 'd1']);
    const r2 = await pushApi(b.httpUrl, { to: { tag: 'bj || sh' }, data: 2 });
    expect(await receivers(r2.body.id as string, ['d0', 'd1', 'd2', 'd3', 'd4'])).toEqual([
      'd0',
      'd1',
      'd2',
      'd3',
      'd4',
    ]);
  });

  it('pushes to all reach every device of the app', async () => {
    reset();
    const r = await pushApi(b.httpUrl, { to: { all: true }, data: 'everyone' });
    expect(r.body.recipients).toBe(6);
    expect(
      await receivers(
        r.body.id as string,
        fleet.map((f) => f[0]),
      ),
    ).toEqual(fleet.map((f) => f[0]));
  });

  it('keeps the tag index current when a device changes its tags', async () => {
    reset();
    const d5 = byId('d5');
    const updated = await d5.client.update({ add: ['vip', 'sh'] });
    expect(updated.tags).toEqual(['sh', 'vip']);
    await byId('d0').client.update({ remove: ['vip'] });
    const r = await pushApi(a.httpUrl, { to: { tag: 'vip && sh' }, data: 3 });
    expect(await receivers(r.body.id as string, ['d1', 'd5'])).toEqual(['d1', 'd5']);
    await byId('d0').client.update({ add: ['vip'] });
  });

  it('a hello whose tag-index write failed after the claim is indexed on the next hello (the claim alone does not make a registration known)', async () => {
    // Redis refuses the bucket's tag index write (a key of the wrong type there, as a failover
    // mid-hello would fail it): the hello fails after the claim wrote the tags to the device's
    // meta. Once Redis takes writes again, the device's next hello must index it; a device
    // connected but missing from its tag's index gets no tag push, silently.
    const redis = createRedis(redisUrl);
    const keys = redisKeys(prefix);
    const blocker = keys.tagDevices(APP, deviceBucket('d-flaky'), 'flaky');
    await redis.set(blocker, 'not a sorted set');
    const d = new RecordingDevice({ device: 'd-flaky', tags: ['flaky'], endpoints: [a.wsUrl] });
    try {
      const started = d.client.start();
      await until(() => d.closes.includes(CloseCode.tryAgainLater), 10_000, 'the failed hello');
      expect(await redis.hget(keys.deviceMeta(APP, 'd-flaky'), 'tags')).toBe('["flaky"]');
      await redis.del(blocker);
      await started;
      const r = await pushApi(b.httpUrl, { to: { tag: 'flaky' }, data: 'indexed' });
      expect(r.body.recipients).toBe(1);
      await until(() => d.ids().includes(r.body.id as string), 10_000, 'the tag push at d-flaky');
    } finally {
      d.client.stop();
      await redis.del(blocker);
      redis.disconnect();
    }
  });

  it('after a tag change that failed half way, the next hello takes the device out of the tags the indexes still hold for it', async () => {
    const redis = createRedis(redisUrl);
    const keys = redisKeys(prefix);
    const blocker = keys.tagDevices(APP, deviceBucket('d-moved'), 'mid');
    const connect = (tags: string[]) =>
      new RecordingDevice({ device: 'd-moved', tags, endpoints: [a.wsUrl] });
    try {
      // Indexed under 'old'; then a hello announcing 'mid' fails at the bucket write; then the
      // device comes back announcing 'new'.
      const first = connect(['old']);
      await first.client.start();
      first.client.stop();
      await redis.set(blocker, 'not a sorted set');
      const second = connect(['mid']);
      void second.client.start().catch(() => {});
      await until(() => second.closes.includes(CloseCode.tryAgainLater), 10_000, 'the failed hello');
      second.client.stop();
      await redis.del(blocker);
      const third = connect(['new']);
      await third.client.start();
      try {
        const toOld = await pushApi(b.httpUrl, { to: { tag: 'old' }, data: 'stale' });
        expect(toOld.status).toBe(202);
        expect(toOld.body.recipients).toBe(0);
        const toNew = await pushApi(b.httpUrl, { to: { tag: 'new' }, data: 'current' });
        expect(toNew.body.recipients).toBe(1);
        await until(() => third.ids().includes(toNew.body.id as string), 10_000, 'the tag push at d-moved');
      } finally {
        third.client.stop();
      }
    } finally {
      await redis.del(blocker);
      redis.disconnect();
    }
  });

  it('returns the same id for a repeated idempotency key and delivers once', async () => {
    reset();
    const first = await pushApi(
      a.httpUrl,
      { to: { device: 'd2' }, data: 'once' },
      { idempotencyKey: 'order-42' },
    );
    const again = await pushApi(
      b.httpUrl,
      { to: { device: 'd2' }, data: 'once' },
      { idempotencyKey: 'order-42' },
    );
    expect(first.status).toBe(202);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, duplicate: true });
    await receivers(first.body.id as string, ['d2']);
    expect(byId('d2').pushes.filter((p) => p.data === 'once')).toHaveLength(1);
  });

  it('reports message status by id: recipients, stored, sent, acked', async () => {
    const r = await pushApi(a.httpUrl, { to: { tag: 'bj' }, data: 'status' });
    await receivers(r.body.id as string, ['d0', 'd2', 'd3']);
    // Sent/acked counters are batched by the gateways once a second.
    let status: Record<string, unknown> = {};
    for (let i = 0; i < 50 && status.acked !== 3; i++) {
      const res = await fetch(`${b.httpUrl}/v1/apps/${APP}/messages/${r.body.id as string}`, {
        headers: { authorization: basicAuth() },
      });
      status = (await res.json()) as Record<string, unknown>;
      if (status.acked !== 3) await sleep(200);
    }
    expect(status).toMatchObject({
      id: r.body.id,
      app: APP,
      state: 'accepted',
      recipients: 3,
      stored: 3,
      sent: 3,
      acked: 3,
      target: { tag: 'bj' },
    });
  });

  it('stores messages for an offline device and replays them on reconnect: in order, expired dropped, collapse applied', async () => {
    const off = new RecordingDevice({ device: 'offline-1', tags: ['late'], endpoints: [b.wsUrl] });
    await off.client.start();
    off.client.stop();
    await sleep(300);
    const ids: Record<string, string> = {};
    const send = async (name: string, extra: Record<string, unknown>) => {
      const r = await pushApi(a.httpUrl, { to: { device: 'offline-1' }, data: name, ...extra });
      expect(r.status).toBe(202);
      ids[name] = r.body.id as string;
    };
    await send('m1-expires', { ttl: 1 });
    await send('m2-score-old', { collapseKey: 'score' });
    await send('m3', {});
    await send('m4-score-new', { collapseKey: 'score' });
    await send('m5-tag', {});
    await sleep(1500); // m1's TTL passes while the device is away
    const back = new RecordingDevice({ device: 'offline-1', endpoints: [a.wsUrl] });
    await back.client.start();
    await until(() => back.pushes.length >= 3, 10_000, 'replay');
    await sleep(300);
    expect(back.dataOf()).toEqual(['m3', 'm4-score-new', 'm5-tag']);
    const seqs = back.pushes.map((p) => p.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    // Acked: a further reconnect gets nothing again.
    await sleep(300);
    back.client.stop();
    const third = new RecordingDevice({ device: 'offline-1', endpoints: [b.wsUrl] });
    await third.client.start();
    await sleep(800);
    expect(third.pushes).toEqual([]);
    third.client.stop();
  });

  /** A message as another program (the dispatcher) stores it: a minute to live. */
  const storedMessage = (idPrefix: string, data: unknown): StoredMessage => {
    const now = Date.now();
    return { id: `${idPrefix}-${now}`, exp: now + 60_000, ttl: 60, priority: 'normal', sent: now, data };
  };

  it('delivers a message stored and routed by another program with deliverMessage (as the campaign dispatcher does)', async () => {
    reset();
    const redis = createRedis(redisUrl);
    const router = new PublishRouter(redis, redisKeys(prefix), silentObserver);
    try {
      const message = storedMessage('dispatch', 'from a dispatcher');
      const counts = await deliverMessage(
        redis,
        redisKeys(prefix),
        APP,
        ['d1', 'd2', 'nobody-here'],
        message,
        {
          maxPerDevice: 100,
          keyTtlMs: 3600_000,
          route: router.route,
        },
      );
      expect(counts).toMatchObject({ recipients: 3, stored: 3, routed: 2 });
      expect(await receivers(message.id, ['d1', 'd2'])).toEqual(['d1', 'd2']);
    } finally {
      router.close();
      redis.disconnect();
    }
  });

  it('counts a notification it could not publish and sweeps it: the gateway rereads the inbox and delivers', async () => {
    reset();
    const redis = createRedis(redisUrl);
    // The router publishes through a connection that is down at first (no offline queue: a
    // publish fails at once, as it does when Redis is unreachable).
    const down = createRedis(redisUrl, { options: { lazyConnect: true, enableOfflineQueue: false } });
    const seen = { failed: 0, swept: 0 };
    const router = new PublishRouter(
      down,
      redisKeys(prefix),
      {
        ...silentObserver,
        routeFailed: (_g, n) => void (seen.failed += n),
        routeSwept: (_g, n) => void (seen.swept += n),
      },
      { sweepIntervalMs: 60_000 }, // this test runs the sweep itself
    );
    try {
      const message = storedMessage('swept', 'late');
      const counts = await deliverMessage(redis, redisKeys(prefix), APP, ['d1'], message, {
        maxPerDevice: 100,
        keyTtlMs: 3600_000,
        route: router.route,
      });
      expect(counts).toMatchObject({ stored: 1, routed: 1 });
      await until(() => seen.failed === 1, 5000, 'the failed publish is reported');
      await sleep(300);
      expect(byId('d1').ids()).not.toContain(message.id); // lost, not delivered
      expect([...router.pending()]).toEqual([['gw-b', 1]]); // d1 is on gateway B
      // The failed publish started a connect (lazyConnect); let it come up.
      if (down.status === 'wait') await down.connect();
      await until(() => down.status === 'ready', 5000, 'the router connection is up');
      await router.sweep();
      expect(seen.swept).toBe(1);
      expect(router.pending().size).toBe(0);
      expect(await receivers(message.id, ['d1'])).toEqual(['d1']);
    } finally {
      router.close();
      down.disconnect();
      redis.disconnect();
    }
  });

  it('ttl 0 is now or never: delivered to an online device, dropped for an offline one', async () => {
    reset();
    const online = await pushApi(a.httpUrl, { to: { device: 'd3' }, data: 'now', ttl: 0 });
    await receivers(online.body.id as string, ['d3']);
    const offline = await pushApi(a.httpUrl, { to: { device: 'never-connected' }, data: 'never', ttl: 0 });
    expect(offline.status).toBe(202);
    const res = await fetch(`${a.httpUrl}/v1/apps/${APP}/messages/${offline.body.id as string}`, {
      headers: { authorization: basicAuth() },
    });
    expect(await res.json()).toMatchObject({ recipients: 1, stored: 0, dropped: 1 });
  });
});
