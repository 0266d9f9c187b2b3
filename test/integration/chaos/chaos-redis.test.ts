import { afterAll, describe, expect, it } from 'vitest';
import {
  basicAuth,
  RecordingDevice,
  sleep,
  stopGateway,
  uniquePrefix,
  type GatewayProcess,
} from '../../support/gateway.js';
import { ChaosRedis, Ledger, report, startChaosGateway } from './harness.js';

/**
 * Chaos on the Redis side (issue 13, failures 3-6): Redis emptied, rewound, frozen and down,
 * under real gateways and devices. Each test on a redis-server of its own; each counts accepted,
 * delivered, lost and duplicated-to-app pushes and ends with lost = 0, duplicates = 0.
 */
describe('chaos: redis', () => {
  const gateways: GatewayProcess[] = [];
  const devices: RecordingDevice[] = [];
  const redises: ChaosRedis[] = [];
  afterAll(async () => {
    for (const d of devices) d.client.stop();
    await Promise.all(gateways.map(stopGateway));
    await Promise.all(redises.map((r) => r.stop()));
  });

  /** Two gateways on a fresh Redis and `n` devices spread over them, tagged and aliased. */
  async function setUp(name: string, n: number) {
    const redis = await ChaosRedis.start();
    redises.push(redis);
    const prefix = uniquePrefix(name);
    const args = ['--heartbeat-initial-ms', '5000', '--heartbeat-min-ms', '2000'];
    const a = await startChaosGateway({ redisUrl: redis.url, prefix, id: `${name}-a`, args });
    const b = await startChaosGateway({ redisUrl: redis.url, prefix, id: `${name}-b`, args });
    gateways.push(a, b);
    const fleet: RecordingDevice[] = [];
    for (let i = 0; i < n; i++) {
      const gw = i % 2 === 0 ? a : b;
      const d = new RecordingDevice({
        device: `${name}-${i}`,
        endpoints: [gw.wsUrl],
        tags: ['fleet', i % 3 === 0 ? 'third' : 'rest'],
        alias: `user-${name}-${i}`,
      });
      fleet.push(d);
      devices.push(d);
    }
    await Promise.all(fleet.map((d) => d.client.start()));
    const ledger = new Ledger();
    ledger.track(...fleet);
    return { redis, a, b, fleet, ledger };
  }

  /** One push per device (alternating APIs), one alias push, one tag push, one push to all. */
  async function pushRound(ledger: Ledger, apis: GatewayProcess[], fleet: RecordingDevice[], label: string) {
    const all = fleet.map((d) => d.device);
    for (const [i, d] of fleet.entries())
      await ledger.push(apis[i % apis.length]!.httpUrl, { device: d.device }, [d.device], `${label}-${i}`);
    await ledger.push(apis[0]!.httpUrl, { alias: `user-${fleet[1]!.device}` }, [fleet[1]!.device], label);
    const third = fleet.filter((_, i) => i % 3 === 0).map((d) => d.device);
    await ledger.push(apis[0]!.httpUrl, { tag: 'third' }, third, label);
    await ledger.push(apis[apis.length - 1]!.httpUrl, { all: true }, all, label);
  }

  const ready = async (g: GatewayProcess) => (await fetch(`${g.httpUrl}/readyz`)).status === 200;

  it('3. Redis emptied (restart without persistence): connected devices are reachable again within seconds, without a re-dial', async () => {
    const { redis, a, b, fleet, ledger } = await setUp('empty', 20);
    await pushRound(ledger, [a, b], fleet, 'before');
    expect((await ledger.settle(10_000)).lost).toBe(0);

    await redis.restartEmpty();
    const t0 = Date.now();
    let sawNotReady = false;
    // Reachable = a push to all reaches every device again (presence, app index rebuilt).
    let reachableAfterMs = -1;
    for (let i = 0; Date.now() - t0 < 20_000; i++) {
      if (!(await ready(a)) || !(await ready(b))) sawNotReady = true;
      const r = await ledger.push(b.httpUrl, { all: true }, [], `probe-${i}`);
      if (r.status === 202 && r.body.recipients === fleet.length) {
        ledger.owe(
          r.body.id as string,
          fleet.map((d) => d.device),
        );
        reachableAfterMs = Date.now() - t0;
        break;
      }
      await sleep(250);
    }
    await pushRound(ledger, [a, b], fleet, 'after');
    const figures = await ledger.settle(15_000);
    const metrics = await (await fetch(`${a.httpUrl}/metrics`)).text();
    report('redis emptied', { ...figures, reachableAfterMs, sawNotReady });
    expect(reachableAfterMs).toBeGreaterThanOrEqual(0);
    expect(reachableAfterMs).toBeLessThan(10_000);
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);
    expect(fleet.every((d) => d.client.connects === 1)).toBe(true);
    expect(metrics).toMatch(/pushgate_redis_state_lost_total\{[^}]*\} [1-9]/);
    expect(a.logs.some((l) => l.includes('"level":40') && l.includes('redis lost or rewound'))).toBe(true);
  });

  it('4. Redis rewound (restart from a snapshot taken 1.5 s earlier): no live delivery is skipped', async () => {
    const { redis, a, b, fleet, ledger } = await setUp('rewind', 20);
    await pushRound(ledger, [a, b], fleet, 'r1');
    expect((await ledger.settle(10_000)).lost).toBe(0);
    await redis.snapshot();
    // Sequence numbers move on after the snapshot (and these are delivered and acked).
    await pushRound(ledger, [a, b], fleet, 'r2');
    await sleep(1500);
    expect((await ledger.settle(10_000)).lost).toBe(0);
    await redis.rewind();
    const t0 = Date.now();
    // Every device's seq in Redis is now behind what its connection has seen (pushes refused
    // while the gateways reconnect are not owed).
    for (let i = 0; i < 3; i++) {
      await pushRound(ledger, [a, b], fleet, `r3-${i}`);
      await sleep(500);
    }
    const figures = await ledger.settle(15_000);
    report('redis rewound', { ...figures, settledAfterMs: Date.now() - t0 });
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);
    expect(fleet.every((d) => d.client.connects === 1)).toBe(true);
  });

  /** A raw push that reports status, Retry-After, error and time taken. */
  async function probePush(g: GatewayProcess, device: string) {
    const t0 = Date.now();
    const res = await fetch(`${g.httpUrl}/v1/apps/app1/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basicAuth() },
      body: JSON.stringify({ to: { device }, data: 'probe' }),
      signal: AbortSignal.timeout(10_000),
    }).catch(() => undefined);
    const body = res ? ((await res.json().catch(() => ({}))) as Record<string, unknown>) : {};
    return {
      status: res?.status ?? 0,
      retryAfter: res?.headers.get('retry-after') ?? null,
      error: body.error,
      id: body.id as string | undefined,
      ms: Date.now() - t0,
    };
  }

  /**
   * Redis becomes unavailable (`outage`), then comes back (`restore`, with the data of a
   * snapshot taken just before, as a persistent Redis would): the push API refuses fast and
   * named, readiness turns false, and everything accepted before and after arrives.
   */
  async function storageOutage(
    name: string,
    outage: (r: ChaosRedis) => Promise<void> | void,
    restore: (r: ChaosRedis) => Promise<void> | void,
  ) {
    const { redis, a, b, fleet, ledger } = await setUp(name, 10);
    await pushRound(ledger, [a, b], fleet, 'before');
    expect((await ledger.settle(10_000)).lost).toBe(0);
    await redis.snapshot();
    await outage(redis);
    const probes = [];
    for (let i = 0; i < 5; i++) probes.push(await probePush(a, fleet[i]!.device));
    const notReadyBy = Date.now() + 3000;
    let readyFalse = false;
    while (Date.now() < notReadyBy && !readyFalse) {
      readyFalse = !(await ready(a)) && !(await ready(b));
      await sleep(100);
    }
    await restore(redis);
    let back = -1;
    const t0 = Date.now();
    while (Date.now() - t0 < 15_000 && back < 0) {
      if ((await ready(a)) && (await ready(b))) back = Date.now() - t0;
      else await sleep(100);
    }
    await pushRound(ledger, [a, b], fleet, 'after');
    const figures = await ledger.settle(15_000);
    report(`redis ${name}`, {
      ...figures,
      probeStatuses: probes.map((p) => p.status),
      probeMsMax: Math.max(...probes.map((p) => p.ms)),
      readyFalse,
      readyAgainMs: back,
    });
    for (const p of probes) {
      expect(p.status).toBe(503);
      expect(p.error).toBe('storage_unavailable');
      expect(Number(p.retryAfter)).toBeGreaterThan(0);
      expect(p.ms).toBeLessThan(1500);
    }
    expect(readyFalse).toBe(true);
    expect(back).toBeGreaterThanOrEqual(0);
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);
  }

  it('5. frozen Redis (SIGSTOP): the push API answers 503 + Retry-After within 1.5 s and readiness is false; nothing accepted is lost', () =>
    storageOutage(
      'frozen',
      (r) => r.freeze(),
      (r) => r.thaw(),
    ));

  it('6. Redis down (killed): the push API answers 503 + Retry-After within 1.5 s and readiness is false; after the restart everything accepted arrives', () =>
    storageOutage(
      'down',
      (r) => r.kill(),
      (r) => r.restart(),
    ));
});
