import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../common/logger.js';
import type { PushObserver } from '../common/push/observer.js';

/**
 * Gateway metrics (GET /metrics). `pushgate_gateway_connections` is the per-pod gauge the HPA
 * scales on (through prometheus-adapter or the pushgate metrics adapter).
 */
export function createGatewayMetrics(labels: { gateway: string; region: string }) {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, prefix: 'pushgate_gateway_process_' });
  let connectionSource = () => 0;
  return {
    registry,
    /** The gauge reads the live count at scrape time. */
    setConnectionSource(fn: () => number) {
      connectionSource = fn;
    },
    connections: new Gauge({
      name: 'pushgate_gateway_connections',
      help: 'Authenticated device connections held by this gateway pod (the HPA metric).',
      registers: [registry],
      collect() {
        this.set(connectionSource());
      },
    }),
    connects: new Counter({
      name: 'pushgate_gateway_connects_total',
      help: 'Connection attempts by result (accepted, auth_failed, token_expired, overload, rate_limited, draining, hello_timeout, bad_hello).',
      labelNames: ['result'],
      registers: [registry],
    }),
    disconnects: new Counter({
      name: 'pushgate_gateway_disconnects_total',
      help: 'Closed authenticated connections by close code.',
      labelNames: ['code'],
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'pushgate_gateway_deliveries_total',
      help: 'Push frames written to devices, by path (live: routed as accepted; replay: from the offline store).',
      labelNames: ['path'],
      registers: [registry],
    }),
    acks: new Counter({
      name: 'pushgate_gateway_acks_total',
      help: 'Acknowledged message ids, by result (removed, unknown).',
      labelNames: ['result'],
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: 'pushgate_gateway_delivery_latency_seconds',
      help: 'From push API acceptance to the frame written to the device (live path).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    offlineQueue: new Histogram({
      name: 'pushgate_gateway_offline_queue_size',
      help: "A device's inbox size (messages) right after a store.",
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    stored: new Counter({
      name: 'pushgate_gateway_messages_stored_total',
      help: 'Messages stored per device by the push API, by outcome (stored, duplicate, offline_dropped, evicted, collapsed, expired, body_missing: an inbox entry whose shared body was gone from Redis, dropped).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    routeFailures: new Counter({
      name: 'pushgate_gateway_route_failures_total',
      help: 'Notifications to other gateways that could not be published, by what became of them (failed: kept for the sweep; swept: the gateway was told to reread those inboxes; abandoned: over the sweep bound, delivered at the next connect).',
      labelNames: ['result'],
      registers: [registry],
    }),
    backpressure: new Counter({
      name: 'pushgate_gateway_backpressure_events_total',
      help: 'Times a connection hit its send-buffer limit; its pushes stay in the store until it drains.',
      registers: [registry],
    }),
    framesRejected: new Counter({
      name: 'pushgate_gateway_frames_rejected_total',
      help: 'Device frames refused, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    pushRequests: new Counter({
      name: 'pushgate_gateway_push_requests_total',
      help: 'Push API requests by HTTP status.',
      labelNames: ['status'],
      registers: [registry],
    }),
    stalls: new Counter({
      name: 'pushgate_gateway_stalls_total',
      help: 'Event-loop stalls longer than a sweep interval; the stalled time is not counted against devices.',
      registers: [registry],
    }),
    redisStateLost: new Counter({
      name: 'pushgate_redis_state_lost_total',
      help:
        'Times this gateway found that Redis lost or rewound state (emptied, restarted, rewound) and wrote ' +
        'back the presence, tags and aliases of the devices it holds.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    draining: new Gauge({
      name: 'pushgate_gateway_draining',
      help: '1 while the gateway drains.',
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'pushgate_ratelimit_messages_total',
      help: "Recipients of pushes through this gateway's RateLimitPolicy handling, by app and outcome: deferred (held back by the app's limit), released (deferred, stored since by this gateway's releaser), expired (deferred past their TTL), refused (push answered 429: deferred queue full), capped (held by the device's daily cap until the next UTC day: reason DeviceCap), cap_refused (refused by the device's daily cap: the device already holds a day's allowance).",
      labelNames: ['app', 'outcome'],
      registers: [registry],
    }),
    rateLimitEffective: new Gauge({
      name: 'pushgate_ratelimit_effective_rate',
      help: 'Effective per-app rate (messages/s) in force, as published by the operator (after adaptive throttling).',
      labelNames: ['app'],
      registers: [registry],
    }),
    rateLimitThrottled: new Gauge({
      name: 'pushgate_ratelimit_throttled',
      help: 'Adaptive throttling of the app as this gateway last stepped it: the factor of the configured rate in force (1 = not throttled), labelled with the reason (Healthy, ErrorRatio, TimeoutRatio, Recovering, Disabled).',
      labelNames: ['app', 'reason'],
      registers: [registry],
    }),
    rateLimitDeferredDepth: new Gauge({
      name: 'pushgate_ratelimit_deferred_depth',
      help: 'Deferred messages waiting for the app rate limit (all shards, all gateways; read from Redis at scrape).',
      labelNames: ['app'],
      registers: [registry],
    }),
    rateLimitDeferredAge: new Gauge({
      name: 'pushgate_ratelimit_deferred_oldest_age_seconds',
      help: 'Age of the oldest deferred message of the app (read from Redis at scrape).',
      labelNames: ['app'],
      registers: [registry],
    }),
  };
}
export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

/** Push acceptance (common/push) reporting into the gateway's metrics. */
export function pushObserver(metrics: GatewayMetrics, log: Logger): PushObserver {
  const failed = metrics.routeFailures.labels('failed');
  return {
    stored(r) {
      if (r.outcome === 'offline') return metrics.stored.inc({ outcome: 'offline_dropped' });
      metrics.stored.inc({ outcome: r.outcome });
      if (r.outcome === 'stored') metrics.offlineQueue.observe(r.inboxSize);
      if (r.replaced) metrics.stored.inc({ outcome: 'collapsed' });
      if (r.evicted) metrics.stored.inc({ outcome: 'evicted' }, r.evicted);
    },
    routeFailed(gateway, deliveries, err) {
      failed.inc(deliveries);
      log.warn({ err, gateway, deliveries }, 'publish failed; the devices are kept for the sweep');
    },
    routeSwept(gateway, devices) {
      metrics.routeFailures.inc({ result: 'swept' }, devices);
      log.info(
        { gateway, devices },
        'sweep: told the gateway to reread inboxes whose notifications were lost',
      );
    },
    routeAbandoned(gateway, devices) {
      metrics.routeFailures.inc({ result: 'abandoned' }, devices);
      log.warn(
        { gateway, devices },
        'sweep bound reached: these devices get their messages when they next connect',
      );
    },
  };
}
