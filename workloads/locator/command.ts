import Fastify from 'fastify';
import { z } from 'zod';
import { defineCommand, untilSignal } from '../../cli/command.js';
import { opt } from '../../common/config.js';
import { createRedis } from '../../common/redis/connection.js';
import { redisKeys } from '../../common/redis/keys.js';
import { registerLocateRoute } from '../../gateway/locator.js';

/**
 * `pushgate locator`: the traffic-scheduling service on its own (every gateway also serves the
 * same GET /v1/locate). Stateless: it ranks the gateway registry in Redis per request.
 */
export const locatorCommand = defineCommand({
  name: 'locator',
  summary: 'Locator: ranks gateway endpoints for a device (nearest region, healthy, least loaded).',
  options: {
    port: { schema: opt.port(8081), description: 'HTTP port of GET /v1/locate, /healthz, /readyz.' },
    host: { schema: opt.host(), description: 'Address to listen on.' },
    redisUrl: { schema: opt.redisUrl(), description: 'Redis URL of the gateway registry.' },
    redisCluster: {
      schema: z.boolean().default(false),
      description: 'Treat --redis-url as a Redis Cluster seed.',
    },
    keyPrefix: {
      schema: z
        .string()
        .regex(/^[A-Za-z0-9:_-]+$/)
        .default('pg'),
      description: 'Prefix of every Redis key.',
    },
  },
  async run(config, log) {
    const redis = createRedis(config.redisUrl, { name: 'locator', cluster: config.redisCluster });
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
    const app = Fastify({ logger: false });
    registerLocateRoute(app, redis, redisKeys(config.keyPrefix));
    app.get('/healthz', async () => ({ ok: true }));
    app.get('/readyz', async (_req, reply) =>
      reply.code(redis.status === 'ready' ? 200 : 503).send({ ready: redis.status === 'ready' }),
    );
    await app.listen({ port: config.port, host: config.host });
    log.info({ port: (app.server.address() as { port: number }).port }, 'locator listening');
    await untilSignal();
    await app.close();
    await redis.quit();
  },
});
