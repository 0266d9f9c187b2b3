import type { PgRedis } from './connection.js';
import { deviceBucket, type RedisKeys } from './keys.js';

/**
 * The per-app indexes: registered devices and devices per tag (sharded by device bucket, in the
 * device's bucket slot), the tag catalogue and devices per alias (app slot). Kept current
 * by the gateway as devices connect (hello), change tags/alias (update) and leave (bye); scores
 * are last-seen times, so readers (campaigns) can skip devices not seen for a long time.
 * The device's own copy of its tags/alias lives in its meta hash (the bucket's slot), written
 * after the indexes, so a change the indexes refuse (the app's tag cap) leaves it as it was
 * (a hello's claim writes it first; the hello writes it back on a refusal).
 * A change is two scripts: the app-wide catalogue first (it may refuse), then the bucket, which
 * ends by writing the device's index mark (registrationMark): a hello skips the indexes only
 * when the mark names the registration it announces, so a change that failed half way (Redis
 * refused or dropped a write) is written again on the next hello, not taken as done.
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
 * The index mark of a registration (the `ix` field of the device's meta hash, written by the
 * bucket index script once a change is complete): tags sorted, so one registration has one mark.
 */
export function registrationMark(reg: DeviceRegistration): string {
  return JSON.stringify([[...reg.tags].sort(), reg.alias ?? null]);
}

/** The tags of an index mark (none when there is no mark, or it is not one). */
function markedTags(mark: string | undefined): string[] {
  if (!mark) return [];
  try {
    const m: unknown = JSON.parse(mark);
    return Array.isArray(m) && Array.isArray(m[0])
      ? m[0].filter((t): t is string => typeof t === 'string')
      : [];
  } catch {
    return [];
  }
}

async function changeRegistration(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  device: string,
  change: {
    add: string[];
    remove: string[];
    keep: string[];
    aliasOut?: string;
    aliasIn?: string;
    /** Tags the bucket may still hold beyond `remove` (a change that failed half way): removed there. */
    staleInBucket?: string[];
    /** The mark of the registration written (see registrationMark). */
    mark: string;
  },
  seenAt: number,
  maxTagsPerApp: number,
  forget: boolean,
): Promise<void> {
  const aliasKeys = [change.aliasOut, change.aliasIn]
    .filter((a): a is string => a !== undefined)
    .map((a) => keys.aliasDevices(app, a));
  // App-wide first: a change the bound refuses writes nothing anywhere.
  const written = await redis.pgAppIndex(
    2 + change.remove.length + aliasKeys.length,
    keys.appTags(app),
    keys.legacyAppDevices(app),
    ...change.remove.map((t) => keys.legacyTagDevices(app, t)),
    ...aliasKeys,
    device,
    maxTagsPerApp,
    forget ? '1' : '0',
    change.add.length,
    change.remove.length,
    change.aliasOut !== undefined ? '1' : '0',
    change.aliasIn !== undefined ? '1' : '0',
    ...change.add,
    ...change.remove,
  );
  if (Number(written) === 0) throw new TagLimitError(maxTagsPerApp);
  const bucket = deviceBucket(device);
  const tagsIn = [...change.add, ...change.keep];
  const tagsOut = [...new Set([...change.remove, ...(change.staleInBucket ?? [])])];
  await redis.pgBucketIndex(
    2 + tagsIn.length + tagsOut.length,
    keys.bucketDevices(app, bucket),
    keys.deviceMeta(app, device),
    ...[...tagsIn, ...tagsOut].map((t) => keys.tagDevices(app, bucket, t)),
    device,
    seenAt,
    forget ? '1' : '0',
    tagsIn.length,
    change.mark,
  );
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
  /**
   * What the device's meta said before (the app-wide counts follow it), and `indexed`: its index
   * mark, when the caller read it (tags the mark names and `now` does not are taken out of the
   * bucket too, in case a change failed after the bucket was written).
   */
  before: Partial<DeviceRegistration> & { indexed?: string } = {},
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
      staleInBucket: markedTags(before.indexed).filter((t) => !newTags.has(t)),
      mark: registrationMark(now),
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
  const bucket = deviceBucket(device);
  await Promise.all([
    redis.zadd(keys.bucketDevices(app, bucket), 'XX', seenAt, device),
    ...tags.map((t) => redis.zadd(keys.tagDevices(app, bucket, t), 'XX', seenAt, device)),
  ]);
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
    { add: [], remove: reg.tags, keep: [], aliasOut: reg.alias ?? undefined, mark: '' },
    Date.now(),
    0,
    true,
  );
  await redis.hdel(keys.deviceMeta(app, device), 'tags', 'alias');
}

/**
 * Moves one chunk of a legacy one-slot set into the device buckets (one bucket's devices, its
 * slot). KEYS: the bucket's destination key, then the devices' meta keys. ARGV: tag ('' for the
 * device set), then device, score pairs. A tag membership is copied only while the device's meta
 * (the device's own copy of its tags, same slot) still carries the tag, so a device that dropped
 * the tag meanwhile is not put back. Returns how many were copied.
 */
const migrateLua = `
local tag, n = ARGV[1], 0
for i = 2, #KEYS do
  local dev, score = ARGV[2 * i - 2], ARGV[2 * i - 1]
  local ok = true
  if tag ~= '' then
    local raw = redis.call('HGET', KEYS[i], 'tags')
    ok = false
    if raw then
      for _, t in ipairs(cjson.decode(raw)) do if t == tag then ok = true end end
    end
  end
  if ok then redis.call('ZADD', KEYS[1], 'GT', score, dev); n = n + 1 end
end
return n
`;

/**
 * Migration of an app's legacy one-slot tag sets and device set (`{app}`) into the per-bucket
 * index. Idempotent and safe while gateways serve: each chunk is copied into the buckets (see
 * migrateLua) before it is removed from the legacy set, and readers (resolveTarget) read the
 * legacy sets beside the buckets until they are empty, so no device is lost on the way. Hello
 * also writes a device's tags into its bucket, so active devices move by themselves.
 */
export async function migrateTagIndex(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  chunk = 1000,
): Promise<{ moved: number; sets: number }> {
  const tags = await redis.zrange(keys.appTags(app), 0, -1);
  const sets: [string, string][] = [
    ['', keys.legacyAppDevices(app)],
    ...tags.map((t): [string, string] => [t, keys.legacyTagDevices(app, t)]),
  ];
  let moved = 0;
  for (const [tag, legacy] of sets) {
    for (;;) {
      const page = await redis.zrange(legacy, 0, chunk - 1, 'WITHSCORES');
      if (page.length === 0) break;
      const byBucket = new Map<number, string[]>();
      for (let i = 0; i < page.length; i += 2) {
        const b = deviceBucket(page[i]!);
        byBucket.set(b, [...(byBucket.get(b) ?? []), page[i]!, page[i + 1]!]);
      }
      await Promise.all(
        [...byBucket].map(async ([b, pairs]) => {
          const devices = pairs.filter((_, i) => i % 2 === 0);
          moved += Number(
            await redis.eval(
              migrateLua,
              1 + devices.length,
              tag === '' ? keys.bucketDevices(app, b) : keys.tagDevices(app, b, tag),
              ...devices.map((d) => keys.deviceMeta(app, d)),
              tag,
              ...pairs,
            ),
          );
        }),
      );
      await redis.zrem(legacy, ...page.filter((_, i) => i % 2 === 0));
    }
  }
  return { moved, sets: sets.length };
}
