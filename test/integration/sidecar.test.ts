import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  createRedis,
  probeStats,
  redisKeys,
  registerGateway,
  type PgRedis,
} from '../../common/redis/index.js';
import { skipReason } from '../../workloads/sidecar/command.js';
import { freePort } from '../support/net.js';
import { scrapeSum } from '../support/prometheus.js';
import { eventually } from '../support/k8s.js';
import { startGatewayProcess, stopGateway, type GatewayProcess } from '../support/gateway.js';
import { repoRoot } from '../support/stack.js';

/**
 * The real sidecar program beside a real gateway program, over loopback, with a real Redis.
 * The sidecar starts first (as it often does in a pod) and probes nothing while the gateway is
 * not registered. Then it connects as a probe device, pushes itself a message through the
 * gateway's push API, and publishes the result in the registry where the locator reads it.
 * Then the gateway is killed while its record is still live, and the failures show up in the
 * same places; once the record has expired, probing stops again.
 */
describe('pushgate sidecar probing the gateway beside it', () => {
  const redisUrl = inject('redisUrl');
  const keyPrefix = `pgtest-sc-${Math.random().toString(36).slice(2, 8)}`;
  const keys = redisKeys(keyPrefix);
  const secret = 'probe-secret-for-the-sidecar-test';
  const gatewayId = 'sidecar-test.gw-0';
  let redis: PgRedis;
  let gateway: GatewayProcess;
  let sidecar: ChildProcess;
  let metricsPort: number;

  function sidecarProgram(args: string[]): Promise<ChildProcess> {
    // One process (node with tsx's loader), not the tsx wrapper, so a signal reaches the program.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(repoRoot, 'cli/pushgate.ts'), 'sidecar', ...args],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, PUSHGATE_LOG_LEVEL: 'info' },
      },
    );
    let logs = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sidecar did not start:\n${logs}`)), 30_000);
      child.stdout!.on('data', (d: Buffer) => {
        logs += d.toString();
        if (logs.includes('sidecar probing')) {
          clearTimeout(timer);
          resolve(child);
        }
      });
      child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
      child.once('exit', (code) => reject(new Error(`sidecar exited ${code}:\n${logs}`)));
    });
  }
  const sidecarMetric = (name: string, labels: Record<string, string> = {}) =>
    scrapeSum(`http://127.0.0.1:${metricsPort}/metrics`, name, (l) =>
      Object.entries(labels).every(([k, v]) => l[k] === v),
    );

  beforeAll(async () => {
    redis = createRedis(redisUrl);
    metricsPort = await freePort();
    const gatewayPort = await freePort();
    sidecar = await sidecarProgram([
      ...[
        '--gateway-url',
        `http://127.0.0.1:${gatewayPort}`,
        '--redis-url',
        redisUrl,
        '--key-prefix',
        keyPrefix,
      ],
      ...['--pod-name', 'gw-0', '--namespace', 'sidecar-test', '--probe-secret', secret],
      ...[
        '--interval-seconds',
        '0.5',
        '--timeout-ms',
        '2000',
        '--port',
        String(metricsPort),
        '--host',
        '127.0.0.1',
      ],
    ]);
    // Before its gateway registers, the sidecar probes nothing: no failure enters the window
    // the locator ranks by (one did, and kept a new gateway demoted for ten probes).
    await eventually(
      async () =>
        (await sidecarMetric('pushgate_sidecar_probes_skipped_total', { reason: 'unregistered' })) >= 3,
      { what: 'three skipped rounds before the gateway runs', timeoutMs: 20_000 },
    );
    expect(await sidecarMetric('pushgate_sidecar_probes_total')).toBe(0);
    expect((await probeStats(redis, keys, [gatewayId])).get(gatewayId)?.samples).toBe(0);
    // The probe app is the gateway's only app here (--apps wins over the harness's env apps).
    gateway = await startGatewayProcess({
      redisUrl,
      prefix: keyPrefix,
      id: gatewayId,
      args: [
        ...['--port', String(gatewayPort)],
        ...['--pod-name', 'gw-0', '--namespace', 'sidecar-test', '--apps', `pushgate-probe:${secret}`],
      ],
    });
    expect(gateway.port).toBe(gatewayPort);
  });

  afterAll(async () => {
    if (sidecar && sidecar.exitCode === null) {
      sidecar.kill('SIGTERM');
      await new Promise((resolve) => sidecar.once('exit', resolve));
    }
    await stopGateway(gateway);
    redis?.disconnect();
  });

  it('publishes successful probes with their latency in the registry and on /metrics', async () => {
    // The registry (what the locator ranks by) and the histogram on /metrics must report the
    // same probes: read both until they have counted the same number of them.
    const { stats, histogramMeanMs } = await eventually(
      async () => {
        const s = (await probeStats(redis, keys, [gatewayId])).get(gatewayId);
        const count = await sidecarMetric('pushgate_sidecar_probe_latency_seconds_count');
        const sum = await sidecarMetric('pushgate_sidecar_probe_latency_seconds_sum');
        return s && s.samples >= 3 && s.samples === count
          ? { stats: s, histogramMeanMs: (sum / count) * 1000 }
          : undefined;
      },
      { what: 'three probe results in the registry, as many as on /metrics', timeoutMs: 20_000 },
    );
    expect(stats.successRate).toBe(1);
    // The registry keeps whole milliseconds: its mean is the measured mean within 0.5 ms.
    expect(stats.meanLatencyMs).toBeDefined();
    expect(Math.abs(stats.meanLatencyMs! - histogramMeanMs)).toBeLessThanOrEqual(0.5 + 1e-9);
    expect(histogramMeanMs).toBeGreaterThan(0);
    expect(stats.meanLatencyMs).toBeLessThan(2000);
    expect(await sidecarMetric('pushgate_sidecar_probes_total', { result: 'ok' })).toBeGreaterThanOrEqual(3);
    expect(await sidecarMetric('pushgate_sidecar_probe_latency_seconds_count')).toBeGreaterThanOrEqual(3);
    expect(await sidecarMetric('pushgate_sidecar_probe_success_ratio')).toBe(1);
  });

  it('publishes failures while a dead gateway is still registered, and keeps running', async () => {
    // SIGKILL: no unregistering, so the record lives on for its TTL and the locator would still
    // hand the gateway out; the probes say it is gone.
    gateway.kill('SIGKILL');
    await gateway.exited;
    await eventually(
      async () => (await sidecarMetric('pushgate_sidecar_probes_total', { result: 'connect' })) >= 2,
      {
        what: 'failed probes after the gateway stopped',
        timeoutMs: 20_000,
      },
    );
    const stats = (await probeStats(redis, keys, [gatewayId])).get(gatewayId)!;
    expect(stats.successRate).toBeLessThan(1);
    expect(await sidecarMetric('pushgate_sidecar_probe_success_ratio')).toBeLessThan(1);
    expect(sidecar.exitCode).toBeNull();
  });

  it("stops probing once the dead gateway's record has expired", async () => {
    const before = await sidecarMetric('pushgate_sidecar_probes_skipped_total', { reason: 'unregistered' });
    await eventually(
      async () =>
        (await sidecarMetric('pushgate_sidecar_probes_skipped_total', { reason: 'unregistered' })) >=
        before + 2,
      { what: 'skipped rounds after the record expired', timeoutMs: 30_000 },
    );
    const failed = await sidecarMetric('pushgate_sidecar_probes_total', { result: 'connect' });
    await eventually(
      async () =>
        (await sidecarMetric('pushgate_sidecar_probes_skipped_total', { reason: 'unregistered' })) >=
        before + 5,
      { what: 'more skipped rounds', timeoutMs: 30_000 },
    );
    expect(await sidecarMetric('pushgate_sidecar_probes_total', { result: 'connect' })).toBe(failed);
  });

  it('probes only what the locator hands out: not a gateway that is not ready or draining', async () => {
    const rec = {
      id: 'sidecar-test.gw-9',
      podName: 'gw-9',
      namespace: 'sidecar-test',
      region: 'cn-north-1',
      zone: 'a',
      endpoint: 'ws://127.0.0.1:1/v1/connect',
      connections: 0,
      maxConnections: 10,
      ready: true,
      draining: false,
      updatedAt: Date.now(),
    };
    expect(await skipReason(redis, keys, rec.id)).toBe('unregistered');
    await registerGateway(redis, keys, { ...rec, ready: false });
    expect(await skipReason(redis, keys, rec.id)).toBe('not_ready');
    await registerGateway(redis, keys, { ...rec, draining: true });
    expect(await skipReason(redis, keys, rec.id)).toBe('draining');
    await registerGateway(redis, keys, rec);
    expect(await skipReason(redis, keys, rec.id)).toBeUndefined();
    const closed = createRedis(redisUrl);
    closed.disconnect();
    expect(await skipReason(closed, keys, rec.id)).toBe('registry_unreadable');
  });
});
