/**
 * `npm run bench:campaign`: the campaign dispatcher (workloads/dispatcher), one real
 * `pushgate dispatcher` process against one Redis, measured in one run:
 *   - dispatch throughput into inboxes (mostly offline devices registered in the tag index),
 *     for each audience size, beside the raw store path (deliverMessage of the same message in
 *     pages of the same size, in this process) as a ratio;
 *   - rate accuracy at each rate: the achieved rate and the worst full second;
 *   - Redis memory per target: the audience snapshot, and inboxes after sending;
 *   - the time to snapshot each audience.
 *
 * This is a benchmark, not a test: nothing is asserted; report() writes .bench/campaign-*.json.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { benchRedis, usedMemory } from './redis.js';
import { parseConfig } from '../../common/config.js';
import { createRedis, type PgRedis } from '../../common/redis/connection.js';
import { deliverMessage } from '../../common/redis/delivery.js';
import { deviceBucket, redisKeys, type RedisKeys } from '../../common/redis/keys.js';
import { parseTarget, resolveTarget } from '../../common/push/target.js';
import { campaignMessage } from '../../workloads/dispatcher/dispatcher.js';
import {
  campaignPlan,
  publishCampaign,
  startDispatcherProcess,
  stopDispatcher,
  untilProgress,
  type DispatcherProcess,
} from '../../test/support/campaign.js';
import { APP } from '../../test/support/gateway.js';
import { progress, report, type BenchRow } from './report.js';

const options = {
  redisUrl: {
    schema: z.string().default(''),
    description:
      'Redis to use; empty = start one with hack/local-redis (name bench-campaign, flushed between runs). Another Redis is not flushed.',
  },
  targets: {
    schema: z.array(z.coerce.number().int().positive()).default([100_000, 1_000_000]),
    description: 'Audience sizes for throughput, memory and snapshot time.',
  },
  rates: {
    schema: z.array(z.coerce.number().positive()).default([1000, 10_000, 50_000]),
    description: 'Campaign rates (msg/s) for rate accuracy.',
  },
  rateSeconds: { schema: z.number().positive().default(5), description: 'Seconds of sending per rate.' },
  concurrency: {
    schema: z.number().int().positive().default(8),
    description: "The dispatcher's --concurrency.",
  },
  dataBytes: { schema: z.number().int().positive().default(1024), description: 'Size of the message data.' },
};

/** n offline devices with a meta hash (as after a hello) in the app's index and tag `tag`. */
async function registerFast(redis: PgRedis, keys: RedisKeys, n: number, tag: string, name: string) {
  const now = Date.now();
  for (let i = 0; i < n; i += 5000) {
    const p = redis.pipeline();
    const ids: string[] = [];
    for (let j = i; j < Math.min(n, i + 5000); j++) {
      const d = `${name}-${j.toString(36)}`;
      ids.push(d);
      p.hset(keys.deviceMeta(APP, d), 'tags', JSON.stringify([tag]), 'seen', String(now));
    }
    await p.exec();
    // The tag index, per device bucket (keys.ts): one ZADD per bucket and set.
    const byBucket = new Map<number, string[]>();
    for (const d of ids) byBucket.set(deviceBucket(d), [...(byBucket.get(deviceBucket(d)) ?? []), d]);
    await Promise.all(
      [...byBucket].flatMap(([b, ds]) => [
        redis.zadd(keys.tagDevices(APP, b, tag), ...ds.flatMap((d) => [now, d])),
        redis.zadd(keys.bucketDevices(APP, b), ...ds.flatMap((d) => [now, d])),
      ]),
    );
  }
}

function snapshotMs(d: DispatcherProcess, id: string): number {
  for (const l of d.logs) {
    if (!l.includes('"audience snapshot taken"') || !l.includes(id)) continue;
    return (JSON.parse(l) as { ms: number }).ms;
  }
  return Number.NaN;
}

export default async function bench(argv: string[]) {
  const startedAt = new Date();
  const o = parseConfig(options, argv, {});
  const { url: redisUrl, own } = await benchRedis('bench-campaign', o.redisUrl);
  const redis = createRedis(redisUrl);
  const rows: BenchRow[] = [];
  const data = { text: 'x'.repeat(o.dataBytes) };
  let run = 0;
  const fresh = async () => {
    if (own) await redis.flushall();
    return `bench-cmp-${Date.now().toString(36)}-${run++}`;
  };
  const cleanup = async (prefix: string) => {
    if (own) return;
    // One node (a cluster's keys are spread; use an own Redis for the benchmark then).
    const stream = (redis as Redis).scanStream({ match: `${prefix}:*`, count: 5000 });
    for await (const batch of stream as AsyncIterable<string[]>) if (batch.length) await redis.del(...batch);
  };
  let dispatcher: DispatcherProcess | undefined;
  try {
    for (const n of o.targets) {
      // The dispatcher: one process, a rate far above what it can do (the GCRA never holds it).
      let prefix = await fresh();
      let keys = redisKeys(prefix);
      progress(`${n} targets: registering`);
      await registerFast(redis, keys, n, 'news', 'd');
      dispatcher = await startDispatcherProcess({
        redisUrl,
        prefix,
        args: ['--concurrency', String(o.concurrency)],
        env: { PUSHGATE_LOG_LEVEL: 'info' },
      });
      const memBefore = await usedMemory(redis);
      const plan = campaignPlan({
        rate: { perSecond: 10_000_000, burst: 1_000_000 },
        push: { data, ttlSeconds: 3600, priority: 'normal' },
      });
      progress(`${n} targets: dispatching`);
      await publishCampaign(redis, keys, plan);
      const snap = await untilProgress(
        redis,
        keys,
        plan.id,
        (p) => p.snapshotAt !== undefined,
        600_000,
        'snapshot',
      );
      const memSnapshot = await usedMemory(redis);
      const p = await untilProgress(
        redis,
        keys,
        plan.id,
        (x) => x.finishedAt !== undefined,
        1_800_000,
        'finish',
      );
      const memAfter = await usedMemory(redis); // the snapshot lists are removed at the finish
      const sendMs = p.finishedAt! - p.startedAt!;
      const dispatchRate = (p.counters.sent / sendMs) * 1000;
      const snapMs = snapshotMs(dispatcher, plan.id);
      await stopDispatcher(dispatcher);
      dispatcher = undefined;
      await cleanup(prefix);

      // The raw store path, the same way: the same audience and message, pages of 1,000 from
      // 8 concurrent senders in this process (no snapshot, no pacing, no cursors).
      prefix = await fresh();
      keys = redisKeys(prefix);
      await registerFast(redis, keys, n, 'news', 'd');
      const devices = await resolveTarget(
        redis,
        keys,
        APP,
        parseTarget({ tag: 'news' }),
        Number.POSITIVE_INFINITY,
      );
      const message = campaignMessage({ ...plan, id: `${plan.id}-raw` }, Date.now());
      progress(`${n} targets: raw store path`);
      const t0 = Date.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: o.concurrency }, async () => {
          while (next < devices.length) {
            const page = devices.slice(next, (next += 1000));
            await deliverMessage(redis, keys, APP, page, message, {
              maxPerDevice: 100,
              keyTtlMs: 48 * 3600_000,
              route: () => {},
              storeOnce: true,
            });
          }
        }),
      );
      const rawRate = (n / (Date.now() - t0)) * 1000;
      await cleanup(prefix);

      rows.push(
        {
          metric: `dispatch throughput, ${n} targets (one process)`,
          unit: 'msg/s',
          value: dispatchRate,
          baseline: rawRate,
          baselineName: 'raw store path',
          note: `${p.counters.sent} sent in ${(sendMs / 1000).toFixed(1)} s; concurrency ${o.concurrency}`,
        },
        {
          metric: `time to snapshot ${n} targets`,
          unit: 'ms',
          value: Number.isNaN(snapMs) ? snap.snapshotAt! - p.snapshotAt! : snapMs,
        },
        {
          metric: `Redis memory per target, audience snapshot, ${n} targets`,
          unit: 'B',
          value: (memSnapshot - memBefore) / n,
          note: 'the 64 unit lists; removed when the campaign finishes',
        },
        {
          metric: `Redis memory per target, inboxes after sending, ${n} targets`,
          unit: 'B',
          value: (memAfter - memBefore) / n,
          note: `${o.dataBytes} B data, body stored once (bench:storage compares with copies)`,
        },
      );
    }

    // Rate accuracy: rate x seconds targets each, one process.
    for (const rate of o.rates) {
      const prefix = await fresh();
      const keys = redisKeys(prefix);
      const n = Math.round(rate * o.rateSeconds);
      progress(`rate ${rate}/s: ${n} targets`);
      await registerFast(redis, keys, n, 'news', 'r');
      dispatcher = await startDispatcherProcess({
        redisUrl,
        prefix,
        args: ['--concurrency', String(o.concurrency)],
      });
      const plan = campaignPlan({ rate: { perSecond: rate, burst: Math.max(2, Math.round(rate / 10)) } });
      await publishCampaign(redis, keys, plan);
      const p = await untilProgress(
        redis,
        keys,
        plan.id,
        (x) => x.finishedAt !== undefined,
        600_000,
        'finish',
      );
      const perSecond = await redis.hgetall(keys.campaignRate(plan.id));
      const secs = Object.keys(perSecond)
        .map(Number)
        .sort((a, b) => a - b)
        .slice(1, -1);
      const worst = secs.reduce(
        (w, s) => Math.max(w, Math.abs(Number(perSecond[String(s)]) - rate) / rate),
        0,
      );
      const achieved = (p.counters.sent / (p.finishedAt! - p.startedAt!)) * 1000;
      await stopDispatcher(dispatcher);
      dispatcher = undefined;
      await cleanup(prefix);
      rows.push({
        metric: `rate accuracy at ${rate}/s`,
        unit: 'msg/s',
        value: achieved,
        baseline: rate,
        baselineName: 'planned',
        note: `worst full second off by ${(worst * 100).toFixed(1)}% (${secs.length} full seconds); burst ${plan.rate.burst}`,
      });
    }
  } finally {
    await stopDispatcher(dispatcher);
    redis.disconnect();
  }
  report(
    'campaign',
    {
      targets: o.targets,
      rates: o.rates,
      rateSeconds: o.rateSeconds,
      concurrency: o.concurrency,
      dataBytes: o.dataBytes,
    },
    rows,
    startedAt,
  );
}
