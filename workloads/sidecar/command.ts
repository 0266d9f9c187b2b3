import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineCommand, untilSignal } from '../../cli/command.js';
import type { Logger } from '../../common/logger.js';
import { readGateway, recordProbeResult, type PgRedis, type RedisKeys } from '../../common/redis/index.js';
import { redisFromConfig } from '../../common/redis/options.js';
import { ProbeMetrics, type SkipReason } from './metrics.js';
import { sidecarOptions } from './options.js';
import { probeOnce, type ProbeResult, type ProbeTarget } from './probe.js';

/** One probe, then its result where the locator reads it (the registry) and on /metrics. */
export async function probeAndPublish(deps: {
  target: ProbeTarget;
  gatewayId: string;
  redis: PgRedis;
  keys: RedisKeys;
  metrics: ProbeMetrics;
  log: Logger;
}): Promise<ProbeResult> {
  const result = await probeOnce(deps.target);
  deps.metrics.observe(result);
  if (result.ok) deps.log.debug({ latencyMs: result.latencyMs, connectMs: result.connectMs }, 'probe ok');
  else deps.log.warn({ step: result.step, error: result.error }, 'probe failed');
  try {
    await recordProbeResult(
      deps.redis,
      deps.keys,
      deps.gatewayId,
      result.ok,
      result.ok ? result.latencyMs : 0,
    );
  } catch (err) {
    deps.log.warn({ err }, 'could not record the probe result in the registry');
  }
  return result;
}

/**
 * Why this round probes nothing, or undefined to probe. Only a gateway the locator hands out
 * (registered, ready, not draining) is probed: a gateway still starting (its sidecar often
 * starts first), recovering or draining refuses devices by design, and a failure recorded then
 * stayed in the 50-probe window and kept a healthy new gateway ranked behind every other region
 * for the next ten probes (about 50 s).
 */
export async function skipReason(
  redis: PgRedis,
  keys: RedisKeys,
  gatewayId: string,
): Promise<SkipReason | undefined> {
  try {
    const rec = await readGateway(redis, keys, gatewayId);
    if (!rec) return 'unregistered';
    if (rec.draining) return 'draining';
    if (!rec.ready) return 'not_ready';
    return undefined;
  } catch {
    return 'registry_unreadable';
  }
}

export const sidecarCommand = defineCommand({
  name: 'sidecar',
  summary:
    'Probe the gateway beside it as a device would (connect, hello, push to itself) and publish success rate and latency for the locator.',
  options: sidecarOptions,
  async run(config, log) {
    const gatewayId = config.gatewayId ?? `${config.namespace}.${config.podName}`;
    const target: ProbeTarget = {
      gatewayUrl: config.gatewayUrl ?? `http://127.0.0.1:${config.gatewayPort}`,
      app: config.probeApp,
      secret: config.probeSecret,
      device: config.probeDevice ?? `probe-${config.podName}`.slice(0, 128),
      timeoutMs: config.timeoutMs,
    };
    const { redis, keys } = redisFromConfig(config, `sidecar:${gatewayId}`);
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
    const metrics = new ProbeMetrics({ gateway: gatewayId });

    const server = http.createServer((req, res) => {
      if (req.url === '/metrics') {
        metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.registry.contentType });
            res.end(text);
          },
          () => {
            res.writeHead(500);
            res.end();
          },
        );
      } else if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: true, ...metrics.summary() }));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, resolve);
    });
    const address = server.address();
    log.info(
      {
        gatewayId,
        gatewayUrl: target.gatewayUrl,
        port: typeof address === 'object' && address ? address.port : config.port,
      },
      'sidecar probing',
    );

    // Until SIGTERM/SIGINT: one pass, then sleep the interval (cut short by the signal).
    const stop = new AbortController();
    void untilSignal().then(() => stop.abort());
    let lastSkip: SkipReason | undefined;
    while (!stop.signal.aborted) {
      const skip = await skipReason(redis, keys, gatewayId);
      if (skip) {
        metrics.skipped(skip);
        if (skip !== lastSkip)
          log.info({ reason: skip }, 'not probing: the locator does not hand this gateway out');
      } else {
        if (lastSkip) log.info('gateway registered and ready; probing');
        await probeAndPublish({ target, gatewayId, redis, keys, metrics, log });
      }
      lastSkip = skip;
      await sleep(config.intervalSeconds * 1000, undefined, { signal: stop.signal }).catch(() => undefined);
    }
    server.close();
    redis.disconnect();
    log.info('sidecar stopped');
  },
});
