import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, redisKeys, type PgRedis } from '../../common/redis/index.js';
import { publishAppLimits } from '../../common/ratelimit/releaser.js';
import {
  APP,
  OTHER_APP,
  OTHER_SECRET,
  RecordingDevice,
  basicAuth,
  pushApi,
  sleep,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';

/**
 * The message-status lifecycle through the push API, one test per state (gateway/PROTOCOL.md,
 * "Message status"): accepted, stored, sent, acked, expired, replaced, evicted, dropped and
 * deferred. In every answer the recipients add up:
 *   recipients = waiting.deferred + waiting.inbox + acked + expired + replaced + evicted + dropped
 *                + capRefused (refused by the device's daily cap: ratelimit-policy tests).
 * A message's fate is recorded on the message it happened to: when a newer push replaces it
 * (collapse key) or pushes it out of a full inbox, the OLDER message's status says so, and the
 * newer one's does not claim it. Real gateway, real Redis, real devices (the client library).
 */
type Status = Record<string, number | string> & { waiting: { deferred: number; inbox: number } };

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
    return s;
  };
  /** The status once `done` holds (counters written a moment later: sent and acked about once a second). */
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
  const device = (id: string, opts: { autoAck?: boolean } = {}) => {
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
    const d = device('sent-1', { autoAck: false });
    await d.client.start();
    const { id } = await push({ device: 'sent-1' });
    await until(() => d.ids().includes(String(id)), 10_000, 'the push on the device');
    const once = await statusWhen(id, (s) => s.sent === 1);
    expect(once).toMatchObject({ sent: 1, acked: 0, waiting: { inbox: 1 }, delivery: 'sent' });
    // The device comes back without having acked (a new client: the old one would drop the
    // resend as a duplicate): the inbox replays it, one more frame, still one recipient waiting.
    d.client.stop();
    const again = device('sent-1', { autoAck: false });
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
      acked: 1,
      waiting: { deferred: 0, inbox: 0 },
      delivery: 'acked',
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
