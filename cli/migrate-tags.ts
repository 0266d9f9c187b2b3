import { z } from 'zod';
import { migrateTagIndex } from '../common/redis/app-index.js';
import { redisFromConfig, redisOptions } from '../common/redis/options.js';
import { defineCommand } from './command.js';

/**
 * One-shot: moves the named apps' legacy one-slot tag sets and device sets (`{app}`) into the
 * per-device-bucket index (common/redis/keys.ts). Idempotent, safe while gateways serve (readers
 * read both until the legacy sets are empty); run it once after upgrading, again at will.
 */
export const migrateTagsCommand = defineCommand({
  name: 'migrate-tags',
  summary: 'Move apps’ tag and device indexes from one slot per app into the device buckets.',
  options: {
    ...redisOptions,
    apps: {
      schema: z.string().regex(/^[^{}]+$/),
      description: 'Comma-separated app ids to migrate.',
    },
  },
  async run(config, log) {
    const { redis, keys } = redisFromConfig(config, 'pushgate-migrate-tags');
    try {
      for (const app of config.apps
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean)) {
        const t0 = Date.now();
        const r = await migrateTagIndex(redis, keys, app);
        log.info({ app, ...r, ms: Date.now() - t0 }, 'tag index migrated');
      }
    } finally {
      redis.disconnect();
    }
  },
});
