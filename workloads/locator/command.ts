import { defineCommand, untilSignal } from '../../cli/command.js';
import { opt } from '../../common/config.js';
import { createFastify } from '../../common/fastify.js';
import { redisFromConfig, redisOptions } from '../../common/redis/options.js';
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
    ...redisOptions,
  },
  async run(config, log) {
    const { redis, keys } = redisFromConfig(config, 'locator');
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
    const app = createFastify();
    registerLocateRoute(app, redis, keys);
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
