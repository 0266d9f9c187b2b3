import type { PgRedis } from '../redis/connection.js';
import type { RedisKeys } from '../redis/keys.js';
import { DEVICE_BUCKETS, deviceBucket } from '../redis/keys.js';
import {
  evaluateTagExpression,
  parseTagExpression,
  tagsOf,
  usesNot,
  type TagExpr,
} from '../redis/tag-expression.js';

/** A target as the push API (and a campaign spec) spells it: exactly one key. */
export type PushTargetSpec = { device: string } | { alias: string } | { tag: string } | { all: true };

/**
 * A target parsed once, at the edge that received it: a tag expression is an AST from then on
 * (resolving and any later step read the AST; nothing parses the text again). `spec` is the
 * form it came in, for the message status.
 */
export type PushTarget =
  | { kind: 'device'; device: string; spec: PushTargetSpec }
  | { kind: 'alias'; alias: string; spec: PushTargetSpec }
  | { kind: 'tag'; expr: TagExpr; spec: PushTargetSpec }
  | { kind: 'all'; spec: PushTargetSpec };

/** Throws TagExpressionError (common/redis/tag-expression.ts) for a bad tag expression. */
export function parseTarget(spec: PushTargetSpec): PushTarget {
  if ('device' in spec) return { kind: 'device', device: spec.device, spec };
  if ('alias' in spec) return { kind: 'alias', alias: spec.alias, spec };
  if ('tag' in spec) return { kind: 'tag', expr: parseTagExpression(spec.tag), spec };
  return { kind: 'all', spec };
}

export class TooManyRecipientsError extends Error {
  override name = 'TooManyRecipientsError';
  constructor(public readonly limit: number) {
    super(`target matches more than ${limit} devices; use a TagCampaign for larger audiences`);
  }
}

/**
 * The device ids a target names. Single device: itself (registered or not, so a push can wait
 * for a device that has never connected). Alias/tag/all: from the app's indexes
 * (common/redis/app-index.ts). `limit` caps the audience of one API call (a TagCampaign pages
 * through larger ones).
 */
export async function resolveTarget(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  target: PushTarget,
  limit: number,
): Promise<string[]> {
  if (target.kind === 'device') return [target.device];
  return (await resolveTargetByBucket(redis, keys, app, target, limit)).flat().sort();
}

/**
 * The same audience as resolveTarget, split by device bucket (index = deviceBucket(device), each
 * bucket's ids sorted): how the tag index holds it, and how the campaign dispatcher splits work.
 */
export async function resolveTargetByBucket(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  target: PushTarget,
  limit: number,
): Promise<string[][]> {
  const check = (n: number) => {
    if (n > limit) throw new TooManyRecipientsError(limit);
  };
  switch (target.kind) {
    case 'device':
      return byBucket([target.device]);
    case 'alias': {
      const ids = await redis.smembers(keys.aliasDevices(app, target.alias));
      check(ids.length);
      return byBucket(ids);
    }
    case 'all':
      return resolveIndexed(redis, keys, app, null, limit, check);
    case 'tag':
      return resolveIndexed(redis, keys, app, target.expr, limit, check);
  }
}

function byBucket(ids: string[]): string[][] {
  const out: string[][] = Array.from({ length: DEVICE_BUCKETS }, () => []);
  for (const d of ids) out[deviceBucket(d)]!.push(d);
  for (const b of out) b.sort();
  return out;
}

/**
 * The postfix program of pgResolve (common/redis/index-scripts.ts) for an expression; null =
 * every device (push to all).
 */
function compile(expr: TagExpr | null, tags: string[]): string[] {
  if (expr === null) return ['u'];
  switch (expr.op) {
    case 'tag':
      return [`t${tags.indexOf(expr.tag) + 1}`];
    case 'not':
      return [...compile(expr.arg, tags), 'n'];
    case 'and':
    case 'or':
      return [
        ...expr.args.flatMap((a) => compile(a, tags)),
        `${expr.op === 'and' ? 'a' : 'o'}${expr.args.length}`,
      ];
  }
}

/**
 * A tag expression (or every device) resolved per device bucket: one script per bucket, over the
 * bucket's slot, all 1024 sent at once (in one socket write on a single Redis, see
 * common/redis/connection.ts; auto-pipelined per node on a Cluster). Until migrateTagIndex has
 * emptied the app's legacy one-slot sets the expression reads, resolveMigrating reads both, so no
 * device is lost during migration.
 */
async function resolveIndexed(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  expr: TagExpr | null,
  limit: number,
  check: (n: number) => void,
): Promise<string[][]> {
  const tags = expr === null ? [] : [...tagsOf(expr)];
  const program = compile(expr, tags);
  const legacyKeys = [keys.legacyAppDevices(app), ...tags.map((t) => keys.legacyTagDevices(app, t))];
  if ((await redis.exists(...legacyKeys)) > 0)
    return byBucket(await resolveMigrating(redis, keys, app, expr, tags, check));
  const out: string[][] = Array.from({ length: DEVICE_BUCKETS }, () => []);
  let total = 0;
  await Promise.all(
    Array.from({ length: DEVICE_BUCKETS }, async (_, b) => {
      const r = (await redis.pgResolve(
        1 + tags.length,
        keys.bucketDevices(app, b),
        ...tags.map((t) => keys.tagDevices(app, b, t)),
        Number.isFinite(limit) ? limit : 0,
        ...program,
      )) as string[] | number;
      if (typeof r === 'number') check(Number.POSITIVE_INFINITY);
      out[b] = (r as string[]).sort();
      total += out[b].length;
      check(total);
    }),
  );
  return out;
}

/**
 * While an app's legacy one-slot sets still hold entries (migrateTagIndex has not finished):
 * every set is read whole, as the union of its legacy set and its buckets, and the expression is
 * evaluated here. Slower, but exact in the mixed state (a device's tags may be half in each).
 */
async function resolveMigrating(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  expr: TagExpr | null,
  tags: string[],
  check: (n: number) => void,
): Promise<string[]> {
  const readSet = async (legacy: string, bucketKey: (b: number) => string) => {
    const parts = await Promise.all([
      redis.zrange(legacy, 0, -1),
      ...Array.from({ length: DEVICE_BUCKETS }, (_, b) => redis.zrange(bucketKey(b), 0, -1)),
    ]);
    return new Set(parts.flat());
  };
  const universe =
    expr === null || usesNot(expr)
      ? await readSet(keys.legacyAppDevices(app), (b) => keys.bucketDevices(app, b))
      : new Set<string>();
  if (expr === null) {
    check(universe.size);
    return [...universe];
  }
  const members = new Map<string, Set<string>>();
  for (const t of tags)
    members.set(t, await readSet(keys.legacyTagDevices(app, t), (b) => keys.tagDevices(app, b, t)));
  const out = [...evaluateTagExpression(expr, (t) => members.get(t) ?? new Set(), universe)];
  check(out.length);
  return out;
}
