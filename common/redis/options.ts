import { z } from 'zod';
import { opt, type ConfigOf } from '../config.js';
import { createRedis, type PgRedis } from './connection.js';
import { DEFAULT_KEY_PREFIX, KEY_PREFIX_MAX, KEY_PREFIX_PATTERN, redisKeys, type RedisKeys } from './keys.js';

/**
 * The Redis settings every program that reads or writes pushgate's keys takes, declared once:
 * the same flags and PUSHGATE_* variables everywhere (a pod sets them once for all its
 * containers). Spread into a command's options.
 */
export const redisOptions = {
  redisUrl: {
    schema: opt.redisUrl(),
    description: 'Redis URL (for a cluster: one seed node; its user and password apply to every node).',
  },
  redisCluster: {
    schema: z.boolean().default(false),
    description: 'Treat --redis-url as a seed node of a Redis Cluster.',
  },
  keyPrefix: {
    schema: z.string().max(KEY_PREFIX_MAX).regex(new RegExp(KEY_PREFIX_PATTERN)).default(DEFAULT_KEY_PREFIX),
    description: 'Prefix of every Redis key (one platform per prefix; the same for every program of it).',
  },
  redisCommandTimeoutMs: {
    schema: opt.positiveInt(10_000),
    description:
      'A Redis command without an answer after this long fails (a frozen or unreachable Redis never hangs ' +
      'a caller for good). The gateway answers 503 sooner: its health check (1 s) cuts push requests short.',
  },
} as const;

export type RedisConfig = ConfigOf<typeof redisOptions>;

/** A command connection and the key schema, from the shared options. */
export function redisFromConfig(config: RedisConfig, name: string): { redis: PgRedis; keys: RedisKeys } {
  return {
    redis: createRedis(config.redisUrl, {
      name,
      cluster: config.redisCluster,
      options: { commandTimeout: config.redisCommandTimeoutMs },
    }),
    keys: redisKeys(config.keyPrefix),
  };
}
