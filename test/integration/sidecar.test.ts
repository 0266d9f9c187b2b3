import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, probeStats, redisKeys, type PgRedis } from '../../common/redis/index.js';
import { freePort } from '../support/net.js';
import { scrapeSum } from '../support/prometheus.js';
import { eventually } from '../support/k8s.js';
import { startGatewayProcess, stopGateway, type GatewayProcess } from '../support/gateway.js';
import { repoRoot } from '../support/stack.js';

/**
 * The real sidecar program beside a real gateway program, over loopback, with a real Redis:
 * the sidecar connects as a probe device, pushes itself a message through the gateway's push
 * API, and publishes the result in the registry where the locator reads it. Then the gateway
 * goes away, and the failures show up in the same places.
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
    // The probe app is the gateway's only app here (--apps wins over the harness's env apps).
    gateway = await startGatewayProcess({
      redisUrl,
      prefix: keyPrefix,
      id: gatewayId,
      args: ['--pod-name', 'gw-0', '--namespace', 'sidecar-test', '--apps', `pushgate-probe:${secret}`],
    });
    sidecar = await sidecarProgram([
      ...['--gateway-url', gateway.httpUrl, '--redis-url', redisUrl, '--key-prefix', keyPrefix],
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

  it('publishes failures once the gateway is gone, and keeps running', async () => {
    gateway.kill('SIGTERM');
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
});
