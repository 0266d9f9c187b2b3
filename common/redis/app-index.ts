import type { PgRedis } from './connection.js';
import type { RedisKeys } from './keys.js';
import { evaluateTagExpression, parseTagExpression, tagsOf, usesNot } from './tag-expression.js';

/**
 * The per-app indexes: every registered device, devices per tag, devices per alias. Kept current
 * by the gateway as devices connect (hello), change tags/alias (update) and leave (bye); scores
 * are last-seen times, so readers (campaigns) can skip devices not seen for a long time.
 * The device's own copy of its tags/alias lives in its meta hash (a different slot), written
 * first; index writes that follow are idempotent set operations.
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

export type PushTarget = { device: string } | { alias: string } | { tag: string } | { all: true };

export class TooManyRecipientsError extends Error {
  override name = 'TooManyRecipientsError';
  constructor(public readonly limit: number) {
    super(`target matches more than ${limit} devices; use a TagCampaign for larger audiences`);
  }
}

/**
 * The device ids a target names. Single device: itself (registered or not, so a push can wait
 * for a device that has never connected). Alias/tag/all: from the indexes. `limit` caps the
 * audience of one API call (a TagCampaign pages through larger ones).
 */
export async function resolveTarget(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  target: PushTarget,
  limit: number,
): Promise<string[]> {
  const check = (n: number) => {
    if (n > limit) throw new TooManyRecipientsError(limit);
  };
  if ('device' in target) return [target.device];
  if ('alias' in target) {
    const ids = await redis.smembers(keys.aliasDevices(app, target.alias));
    check(ids.length);
    return ids.sort();
  }
  if ('all' in target) {
    check(await redis.zcard(keys.appDevices(app)));
    return redis.zrange(keys.appDevices(app), 0, -1);
  }
  const expr = parseTagExpression(target.tag);
  const tags = [...tagsOf(expr)];
  const p = redis.pipeline();
  for (const t of tags) p.zcard(keys.tagDevices(app, t));
  const sizes = ((await p.exec()) ?? []).map(([, n]) => Number(n));
  const needUniverse = usesNot(expr);
  if (needUniverse) check(await redis.zcard(keys.appDevices(app)));
  for (const n of sizes) check(n);
  const members = new Map<string, Set<string>>();
  for (const t of tags) members.set(t, new Set(await redis.zrange(keys.tagDevices(app, t), 0, -1)));
  const universe = needUniverse
    ? new Set(await redis.zrange(keys.appDevices(app), 0, -1))
    : new Set<string>();
  const out = [...evaluateTagExpression(expr, (t) => members.get(t) ?? new Set(), universe)];
  check(out.length);
  return out.sort();
}
