import { createHash } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { forgetDevice, indexDevice, TagLimitError } from '../../common/redis/app-index.js';
import { parseTarget, resolveTarget, TooManyRecipientsError } from '../../common/push/target.js';
import { createRedis } from '../../common/redis/connection.js';
import { scripts } from '../../common/redis/scripts.js';
import { deviceBucket, redisKeys } from '../../common/redis/keys.js';
import {
  ackMessages,
  ackMessagesForDevices,
  claimPresence,
  readInbox,
  storeMessage,
  storeMessageForDevices,
} from '../../common/redis/offline-store.js';
import type { StoredMessage } from '../../common/protocol/server-frames.js';
import { takeRate } from '../../common/ratelimit/gcra.js';
import { uniquePrefix } from '../support/gateway.js';

/** The shared Redis layer (key schema + Lua scripts) against a real Redis, without a gateway. */
describe('common/redis scripts', () => {
  const redis = createRedis(inject('redisUrl'));
  const keys = redisKeys(uniquePrefix('redis'));
  afterAll(() => redis.disconnect());
  const limits = { maxPerDevice: 3, keyTtlMs: 60_000 };
  const msg = (id: string, extra: Partial<StoredMessage> = {}): StoredMessage => ({
    id,
    exp: Date.now() + 60_000,
    ttl: 60,
    priority: 'normal',
    sent: Date.now(),
    data: id,
    ...extra,
  });
  const inboxIds = async (device: string) =>
    (await readInbox(redis, keys, 'a', device, 0, 100)).messages.map((m) => JSON.parse(m.body).id as string);

  it('bounds an inbox: the oldest messages are evicted, and their collapse mapping with them', async () => {
    await storeMessage(redis, keys, 'a', 'bounded', msg('m1', { collapse: 'k' }), limits);
    await storeMessage(redis, keys, 'a', 'bounded', msg('m2'), limits);
    await storeMessage(redis, keys, 'a', 'bounded', msg('m3'), limits);
    const r = await storeMessage(redis, keys, 'a', 'bounded', msg('m4'), limits);
    expect(r).toMatchObject({ outcome: 'stored', seq: 4, evicted: 1, evictedIds: ['m1'], inboxSize: 3 });
    expect(await inboxIds('bounded')).toEqual(['m2', 'm3', 'm4']);
    expect(await redis.hget(keys.deviceCollapse('a', 'bounded'), 'k')).toBeNull();
  });

  it('is idempotent by id, and a collapse key replaces the older message', async () => {
    await storeMessage(redis, keys, 'a', 'col', msg('c1', { collapse: 'score' }), limits);
    expect(
      (await storeMessage(redis, keys, 'a', 'col', msg('c1', { collapse: 'score' }), limits)).outcome,
    ).toBe('duplicate');
    const r = await storeMessage(redis, keys, 'a', 'col', msg('c2', { collapse: 'score' }), limits);
    expect(r).toMatchObject({ outcome: 'stored', seq: 2, replaced: 'c1' });
    expect(await inboxIds('col')).toEqual(['c2']);
  });

  it('runs its scripts on a Redis that forgot them (SCRIPT FLUSH, as after a restart without persistence): each call answered NOSCRIPT is sent again as EVAL, which loads the script again', async () => {
    const sha = createHash('sha1').update(scripts.pgStore.lua).digest('hex');
    await storeMessage(redis, keys, 'a', 'forgot-0', msg('f-first'), limits);
    expect(await redis.script('EXISTS', sha)).toEqual([1]);
    await redis.script('FLUSH');
    expect(await redis.script('EXISTS', sha)).toEqual([0]);
    // Many calls in one pipeline: every one is refused, and every one is sent again.
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        storeMessage(redis, keys, 'a', `forgot-${i}`, msg(`f${i}`), limits),
      ),
    );
    expect(results.map((r) => r.outcome)).toEqual(Array.from({ length: 50 }, () => 'stored'));
    expect(await inboxIds('forgot-0')).toEqual(['f-first', 'f0']);
    expect(await redis.script('EXISTS', sha)).toEqual([1]);
  });

  it('stores only-if-online messages (TTL 0) only for a device some gateway holds', async () => {
    expect((await storeMessage(redis, keys, 'a', 'nobody', msg('z1'), limits, true)).outcome).toBe('offline');
    expect(await inboxIds('nobody')).toEqual([]);
  });

  it('drops expired messages at replay, acks remove, unknown acks are reported', async () => {
    await storeMessage(redis, keys, 'a', 'exp', msg('e1', { exp: Date.now() - 1 }), limits);
    await storeMessage(redis, keys, 'a', 'exp', msg('e2'), limits);
    const page = await readInbox(redis, keys, 'a', 'exp', 0, 100);
    expect(page.expired).toBe(1);
    expect(page.messages.map((m) => m.seq)).toEqual([2]);
    expect(await ackMessages(redis, keys, 'a', 'exp', ['e2', 'e1', 'never'])).toEqual({
      removed: ['e2'],
      unknown: ['e1', 'never'],
      delivered: ['e2'],
    });
    expect(await inboxIds('exp')).toEqual([]);
  });

  it('receipts: entries up to the seq are counted delivered once, by a mark; an ack counts only what the mark does not cover', async () => {
    for (const id of ['r1', 'r2', 'r3']) await storeMessage(redis, keys, 'a', 'rcpt', msg(id), limits);
    const ack = (ids: string[], recv?: number, device = 'rcpt') =>
      ackMessagesForDevices(redis, keys, 'a', [{ device, ids, recv }]).then((r) => r[0]!);
    expect(await ack([], 2)).toEqual({ removed: [], unknown: [], delivered: ['r1', 'r2'] });
    expect(await redis.hget(keys.deviceMeta('a', 'rcpt'), 'rseq')).toBe('2');
    expect(await ack([], 2)).toEqual({ removed: [], unknown: [], delivered: [] });
    expect(await ack([], 1)).toEqual({ removed: [], unknown: [], delivered: [] });
    // The ack of r1 (read) counts nothing more; r3 is above the mark: its ack counts it.
    expect(await ack(['r1', 'r3'])).toEqual({ removed: ['r1', 'r3'], unknown: [], delivered: ['r3'] });
    // A receipt and an ack of one device in one call, several entries of one device in one call.
    await storeMessage(redis, keys, 'a', 'rcpt', msg('r4'), limits); // seq 4
    const both = await ackMessagesForDevices(redis, keys, 'a', [
      { device: 'rcpt', ids: [], recv: 4 },
      { device: 'rcpt', ids: ['r4', 'r2'] },
      { device: 'rcpt-none', ids: [], recv: 9 },
    ]);
    expect(both).toEqual([
      { removed: [], unknown: [], delivered: ['r4'] },
      { removed: ['r4', 'r2'], unknown: [], delivered: [] },
      { removed: [], unknown: [], delivered: [] },
    ]);
    // A device without keys gets no meta hash from a receipt (nothing to expire it).
    expect(await redis.exists(keys.deviceMeta('a', 'rcpt-none'))).toBe(0);
  });

  it('receipts: a read entry that a newer store replaces or evicts is reported, an unread one is not', async () => {
    const d = 'rcpt-gone';
    await storeMessage(redis, keys, 'a', d, msg('g1', { collapse: 'k' }), limits); // seq 1
    await storeMessage(redis, keys, 'a', d, msg('g2'), limits); // seq 2
    await storeMessage(redis, keys, 'a', d, msg('g3', { collapse: 'j' }), limits); // seq 3
    await ackMessagesForDevices(redis, keys, 'a', [{ device: d, ids: [], recv: 2 }]);
    const replaced = await storeMessage(redis, keys, 'a', d, msg('g4', { collapse: 'k' }), limits);
    expect(replaced).toMatchObject({ replaced: 'g1', readGoneIds: ['g1'], evictedIds: [] });
    const unread = await storeMessage(redis, keys, 'a', d, msg('g5', { collapse: 'j' }), limits);
    expect(unread).toMatchObject({ replaced: 'g3', readGoneIds: [] });
    // Inbox g2 (read), g4, g5 (max 3): the next store evicts g2.
    const evicted = await storeMessage(redis, keys, 'a', d, msg('g6'), limits);
    expect(evicted).toMatchObject({ evictedIds: ['g2'], readGoneIds: ['g2'] });
    expect(await inboxIds(d)).toEqual(['g4', 'g5', 'g6']);
  });

  it('stores asked for together keep their order per device, with idempotency, collapse and only-if-online per message', async () => {
    // Started in one tick, these go to Redis as one batch (one script call per bucket).
    const online = 'batch-online';
    await claimPresence(redis, keys, 'a', online, { gateway: 'gw-1', session: 's1' }, 60_000);
    const devices = [online, 'batch-off-1', 'batch-off-2'];
    const wide = { maxPerDevice: 10, keyTtlMs: 60_000 };
    const [r1, r2, r3, r4, r5] = await Promise.all([
      storeMessageForDevices(redis, keys, 'a', devices, msg('b1', { collapse: 'k' }), wide),
      storeMessageForDevices(redis, keys, 'a', devices, msg('b2'), wide),
      storeMessageForDevices(redis, keys, 'a', devices, msg('b1', { collapse: 'k' }), wide),
      storeMessageForDevices(redis, keys, 'a', devices, msg('b3', { collapse: 'k' }), wide),
      storeMessageForDevices(redis, keys, 'a', devices, msg('b4'), wide, true),
    ]);
    for (const [i, device] of devices.entries()) {
      expect(r1![i]).toMatchObject({ outcome: 'stored', seq: 1 });
      expect(r2![i]).toMatchObject({ outcome: 'stored', seq: 2 });
      expect(r3![i]).toMatchObject({ outcome: 'duplicate', seq: 1 });
      expect(r4![i]).toMatchObject({ outcome: 'stored', seq: 3, replaced: 'b1' });
      expect(await inboxIds(device)).toEqual(device === online ? ['b2', 'b3', 'b4'] : ['b2', 'b3']);
    }
    expect(r1![0]).toMatchObject({ gateway: 'gw-1' });
    expect(r1![1]).toMatchObject({ gateway: '' });
    expect(r5!.map((r) => r.outcome)).toEqual(['stored', 'offline', 'offline']);
    expect(r5![0]).toMatchObject({ seq: 4, gateway: 'gw-1' });
  });

  it('resolves targets from the indexes and refuses audiences over the limit', async () => {
    for (const [d, tags] of [
      ['x1', ['t']],
      ['x2', ['t', 'u']],
      ['x3', ['u']],
    ] as const) {
      await indexDevice(redis, keys, 'idx', d, { tags: [...tags], alias: d === 'x3' ? 'al' : null });
    }
    expect(await resolveTarget(redis, keys, 'idx', parseTarget({ tag: 't && !u' }), 10)).toEqual(['x1']);
    expect(await resolveTarget(redis, keys, 'idx', parseTarget({ alias: 'al' }), 10)).toEqual(['x3']);
    expect(await resolveTarget(redis, keys, 'idx', parseTarget({ all: true }), 10)).toEqual([
      'x1',
      'x2',
      'x3',
    ]);
    await expect(resolveTarget(redis, keys, 'idx', parseTarget({ all: true }), 2)).rejects.toThrow(
      TooManyRecipientsError,
    );
    await indexDevice(
      redis,
      keys,
      'idx',
      'x2',
      { tags: ['u'], alias: null },
      { tags: ['t', 'u'], alias: null },
    );
    expect(await resolveTarget(redis, keys, 'idx', parseTarget({ tag: 't' }), 10)).toEqual(['x1']);
  });

  it('keeps the tag index bounded: tags no device carries leave the counts, and tags beyond the per-app cap are refused', async () => {
    const app = 'capped';
    const tagCounts = async () =>
      Object.fromEntries(
        (await redis.zrange(keys.appTags(app), 0, -1, 'WITHSCORES')).flatMap((v, i, a) =>
          i % 2 === 0 ? [[v, Number(a[i + 1])]] : [],
        ),
      );
    await indexDevice(redis, keys, app, 'c1', { tags: ['a', 'b'], alias: null }, {}, Date.now(), true, 3);
    await indexDevice(redis, keys, app, 'c2', { tags: ['b', 'c'], alias: null }, {}, Date.now(), true, 3);
    expect(await tagCounts()).toEqual({ a: 1, b: 2, c: 1 });
    // A fourth distinct tag is over the cap: refused, nothing written (indexes nor meta).
    await expect(
      indexDevice(
        redis,
        keys,
        app,
        'c1',
        { tags: ['a', 'd'], alias: null },
        { tags: ['a', 'b'], alias: null },
        Date.now(),
        true,
        3,
      ),
    ).rejects.toThrow(TagLimitError);
    expect(await tagCounts()).toEqual({ a: 1, b: 2, c: 1 });
    expect(await redis.hget(keys.deviceMeta(app, 'c1'), 'tags')).toBe('["a","b"]');
    // Moving off a tag frees its place: 'a' leaves the counts (zero devices), so 'd' fits.
    await indexDevice(
      redis,
      keys,
      app,
      'c1',
      { tags: ['b'], alias: null },
      { tags: ['a', 'b'], alias: null },
      Date.now(),
      true,
      3,
    );
    expect(await tagCounts()).toEqual({ b: 2, c: 1 });
    expect(await redis.exists(keys.tagDevices(app, deviceBucket('c1'), 'a'))).toBe(0);
    await indexDevice(
      redis,
      keys,
      app,
      'c1',
      { tags: ['b', 'd'], alias: null },
      { tags: ['b'], alias: null },
      Date.now(),
      true,
      3,
    );
    await forgetDevice(redis, keys, app, 'c2', { tags: ['b', 'c'], alias: null });
    expect(await tagCounts()).toEqual({ b: 1, d: 1 });
    expect(await resolveTarget(redis, keys, app, parseTarget({ all: true }), 10)).toEqual(['c1']);
  });

  it('limits a rate with GCRA: the burst at once, then one cell per interval, with the wait to retry', async () => {
    const limit = { ratePerSecond: 2, burst: 5 }; // one cell per 500 ms: robust on a busy machine
    const decisions = [];
    for (let i = 0; i < 7; i++) decisions.push(await takeRate(redis, keys, 'bucket-1', limit));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, true, false, false]);
    const refused = decisions[5]!;
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(500);
    await new Promise((r) => setTimeout(r, refused.retryAfterMs + 5));
    expect((await takeRate(redis, keys, 'bucket-1', limit)).allowed).toBe(true);
    expect((await takeRate(redis, keys, 'bucket-1', limit)).allowed).toBe(false);
    // A cost larger than the burst never passes; other buckets are independent.
    expect((await takeRate(redis, keys, 'bucket-2', limit, 6)).allowed).toBe(false);
    expect((await takeRate(redis, keys, 'bucket-2', limit, 5)).allowed).toBe(true);
  });
});
