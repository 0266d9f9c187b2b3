import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '../../../common/protocol/close-codes.js';
import WebSocket from 'ws';
import { SUBPROTOCOL } from '../../../common/protocol/frames.js';
import {
  pushApi,
  rawConnect,
  rawSession,
  RecordingDevice,
  sleep,
  stopGateway,
  token,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../../support/gateway.js';
import { ChaosRedis, Ledger, report, startChaosGateway } from './harness.js';

/**
 * Abuse (issue 13, failures 8-11): a device taking another's alias, racing idempotency keys, a
 * device growing the tag index, and unauthenticated upgrades starving real devices. Real
 * gateways, a Redis of the test's own, real devices; every test counts accepted, delivered,
 * lost and duplicated-to-app pushes and ends with lost = 0, duplicates = 0.
 */
describe('chaos: abuse', () => {
  let redis: ChaosRedis;
  const gateways: GatewayProcess[] = [];
  const devices: RecordingDevice[] = [];
  beforeAll(async () => {
    redis = await ChaosRedis.start();
  });
  afterAll(async () => {
    for (const d of devices) d.client.stop();
    await Promise.all(gateways.map(stopGateway));
    await redis?.stop();
  });

  it('8. alias hijack: a device cannot claim another device’s alias; the alias push reaches only the owner', async () => {
    const prefix = uniquePrefix('alias');
    const gw = await startChaosGateway({ redisUrl: redis.url, prefix, id: 'gw-alias' });
    gateways.push(gw);
    // The app server bound user-1001 to the victim's phone (a claim of its token).
    const victim = new RecordingDevice({ device: 'victim-phone', endpoints: [gw.wsUrl], alias: 'user-1001' });
    devices.push(victim);
    await victim.client.start();
    expect(victim.client.alias).toBe('user-1001');

    // The attacker's own, valid token has no alias: announcing one in hello is refused...
    const hello = rawConnect(gw.wsUrl);
    await hello.opened;
    hello.ws.send(JSON.stringify({ t: 'hello', v: 1, token: await token('attacker'), alias: 'user-1001' }));
    const helloClose = await hello.closed;
    // ...and so is taking it later by an update frame.
    const upd = rawConnect(gw.wsUrl);
    await upd.opened;
    upd.ws.send(JSON.stringify({ t: 'hello', v: 1, token: await token('attacker-2') }));
    await until(() => upd.frames.some((f) => f.t === 'welcome'), 5000, 'attacker welcome');
    upd.ws.send(JSON.stringify({ t: 'update', alias: 'user-1001' }));
    const updClose = await upd.closed;

    const ledger = new Ledger();
    ledger.track(victim);
    const otp = await ledger.push(gw.httpUrl, { alias: 'user-1001' }, ['victim-phone'], { otp: '493817' });
    const figures = await ledger.settle(5000);
    report('alias hijack', {
      ...figures,
      helloRefusal: helloClose,
      updateRefusal: updClose,
      recipients: otp.body.recipients,
    });
    expect(helloClose.code).toBe(CloseCode.policyViolation);
    expect(helloClose.reason).toMatch(/hello: alias: not the alias in the device token/);
    expect(updClose.code).toBe(CloseCode.policyViolation);
    expect(updClose.reason).toMatch(/update: alias: not the alias in the device token/);
    expect(otp.body.recipients).toBe(1);
    expect(upd.frames.some((f) => f.t === 'push')).toBe(false);
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);
  });

  it('9. Idempotency-Key race: concurrent repeats get the first id and the message is sent once; another body under the key is refused', async () => {
    const prefix = uniquePrefix('idem');
    const a = await startChaosGateway({ redisUrl: redis.url, prefix, id: 'gw-idem-a' });
    const b = await startChaosGateway({ redisUrl: redis.url, prefix, id: 'gw-idem-b' });
    gateways.push(a, b);
    const d1 = new RecordingDevice({ device: 'idem-1', endpoints: [a.wsUrl] });
    const d2 = new RecordingDevice({ device: 'idem-2', endpoints: [b.wsUrl] });
    devices.push(d1, d2);
    await Promise.all([d1.client.start(), d2.client.start()]);
    const ledger = new Ledger();
    ledger.track(d1, d2);

    const rounds = 20;
    const outcomes = { same: 0, conflicts: 0, inProgress: 0, otherStatus: 0 };
    for (let i = 0; i < rounds; i++) {
      const key = `race-${i}`;
      // Two identical requests through both gateways at once, and one with another body and target.
      const same = { to: { device: 'idem-1' }, data: { round: i } };
      const [r1, r2, r3] = await Promise.all([
        pushApi(a.httpUrl, same, { idempotencyKey: key }),
        pushApi(b.httpUrl, same, { idempotencyKey: key }),
        pushApi(b.httpUrl, { to: { device: 'idem-2' }, data: { evil: i } }, { idempotencyKey: key }),
      ]);
      const accepted = [r1, r2, r3].filter((r) => r.status === 202);
      // Exactly one request did the work; the owed message is its (device idem-1 or idem-2).
      expect(accepted).toHaveLength(1);
      const winner = accepted[0]!;
      const winnerIsSame = winner === r1 || winner === r2;
      ledger.owe(winner.body.id as string, [winnerIsSame ? 'idem-1' : 'idem-2']);
      for (const r of [r1, r2]) {
        if (r === winner) continue;
        if (winnerIsSame) {
          // The identical repeat: waited, same id, nothing sent again.
          expect(r.status).toBe(200);
          expect(r.body).toMatchObject({ id: winner.body.id, duplicate: true });
          outcomes.same++;
        } else if (r.status === 422) outcomes.conflicts++;
        else outcomes.otherStatus++;
      }
      if (winnerIsSame) {
        expect(r3.status).toBe(422);
        expect(r3.body.error).toBe('idempotency_key_reused');
        outcomes.conflicts++;
      }
    }
    const figures = await ledger.settle(10_000);
    // Nothing but the owed messages arrived: no second body under any id.
    const surfaced = d1.pushes.length + d2.pushes.length;
    report('idempotency race', { ...figures, rounds, ...outcomes, surfaced });
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);
    expect(surfaced).toBe(rounds);
    expect(outcomes.otherStatus).toBe(0);
  });

  it('10. a device cannot grow the tag index without bound: updates rate-limited, a per-app cap, zero-count tags removed', async () => {
    const prefix = uniquePrefix('tags');
    const cap = 200;
    const gw = await startChaosGateway({
      redisUrl: redis.url,
      prefix,
      id: 'gw-tags',
      args: ['--max-tags-per-app', String(cap)],
    });
    gateways.push(gw);
    const healthy = new RecordingDevice({ device: 'tag-healthy', endpoints: [gw.wsUrl], tags: ['news'] });
    devices.push(healthy);
    await healthy.client.start();
    const ledger = new Ledger();
    ledger.track(healthy);

    // One device sends a fresh set of 64 tags ten times a second for 10 s (under the frame rate).
    const abuser = await rawSession(gw.wsUrl, 'tag-abuser');
    const answers = { updated: 0, rate_limited: 0, tag_limit: 0 };
    abuser.ws.on('message', (m) => {
      const f = JSON.parse(m.toString()) as { t: string; code?: string };
      if (f.t === 'updated') answers.updated++;
      else if (f.code === 'rate_limited' || f.code === 'tag_limit') answers[f.code]++;
    });
    const started = Date.now();
    for (let i = 0; i < 100 && Date.now() - started < 20_000; i++) {
      abuser.ws.send(
        JSON.stringify({ t: 'update', set: Array.from({ length: 64 }, (_, j) => `a${i}-${j}`) }),
      );
      if (i % 5 === 0) await ledger.push(gw.httpUrl, { tag: 'news' }, ['tag-healthy'], { i });
      await sleep(100);
    }
    // Four more devices each bring 64 fresh tags: the app's cap refuses those beyond 200.
    const others = [];
    for (let k = 0; k < 4; k++) {
      const c = await rawSession(gw.wsUrl, `tag-other-${k}`);
      c.ws.send(JSON.stringify({ t: 'update', set: Array.from({ length: 64 }, (_, j) => `o${k}-${j}`) }));
      await until(() => c.frames.some((f) => f.t === 'updated' || f.t === 'error'), 5000, 'update answer');
      others.push(c.frames.find((f) => f.t === 'updated' || f.t === 'error'));
      c.ws.close();
    }
    await until(
      () => answers.updated + answers.rate_limited + answers.tag_limit === 100,
      10_000,
      'an answer to every update',
    );
    abuser.ws.close();
    const figures = await ledger.settle(10_000);
    const distinct = Number(await redis.cli('ZCARD', `${prefix}:a:{app1}:tags`));
    const zeroCount = await redis.cli('ZRANGEBYSCORE', `${prefix}:a:{app1}:tags`, '-inf', '0');
    const refusedOthers = others.filter((f) => f?.code === 'tag_limit').length;
    report('tag index', {
      ...figures,
      updatesSent: 100,
      ...answers,
      distinctTags: distinct,
      cap,
      refusedOthers,
    });
    expect(answers.rate_limited).toBeGreaterThan(50);
    expect(answers.updated).toBeLessThanOrEqual(30);
    expect(distinct).toBeLessThanOrEqual(cap);
    expect(zeroCount).toBe('');
    expect(refusedOthers).toBeGreaterThan(0);
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);
  });

  it('11. unauthenticated half-open upgrades have their own budget: real devices are never locked out', async () => {
    const prefix = uniquePrefix('prehello');
    const gw = await startChaosGateway({
      redisUrl: redis.url,
      prefix,
      id: 'gw-prehello',
      args: [
        ...['--max-connections', '50', '--max-pending-handshakes', '100'],
        ...['--max-pending-handshakes-per-address', '20', '--hello-timeout-ms', '15000'],
      ],
    });
    gateways.push(gw);
    // 1,000 upgrades that never say hello, from 10 source addresses, kept open.
    const idle: WebSocket[] = [];
    const idleCloses: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const ws = new WebSocket(gw.wsUrl, SUBPROTOCOL, { localAddress: `127.0.0.${2 + (i % 10)}` });
      ws.on('error', () => {});
      ws.on('close', (code) => idleCloses.push(code));
      idle.push(ws);
      if (i % 50 === 49) await sleep(20);
    }
    await until(() => idleCloses.length >= 900, 20_000, 'the idle upgrades beyond the budget refused');
    // 40 real devices, each from its own address, while the idle ones hold their budget.
    const t0 = Date.now();
    const fleet: RecordingDevice[] = [];
    for (let i = 0; i < 40; i++) {
      const d = new RecordingDevice({
        device: `real-${i}`,
        endpoints: [gw.wsUrl],
        localAddress: `127.0.1.${1 + i}`,
      });
      fleet.push(d);
      devices.push(d);
    }
    await Promise.all(fleet.map((d) => d.client.start()));
    const allInMs = Date.now() - t0;
    const ledger = new Ledger();
    ledger.track(...fleet);
    for (const d of fleet) await ledger.push(gw.httpUrl, { device: d.device }, [d.device], 'hi');
    const figures = await ledger.settle(10_000);
    const refusedIdle = idleCloses.filter((c) => c === CloseCode.tryAgainLater).length;
    const stillPending = idle.filter((w) => w.readyState === WebSocket.OPEN).length;
    for (const w of idle) w.terminate();
    const realRefusals = fleet.reduce((n, d) => n + d.closes.length, 0);
    report('pre-hello budget', {
      ...figures,
      idleUpgrades: 1000,
      refusedIdle,
      stillPending,
      allInMs,
      realRefusals,
    });
    expect(stillPending).toBeLessThanOrEqual(100);
    expect(refusedIdle).toBeGreaterThanOrEqual(900);
    expect(realRefusals).toBe(0);
    expect(allInMs).toBeLessThan(10_000);
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);
  });
});
