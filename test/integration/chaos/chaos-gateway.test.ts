import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RecordingDevice,
  sleep,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../../support/gateway.js';
import { ChaosRedis, Ledger, report, startChaosGateway } from './harness.js';

/**
 * Chaos on the gateway side (issue 13, failures 1 and 7): real gateway processes frozen with
 * SIGSTOP or started without ids, a Redis of the test's own, real devices. Each test counts
 * accepted, delivered, lost and duplicated-to-app pushes; lost and duplicates are 0.
 */
describe('chaos: gateways', () => {
  let redis: ChaosRedis;
  const gateways: GatewayProcess[] = [];
  const devices: RecordingDevice[] = [];
  beforeAll(async () => {
    redis = await ChaosRedis.start();
  });
  afterAll(async () => {
    for (const d of devices) d.client.stop();
    for (const g of gateways) g.kill('SIGCONT');
    await Promise.all(gateways.map(stopGateway));
    await redis?.stop();
  });

  /**
   * Two gateways with one fixed advised heartbeat (so "n x the heartbeat" is one number) and
   * `n` devices connected to the first (the second is their next endpoint), tracked by a ledger.
   */
  async function pairWithFleet(
    name: string,
    hbMs: number,
    n: number,
    device: Partial<ConstructorParameters<typeof RecordingDevice>[0]> = {},
  ) {
    const prefix = uniquePrefix(name);
    const args = ['--heartbeat-min-ms', '--heartbeat-initial-ms', '--heartbeat-max-ms'].flatMap((f) => [
      f,
      `${hbMs}`,
    ]);
    const a = await startChaosGateway({ redisUrl: redis.url, prefix, id: `gw-${name}-a`, args });
    const b = await startChaosGateway({ redisUrl: redis.url, prefix, id: `gw-${name}-b`, args });
    gateways.push(a, b);
    const fleet: RecordingDevice[] = [];
    for (let i = 0; i < n; i++) {
      const d = new RecordingDevice({ device: `${name}-${i}`, endpoints: [a.wsUrl, b.wsUrl], ...device });
      fleet.push(d);
      devices.push(d);
    }
    await Promise.all(fleet.map((d) => d.client.start()));
    expect(fleet.every((d) => d.client.gateway === a.id)).toBe(true);
    const ledger = new Ledger();
    ledger.track(...fleet);
    return { a, b, fleet, ledger };
  }

  it('1. frozen gateway (SIGSTOP): devices move within 2x the heartbeat and the stuck pushes arrive', async () => {
    const hbMs = 2000;
    const { a, b, fleet, ledger } = await pairWithFleet('frozen', hbMs, 100);

    // A steady stream of pushes through the live gateway's API, to devices held by the other.
    let streaming = true;
    let n = 0;
    const stream = (async () => {
      for (; streaming && n < 600; n++) {
        const d = fleet[n % fleet.length]!;
        await ledger.push(b.httpUrl, { device: d.device }, [d.device], { n });
        await sleep(20);
      }
    })();
    await sleep(1000);

    const movedAfter = new Map<string, number>();
    const t0 = Date.now();
    for (const d of fleet)
      d.client.on('welcome', (w) => {
        if (w.gateway === b.id && !movedAfter.has(d.device)) movedAfter.set(d.device, Date.now() - t0);
      });
    a.kill('SIGSTOP');
    const acceptedBeforeFreeze = ledger.figures().accepted;

    await until(() => movedAfter.size === fleet.length, 4 * hbMs, 'every device on the live gateway');
    const slowest = Math.max(...movedAfter.values());
    // Pushes accepted while the devices were still attached to the frozen gateway: stored, routed
    // to a process that cannot send them; they must arrive by replay on the next gateway.
    const stuck = ledger.figures().accepted - acceptedBeforeFreeze;
    await sleep(2000);
    streaming = false;
    await stream;

    const figures = await ledger.settle(20_000);
    report('frozen gateway', {
      ...figures,
      devices: fleet.length,
      hbMs,
      moveMsMax: slowest,
      moveMsMedian: [...movedAfter.values()].sort((x, y) => x - y)[movedAfter.size >> 1],
      acceptedWhileStuck: stuck,
    });
    expect(slowest).toBeLessThan(2 * hbMs);
    expect(stuck).toBeGreaterThan(0);
    expect(figures.accepted).toBeGreaterThan(100);
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);

    // The frozen gateway wakes up: its old sockets are gone, it must not disturb anyone.
    a.kill('SIGCONT');
    const before = ledger.figures().accepted;
    for (let i = 0; i < 50; i++) {
      const d = fleet[i]!;
      await ledger.push(a.httpUrl, { device: d.device }, [d.device], { thawed: i });
    }
    const after = await ledger.settle(15_000);
    expect(after.accepted).toBe(before + 50);
    expect(after.lost).toBe(0);
    expect(after.duplicatesToApp).toBe(0);
    expect(fleet.every((d) => d.client.gateway === b.id)).toBe(true);
  });

  it('7. gateways started without an id get distinct ids and route to each other; a live id cannot be taken, a dead one can', async () => {
    const prefix = uniquePrefix('ids');
    // No --gateway-id and no POD_NAME: two processes on one host, as in a local stack.
    const g1 = await startChaosGateway({ redisUrl: redis.url, prefix });
    const g2 = await startChaosGateway({ redisUrl: redis.url, prefix });
    gateways.push(g1, g2);
    expect(g1.id).not.toBe(g2.id);

    const d = new RecordingDevice({ device: 'id-dev', endpoints: [g2.wsUrl] });
    devices.push(d);
    await d.client.start();
    expect(d.client.gateway).toBe(g2.id);
    const ledger = new Ledger();
    ledger.track(d);
    // Through the other gateway's API: routed live to g2 (no re-dial needed).
    for (let i = 0; i < 20; i++) {
      const r = await ledger.push(g1.httpUrl, { device: 'id-dev' }, ['id-dev'], { i });
      expect(r.status).toBe(202);
      await until(() => d.ids().includes(r.body.id as string), 2000, `live push ${i}`);
    }
    expect(d.client.connects).toBe(1);

    // A third process told to be g1: g1 is alive and refreshing, so it refuses to start.
    const t0 = Date.now();
    const clash = startChaosGateway({ redisUrl: redis.url, prefix, id: g1.id });
    await expect(clash).rejects.toThrow(/exited with 1[\s\S]*held by another live gateway/);
    const refusedAfterMs = Date.now() - t0;

    // g1 dies without unregistering (kill -9); a restart on its id takes it over.
    await stopGateway(g1);
    const t1 = Date.now();
    const g1again = await startChaosGateway({ redisUrl: redis.url, prefix, id: g1.id });
    gateways.push(g1again);
    const takeoverMs = Date.now() - t1;
    const r = await ledger.push(g1again.httpUrl, { device: 'id-dev' }, ['id-dev'], 'after takeover');
    expect(r.status).toBe(202);
    const figures = await ledger.settle(10_000);
    report('gateway ids', { ...figures, ids: [g1.id, g2.id], refusedAfterMs, takeoverMs });
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);
    expect(d.client.connects).toBe(1);
  });

  it('2. a stall longer than 2.5x the heartbeat (SIGSTOP, then SIGCONT): no healthy device is closed, no backlog is sent again', async () => {
    const hbMs = 1000;
    // Devices that wait long for a pong (clients of an older protocol revision, or a slow
    // network): they stay through the stall, and the gateway must not cut them off.
    const { a, b, fleet, ledger } = await pairWithFleet('stall', hbMs, 50, { pongWaitMs: 30_000 });
    for (const [i, d] of fleet.entries())
      await ledger.push(b.httpUrl, { device: d.device }, [d.device], { i });
    expect((await ledger.settle(10_000)).lost).toBe(0);

    const stallMs = 3 * hbMs + 1000; // beyond the 2.5 x hb heartbeat deadline
    a.kill('SIGSTOP');
    // Pushes accepted during the stall wait in the stalled gateway's sockets and the inboxes.
    for (const [i, d] of fleet.entries())
      await ledger.push(b.httpUrl, { device: d.device }, [d.device], { stalled: i });
    await sleep(stallMs);
    a.kill('SIGCONT');
    await sleep(3 * hbMs);
    for (const [i, d] of fleet.entries())
      await ledger.push(b.httpUrl, { device: d.device }, [d.device], { after: i });
    const figures = await ledger.settle(15_000);
    const closed = fleet.filter((d) => d.closes.length > 0).length;
    report('stall', { ...figures, devices: fleet.length, hbMs, stallMs, devicesClosed: closed });
    expect(closed).toBe(0);
    expect(fleet.every((d) => d.client.connects === 1)).toBe(true);
    expect(figures.lost).toBe(0);
    expect(figures.duplicatesToApp).toBe(0);
    expect(figures.wireDuplicates).toBe(0);
    expect(a.logs.some((l) => l.includes('event loop stalled'))).toBe(true);
  });
});
