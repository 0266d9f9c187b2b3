import path from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CloseCode } from '../../common/protocol/close-codes.js';
import { createRedis } from '../../common/redis/connection.js';
import { redisKeys } from '../../common/redis/keys.js';
import { listGateways, recordProbeResult } from '../../common/redis/registry.js';
import {
  APP,
  rawConnect,
  rawSession,
  RecordingDevice,
  sleep,
  startGatewayProcess,
  startPushgateProcess,
  stopGateway,
  token,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';
import { freePort } from '../support/net.js';
import { repoRoot } from '../support/stack.js';

/**
 * Session lifecycle and placement: adaptive heartbeat, heartbeat and token-expiry closes, one
 * session per device across gateways, the registry, and the locator (gateway route and the
 * separate `pushgate locator` program) ranking by region and probe health.
 */
describe('gateway sessions, registry and locator', () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('sessions');
  const redis = createRedis(redisUrl);
  const keys = redisKeys(prefix);
  let north: GatewayProcess;
  let east: GatewayProcess;
  const devices: RecordingDevice[] = [];

  beforeAll(async () => {
    const hb = ['--heartbeat-min-ms', '1000', '--heartbeat-initial-ms', '2000', '--heartbeat-max-ms', '8000'];
    [north, east] = await Promise.all([
      startGatewayProcess({
        redisUrl,
        prefix,
        id: 'gw-north',
        region: 'cn-north-1',
        args: hb,
        env: { POD_NAME: 'gw-north-0', POD_NAMESPACE: 'push' },
      }),
      startGatewayProcess({
        redisUrl,
        prefix,
        id: 'gw-east',
        region: 'cn-east-1',
        args: hb,
        env: { POD_NAME: 'gw-east-0', POD_NAMESPACE: 'push' },
      }),
    ]);
  });
  afterAll(async () => {
    for (const d of devices) d.client.stop();
    await Promise.all([stopGateway(north), stopGateway(east)]);
    redis.disconnect();
  });

  it('serves /metrics and the probes on --metrics-port (spec.ports.metrics), and no /metrics on the device port', async () => {
    const metricsPort = await freePort();
    const g = await startGatewayProcess({
      redisUrl,
      prefix: uniquePrefix('metrics-port'), // its own registry: the locator tests below count gateways
      id: 'gw-metrics',
      args: ['--metrics-port', String(metricsPort)],
    });
    try {
      const ops = `http://127.0.0.1:${metricsPort}`;
      const m = await fetch(`${ops}/metrics`);
      expect(m.status).toBe(200);
      expect(await m.text()).toContain('pushgate_gateway_connections{gateway="gw-metrics"');
      expect((await fetch(`${ops}/readyz`)).status).toBe(200);
      expect((await fetch(`${ops}/healthz`)).status).toBe(200);
      expect((await fetch(`${g.httpUrl}/metrics`)).status).toBe(404);
      expect((await fetch(`${g.httpUrl}/readyz`)).status).toBe(200);
      expect((await fetch(`${ops}/v1/connect`)).status).toBe(404); // devices only on the device port
    } finally {
      await stopGateway(g);
    }
  });

  it('registers every gateway with pod identity, region, endpoint and connection counts', async () => {
    const d = new RecordingDevice({ device: 'reg-1', endpoints: [north.wsUrl] });
    devices.push(d);
    await d.client.start();
    await sleep(1500); // the registry is refreshed every second in tests
    const gws = await listGateways(redis, keys, { namespace: 'push' });
    expect(gws.map((g) => g.id)).toEqual(['gw-east', 'gw-north']);
    expect(gws.find((g) => g.id === 'gw-north')).toMatchObject({
      podName: 'gw-north-0',
      namespace: 'push',
      region: 'cn-north-1',
      endpoint: north.wsUrl,
      connections: 1,
      ready: true,
      draining: false,
    });
    expect(await listGateways(redis, keys, { namespace: 'elsewhere' })).toEqual([]);
    d.client.stop();
  });

  it('advises a heartbeat that grows while pings are on time', async () => {
    const c = await rawSession(north.wsUrl, 'beater');
    const welcome = c.frames.find((f) => f.t === 'welcome')!;
    expect(welcome.hb).toBe(2000);
    for (let i = 0; i < 3; i++) {
      c.ws.send('{"t":"ping"}');
      await sleep(300);
    }
    const pongs = c.frames.filter((f) => f.t === 'pong').map((f) => f.hb);
    expect(pongs).toEqual([2000, 2000, 3000]);
    c.ws.close();
  });

  it('closes a silent device with 4004 and advises it a shorter heartbeat on its next connection', async () => {
    const c = await rawSession(north.wsUrl, 'silent');
    expect(c.frames.find((f) => f.t === 'welcome')!.hb).toBe(2000);
    const closed = await c.closed; // no pings: dead after 2.5 x 2 s
    expect(closed.code).toBe(CloseCode.heartbeatTimeout);
    await sleep(200);
    const again = await rawSession(east.wsUrl, 'silent');
    expect(again.frames.find((f) => f.t === 'welcome')!.hb).toBe(1000);
    again.ws.close();
  });

  it('closes a session whose token expires with 4002', async () => {
    const c = rawConnect(north.wsUrl);
    await c.opened;
    c.ws.send(
      JSON.stringify({
        t: 'hello',
        v: 1,
        token: await token('short-lived', { exp: Math.floor(Date.now() / 1000) + 2 }),
      }),
    );
    await until(() => c.frames.some((f) => f.t === 'welcome'), 5000, 'welcome');
    c.ws.send('{"t":"ping"}');
    expect(await c.closed).toMatchObject({ code: CloseCode.tokenExpired });
  });

  it('times sessions on the monotonic clock: after the wall clock steps back an hour, a silent device is still closed and a pinging one kept', async () => {
    // The gateway's Date.now steps on SIGUSR2 (test/support/wall-clock-step.mjs); judged by the
    // wall clock, every device would look as if it had pinged an hour from now and none would
    // be found dead until the clock caught up.
    const stepped = await startGatewayProcess({
      redisUrl,
      prefix,
      id: 'gw-clock-step',
      args: ['--heartbeat-min-ms', '1000', '--heartbeat-initial-ms', '2000', '--heartbeat-max-ms', '8000'],
      env: {
        NODE_OPTIONS: `--import ${path.join(repoRoot, 'test/support/wall-clock-step.mjs')}`,
        PUSHGATE_TEST_CLOCK_STEP_MS: String(-3_600_000),
      },
    });
    try {
      const silent = await rawSession(stepped.wsUrl, 'clock-silent');
      const beating = await rawSession(stepped.wsUrl, 'clock-beating');
      stepped.kill('SIGUSR2');
      await until(() => stepped.logs.some((l) => l.includes('wall clock stepped')), 5000, 'the clock step');
      const pinger = setInterval(() => beating.ws.send('{"t":"ping"}'), 500);
      try {
        // Silent since its welcome: dead after 2.5 x 2 s.
        const closed = await Promise.race([silent.closed, sleep(15_000).then(() => 'still open')]);
        expect(closed).toMatchObject({ code: CloseCode.heartbeatTimeout });
        expect(beating.ws.readyState).toBe(WebSocket.OPEN);
        expect(beating.frames.filter((f) => f.t === 'pong').length).toBeGreaterThan(5);
      } finally {
        clearInterval(pinger);
        beating.ws.close();
      }
    } finally {
      await stopGateway(stepped);
    }
  });

  it('keeps one session per device: connecting on another gateway closes the old one with 4005', async () => {
    const first = await rawSession(north.wsUrl, 'twin');
    const second = await rawSession(east.wsUrl, 'twin');
    expect(await first.closed).toMatchObject({ code: CloseCode.sessionReplaced });
    second.ws.send('{"t":"ping"}');
    await until(() => second.frames.some((f) => f.t === 'pong'), 5000, 'the new session lives');
    second.ws.close();
  });

  it('locates gateways nearest first, and healthy before unhealthy', async () => {
    const locate = async (base: string, region: string) => {
      const res = await fetch(`${base}/v1/locate?app=${APP}&device=dev-7&region=${region}`);
      expect(res.status).toBe(200);
      return ((await res.json()) as { endpoints: { gateway: string; url: string }[] }).endpoints.map(
        (e) => e.gateway,
      );
    };
    expect(await locate(north.httpUrl, 'cn-north-1')).toEqual(['gw-north', 'gw-east']);
    expect(await locate(north.httpUrl, 'cn-east-1')).toEqual(['gw-east', 'gw-north']);
    for (let i = 0; i < 10; i++) await recordProbeResult(redis, keys, 'gw-north', i < 3, 20);
    expect(await locate(east.httpUrl, 'cn-north-1')).toEqual(['gw-east', 'gw-north']);
    for (let i = 0; i < 50; i++) await recordProbeResult(redis, keys, 'gw-north', true, 20);
    expect(await locate(east.httpUrl, 'cn-north-1')).toEqual(['gw-north', 'gw-east']);

    const bad = await fetch(`${north.httpUrl}/v1/locate?app=${APP}`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      error: 'bad_request',
      message: expect.stringMatching(/^device: /),
    });
    const noRegion = await fetch(`${north.httpUrl}/v1/locate?app=${APP}&device=dev-7`);
    expect(noRegion.status).toBe(400);
    expect(await noRegion.json()).toMatchObject({
      error: 'bad_request',
      message: expect.stringMatching(/^region: /),
    });
    // An unknown app gets the same answer as a known one: app ids cannot be probed (issue 13).
    const known = await fetch(`${north.httpUrl}/v1/locate?app=${APP}&device=dev-7&region=cn-north-1`);
    const unknown = await fetch(`${north.httpUrl}/v1/locate?app=nope&device=dev-7&region=cn-north-1`);
    expect(unknown.status).toBe(known.status);
    expect(await unknown.json()).toEqual(await known.json());
  });

  it('serves the same ranking from `pushgate locator`, and the client library connects where it says', async () => {
    const { port, proc } = await startPushgateProcess('locator', [
      '--redis-url',
      redisUrl,
      '--key-prefix',
      prefix,
    ]);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/locate?app=${APP}&device=dev-9&region=cn-east-1`);
      const body = (await res.json()) as { endpoints: { gateway: string }[] };
      expect(body.endpoints.map((e) => e.gateway)).toEqual(['gw-east', 'gw-north']);
      const d = new RecordingDevice({
        device: 'located',
        locatorUrl: `http://127.0.0.1:${port}`,
        region: 'cn-east-1',
      });
      devices.push(d);
      expect((await d.client.start()).gateway).toBe('gw-east');
    } finally {
      proc.kill('SIGKILL');
    }
  });
});
