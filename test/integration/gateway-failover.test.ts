import { afterAll, describe, expect, inject, it } from 'vitest';
import { CloseCode } from '../../common/protocol/close-codes.js';
import {
  pushApi,
  rawConnect,
  RecordingDevice,
  sleep,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';

/**
 * Gateway loss and restart: `kill -9` of a gateway in the middle of a push stream loses
 * nothing the API accepted; SIGTERM drains at the configured rate with 1012 and a reconnect
 * hint, and devices follow the hint to the other gateway.
 */
describe('gateway failover', () => {
  const redisUrl = inject('redisUrl');
  const started: GatewayProcess[] = [];
  const devices: RecordingDevice[] = [];
  afterAll(async () => {
    for (const d of devices) d.client.stop();
    await Promise.all(started.map(stopGateway));
  });

  it('kill -9 of a gateway during a stream of pushes: every accepted message reaches its device after it reconnects', async () => {
    const prefix = uniquePrefix('kill');
    const a = await startGatewayProcess({ redisUrl, prefix, id: 'gw-a' });
    const b = await startGatewayProcess({ redisUrl, prefix, id: 'gw-b' });
    started.push(a, b);
    const fleet = Array.from({ length: 12 }, (_, i) => `k${i}`);
    const local: RecordingDevice[] = [];
    for (const [i, device] of fleet.entries()) {
      // Two thirds start on A (the one that dies); the static list lets them fail over to B.
      const first = i % 3 === 2 ? b.wsUrl : a.wsUrl;
      const d = new RecordingDevice({
        device,
        tags: ['stream'],
        endpoints: [first, first === a.wsUrl ? b.wsUrl : a.wsUrl],
      });
      local.push(d);
      devices.push(d);
      await d.client.start();
    }
    expect(local.filter((d) => d.client.gateway === 'gw-a')).toHaveLength(8);

    const accepted = new Map<string, string[]>(); // device -> ids accepted by the API
    let refused = 0;
    for (let n = 0; n < 240; n++) {
      if (n === 80) a.kill('SIGKILL');
      const device = fleet[n % fleet.length]!;
      // Alternate the API between both gateways: calls to the dead one fail and were never accepted.
      const api = n % 2 === 0 ? a : b;
      try {
        const r = await pushApi(api.httpUrl, { to: { device }, data: { n } });
        if (r.status === 202) accepted.set(device, [...(accepted.get(device) ?? []), r.body.id as string]);
      } catch {
        refused++;
      }
      if (n % 8 === 0) {
        const fanout = await pushApi(b.httpUrl, { to: { tag: 'stream' }, data: { fanout: n } });
        expect(fanout.status).toBe(202);
        for (const d of fleet) accepted.set(d, [...(accepted.get(d) ?? []), fanout.body.id as string]);
      }
      await sleep(5);
    }
    expect(refused).toBeGreaterThan(0);
    const total = [...accepted.values()].reduce((s, l) => s + l.length, 0);
    expect(total).toBeGreaterThan(250);

    await until(
      () => local.every((d) => (accepted.get(d.device) ?? []).every((id) => d.ids().includes(id))),
      45_000,
      'every accepted message at its device',
    );
    for (const d of local) {
      expect(d.client.gateway).toBe('gw-b');
      // Surfaced once each (the client drops redeliveries by id), in acceptance order per API gateway.
      expect(new Set(d.ids()).size).toBe(d.ids().length);
    }
  });

  it('SIGTERM drains: readiness off, new devices refused with 1012, closes spread over the window, devices move by the hint', async () => {
    const prefix = uniquePrefix('drain');
    const c = await startGatewayProcess({
      redisUrl,
      prefix,
      id: 'gw-c',
      args: ['--drain-rate', '10', '--drain-grace-ms', '20000'],
    });
    const d = await startGatewayProcess({ redisUrl, prefix, id: 'gw-d' });
    started.push(c, d);
    const closedAt: number[] = [];
    const hints: string[][] = [];
    const fleet: RecordingDevice[] = [];
    for (let i = 0; i < 30; i++) {
      const dev = new RecordingDevice({ device: `r${i}`, endpoints: [c.wsUrl] });
      dev.client.on('close', (code) => code === CloseCode.serviceRestart && closedAt.push(Date.now()));
      dev.client.on('drain', (f) => hints.push(f.reconnect));
      fleet.push(dev);
      devices.push(dev);
      await dev.client.start();
    }
    expect((await fetch(`${c.httpUrl}/readyz`)).status).toBe(200);
    const t0 = Date.now();
    c.kill('SIGTERM');
    await until(() => closedAt.length > 0, 5000, 'first drain close');
    expect((await fetch(`${c.httpUrl}/readyz`)).status).toBe(503);

    const late = rawConnect(c.wsUrl);
    const lateClose = await late.closed;
    expect(lateClose.code).toBe(CloseCode.serviceRestart);
    expect(late.frames[0]).toMatchObject({ t: 'drain', reconnect: [d.wsUrl] });

    // A push accepted mid-drain reaches its device wherever it ends up.
    const mid = await pushApi(d.httpUrl, { to: { device: 'r29' }, data: 'mid-drain' });
    expect(mid.status).toBe(202);

    await until(() => closedAt.length === 30, 15_000, 'all 30 closed with 1012');
    const span = Math.max(...closedAt) - Math.min(...closedAt);
    // 30 connections at 10/s: about 3 s; never all at once.
    expect(span).toBeGreaterThan(2000);
    const firstSecond = closedAt.filter((t) => t - Math.min(...closedAt) < 1000).length;
    expect(firstSecond).toBeLessThanOrEqual(15);
    expect(hints.every((h) => h[0] === d.wsUrl)).toBe(true);
    expect(await c.exited).toBe(0);
    await until(() => fleet.every((f) => f.client.gateway === 'gw-d'), 15_000, 'devices on gw-d');
    await until(() => fleet[29]!.dataOf().includes('mid-drain'), 10_000, 'mid-drain push');
    expect(Date.now() - t0).toBeLessThan(30_000);
  });
});
