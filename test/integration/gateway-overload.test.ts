import { afterAll, describe, expect, inject, it } from 'vitest';
import type { Socket } from 'node:net';
import type WebSocket from 'ws';
import { CloseCode } from '../../common/protocol/close-codes.js';
import {
  pushApi,
  rawConnect,
  rawSession,
  RecordingDevice,
  sleep,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
  type RawConnection,
} from '../support/gateway.js';
import { scrapeSum } from '../support/prometheus.js';

const metric = (g: GatewayProcess, name: string, labels: Record<string, string> = {}) =>
  scrapeSum(`${g.httpUrl}/metrics`, name, (l) => Object.entries(labels).every(([k, v]) => l[k] === v));

/** Overload protection: the connection limit, the accept rate, and the per-connection send buffer. */
describe('gateway overload protection', () => {
  const redisUrl = inject('redisUrl');
  const started: GatewayProcess[] = [];
  const open: RawConnection[] = [];
  afterAll(async () => {
    for (const c of open) c.ws.terminate();
    await Promise.all(started.map(stopGateway));
  });

  it('refuses connections beyond --max-connections with 1013 and serves the ones it holds', async () => {
    const g = await startGatewayProcess({
      redisUrl,
      prefix: uniquePrefix('max'),
      id: 'gw-max',
      args: ['--max-connections', '5'],
    });
    started.push(g);
    for (let i = 0; i < 5; i++) open.push(await rawSession(g.wsUrl, `m${i}`));
    const extra = rawConnect(g.wsUrl);
    expect(await extra.closed).toMatchObject({
      code: CloseCode.tryAgainLater,
      reason: 'connection limit reached',
    });
    const r = await pushApi(g.httpUrl, { to: { device: 'm3' }, data: 'still here' });
    await until(
      () => open[3]!.frames.some((f) => f.t === 'push' && f.id === r.body.id),
      5000,
      'push to a held device',
    );
    // Room again after one leaves.
    open[0]!.ws.close();
    await open[0]!.closed;
    await sleep(300); // the gateway sees the close
    open.push(await rawSession(g.wsUrl, 'm5'));
    expect(await metric(g, 'pushgate_gateway_connects_total', { result: 'overload' })).toBe(1);
  });

  it('refuses connections above --accept-rate with 1013', async () => {
    const g = await startGatewayProcess({
      redisUrl,
      prefix: uniquePrefix('rate'),
      id: 'gw-rate',
      args: ['--accept-rate', '5'],
    });
    started.push(g);
    const burst = Array.from({ length: 20 }, () => rawConnect(g.wsUrl));
    const results = await Promise.all(
      burst.map(async (c) => {
        const outcome = await Promise.race([
          c.closed.then((x) => x.code),
          c.opened.then(() => new Promise((r) => setTimeout(() => r('open'), 500))),
        ]);
        return outcome;
      }),
    );
    for (const c of burst) c.ws.terminate();
    const refused = results.filter((r) => r === CloseCode.tryAgainLater).length;
    expect(refused).toBeGreaterThanOrEqual(10);
    expect(results.filter((r) => r === 'open').length).toBeGreaterThanOrEqual(4);
  });

  it('stops writing to a device whose send buffer is full, keeps the pushes in the store, and resumes in order', async () => {
    const g = await startGatewayProcess({
      redisUrl,
      prefix: uniquePrefix('bp'),
      id: 'gw-bp',
      args: ['--send-buffer-bytes', '16384', '--max-inbox', '5000'],
    });
    started.push(g);
    const slow = new RecordingDevice({ device: 'slow', endpoints: [g.wsUrl] });
    await slow.client.start();
    const socket = (slow.client as unknown as { ws: WebSocket & { _socket: Socket } }).ws._socket;
    socket.pause(); // the device stops reading; the kernel buffers fill, then ws's bufferedAmount grows
    const payload = 'x'.repeat(3900);
    const ids: string[] = [];
    // Loopback socket buffers hold megabytes: push (8 at a time) until the gateway reports
    // backpressure, then a little more, bounded at 4000 messages.
    let seenAt = -1;
    for (let i = 0; i < 4000 && (seenAt < 0 || i < seenAt + 80); i += 8) {
      const batch = await Promise.all(
        Array.from({ length: 8 }, (_, j) =>
          pushApi(g.httpUrl, { to: { device: 'slow' }, data: { i: i + j, payload } }),
        ),
      );
      for (const r of batch) ids.push(r.body.id as string);
      if (seenAt < 0 && i % 80 === 0 && (await metric(g, 'pushgate_gateway_backpressure_events_total')) > 0)
        seenAt = i;
    }
    expect(await metric(g, 'pushgate_gateway_backpressure_events_total')).toBeGreaterThan(0);
    socket.resume();
    await until(
      () => ids.every((id) => slow.ids().includes(id)),
      30_000,
      'all pushes after the buffer drained',
    );
    const seqs = slow.pushes.map((p) => p.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(slow.pushes).toHaveLength(ids.length);
    slow.client.stop();
  });
});
