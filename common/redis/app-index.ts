import type { PgRedis } from './connection.js';
import type { RedisKeys } from './keys.js';

/**
 * The per-app indexes: every registered device, devices per tag, devices per alias. Kept current
 * by the gateway as devices connect (hello), change tags/alias (update) and leave (bye); scores
 * are last-seen times, so readers (campaigns) can skip devices not seen for a long time.
 * The device's own copy of its tags/alias lives in its meta hash (a different slot), written
 * first; index writes that follow are idempotent set operations. Reading them to resolve a push
 * target is common/push/target.ts.
 */
export interface DeviceRegistration {
  tags: string[];
  alias: string | null;
}

export async function indexDevice(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  now: DeviceRegistration,
  before: Partial<DeviceRegistration> = {},
  seenAt = Date.now(),
  /** False when the caller already wrote tags/alias to the device's meta hash (pgClaim does). */
  writeMeta = true,
): Promise<void> {
  const oldTags = new Set(before.tags ?? []);
  const newTags = new Set(now.tags);
  if (writeMeta)
    await redis.hset(
      keys.deviceMeta(app, device),
      'tags',
      JSON.stringify(now.tags),
      'alias',
      now.alias ?? '',
    );
  const p = redis.pipeline();
  p.zadd(keys.appDevices(app), seenAt, device);
  for (const t of newTags) {
    p.zadd(keys.tagDevices(app, t), seenAt, device);
    if (!oldTags.has(t)) p.zincrby(keys.appTags(app), 1, t);
  }
  for (const t of oldTags) {
    if (newTags.has(t)) continue;
    p.zrem(keys.tagDevices(app, t), device);
    p.zincrby(keys.appTags(app), -1, t);
  }
  if (before.alias && before.alias !== now.alias) p.srem(keys.aliasDevices(app, before.alias), device);
  if (now.alias) p.sadd(keys.aliasDevices(app, now.alias), device);
  await p.exec();
}

/** Touch last-seen in the app and tag indexes (on disconnect). */
export async function touchDevice(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  tags: string[],
  seenAt = Date.now(),
) {
  const p = redis.pipeline();
  p.zadd(keys.appDevices(app), 'XX', seenAt, device);
  for (const t of tags) p.zadd(keys.tagDevices(app, t), 'XX', seenAt, device);
  await p.exec();
}

/** Remove a device from every index of its app (the device said `bye`). Its inbox stays until TTL. */
export async function forgetDevice(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  reg: DeviceRegistration,
) {
  const p = redis.pipeline();
  p.zrem(keys.appDevices(app), device);
  for (const t of reg.tags) {
    p.zrem(keys.tagDevices(app, t), device);
    p.zincrby(keys.appTags(app), -1, t);
  }
  if (reg.alias) p.srem(keys.aliasDevices(app, reg.alias), device);
  await p.exec(); // one slot ({app}); the device's meta is in its bucket's slot
  await redis.hdel(keys.deviceMeta(app, device), 'tags', 'alias');
}
