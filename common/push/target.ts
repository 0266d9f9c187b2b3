import type { PgRedis } from '../redis/connection.js';
import type { RedisKeys } from '../redis/keys.js';
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
  const check = (n: number) => {
    if (n > limit) throw new TooManyRecipientsError(limit);
  };
  switch (target.kind) {
    case 'device':
      return [target.device];
    case 'alias': {
      const ids = await redis.smembers(keys.aliasDevices(app, target.alias));
      check(ids.length);
      return ids.sort();
    }
    case 'all':
      check(await redis.zcard(keys.appDevices(app)));
      return redis.zrange(keys.appDevices(app), 0, -1);
    case 'tag':
      return resolveTagExpression(redis, keys, app, target.expr, check);
  }
}

async function resolveTagExpression(
  redis: PgRedis,
  keys: RedisKeys,
  app: string,
  expr: TagExpr,
  check: (n: number) => void,
): Promise<string[]> {
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
