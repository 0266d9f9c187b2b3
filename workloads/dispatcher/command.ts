import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { defineCommand, untilSignal } from '../../cli/command.js';
import { ProbeServer } from '../../common/probe-server.js';
import { PublishRouter, PushAcceptor } from '../../common/push/index.js';
import { AppRateLimiter } from '../../common/ratelimit/app-limiter.js';
import { redisFromConfig } from '../../common/redis/options.js';
import { Dispatcher, systemClock, type Clock } from './dispatcher.js';
import { DispatcherMetrics } from './metrics.js';
import { dispatcherOptions } from './options.js';

/**
 * For tests only, not a flag: PUSHGATE_TEST_CLOCK_KEY names a Redis key holding an offset (ms)
 * added to this process's clock for schedule decisions (startAt, deadline, quiet hours); the
 * dispatcher rereads it every pass, so a test moves the time of day while a campaign runs.
 */
const TEST_CLOCK_ENV = 'PUSHGATE_TEST_CLOCK_KEY';

export const dispatcherCommand = defineCommand({
  name: 'dispatcher',
  summary:
    'Campaign dispatcher: sends each published TagCampaign to its audience snapshot at its rate, through the push acceptance path; replicas share the work by device bucket.',
  options: dispatcherOptions,
  async run(config, log) {
    const owner = `${os.hostname()}.${process.pid}.${randomBytes(4).toString('hex')}`;
    const { redis, keys } = redisFromConfig(config, `dispatcher:${owner}`);
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
    const metrics = new DispatcherMetrics();
    const router = new PublishRouter(redis, keys, metrics.pushObserver());
    const keyTtlMs = (config.maxTtlSeconds + 24 * 3600) * 1000;
    // The app's RateLimitPolicy limit applies to campaigns as to the push API: admission on
    // every page, and this process releases its share of deferred messages like a gateway.
    const limiter = new AppRateLimiter(
      redis,
      keys,
      async (app, devices, message) => void (await push.storeReleased(app, devices, message)),
      metrics.appLimitObserver(),
      log.child({ part: 'ratelimit' }),
      { owner },
    );
    const push: PushAcceptor = new PushAcceptor(
      redis,
      keys,
      { maxInbox: config.maxInbox, keyTtlMs, maxRecipients: Number.MAX_SAFE_INTEGER },
      router.route,
      metrics.pushObserver(),
      log.child({ part: 'push' }),
      limiter,
    );

    let offset = 0;
    const clockKey = process.env[TEST_CLOCK_ENV];
    const clock: Clock = clockKey ? { now: () => Date.now() + offset } : systemClock;
    const beforeTick = clockKey
      ? async () => {
          offset = Number((await redis.get(clockKey)) ?? 0) || 0;
        }
      : undefined;
    if (clockKey)
      log.warn({ key: clockKey }, 'test clock in use (schedule decisions read their offset from Redis)');

    const dispatcher = new Dispatcher(
      redis,
      keys,
      push,
      metrics,
      clock,
      {
        owner,
        leaseMs: config.leaseMs,
        pollMs: config.pollMs,
        concurrency: config.concurrency,
        batchMs: config.batchMs,
        gcIntervalMs: config.gcIntervalMs,
      },
      log.child({ part: 'dispatcher' }),
      beforeTick,
    );

    // The operator runtime's probe server: /metrics, /healthz (alive), /readyz (Redis connected).
    const server = new ProbeServer({
      host: config.host,
      port: config.port,
      registry: metrics.registry,
      // Alive while passes over the plans complete (a wedged loop is restarted; a Redis outage
      // is not a reason: passes fail fast with the command timeout and the loop goes on).
      healthy: () => Date.now() - dispatcher.lastPassAt < 60_000 + 2 * config.redisCommandTimeoutMs,
      ready: () => redis.status === 'ready',
    });
    const port = await server.listen();
    await limiter.start();
    dispatcher.start();
    log.info({ owner, port }, 'dispatcher listening');

    await untilSignal();
    log.info('dispatcher stopping: finishing batches, giving leases back');
    await dispatcher.stop();
    await limiter.stop();
    await server.close();
    await redis.quit();
    log.info('dispatcher stopped');
  },
});
