import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { indexDevice, migrateTagIndex } from '../../common/redis/app-index.js';
import {
  parseTarget,
  resolveTarget,
  resolveTargetByBucket,
  TooManyRecipientsError,
} from '../../common/push/target.js';
import { createRedis } from '../../common/redis/connection.js';
import { DEVICE_BUCKETS, deviceBucket, redisKeys } from '../../common/redis/keys.js';
import { uniquePrefix } from '../support/gateway.js';

const hashtag = (key: string) => /\{([^}]*)\}/.exec(key)![1];

/** The tag index sharded by device bucket (keys.ts), and the migration of the legacy one-slot sets. */
describe('tag index by device bucket', () => {
  const redis = createRedis(inject('redisUrl'));
  const keys = redisKeys(uniquePrefix('tagshard'));
  afterAll(() => redis.disconnect());
  const tag = (expr: string, limit = 100_000) =>
    resolveTarget(redis, keys, app, parseTarget({ tag: expr }), limit);
  let app = '';

  it("spreads an app's tag audience over many Cluster slots, and resolves expressions per bucket", async () => {
    app = 'spread';
    const devices = Array.from({ length: 400 }, (_, i) => `dev-${i}`);
    for (const [i, d] of devices.entries()) {
      const tags = ['news', ...(i % 2 === 0 ? ['even'] : []), ...(i % 3 === 0 ? ['three'] : [])];
      await indexDevice(redis, keys, app, d, { tags, alias: null });
    }
    // The 'news' memberships live in one key per device bucket, in that bucket's slot.
    const newsKeys = [...new Set(devices.map((d) => keys.tagDevices(app, deviceBucket(d), 'news')))];
    // (This Redis is not a cluster: the hashtags are the slots; gateway-cluster.test.ts asks
    // a real cluster's CLUSTER KEYSLOT.)
    expect(newsKeys.length).toBeGreaterThan(300);
    expect(new Set(newsKeys.map(hashtag)).size).toBe(newsKeys.length);
    for (const d of devices)
      expect(await redis.zscore(keys.tagDevices(app, deviceBucket(d), 'news'), d)).not.toBeNull();
    // A device's tag entry is in the slot of its other keys (meta, inbox).
    const d0 = devices[0]!;
    expect(hashtag(keys.tagDevices(app, deviceBucket(d0), 'news'))).toBe(hashtag(keys.deviceMeta(app, d0)));
    // Nothing of the membership is left in the app's slot: only the small catalogue.
    expect(await redis.exists(keys.legacyTagDevices(app, 'news'), keys.legacyAppDevices(app))).toBe(0);
    expect(await redis.zscore(keys.appTags(app), 'news')).toBe('400');

    const idx = (pred: (i: number) => boolean) => devices.filter((_, i) => pred(i)).sort();
    expect(await tag('news')).toEqual([...devices].sort());
    expect(await tag('even && three')).toEqual(idx((i) => i % 6 === 0));
    expect(await tag('even || three')).toEqual(idx((i) => i % 2 === 0 || i % 3 === 0));
    expect(await tag('news && !even')).toEqual(idx((i) => i % 2 !== 0));
    expect(await tag('!(even || three)')).toEqual(idx((i) => i % 2 !== 0 && i % 3 !== 0));
    expect(await tag('nosuchtag')).toEqual([]);
    expect(await resolveTarget(redis, keys, app, parseTarget({ all: true }), 1000)).toEqual(
      [...devices].sort(),
    );
    // Per bucket, as the dispatcher takes it: each device in its own bucket, nothing lost.
    const split = await resolveTargetByBucket(redis, keys, app, parseTarget({ tag: 'even' }), 100_000);
    expect(split).toHaveLength(DEVICE_BUCKETS);
    for (const [b, ids] of split.entries()) for (const d of ids) expect(deviceBucket(d)).toBe(b);
    expect(split.flat().sort()).toEqual(idx((i) => i % 2 === 0));
    // maxRecipients still bounds the push API.
    await expect(tag('even', 199)).rejects.toThrow(TooManyRecipientsError);
    expect(await tag('even', 200)).toHaveLength(200);
    await expect(resolveTarget(redis, keys, app, parseTarget({ all: true }), 399)).rejects.toThrow(
      TooManyRecipientsError,
    );
  });

  it('migrates legacy one-slot tag sets into the buckets without losing devices, idempotently, while devices change', async () => {
    app = 'legacy';
    const now = Date.now();
    const devices = Array.from({ length: 300 }, (_, i) => `old-${i}`);
    const tagsOf = (i: number) => ['news', ...(i % 2 === 0 ? ['even'] : [])];
    // The old format, as gateways before this change wrote it: the app's slot holds it all.
    for (const [i, d] of devices.entries()) {
      await redis.hset(keys.deviceMeta(app, d), 'tags', JSON.stringify(tagsOf(i)), 'alias', '');
      await redis.zadd(keys.legacyAppDevices(app), now, d);
      for (const t of tagsOf(i)) {
        await redis.zadd(keys.legacyTagDevices(app, t), now, d);
        await redis.zincrby(keys.appTags(app), 1, t);
      }
    }
    const evens = devices.filter((_, i) => i % 2 === 0).sort();
    const odds = devices.filter((_, i) => i % 2 !== 0).sort();
    expect(await tag('news && !even')).toEqual(odds);

    // A device says hello in the mixed state: its tags go to its bucket (read beside the legacy sets).
    await indexDevice(
      redis,
      keys,
      app,
      'old-0',
      { tags: tagsOf(0), alias: null },
      { tags: tagsOf(0), alias: null },
    );
    // Another drops 'even' before migration: it leaves the legacy set too, not only its bucket.
    await indexDevice(
      redis,
      keys,
      app,
      'old-2',
      { tags: ['news'], alias: null },
      { tags: tagsOf(2), alias: null },
    );
    const evensNow = evens.filter((d) => d !== 'old-2');
    // A new device arrives with 'even' (buckets only).
    await indexDevice(redis, keys, app, 'new-1', { tags: ['news', 'even'], alias: null });
    expect(await tag('even')).toEqual([...evensNow, 'new-1'].sort());
    expect(await tag('news && !even')).toEqual([...odds, 'old-2'].sort());

    // Migration in small chunks, interleaved with reads: no device is lost at any point.
    const first = migrateTagIndex(redis, keys, app, 7);
    const during = await tag('even');
    await first;
    expect(during).toEqual([...evensNow, 'new-1'].sort());
    expect(
      await redis.exists(
        keys.legacyAppDevices(app),
        keys.legacyTagDevices(app, 'news'),
        keys.legacyTagDevices(app, 'even'),
      ),
    ).toBe(0);
    expect(await tag('even')).toEqual([...evensNow, 'new-1'].sort());
    expect(await tag('news && !even')).toEqual([...odds, 'old-2'].sort());
    expect(await resolveTarget(redis, keys, app, parseTarget({ all: true }), 1000)).toEqual(
      [...devices, 'new-1'].sort(),
    );
    // The memberships are in the buckets now, spread over slots.
    expect(
      new Set(evens.map((d) => hashtag(keys.tagDevices(app, deviceBucket(d), 'even')))).size,
    ).toBeGreaterThan(100);
    expect(await redis.zscore(keys.tagDevices(app, deviceBucket('old-4'), 'even'), 'old-4')).toBe(
      String(now),
    );

    // Idempotent: a second run finds nothing to move and changes nothing.
    expect(await migrateTagIndex(redis, keys, app)).toMatchObject({ moved: 0 });
    expect(await tag('even')).toEqual([...evensNow, 'new-1'].sort());
  });

  it("does not put back a tag the device's meta no longer carries", async () => {
    app = 'stale';
    await redis.hset(keys.deviceMeta(app, 's1'), 'tags', JSON.stringify(['b']), 'alias', '');
    // A legacy entry the device dropped after it was read (its meta says only 'b').
    await redis.zadd(keys.legacyTagDevices(app, 'a'), 1, 's1');
    await redis.zadd(keys.appTags(app), 1, 'a');
    await migrateTagIndex(redis, keys, app);
    expect(await redis.exists(keys.legacyTagDevices(app, 'a'))).toBe(0);
    expect(await tag('a')).toEqual([]);
  });

  it('`pushgate migrate-tags` migrates the named apps', { timeout: 120_000 }, async () => {
    app = 'cli';
    await redis.hset(keys.deviceMeta(app, 'k1'), 'tags', JSON.stringify(['x']), 'alias', '');
    await redis.zadd(keys.legacyAppDevices(app), 5, 'k1');
    await redis.zadd(keys.legacyTagDevices(app, 'x'), 5, 'k1');
    await redis.zadd(keys.appTags(app), 1, 'x');
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    await promisify(execFile)(path.join(root, 'node_modules/.bin/tsx'), [
      path.join(root, 'cli/pushgate.ts'),
      'migrate-tags',
      '--apps',
      `other,${app}`,
      '--redis-url',
      inject('redisUrl'),
      '--key-prefix',
      keys.prefix,
    ]);
    expect(await redis.exists(keys.legacyAppDevices(app), keys.legacyTagDevices(app, 'x'))).toBe(0);
    expect(await redis.zscore(keys.tagDevices(app, deviceBucket('k1'), 'x'), 'k1')).toBe('5');
    expect(await redis.zscore(keys.bucketDevices(app, deviceBucket('k1')), 'k1')).toBe('5');
    expect(await tag('x')).toEqual(['k1']);
  });
});
