import { zoneFromFile } from '../common/topology.js';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { createFastify } from '../common/fastify.js';
import type { Logger } from '../common/logger.js';
import { DEVICE_PATH } from '../common/protocol/frames.js';
import { createSubscriber, type PgRedis } from '../common/redis/connection.js';
import type { RedisKeys } from '../common/redis/keys.js';
import { isStorageUnavailable, StorageHealth } from '../common/redis/availability.js';
import { redisFromConfig } from '../common/redis/options.js';
import {
  claimGatewayId,
  GATEWAY_RECORD_TTL_MS,
  listGateways,
  probeStats,
  registerGateway,
  swapWitness,
  unregisterGateway,
} from '../common/redis/registry.js';
import { loadApps } from './apps.js';
import { drainPlan } from './drain.js';
import { heartbeatPolicy } from './heartbeat.js';
import { DeviceHub } from './hub/hub.js';
import { redisDeviceStore } from './hub/store.js';
import { rankGateways, registerLocateRoute } from './locator.js';
import { createGatewayMetrics, pushObserver } from './metrics.js';
import { defaultGatewayId, type GatewayConfig } from './options.js';
import { registerPushApi } from './push-api.js';
import { PushAcceptor, PublishRouter, type RouteFn } from '../common/push/index.js';
import { AppRateLimiter } from '../common/ratelimit/app-limiter.js';
import { countCampaignDelivery } from '../common/campaign/plan.js';
import { deferredStats } from '../common/ratelimit/app-limit.js';
import { parseChannelMessage, publishToGateway, type ChannelMessage } from '../common/redis/delivery.js';

export interface Gateway {
  id: string;
  app: FastifyInstance;
  hub: DeviceHub;
  redis: PgRedis;
  keys: RedisKeys;
  /** Listening address, after listen(). */
  address(): AddressInfo;
  listen(): Promise<void>;
  /** SIGTERM: readiness off, refuse new devices, close existing ones at the drain rate. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

export function createGateway(config: GatewayConfig, log: Logger): Gateway {
  const apps = loadApps({ file: config.appsFile, inline: config.apps });
  if (apps.size === 0)
    log.warn('no apps configured (--apps-file / PUSHGATE_APPS): every device will be refused');
  const secretOf = (app: string) => apps.get(app);
  const id = config.gatewayId ?? defaultGatewayId(config);
  // This process, as the holder of `id` in the registry (see claimGatewayId).
  const instance = randomBytes(8).toString('hex');
  const { redis, keys } = redisFromConfig(config, `gateway:${id}`);
  const subscriber = createSubscriber(config.redisUrl, {
    name: `gateway-sub:${id}`,
    cluster: config.redisCluster,
  });
  const metrics = createGatewayMetrics({ gateway: id, region: config.region });
  const policy = heartbeatPolicy({
    minMs: config.heartbeatMinMs,
    maxMs: config.heartbeatMaxMs,
    initialMs: config.heartbeatInitialMs,
  });
  // Device keys outlive the longest TTL, so a stored message is never lost to key expiry.
  const keyTtlMs = (config.maxTtlSeconds + 24 * 3600) * 1000;
  let ready = false;
  let draining = false;
  let advertised = config.advertiseUrl ?? '';

  /** Redis health as the health check below sees it (readiness, and the push API's fast 503). */
  const storage = new StorageHealth(1500); // a backstop: the health check below fails sooner
  const hub = new DeviceHub(
    redisDeviceStore(redis, keys, keyTtlMs, config.maxTagsPerApp),
    metrics,
    {
      gatewayId: id,
      // Pushes written and acked: the ack timeouts of adaptive throttling (the limiter is built
      // below; nothing is delivered before the server listens).
      deliveryWatch: {
        sent: (app, device, msg) => limiter.adaptive.sent(app, device, msg),
        acked: (app, device, ids) => limiter.adaptive.acked(app, device, ids),
      },
      maxConnections: config.maxConnections,
      acceptRate: config.acceptRate,
      helloTimeoutMs: config.helloTimeoutMs,
      maxPendingHandshakes: config.maxPendingHandshakes,
      maxPendingHandshakesPerAddress: config.maxPendingHandshakesPerAddress,
      sendBufferBytes: config.sendBufferBytes,
      frameRate: config.frameRate,
      tagUpdatesPerMinute: config.tagUpdatesPerMinute,
      heartbeat: policy,
      secretOf,
      // Campaign attribution: counted only while the campaign's progress exists (a deleted
      // campaign's progress is not created again).
      countCampaign: (campaign, counter, n) => countCampaignDelivery(redis, keys, campaign, counter, n),
      drainHint: async () => {
        const others = (await listGateways(redis, keys)).filter((g) => g.id !== id);
        const probes = await probeStats(
          redis,
          keys,
          others.map((g) => g.id),
        );
        return rankGateways(others, probes, {
          device: id,
          region: config.region,
          now: Date.now(),
          limit: 3,
        }).map((r) => r.record.endpoint);
      },
    },
    log.child({ part: 'hub' }),
  );

  const publish = (gateway: string, msg: ChannelMessage) => {
    publishToGateway(redis, keys, gateway, msg).catch((err: unknown) =>
      log.warn({ err, gateway }, 'publish failed'),
    );
  };
  hub.kickRemote = (gateway, app, device, sess) => publish(gateway, { k: [[app, device, sess]] });
  // Other gateways' devices are reached over their channels (lost notifications are counted
  // and swept by the router); this gateway's own devices in-process.
  const observer = pushObserver(metrics, log.child({ part: 'push' }));
  const router = new PublishRouter(redis, keys, observer);
  const route: RouteFn = (gateway, deliveries) => {
    if (gateway === id)
      for (const [app, device, seq, sent, body] of deliveries) hub.deliver(app, device, seq, body, sent);
    else router.route(gateway, deliveries);
  };
  // RateLimitPolicy limits: read from Redis (published by the operator); deferred messages are
  // released by every gateway's releaser through the same store-then-route step.
  const throttledReason = new Map<string, string>();
  const limiter = new AppRateLimiter(
    redis,
    keys,
    async (app, devices, message) => void (await push.storeReleased(app, devices, message)),
    {
      deferred: (app, n) => metrics.rateLimited.inc({ app, outcome: 'deferred' }, n),
      released: (app, n) => metrics.rateLimited.inc({ app, outcome: 'released' }, n),
      expired: (app, n) => metrics.rateLimited.inc({ app, outcome: 'expired' }, n),
      refused: (app) => metrics.rateLimited.inc({ app, outcome: 'refused' }),
      capped: (app, n) => metrics.rateLimited.inc({ app, outcome: 'capped' }, n),
      capRefused: (app, n) => metrics.rateLimited.inc({ app, outcome: 'cap_refused' }, n),
      adaptive: (app, factor, reason) => {
        const before = throttledReason.get(app);
        if (before !== undefined && before !== reason)
          metrics.rateLimitThrottled.remove({ app, reason: before });
        throttledReason.set(app, reason);
        metrics.rateLimitThrottled.set({ app, reason }, factor);
      },
    },
    log.child({ part: 'ratelimit' }),
    { owner: `${id}.${instance}`, ackTimeoutMs: config.ackTimeoutMs, knownApps: () => apps.keys() },
  );
  const push: PushAcceptor = new PushAcceptor(
    redis,
    keys,
    { maxInbox: config.maxInbox, keyTtlMs, maxRecipients: config.maxRecipients },
    route,
    observer,
    log.child({ part: 'push' }),
    limiter,
  );

  let subscribedOnce = false;
  subscriber.on('message', (_channel: string, text: string) => {
    const msg = parseChannelMessage(text);
    if (!msg) return;
    for (const [app, device, seq, sent, body] of msg.d ?? []) hub.deliver(app, device, seq, body, sent);
    for (const [app, device, sess] of msg.k ?? []) hub.kick(app, device, sess);
    for (const [app, device] of msg.r ?? []) hub.resyncDevice(app, device);
  });
  subscriber.on('ready', () => {
    if (subscribedOnce) {
      log.info('routing channel re-subscribed; replaying inboxes of connected devices');
      hub.resyncAll();
    }
  });
  subscriber.on('error', (err) => log.warn({ err: err.message }, 'redis subscriber error'));
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));

  if (Boolean(config.tlsCertFile) !== Boolean(config.tlsKeyFile))
    throw new Error('--tls-cert-file and --tls-key-file go together');
  const tls =
    config.tlsCertFile && config.tlsKeyFile
      ? { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile) }
      : undefined;
  const app = createFastify({
    bodyLimit: 64 * 1024,
    serverFactory: (handler) => {
      const timeouts = {
        // A client that never finishes its HTTP/upgrade headers is cut off (slow upgrades).
        headersTimeout: config.upgradeTimeoutMs,
        requestTimeout: 30_000,
        connectionsCheckingInterval: Math.min(1000, config.upgradeTimeoutMs),
      };
      if (tls) return https.createServer({ ...timeouts, ...tls }, handler) as unknown as http.Server;
      return http.createServer(timeouts, handler);
    },
  });
  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, _req, reply) => {
    if (isStorageUnavailable(err)) {
      // Nothing was accepted: the caller retries (with its Idempotency-Key) after the hint.
      log.warn({ err: err.message }, 'storage unavailable; answered 503');
      void reply
        .code(503)
        .header('retry-after', '1')
        .send({ error: 'storage_unavailable', message: `storage unavailable (${err.message}); retry` });
      return;
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) log.error({ err }, 'request failed');
    const error =
      status === 413
        ? 'too_large'
        : status === 415
          ? 'unsupported_media_type'
          : status === 500
            ? 'internal'
            : 'bad_request';
    void reply.code(status).send({ error, message: status === 500 ? 'internal error' : err.message });
  });
  app.setNotFoundHandler(
    (req, reply) =>
      void reply
        .code(404)
        .send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` }),
  );
  app.server.on('upgrade', (req, socket, head) => hub.handleUpgrade(req, socket, head));
  // Health on every port; /metrics on the metrics port when there is one (spec.ports.metrics:
  // the device port is public, the metrics port is not), else on the device port.
  const opsRoutes = (server: FastifyInstance, withMetrics: boolean) => {
    server.get('/healthz', async () => ({ ok: true }));
    server.get('/readyz', async (_req, reply) => {
      const ok = ready && !draining && !idLost && redisHealthy();
      return reply.code(ok ? 200 : 503).send({ ready: ok, draining, connections: hub.connectionCount });
    });
    if (withMetrics)
      server.get('/metrics', async (_req, reply) => {
        reply.header('content-type', metrics.registry.contentType);
        // Per-app limit figures are read at scrape time (16 shards x 3 reads per limited app).
        metrics.rateLimitEffective.reset();
        metrics.rateLimitDeferredDepth.reset();
        metrics.rateLimitDeferredAge.reset();
        for (const a of limiter.configs.apps()) {
          metrics.rateLimitEffective.set({ app: a }, limiter.configs.get(a)?.ratePerSecond ?? 0);
          const st = await deferredStats(redis, keys, a).catch(() => undefined);
          if (st) {
            metrics.rateLimitDeferredDepth.set({ app: a }, st.depth);
            metrics.rateLimitDeferredAge.set({ app: a }, st.oldestAgeSeconds);
          }
        }
        return metrics.registry.metrics();
      });
  };
  const separateMetrics = config.metricsPort !== 0 && config.metricsPort !== config.port;
  const ops = separateMetrics ? createFastify() : undefined;
  if (ops) opsRoutes(ops, true);
  opsRoutes(app, !separateMetrics);
  registerPushApi(app, {
    redis,
    keys,
    push,
    secretOf,
    metrics,
    maxTtlSeconds: config.maxTtlSeconds,
    storage,
  });
  const appIds = new Set(apps.keys());
  registerLocateRoute(app, redis, keys);

  // Set when another instance holds our id at a refresh (it took over while this process was
  // frozen longer than a refresh period): not ready, so the locator stops sending devices here.
  let idLost = false;
  const zone = zoneFromFile(config.zoneFile, config.zone);
  const record = () => ({
    id,
    podName: config.podName,
    namespace: config.namespace,
    region: config.region,
    zone,
    endpoint: advertised,
    connections: hub.connectionCount,
    maxConnections: config.maxConnections,
    ready: ready && !draining && !idLost,
    draining,
    updatedAt: Date.now(),
  });
  const register = () =>
    registerGateway(redis, keys, record(), GATEWAY_RECORD_TTL_MS, { instance }).then(
      (r) => {
        if (!r.ok && !idLost)
          log.error({ id, holder: r.holder }, 'gateway id taken over by another instance; not ready');
        idLost = !r.ok;
      },
      (err: unknown) => log.warn({ err }, 'registry refresh failed'),
    );
  let registryTimer: NodeJS.Timeout | undefined;

  // ---------------------------------------------------------------- Redis health and state
  // Every HEALTH_INTERVAL_MS the gateway swaps its witness key. Answered within HEALTH_TIMEOUT_MS:
  // Redis is healthy. So a frozen Redis is judged within interval + timeout (1.25 s) of its last
  // answer, and push requests waiting on it are answered 503 then; a connection that closes (a
  // killed or restarted Redis, a reset) is judged at once. The value found is not
  // the one written last (missing: emptied; older: rewound) or Redis has a new run id after a
  // reconnect (restarted, failed over): Redis may have lost presence and index entries of the
  // devices held here, and seqs may have gone back, so every session writes them back and
  // replays its inbox; readiness stays false until that is done.
  const HEALTH_INTERVAL_MS = 250;
  const HEALTH_TIMEOUT_MS = 1000;
  let witnessSeq = 0;
  /** Values this process wrote that Redis may hold: the last confirmed one and any unconfirmed since. */
  let witnesses: string[] = [];
  let recovering = false;
  let recoverAgain = false;
  let runId = '';
  const redisHealthy = () => storage.healthy();
  const recover = async (reason: string) => {
    if (recovering) return void (recoverAgain = true);
    recovering = true;
    metrics.redisStateLost.inc({ reason });
    log.warn(
      { reason, devices: hub.connectionCount },
      'redis lost or rewound state: writing back presence, tags and aliases of connected devices; not ready meanwhile',
    );
    try {
      for (let attempt = 0; ; attempt++) {
        recoverAgain = false;
        const { sessions, failed } = await hub.reassertAll();
        if (!failed && !recoverAgain) {
          log.info({ reason, sessions }, 'redis state reasserted');
          break;
        }
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
      await register();
    } finally {
      recovering = false;
    }
  };
  // The health check has its own connection: on the command connection it queued behind a large
  // fan-out's pipeline (about a thousand script calls for 10k devices) and took >1 s on a healthy
  // Redis, so a big push turned the gateway unready and answered 503. On its own connection it
  // waits for at most the one script Redis is running, and a frozen or dead Redis still fails it.
  const healthRedis = redis.duplicate();
  healthRedis.on('error', (err) => log.debug({ err: err.message }, 'redis health connection error'));
  // A closed connection needs no deadline: nothing sent on it is answered until it is back, and
  // the next check after the reconnect says healthy again.
  for (const conn of [redis, healthRedis])
    conn.on('close', () => {
      if (storage.healthy()) log.warn('redis connection closed; unhealthy until a check is answered');
      storage.failed('connection closed');
    });
  const checkRedis = async () => {
    const next = `${instance}:${++witnessSeq}`;
    witnesses.push(next);
    let timer: NodeJS.Timeout | undefined;
    try {
      const found = await Promise.race([
        swapWitness(healthRedis, keys, id, next, 10 * 60_000),
        new Promise<never>((_, reject) => {
          // Read first, judge later. After a stall of this process the deadline fires before the
          // answer already waiting in the socket is read (timers run before I/O): then it waits
          // one more timeout instead of failing. On time, it still lets the I/O phase run once.
          const dueAt = Date.now() + HEALTH_TIMEOUT_MS;
          const expire = () => {
            if (Date.now() - dueAt > HEALTH_TIMEOUT_MS && !waitedOut) {
              waitedOut = true;
              timer = setTimeout(expire, HEALTH_TIMEOUT_MS);
              return;
            }
            setImmediate(() => reject(new Error(`no answer within ${HEALTH_TIMEOUT_MS} ms`)));
          };
          let waitedOut = false;
          timer = setTimeout(expire, HEALTH_TIMEOUT_MS);
        }),
      ]);
      storage.ok();
      const lost = witnesses.length > 1 && !witnesses.includes(found);
      witnesses = [next];
      if (lost) await recover(found ? 'rewound' : 'emptied');
    } catch (err) {
      // Unhealthy: readiness false, push requests answered 503 at once and in-flight ones cut
      // short. `next` may still have been written (it stays in `witnesses`).
      if (storage.healthy()) log.warn({ err: (err as Error).message }, 'redis unhealthy');
      storage.failed((err as Error).message);
    } finally {
      clearTimeout(timer);
    }
  };
  redis.on('ready', () => {
    if (config.redisCluster) return;
    (redis as Redis)
      .info('server')
      .then((info) => {
        const now = /run_id:(\w+)/.exec(info)?.[1] ?? '';
        const before = runId;
        runId = now;
        if (before && now && before !== now) void recover('restarted');
      })
      .catch(() => {});
  });
  let healthTimer: NodeJS.Timeout | undefined;

  const gateway: Gateway = {
    id,
    app,
    hub,
    redis,
    keys,
    address: () => app.server.address() as AddressInfo,
    async listen() {
      await subscriber.subscribe(keys.gatewayChannel(id));
      subscribedOnce = true;
      await app.listen({ port: config.port, host: config.host });
      await ops?.listen({ port: config.metricsPort, host: config.host });
      const addr = gateway.address();
      if (!advertised) advertised = defaultAdvertisedUrl(config.podIp, config.host, addr.port);
      try {
        await claimGatewayId(redis, keys, record, instance);
      } catch (err) {
        await gateway.close();
        throw err;
      }
      await checkRedis();
      let lastCheckAt = Date.now();
      healthTimer = setInterval(() => {
        const now = Date.now();
        const gap = now - lastCheckAt - HEALTH_INTERVAL_MS;
        lastCheckAt = now;
        if (gap > HEALTH_TIMEOUT_MS) storage.stalled(gap); // this process stalled, not Redis
        void checkRedis();
      }, HEALTH_INTERVAL_MS);
      healthTimer.unref();
      await limiter.start();
      ready = true;
      await register();
      registryTimer = setInterval(register, Math.min(config.registryIntervalMs, GATEWAY_RECORD_TTL_MS / 3));
      registryTimer.unref();
      log.info(
        {
          id,
          port: addr.port,
          metricsPort: ops ? config.metricsPort : addr.port,
          endpoint: advertised,
          apps: appIds.size,
        },
        'gateway listening',
      );
    },
    async drain() {
      if (draining) return;
      draining = true;
      metrics.draining.set(1);
      await register();
      await hub.startDrain();
      const plan = drainPlan(hub.connectionCount, config.drainRate, config.drainGraceMs);
      log.info({ connections: hub.connectionCount, ticks: plan.length }, 'draining');
      for (const n of plan) {
        hub.closeSome(n);
        await new Promise((r) => setTimeout(r, 100));
      }
      hub.closeSome(Number.MAX_SAFE_INTEGER);
      await hub.whenEmpty(5000);
      log.info('drained');
    },
    async close() {
      ready = false;
      if (registryTimer) clearInterval(registryTimer);
      if (healthTimer) clearInterval(healthTimer);
      hub.terminateAll();
      hub.close();
      router.close();
      await app.close().catch(() => {});
      await ops?.close().catch(() => {});
      await limiter.stop();
      await unregisterGateway(redis, keys, id, instance).catch(() => {});
      await redis.del(keys.gatewayWitness(id)).catch(() => {});
      subscriber.disconnect();
      await redis.quit().catch(() => redis.disconnect());
      healthRedis.disconnect(); // nothing to flush: it only ever checks
    },
  };
  return gateway;
}

/**
 * Where devices reach this gateway when --advertise-url is not given: the pod's IP in a pod
 * (a listen address of 0.0.0.0 means nothing to a device elsewhere), else the listen host.
 */
export function defaultAdvertisedUrl(podIp: string | undefined, host: string, port: number): string {
  const h = podIp || (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
  return `ws://${h.includes(':') ? `[${h}]` : h}:${port}${DEVICE_PATH}`;
}
