/**
 * `npm run bench:storage`: Redis memory per target of one message, its body copied into every
 * inbox (the store before issue 11's "body stored once") beside stored once with a reference
 * per inbox (common/redis/bodies.ts), measured in one run on one Redis, for typical body
 * sizes. Two audiences: devices whose inbox is empty (the store creates the inbox keys) and
 * devices that already hold a message (the marginal cost of one more message).
 *
 * This is a benchmark, not a test: nothing is asserted; report() writes .bench/storage-*.json.
 */
import { z } from 'zod';
import { benchRedis, usedMemory } from './redis.js';
import { parseConfig } from '../../common/config.js';
import { createRedis, type PgRedis } from '../../common/redis/connection.js';
import { deliverMessage } from '../../common/redis/delivery.js';
import { redisKeys } from '../../common/redis/keys.js';
import type { StoredMessage } from '../../common/protocol/server-frames.js';
import { progress, report, type BenchRow } from './report.js';

const options = {
  redisUrl: {
    schema: z.string().default(''),
    description:
      'Redis to use; empty = start one with hack/local-redis (name bench-storage). Another Redis is not flushed: a busy one adds noise.',
  },
  targets: { schema: z.number().int().positive().default(20_000), description: 'Devices per measurement.' },
  bodySizes: {
    schema: z.array(z.coerce.number().int().positive()).default([1024, 2048]),
    description: 'Sizes of the message data (bytes).',
  },
};

/**
 * Bytes of Redis memory per target of one message with `size` bytes of data, stored for
 * `targets` devices (copied or stored once); `existing`: each inbox holds a small message first.
 */
export async function inboxMemoryPerTarget(
  redis: PgRedis,
  opts: { prefix: string; targets: number; size: number; storeOnce: boolean; existing: boolean },
): Promise<number> {
  const keys = redisKeys(opts.prefix);
  const devices = Array.from({ length: opts.targets }, (_, i) => `dev-${i.toString(36)}`);
  const limits = { maxPerDevice: 100, keyTtlMs: 3600_000, route: () => {} };
  const message = (id: string, data: unknown): StoredMessage => ({
    id,
    exp: Date.now() + 3600_000,
    ttl: 3600,
    priority: 'normal',
    sent: Date.now(),
    data,
  });
  // Every device exists (its meta, as after a hello), and with `existing` has a message already.
  const pipe = redis.pipeline();
  for (const d of devices) pipe.hset(keys.deviceMeta('bench', d), 'seen', '1');
  await pipe.exec();
  if (opts.existing)
    await deliverMessage(redis, keys, 'bench', devices, message(`first${opts.prefix}`, 1), {
      ...limits,
      storeOnce: false,
    });
  const before = await usedMemory(redis);
  const id = `m${Date.now().toString(36)}0123456789abcdef`;
  await deliverMessage(redis, keys, 'bench', devices, message(id, { text: 'x'.repeat(opts.size) }), {
    ...limits,
    storeOnce: opts.storeOnce,
  });
  const after = await usedMemory(redis);
  return (after - before) / opts.targets;
}

export default async function bench(argv: string[]) {
  const startedAt = new Date();
  const o = parseConfig(options, argv, {});
  const { url: redisUrl, own } = await benchRedis('bench-storage', o.redisUrl);
  const redis = createRedis(redisUrl);
  const rows: BenchRow[] = [];
  try {
    let run = 0;
    const measure = async (size: number, storeOnce: boolean, existing: boolean) => {
      if (own) await redis.flushall();
      const prefix = `bench-st-${Date.now().toString(36)}-${run++}`;
      const v = await inboxMemoryPerTarget(redis, { prefix, targets: o.targets, size, storeOnce, existing });
      if (!own) {
        const keys = await redis.keys(`${prefix}:*`);
        for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
      }
      return v;
    };
    for (const size of o.bodySizes) {
      for (const existing of [false, true]) {
        const audience = existing ? 'inboxes holding a message' : 'empty inboxes';
        progress(`${size} B body, ${audience}: copied`);
        const copied = await measure(size, false, existing);
        progress(`${size} B body, ${audience}: stored once`);
        const once = await measure(size, true, existing);
        rows.push({
          metric: `Redis memory per target, ${size} B body, ${audience}`,
          unit: 'B',
          value: once,
          baseline: copied,
          baselineName: 'body copied per inbox',
          note: `stored once: ${(copied / once).toFixed(1)}x less; ${o.targets} targets`,
        });
      }
    }
  } finally {
    redis.disconnect();
  }
  report('storage', { targets: o.targets, bodySizes: o.bodySizes }, rows, startedAt);
}
