import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineCommand, untilSignal } from '../../cli/command.js';
import { gatewayOptions } from '../../gateway/options.js';
import { opt } from '../../common/config.js';
import type { Logger } from '../../common/logger.js';
import { recordProbeResult, type PgRedis, type RedisKeys } from '../../common/redis/index.js';
import { redisFromConfig, redisOptions } from '../../common/redis/options.js';
import { ProbeMetrics } from './metrics.js';
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

export const sidecarCommand = defineCommand({
  name: 'sidecar',
  summary:
    'Probe the gateway beside it as a device would (connect, hello, push to itself) and publish success rate and latency for the locator.',
  options: {
    gatewayPort: {
      schema: opt.port(8080),
      env: 'PUSHGATE_PORT',
      description:
        "Port of the gateway in the same pod: the gateway's own PUSHGATE_PORT, which both containers read from the pod's ConfigMap.",
    },
    gatewayUrl: {
      schema: z.url({ protocol: /^https?$/ }).optional(),
      description:
        'HTTP base URL of the gateway (WebSocket and push API); default http://127.0.0.1:<gateway port>.',
    },
    // The gateway's own specs: the same flags and variables (the pod sets them once for both).
    ...redisOptions,
    podName: gatewayOptions.podName,
    namespace: gatewayOptions.namespace,
    gatewayId: gatewayOptions.gatewayId,
    probeApp: {
      schema: z.string().min(1).default('pushgate-probe'),
      description:
        'App id the probe device belongs to; the gateway must know it (its own app, never a real one).',
    },
    probeSecret: {
      schema: z.string().min(16, 'at least 16 characters (the gateway refuses shorter app secrets)'),
      secret: true,
      description: 'Secret of the probe app (signs the probe device token, authenticates its push).',
    },
    probeDevice: {
      schema: z
        .string()
        .regex(/^[A-Za-z0-9._:@-]{1,128}$/)
        .optional(),
      description: 'Device id of the probe (default: probe-<pod name>).',
    },
    intervalSeconds: { schema: opt.duration(5), description: 'Seconds between probes.' },
    timeoutMs: {
      schema: opt.positiveInt(3000),
      description: 'A probe that has not completed by then failed.',
    },
    // Own variables: the pod's ConfigMap sets PUSHGATE_PORT for the gateway, which shares the
    // network namespace; reading it here would make both listen on one port.
    port: {
      schema: opt.port(9091),
      env: 'PUSHGATE_SIDECAR_PORT',
      description: 'Port of /metrics and /healthz.',
    },
    host: { schema: opt.host(), env: 'PUSHGATE_SIDECAR_HOST', description: 'Address to listen on.' },
  },
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
    while (!stop.signal.aborted) {
      await probeAndPublish({ target, gatewayId, redis, keys, metrics, log });
      await sleep(config.intervalSeconds * 1000, undefined, { signal: stop.signal }).catch(() => undefined);
    }
    server.close();
    redis.disconnect();
    log.info('sidecar stopped');
  },
});
