import type { PgRedis } from './connection.js';
import type { RedisKeys } from './keys.js';

/**
 * The per-app indexes: every registered device, devices per tag, devices per alias. Kept current
 * by the gateway as devices connect (hello), change tags/alias (update) and leave (bye); scores
 * are last-seen times, so readers (campaigns) can skip devices not seen for a long time.
 * The device's own copy of its tags/alias lives in its meta hash (a different slot), written
 * after the indexes, so a change the indexes refuse (the app's tag cap) leaves it as it was.
 * Reading them to resolve a push target is common/push/target.ts.
 */
export interface DeviceRegistration {
  tags: string[];
  alias: string | null;
}

/** The app already has `limit` distinct tags; a device asked for tags beyond them. */
export class TagLimitError extends Error {
  override name = 'TagLimitError';
  constructor(public readonly limit: number) {
    super(`the app has reached its limit of ${limit} distinct tags`);
  }
}

/**
 * One atomic change of a device's registration in its app's indexes (all keys in the app's
 * slot). KEYS: appDevices, appTags, then one tag key per tag name in ARGV order, then the old
 * alias key (when it is left) and the new alias key (when it is set). ARGV: device, seenAt,
 * cap (0 = none), forget (1: leave the app), nAdd, nRemove, nKeep, aliasOut, aliasIn, tag names
 * (added, removed, kept). The per-app tag counts drop tags that no device carries any more, and
 * the cap counts distinct tags, so the index is bounded by the cap, not by what devices once
 * sent. Returns 0 (nothing written) when added tags would take the app over its cap.
 */
const indexLua = `
local device, seenAt, cap, forget = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local nAdd, nRemove, nKeep = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local aliasOut, aliasIn = ARGV[8] == '1', ARGV[9] == '1'
local T = 9
if cap > 0 and nAdd > 0 then
  local fresh = 0
  for i = 1, nAdd do
    if not redis.call('ZSCORE', KEYS[2], ARGV[T + i]) then fresh = fresh + 1 end
  end
  if fresh > 0 and redis.call('ZCARD', KEYS[2]) + fresh > cap then return 0 end
end
if forget then redis.call('ZREM', KEYS[1], device) else redis.call('ZADD', KEYS[1], seenAt, device) end
for i = 1, nAdd do
  redis.call('ZADD', KEYS[2 + i], seenAt, device)
  redis.call('ZINCRBY', KEYS[2], 1, ARGV[T + i])
end
for i = nAdd + 1, nAdd + nRemove do
  redis.call('ZREM', KEYS[2 + i], device)
  if tonumber(redis.call('ZINCRBY', KEYS[2], -1, ARGV[T + i])) <= 0 then
    redis.call('ZREM', KEYS[2], ARGV[T + i])
  end
end
for i = nAdd + nRemove + 1, nAdd + nRemove + nKeep do
  redis.call('ZADD', KEYS[2 + i], seenAt, device)
end
local k = 3 + nAdd + nRemove + nKeep
if aliasOut then redis.call('SREM', KEYS[k], device); k = k + 1 end
if aliasIn then redis.call('SADD', KEYS[k], device) end
return 1
`;

async function changeRegistration(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  change: { add: string[]; remove: string[]; keep: string[]; aliasOut?: string; aliasIn?: string },
  seenAt: number,
  maxTagsPerApp: number,
  forget: boolean,
): Promise<void> {
  const tags = [...change.add, ...change.remove, ...change.keep];
  const aliasKeys = [change.aliasOut, change.aliasIn]
    .filter((a): a is string => a !== undefined)
    .map((a) => keys.aliasDevices(app, a));
  const written = await redis.eval(
    indexLua,
    2 + tags.length + aliasKeys.length,
    keys.appDevices(app),
    keys.appTags(app),
    ...tags.map((t) => keys.tagDevices(app, t)),
    ...aliasKeys,
    device,
    seenAt,
    maxTagsPerApp,
    forget ? '1' : '0',
    change.add.length,
    change.remove.length,
    change.keep.length,
    change.aliasOut !== undefined ? '1' : '0',
    change.aliasIn !== undefined ? '1' : '0',
    ...tags,
  );
  if (Number(written) === 0) throw new TagLimitError(maxTagsPerApp);
}

/**
 * Writes a device's tags and alias into its app's indexes (hello, update). With
 * `maxTagsPerApp` > 0, tags that would take the app over that many distinct tags are refused
 * with TagLimitError and nothing changes (the meta hash is written only after the indexes).
 */
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
  maxTagsPerApp = 0,
): Promise<void> {
  const oldTags = new Set(before.tags ?? []);
  const newTags = new Set(now.tags);
  await changeRegistration(
    redis,
    keys,
    app,
    device,
    {
      add: [...newTags].filter((t) => !oldTags.has(t)),
      remove: [...oldTags].filter((t) => !newTags.has(t)),
      keep: [...newTags].filter((t) => oldTags.has(t)),
      aliasOut: before.alias && before.alias !== now.alias ? before.alias : undefined,
      aliasIn: now.alias ?? undefined,
    },
    seenAt,
    maxTagsPerApp,
    false,
  );
  if (writeMeta)
    await redis.hset(
      keys.deviceMeta(app, device),
      'tags',
      JSON.stringify(now.tags),
      'alias',
      now.alias ?? '',
    );
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
  await changeRegistration(
    redis,
    keys,
    app,
    device,
    { add: [], remove: reg.tags, keep: [], aliasOut: reg.alias ?? undefined },
    Date.now(),
    0,
    true,
  );
  await redis.hdel(keys.deviceMeta(app, device), 'tags', 'alias');
}
