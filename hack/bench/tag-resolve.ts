/**
 * Resolve time of a tag push over the 1024 device buckets (common/push/target.ts), against the
 * same audience in the legacy one-slot sets (read whole, as during migration), on one Redis:
 *   npx tsx hack/bench/tag-resolve.ts <redis-url> [devices=100000]
 */
import type { Redis } from 'ioredis';
import { createRedis } from '../../common/redis/connection.js';
import { deviceBucket, redisKeys } from '../../common/redis/keys.js';
import { parseTarget, resolveTarget } from '../../common/push/target.js';

const url = process.argv[2] ?? 'redis://127.0.0.1:6379';
const n = Number(process.argv[3] ?? 100_000);
const redis = createRedis(url);
const keys = redisKeys(`bench-tags-${process.pid}`);
const now = Date.now();
const ids = Array.from({ length: n }, (_, i) => `dev-${i}`);
const byBucket = new Map<number, number[]>();
for (let i = 0; i < n; i++)
  byBucket.set(deviceBucket(ids[i]!), [...(byBucket.get(deviceBucket(ids[i]!)) ?? []), i]);
await Promise.all(
  [...byBucket].flatMap(([b, is]) => [
    redis.zadd(keys.bucketDevices('new', b), ...is.flatMap((i) => [now, ids[i]!])),
    redis.zadd(keys.tagDevices('new', b, 'news'), ...is.flatMap((i) => [now, ids[i]!])),
    redis.zadd(
      keys.tagDevices('new', b, 'even'),
      ...is.filter((i) => i % 2 === 0).flatMap((i) => [now, ids[i]!]),
    ),
  ]),
);
for (let i = 0; i < n; i += 5000) {
  const chunk = ids.slice(i, i + 5000);
  await redis.zadd(keys.legacyAppDevices('old'), ...chunk.flatMap((d) => [now, d]));
  await redis.zadd(keys.legacyTagDevices('old', 'news'), ...chunk.flatMap((d) => [now, d]));
  const ev = chunk.filter((_, j) => (i + j) % 2 === 0);
  await redis.zadd(keys.legacyTagDevices('old', 'even'), ...ev.flatMap((d) => [now, d]));
}
const time = async (app: string, expr: string) => {
  const runs: number[] = [];
  let size = 0;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    size = (await resolveTarget(redis, keys, app, parseTarget({ tag: expr }), Number.POSITIVE_INFINITY))
      .length;
    runs.push(performance.now() - t0);
  }
  runs.sort((a, b) => a - b);
  return { size, medianMs: Math.round(runs[2]!) };
};
for (const expr of ['news', 'news && !even', 'even']) {
  const fresh = await time('new', expr);
  const legacy = await time('old', expr);
  console.log(
    `${n} devices, '${expr}': ${fresh.size} recipients; per bucket ${fresh.medianMs} ms, legacy one-slot (migration path) ${legacy.medianMs} ms, ratio ${(legacy.medianMs / fresh.medianMs).toFixed(2)}`,
  );
}
const pre = keys.prefix;
{
  let cursor = '0';
  do {
    const [c, found] = await (redis as unknown as Redis).scan(cursor, 'MATCH', `${pre}:*`, 'COUNT', 1000);
    cursor = c;
    if (found.length) await redis.unlink(...found);
  } while (cursor !== '0');
}
redis.disconnect();
