import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, type PgRedis } from '../../common/redis/connection.js';
import { redisKeys } from '../../common/redis/keys.js';
import { publishAppLimits } from '../../common/ratelimit/releaser.js';
import { parseAdaptiveState } from '../../common/ratelimit/adaptive.js';
import { nextUtcDay } from '../../common/ratelimit/device-cap.js';
import { freePort } from '../support/net.js';
import { scrapeSum } from '../support/prometheus.js';
import {
  APP,
  OTHER_APP,
  OTHER_SECRET,
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

const push = (base: string, body: unknown) => pushApi(base, body);

async function status(base: string, id: string, app = APP) {
  const res = await fetch(`${base}/v1/apps/${app}/messages/${id}`, {
    headers: { authorization: app === APP ? basicAuth() : basicAuth(OTHER_APP, OTHER_SECRET) },
  });
  return (await res.json()) as Record<string, unknown>;
}

describe('per-device daily cap through a real gateway (the push API answer and the message status)', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('rl-capgw');
  const keys = redisKeys(prefix);
  let redis: PgRedis;
  let gw: GatewayProcess;

  beforeAll(async () => {
    redis = createRedis(redisUrl);
    gw = await startGatewayProcess({ redisUrl, prefix, id: 'cap-gw' });
  });
  afterAll(async () => {
    await stopGateway(gw);
    await redis.quit();
  });

  it('messages over the cap are answered deferred (deviceCapped, sent after 00:00 UTC), counted in status; a device holding a day of them refuses more with 429', async () => {
    await publishAppLimits(redis, keys, {
      [APP]: {
        ratePerSecond: 1000,
        burst: 1000,
        maxDeferred: 1000,
        policy: 'test/caps',
        perDevice: { messagesPerDay: 2 },
      },
    });
    await sleep(1500);
    const dev = new RecordingDevice({ device: 'capped-phone', endpoints: [gw.wsUrl] });
    await dev.client.start();
    const answers = [];
    for (let i = 0; i < 5; i++)
      answers.push(await push(gw.httpUrl, { to: { device: 'capped-phone' }, data: { i } }));
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202, 429]);
    expect(answers.map((a) => a.body.state)).toEqual([
      'accepted',
      'accepted',
      'deferred',
      'deferred',
      undefined,
    ]);
    expect(answers[2]!.body).toMatchObject({ deferred: 1, deviceCapped: 1 });
    expect(Date.parse(answers[2]!.body.estimatedSendAt as string)).toBe(nextUtcDay(Date.now()));
    expect(answers[4]!.body.error).toBe('device_cap_full');
    expect(answers[4]!.body.message).toContain('test/caps');
    const retryAfter = Number(answers[4]!.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
    await until(() => dev.pushes.length >= 2, 5000, 'the two within the cap delivered');
    await sleep(500);
    expect(dev.dataOf()).toEqual([{ i: 0 }, { i: 1 }]);
    expect(await status(gw.httpUrl, answers[2]!.body.id as string)).toMatchObject({
      delivery: 'deferred',
      deferred: 1,
      capped: 1,
      released: 0,
    });
    const scrape = (outcome: string) =>
      scrapeSum(`${gw.httpUrl}/metrics`, 'pushgate_ratelimit_messages_total', (l) => l.outcome === outcome);
    expect(await scrape('capped')).toBe(2);
    expect(await scrape('cap_refused')).toBe(1);
    dev.client.stop();
  }, 30_000);
});

describe('a policy without appIds through a real gateway', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('rl-star');
  const keys = redisKeys(prefix);
  let redis: PgRedis;
  let gw: GatewayProcess;

  beforeAll(async () => {
    redis = createRedis(redisUrl);
    gw = await startGatewayProcess({ redisUrl, prefix, id: 'star-gw' });
  });
  afterAll(async () => {
    await stopGateway(gw);
    await redis.quit();
  });

  it('"*" limits every app without a policy of its own, each app on its own budget; an app with its own keeps it', async () => {
    await publishAppLimits(redis, keys, {
      '*': { ratePerSecond: 1, burst: 1, maxDeferred: 100, policy: 'test/every-app' },
      [APP]: { ratePerSecond: 1000, burst: 1000, maxDeferred: 100, policy: 'test/own' },
    });
    await sleep(1500);
    const other = (i: number) =>
      pushApi(
        gw.httpUrl,
        { to: { device: `star-${i}` }, data: { i } },
        {
          app: OTHER_APP,
          auth: basicAuth(OTHER_APP, OTHER_SECRET),
        },
      );
    const first = await other(0);
    const second = await other(1);
    expect([first.body.state, second.body.state]).toEqual(['accepted', 'deferred']);
    expect(second.headers.get('ratelimit-limit')).toBe('1');
    expect(second.headers.get('ratelimit-policy')).toContain('1;w=1');
    const own = await pushApi(gw.httpUrl, { to: { device: 'star-own' }, data: {} });
    expect(own.body.state).toBe('accepted');
    expect(own.headers.get('ratelimit-limit')).toBe('1000');
    // The deferred one goes out at the rate, released by the gateway's releaser.
    const deadline = Date.now() + 10_000;
    let st = await status(gw.httpUrl, second.body.id as string, OTHER_APP);
    while (st.released !== 1 && Date.now() < deadline) {
      await sleep(200);
      st = await status(gw.httpUrl, second.body.id as string, OTHER_APP);
    }
    expect(st).toMatchObject({ deferred: 1, released: 1 });
  }, 30_000);
});

/** A redis-server of this test's own, so stopping it (SIGSTOP) stalls nobody else's tests. */
class OwnRedis {
  proc: ChildProcess | undefined;
  constructor(readonly port: number) {}
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start() {
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    const c = createRedis(this.url, { options: { lazyConnect: true, maxRetriesPerRequest: 0 } });
    const deadline = Date.now() + 10_000;
    while ((await c.ping().catch(() => '')) !== 'PONG') {
      if (Date.now() > deadline) throw new Error('own redis did not come up');
      await sleep(100);
    }
    c.disconnect();
  }
  signal(s: NodeJS.Signals) {
    this.proc!.kill(s);
  }
  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    this.signal('SIGCONT');
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }
}

/**
 * Adaptive throttling (AIMD) measured in the data path: the downstream signal is forced for
 * real by stopping Redis (SIGSTOP) for two seconds while pushes flow, so the stores in flight
 * finish late (timeouts: slower than 1 s). The rate is cut by decreasePercent, shown in the
 * gateway's metrics, and recovers step by step to the configured rate once stores are fast again.
 */
describe('adaptive throttling through a real gateway (Redis stalled with SIGSTOP)', () => {
  let r: OwnRedis;
  let gw: GatewayProcess;
  let redis: PgRedis;
  const prefix = uniquePrefix('rl-aimd');
  const keys = redisKeys(prefix);

  beforeAll(async () => {
    r = new OwnRedis(await freePort());
    await r.start();
    redis = createRedis(r.url);
    gw = await startGatewayProcess({ redisUrl: r.url, prefix, id: 'aimd-gw' });
  });
  afterAll(async () => {
    await stopGateway(gw);
    redis.disconnect();
    await r.stop();
  });

  it('a stalled Redis pushes the error ratio over its threshold: the rate halves, metrics show it, then it recovers step by step', async () => {
    const R = 200;
    await publishAppLimits(redis, keys, {
      [APP]: {
        ratePerSecond: R,
        burst: R,
        maxDeferred: 100_000,
        configuredRatePerSecond: R,
        policy: 'test/aimd',
        adaptive: {
          enabled: true,
          errorRatioPercent: 5,
          timeoutRatioPercent: 5,
          windowSeconds: 5,
          decreasePercent: 50,
          recoveryPercent: 25,
          recoveryIntervalSeconds: 2,
          minRatePercent: 10,
        },
      },
    });
    await sleep(1500);
    // The factor as every gateway reads it, sampled all along.
    const factors: { t: number; f: number; reason: string }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = parseAdaptiveState(
          (await redis.hget(keys.appLimitAdaptive(), APP).catch(() => null)) ?? undefined,
        );
        if (s) factors.push({ t: Date.now(), f: s.factor, reason: s.reason });
        await sleep(100);
      }
    })();
    // Open-loop load, 20 pushes/s, to stored-only devices.
    let sending = true;
    const inflight = new Set<Promise<unknown>>();
    const sender = (async () => {
      for (let i = 0; sending; i++) {
        const p = push(gw.httpUrl, { to: { device: `aimd-${i % 50}` }, data: { i } }).catch(() => undefined);
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        await sleep(50);
      }
    })();
    await sleep(3000);
    expect(factors.at(-1)).toMatchObject({ f: 1, reason: 'Healthy' });
    r.signal('SIGSTOP');
    await sleep(2000);
    r.signal('SIGCONT');
    await until(() => factors.some((x) => x.f < 1), 10_000, 'the rate cut');
    const cut = factors.find((x) => x.f < 1)!;
    // Pushes answered 503 (storage unavailable) while Redis stood still: the error ratio.
    expect(cut).toMatchObject({ f: 0.5, reason: 'ErrorRatio' });
    // The gateway paces at the cut rate and says so.
    const throttled = await scrapeSum(
      `${gw.httpUrl}/metrics`,
      'pushgate_ratelimit_throttled',
      (l) => l.app === APP && l.reason === 'ErrorRatio',
    );
    expect([0.5, 0]).toContain(throttled); // 0 once a recovery step already renamed the reason
    const metric = () =>
      scrapeSum(`${gw.httpUrl}/metrics`, 'pushgate_ratelimit_effective_rate', (l) => l.app === APP);
    const deadline = Date.now() + 5000;
    let eff = await metric();
    while (eff === R && Date.now() < deadline) {
      await sleep(200);
      eff = await metric();
    }
    expect(eff).toBeLessThan(R);
    expect(eff).toBeGreaterThanOrEqual(R * 0.5);
    // Stores are fast again: additive increase, 25% of R per 2 s, back to R.
    await until(() => factors.at(-1)!.f === 1, 20_000, 'recovered to the configured rate');
    sending = false;
    sampling = false;
    await Promise.all([sender, sampler, ...inflight]);
    const seen = [...new Set(factors.filter((x) => x.t >= cut.t).map((x) => x.f))];
    expect(seen).toEqual([0.5, 0.75, 1]);
    expect(factors.filter((x) => x.f === 0.75).every((x) => x.reason === 'Recovering')).toBe(true);
    expect(factors.at(-1)!.reason).toBe('Healthy');
    // The gateway rereads the factor once a second.
    const until2 = Date.now() + 3000;
    while ((await metric()) !== R && Date.now() < until2) await sleep(200);
    expect(await metric()).toBe(R);
  }, 60_000);
});

/**
 * The timeout ratio from devices: pushes written to connected devices that do not ack them
 * within the gateway's --ack-timeout-ms (1.5 s here) are downstream timeouts.
 */
describe('adaptive throttling through a real gateway (devices that stop acking)', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('rl-ack');
  const keys = redisKeys(prefix);
  let redis: PgRedis;
  let gw: GatewayProcess;
  let devices: RecordingDevice[] = [];

  beforeAll(async () => {
    redis = createRedis(redisUrl);
    gw = await startGatewayProcess({ redisUrl, prefix, id: 'ack-gw', args: ['--ack-timeout-ms', '1500'] });
  });
  afterAll(async () => {
    for (const d of devices) d.client.stop();
    await stopGateway(gw);
    await redis.quit();
  });

  const connect = async (autoAck: boolean) => {
    for (const d of devices) d.client.stop();
    devices = Array.from(
      { length: 10 },
      (_, i) => new RecordingDevice({ device: `ack-${i}`, endpoints: [gw.wsUrl], autoAck }),
    );
    await Promise.all(devices.map((d) => d.client.start()));
  };

  it('devices that stop acking push the timeout ratio over its threshold: the rate halves (TimeoutRatio); acking again, it recovers step by step', async () => {
    const R = 500;
    await publishAppLimits(redis, keys, {
      [APP]: {
        ratePerSecond: R,
        burst: R,
        maxDeferred: 100_000,
        configuredRatePerSecond: R,
        policy: 'test/acks',
        adaptive: {
          enabled: true,
          errorRatioPercent: 5,
          timeoutRatioPercent: 10,
          windowSeconds: 5,
          decreasePercent: 50,
          recoveryPercent: 25,
          recoveryIntervalSeconds: 2,
          minRatePercent: 10,
        },
      },
    });
    await connect(false);
    await sleep(1500);
    const factors: { t: number; f: number; reason: string }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = parseAdaptiveState((await redis.hget(keys.appLimitAdaptive(), APP)) ?? undefined);
        if (s) factors.push({ t: Date.now(), f: s.factor, reason: s.reason });
        await sleep(100);
      }
    })();
    let sending = true;
    const sender = async () => {
      for (let i = 0; sending; i++) {
        await push(gw.httpUrl, { to: { device: `ack-${i % 10}` }, data: { i } });
        await sleep(50);
      }
    };
    let load = sender();
    await until(() => factors.some((x) => x.f < 1), 15_000, 'the rate cut');
    sending = false;
    await load;
    const cut = factors.find((x) => x.f < 1)!;
    expect(cut).toMatchObject({ f: 0.5, reason: 'TimeoutRatio' });
    expect(
      await scrapeSum(
        `${gw.httpUrl}/metrics`,
        'pushgate_ratelimit_throttled',
        (l) => l.app === APP && l.reason === 'TimeoutRatio',
      ),
    ).toBe(0.5);
    // The same devices come back acking: they ack what they missed, and what follows in time.
    await connect(true);
    await until(() => devices.every((d) => d.pushes.length > 0), 10_000, 'replays acked');
    sending = true;
    load = sender();
    await until(() => factors.at(-1)!.f === 1, 20_000, 'recovered to the configured rate');
    sending = false;
    sampling = false;
    await Promise.all([load, sampler]);
    const seen = [...new Set(factors.filter((x) => x.t >= cut.t).map((x) => x.f))];
    expect(seen).toEqual([0.5, 0.75, 1]);
    expect(factors.at(-1)!.reason).toBe('Healthy');
  }, 60_000);
});
