import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  completeMessageStatus,
  createMessageStatus,
  createRedis,
  redisKeys,
  storeMessage,
  type PgRedis,
} from '../../common/redis/index.js';
import { newMessageId } from '../../common/push/accept.js';
import { publishAppLimits } from '../../common/ratelimit/releaser.js';
import {
  APP,
  OTHER_APP,
  OTHER_SECRET,
  RecordingDevice,
  basicAuth,
  pushApi,
  rawSession,
  sleep,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';

/**
 * The message-status lifecycle through the push API, one test per state (gateway/PROTOCOL.md,
 * "Message status"): accepted, stored, sent, delivered, acked, expired, replaced, evicted,
 * dropped and deferred. In every answer the recipients add up:
 *   recipients = waiting.deferred + waiting.inbox + acked + expired + replaced + evicted + dropped
 *                + capRefused (refused by the device's daily cap: ratelimit-policy tests).
 * A message's fate is recorded on the message it happened to: when a newer push replaces it
 * (collapse key) or pushes it out of a full inbox, the OLDER message's status says so, and the
 * newer one's does not claim it. `delivered` (the device read it: a receipt, or its ack) is a
 * milestone beside the partition: delivered <= recipients - dropped - capRefused, and
 * waiting.delivered <= waiting.inbox. Real gateway, real Redis, real devices (the client library,
 * and raw connections where the test must control every frame).
 */
type Status = Record<string, number | string> & {
  waiting: { deferred: number; inbox: number; delivered: number };
};

describe('message status: every state, and the recipients add up', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('status');
  let gw: GatewayProcess;
  let redis: PgRedis;
  const devices: RecordingDevice[] = [];

  beforeAll(async () => {
    redis = createRedis(redisUrl);
    gw = await startGatewayProcess({ redisUrl, prefix, id: 'gw-status', args: ['--max-inbox', '2'] });
  });
  afterAll(async () => {
    for (const d of devices) d.client.stop();
    await stopGateway(gw);
    await redis?.quit();
  });

  const addsUp = (s: Status) =>
    s.waiting.deferred +
    s.waiting.inbox +
    Number(s.acked) +
    Number(s.expired) +
    Number(s.replaced) +
    Number(s.evicted) +
    Number(s.dropped) +
    Number(s.capRefused);
  const status = async (id: unknown, app = APP, secret?: string): Promise<Status> => {
    const res = await fetch(`${gw.httpUrl}/v1/apps/${app}/messages/${String(id)}`, {
      headers: { authorization: basicAuth(app, secret) },
    });
    expect(res.status).toBe(200);
    const s = (await res.json()) as Status;
    expect(addsUp(s), JSON.stringify(s)).toBe(s.recipients);
    expect(Number(s.delivered), JSON.stringify(s)).toBeLessThanOrEqual(
      Number(s.recipients) - Number(s.dropped) - Number(s.capRefused),
    );
    expect(s.waiting.delivered, JSON.stringify(s)).toBeLessThanOrEqual(s.waiting.inbox);
    return s;
  };
  /** The status once `done` holds (counters written a moment later: sent and acked every 100 ms). */
  const statusWhen = async (id: unknown, done: (s: Status) => boolean, app = APP, secret?: string) => {
    let s = await status(id, app, secret);
    for (let i = 0; i < 100 && !done(s); i++) {
      await sleep(100);
      s = await status(id, app, secret);
    }
    return s;
  };
  const push = async (to: Record<string, unknown>, extra: Record<string, unknown> = {}, app = APP) => {
    const r = await pushApi(
      gw.httpUrl,
      { to, data: 'x', ...extra },
      app === APP ? {} : { app, auth: basicAuth(app, OTHER_SECRET) },
    );
    expect(r.status).toBe(202);
    return r.body;
  };
  const device = (id: string, opts: { autoAck?: boolean; receipts?: boolean; tags?: string[] } = {}) => {
    const d = new RecordingDevice({ device: id, endpoints: [gw.wsUrl], ...opts });
    devices.push(d);
    return d;
  };

  it('accepted and stored: the 202 comes once the inbox holds it; an offline device waits in the inbox', async () => {
    const { id } = await push({ device: 'offline-0' });
    expect(await status(id)).toMatchObject({
      state: 'accepted',
      recipients: 1,
      stored: 1,
      sent: 0,
      waiting: { deferred: 0, inbox: 1 },
      delivery: 'stored',
    });
  });

  it('sent: a frame written to the device (resends count again), still waiting in the inbox until acked', async () => {
    // A device without receipts: nothing but an ack would say it read the push.
    const d = device('sent-1', { autoAck: false, receipts: false });
    await d.client.start();
    const { id } = await push({ device: 'sent-1' });
    await until(() => d.ids().includes(String(id)), 10_000, 'the push on the device');
    const once = await statusWhen(id, (s) => s.sent === 1);
    expect(once).toMatchObject({
      sent: 1,
      delivered: 0,
      acked: 0,
      waiting: { inbox: 1, delivered: 0 },
      delivery: 'sent',
    });
    // The device comes back without having acked (a new client: the old one would drop the
    // resend as a duplicate): the inbox replays it, one more frame, still one recipient waiting.
    d.client.stop();
    const again = device('sent-1', { autoAck: false, receipts: false });
    await again.client.start();
    await until(() => again.ids().includes(String(id)), 10_000, 'the resend');
    expect(await statusWhen(id, (s) => s.sent === 2)).toMatchObject({
      recipients: 1,
      sent: 2,
      waiting: { inbox: 1 },
    });
    again.client.stop();
  });

  it('acked: the device acknowledged it, which takes it out of the inbox', async () => {
    const d = device('acked-1');
    await d.client.start();
    const { id } = await push({ device: 'acked-1' });
    expect(await statusWhen(id, (s) => s.acked === 1)).toMatchObject({
      recipients: 1,
      sent: 1,
      delivered: 1,
      acked: 1,
      waiting: { deferred: 0, inbox: 0, delivered: 0 },
      delivery: 'acked',
    });
    d.client.stop();
  });

  it('delivered: a device that reads (receipt) but does not ack; its ack later does not count it again', async () => {
    const d = device('read-1', { autoAck: false });
    await d.client.start();
    const { id } = await push({ device: 'read-1' });
    await until(() => d.ids().includes(String(id)), 10_000, 'the push on the device');
    expect(await statusWhen(id, (s) => s.delivered === 1)).toMatchObject({
      recipients: 1,
      sent: 1,
      delivered: 1,
      acked: 0,
      waiting: { deferred: 0, inbox: 1, delivered: 1 },
      delivery: 'delivered',
    });
    d.client.ack([String(id)]);
    expect(await statusWhen(id, (s) => s.acked === 1)).toMatchObject({
      delivered: 1,
      acked: 1,
      waiting: { inbox: 0, delivered: 0 },
      delivery: 'acked',
    });
    d.client.stop();
  });

  it('a status that has expired is not made again by a late count: an ack after it is gone leaves no key (it would have no TTL)', async () => {
    const d = device('late-ack-1', { autoAck: false });
    await d.client.start();
    const { id } = await push({ device: 'late-ack-1' });
    await until(() => d.ids().includes(String(id)), 10_000, 'the push on the device');
    await statusWhen(id, (s) => s.delivered === 1);
    const key = redisKeys(prefix).messageStatus(String(id));
    await redis.del(key); // as its lifetime running out would
    d.client.ack([String(id)]);
    const inbox = redisKeys(prefix).deviceInbox(APP, 'late-ack-1');
    for (let i = 0; i < 100 && (await redis.exists(inbox)) === 1; i++) await sleep(100);
    expect(await redis.exists(inbox), 'the ack took it out of the inbox').toBe(0);
    await sleep(500); // counters are written every 100 ms
    expect(await redis.exists(key)).toBe(0);
    d.client.stop();
  });

  it('delivered: a push sent again after a reconnect is counted once', async () => {
    const d = device('read-2', { autoAck: false });
    await d.client.start();
    const first = (await push({ device: 'read-2' })).id;
    await until(() => d.ids().includes(String(first)), 10_000, 'the push on the device');
    expect(await statusWhen(first, (s) => s.delivered === 1)).toMatchObject({ delivered: 1, acked: 0 });
    d.client.stop();
    // A new client (the old one would drop the resend as a duplicate): the inbox replays it and
    // the device sends a receipt for it again.
    const again = device('read-2', { autoAck: false });
    await again.client.start();
    await until(() => again.ids().includes(String(first)), 10_000, 'the resend');
    // A second push on the same connection: its receipt comes after the resend's, so once it
    // is counted the resend's receipt has been applied too.
    const second = (await push({ device: 'read-2' })).id;
    await until(() => again.ids().includes(String(second)), 10_000, 'the second push');
    expect(await statusWhen(second, (s) => s.delivered === 1)).toMatchObject({ delivered: 1 });
    expect(await status(first)).toMatchObject({
      sent: 2,
      delivered: 1,
      acked: 0,
      waiting: { inbox: 1, delivered: 1 },
    });
    again.client.stop();
  });

  it('delivered: a device without receipts (protocol v1) is counted delivered only when it acks', async () => {
    const c = await rawSession(gw.wsUrl, 'v1-1');
    const first = String((await push({ device: 'v1-1' })).id);
    const second = String((await push({ device: 'v1-1' })).id);
    await until(() => c.frames.filter((f) => f.t === 'push').length === 2, 10_000, 'both pushes');
    c.ws.send(JSON.stringify({ t: 'ping' }));
    c.ws.send(JSON.stringify({ t: 'ack', ids: [second] }));
    expect(await statusWhen(second, (s) => s.acked === 1)).toMatchObject({ delivered: 1, acked: 1 });
    // The first one was written and followed by a ping and an ack of a later push: none of that
    // is a receipt.
    expect(await statusWhen(first, (s) => s.sent === 1)).toMatchObject({
      sent: 1,
      delivered: 0,
      waiting: { inbox: 1, delivered: 0 },
      delivery: 'sent',
    });
    c.ws.send(JSON.stringify({ t: 'ack', ids: [first] }));
    expect(await statusWhen(first, (s) => s.acked === 1)).toMatchObject({ delivered: 1, acked: 1 });
    c.ws.close();
  });

  it('delivered: a receipt counts only what this connection was sent, whatever seq it names', async () => {
    const keys = redisKeys(prefix);
    const c = await rawSession(gw.wsUrl, 'hostile-1', { recv: true });
    const sentId = String((await push({ device: 'hostile-1' })).id);
    await until(() => c.frames.some((f) => f.t === 'push'), 10_000, 'the push');
    // An entry in the inbox that was never written to this connection (stored without a
    // notification to the gateway: as if its routing were still on the way).
    const now = Date.now();
    const unsent = newMessageId(now);
    await createMessageStatus(redis, keys, {
      id: unsent,
      app: APP,
      target: JSON.stringify({ device: 'hostile-1' }),
      createdAt: now,
      expiresAt: now + 3600_000,
    });
    const stored = await storeMessage(
      redis,
      keys,
      APP,
      'hostile-1',
      { id: unsent, exp: now + 3600_000, ttl: 3600, priority: 'normal', sent: now, data: 'x' },
      { maxPerDevice: 2, keyTtlMs: 3600_000 },
    );
    expect(stored.outcome).toBe('stored');
    await completeMessageStatus(redis, keys, unsent, { recipients: 1, stored: 1 });
    // Receipts for seqs it was never sent, the largest a seq can be among them; then an ack of
    // the one it was sent (applied after the receipts: a barrier).
    c.ws.send(JSON.stringify({ t: 'recv', seq: stored.seq }));
    c.ws.send(JSON.stringify({ t: 'recv', seq: Number.MAX_SAFE_INTEGER }));
    c.ws.send(JSON.stringify({ t: 'ping', recv: stored.seq + 1000 }));
    c.ws.send(JSON.stringify({ t: 'ack', ids: [sentId] }));
    expect(await statusWhen(sentId, (s) => s.acked === 1)).toMatchObject({ delivered: 1, acked: 1 });
    // The device's receipt mark stopped at what it was sent.
    const sentSeq = Number(c.frames.find((f) => f.t === 'push')!.seq);
    expect(Number(await redis.hget(keys.deviceMeta(APP, 'hostile-1'), 'rseq'))).toBe(sentSeq);
    await sleep(1200); // status counts are written every 100 ms: a wrong one would show by now
    expect(await status(unsent)).toMatchObject({ delivered: 0, waiting: { inbox: 1, delivered: 0 } });
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    c.ws.close();
    await c.closed;
    // Sent on the next connection and read there: counted then, once.
    const again = await rawSession(gw.wsUrl, 'hostile-1', { recv: true });
    await until(() => again.frames.some((f) => f.t === 'push' && f.id === unsent), 10_000, 'the replay');
    again.ws.send(JSON.stringify({ t: 'recv', seq: stored.seq }));
    expect(await statusWhen(unsent, (s) => s.delivered === 1)).toMatchObject({
      delivered: 1,
      waiting: { inbox: 1, delivered: 1 },
      delivery: 'delivered',
    });
    again.ws.close();
  });

  it('delivered: read, then replaced before its ack, is no longer waiting (the fate lands on the read one)', async () => {
    // Two recipients by tag: one reads the first push and does not ack; the other is offline.
    const offline = await rawSession(gw.wsUrl, 'rg-off', { tags: ['rg'] });
    offline.ws.close();
    await offline.closed;
    const d = device('rg-on', { autoAck: false, tags: ['rg'] });
    await d.client.start();
    const first = (await push({ tag: 'rg' }, { collapseKey: 'news' })).id;
    await until(() => d.ids().includes(String(first)), 10_000, 'the push on the device');
    expect(await statusWhen(first, (s) => s.delivered === 1)).toMatchObject({
      recipients: 2,
      delivered: 1,
      waiting: { inbox: 2, delivered: 1 },
    });
    // A newer push with the same collapse key, to the reading device only, replaces the read one.
    const newer = (await push({ device: 'rg-on' }, { collapseKey: 'news' })).id;
    await until(() => d.ids().includes(String(newer)), 10_000, 'the newer push');
    // (replaced and the read one's fate are written by the newer push's store, a moment apart)
    const after = await statusWhen(first, (s) => s.replaced === 1 && s.waiting.delivered === 0);
    expect(after).toMatchObject({
      recipients: 2,
      delivered: 1,
      replaced: 1,
      acked: 0,
      // The offline one still waits, unread.
      waiting: { inbox: 1, delivered: 0 },
    });
    d.client.stop();
  });

  it('expired: its TTL ran out in the inbox before a device took it; a device that comes later does not get it', async () => {
    const { id } = await push({ device: 'expires-1' }, { ttl: 1 });
    expect(await status(id)).toMatchObject({ waiting: { inbox: 1 }, expired: 0 });
    await sleep(1200);
    expect(await status(id)).toMatchObject({
      stored: 1,
      expired: 1,
      waiting: { deferred: 0, inbox: 0 },
      delivery: 'expired',
    });
    const d = device('expires-1');
    await d.client.start();
    await sleep(500);
    expect(d.ids()).not.toContain(String(id));
    d.client.stop();
  });

  it('dropped: TTL 0 (now or never) to a device that is not online', async () => {
    const { id } = await push({ device: 'offline-ttl0' }, { ttl: 0 });
    expect(await status(id)).toMatchObject({ recipients: 1, stored: 0, dropped: 1, waiting: { inbox: 0 } });
  });

  it('replaced: counted on the older message, not on the newer one', async () => {
    const older = (await push({ device: 'offline-1' }, { collapseKey: 'score' })).id;
    const newer = (await push({ device: 'offline-1' }, { collapseKey: 'score' })).id;
    const s = await statusWhen(older, (x) => x.replaced === 1);
    expect(s).toMatchObject({ stored: 1, replaced: 1, evicted: 0, waiting: { inbox: 0 } });
    expect(await status(newer)).toMatchObject({ stored: 1, replaced: 0, evicted: 0, waiting: { inbox: 1 } });
  });

  it('evicted: counted on the message the inbox bound dropped', async () => {
    const first = (await push({ device: 'offline-2' })).id;
    const second = (await push({ device: 'offline-2' })).id;
    const third = (await push({ device: 'offline-2' })).id; // --max-inbox 2: the first one goes
    const s = await statusWhen(first, (x) => x.evicted === 1);
    expect(s).toMatchObject({ stored: 1, evicted: 1, waiting: { inbox: 0 } });
    for (const id of [second, third]) expect(await status(id)).toMatchObject({ stored: 1, evicted: 0 });
  });

  it("deferred: recipients over the app's rate limit wait in its queue, then are released into their inboxes", async () => {
    await publishAppLimits(redis, redisKeys(prefix), {
      [OTHER_APP]: { ratePerSecond: 2, burst: 1, maxDeferred: 100, policy: 'test/status' },
    });
    await sleep(1500); // gateways read the published limits once a second
    const body = await push({ device: 'rl-1' }, {}, OTHER_APP);
    const more = await push({ device: 'rl-2' }, {}, OTHER_APP);
    expect(more).toMatchObject({ state: 'deferred', deferred: 1 });
    const at = await status(more.id, OTHER_APP, OTHER_SECRET);
    // Waiting in the queue, or (the rate is 2/s) already released into the inbox: never both, never lost.
    expect(at.deferred).toBe(1);
    expect(at.waiting.deferred + at.waiting.inbox).toBe(1);
    const released = await statusWhen(more.id, (s) => s.released === 1, OTHER_APP, OTHER_SECRET);
    expect(released).toMatchObject({
      deferred: 1,
      released: 1,
      waiting: { deferred: 0, inbox: 1 },
      delivery: 'stored',
    });
    expect(body.id).toBeDefined();
  });
});
