/**
 * `npm run bench:ratelimit [-- --quick] [--redis-url redis://...] [--seconds 10] [--rates 1000,10000,50000]`
 * (`--quick` = the flags in benches.ts: 2 s phases, rates 1k and 5k)
 *
 * The per-app rate limit (RateLimitPolicy) measured in one run:
 *   - the push API's accept throughput with no policy, with a policy every push is within
 *     (admission only), with the whole policy every push is within (admission, per-device daily
 *     caps and adaptive throttling's measuring), and with a policy that defers every push
 *     (admission + the deferred queue), as ratios to no policy (aim: >= 0.8x); no policy and
 *     the whole policy run twice each, ABAB, and their means are compared;
 *   - rate accuracy of the sharded limiter at each rate: a deferred backlog released by two
 *     releasers (two gateways' worth, each its own connection), released messages per second
 *     over the window against the configured rate;
 *   - Redis commands per limited message (INFO commandstats deltas, every command counted, those
 *     run inside scripts too) over a push within the whole policy and over a deferred push's
 *     whole life (accept, queue, release, store), beside the same for an unlimited push; the
 *     commands that make up the difference are named in the note and the JSON.
 * This is a benchmark, not a test: nothing is asserted; report() writes .bench/ratelimit-*.json.
 */
import os from 'node:os';
import { z } from 'zod';
import { benchRedis } from './redis.js';
import { parseConfig } from '../../common/config.js';
import { silentLogger } from '../../common/logger.js';
import { admitToAppLimit, type AppLimitConfig } from '../../common/ratelimit/app-limit.js';
import { AppLimitReleaser, publishAppLimits } from '../../common/ratelimit/releaser.js';
import { createRedis, type PgRedis } from '../../common/redis/connection.js';
import { redisKeys } from '../../common/redis/keys.js';
import { startGatewayProcess, stopGateway, basicAuth, APP } from '../../test/support/gateway.js';
import { progress, report, type BenchRow } from './report.js';

const options = {
  redisUrl: {
    schema: z.string().default(''),
    description: 'Redis to use; empty = start one with hack/local-redis (name bench-ratelimit).',
  },
  seconds: { schema: z.number().positive().default(10), description: 'Length of each measured phase.' },
  rates: {
    schema: z.array(z.coerce.number().int().positive()).default([1000, 10_000, 50_000]),
    description: 'Rates (messages/s) whose accuracy is measured.',
  },
  concurrency: {
    schema: z.number().int().positive().default(64),
    description: 'Push API requests in flight.',
  },
};

/** INFO commandstats: calls per command (scripts' inner commands included). */
async function commandStats(redis: PgRedis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const m = new Map<string, number>();
  for (const [, cmd, calls] of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) m.set(cmd!, Number(calls));
  return m;
}

/** Commands run between two commandstats snapshots: the total and per command. */
function delta(a: Map<string, number>, b: Map<string, number>): { total: number; by: Map<string, number> } {
  const by = new Map<string, number>();
  let total = 0;
  for (const [cmd, n] of b) {
    const d = n - (a.get(cmd) ?? 0);
    if (d > 0) {
      by.set(cmd, d);
      total += d;
    }
  }
  return { total, by };
}

/** The biggest commands per message, e.g. "evalsha 2.0, hincrby 1.0". */
function topCommands(by: Map<string, number>, messages: number, n = 6): string {
  return [...by]
    .sort((x, y) => y[1] - x[1])
    .slice(0, n)
    .map(([c, k]) => `${c} ${(k / Math.max(1, messages)).toFixed(1)}`)
    .join(', ');
}

/** A policy every push is within, with daily caps and adaptive throttling on (nothing capped). */
const fullPolicy = (name: string): AppLimitConfig => ({
  ratePerSecond: 10_000_000,
  burst: 10_000_000,
  maxDeferred: 10_000_000,
  configuredRatePerSecond: 10_000_000,
  policy: name,
  perDevice: { messagesPerDay: 100_000 },
  adaptive: {
    enabled: true,
    errorRatioPercent: 5,
    timeoutRatioPercent: 10,
    windowSeconds: 30,
    decreasePercent: 50,
    recoveryPercent: 10,
    recoveryIntervalSeconds: 10,
    minRatePercent: 10,
  },
});

/** Pushes to `devices` distinct devices (offline: stored only) for `seconds`; returns accepted/s. */
async function acceptPhase(base: string, seconds: number, concurrency: number, tag: string): Promise<number> {
  let n = 0;
  let i = 0;
  const end = Date.now() + seconds * 1000;
  const worker = async () => {
    while (Date.now() < end) {
      const res = await fetch(`${base}/v1/apps/${APP}/push`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: basicAuth() },
        body: JSON.stringify({ to: { device: `${tag}-${i++ % 5000}` }, data: { n: i }, ttl: 600 }),
      });
      await res.arrayBuffer();
      if (res.status === 202) n++;
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n / ((Date.now() - t0) / 1000);
}

export default async function bench(argv: string[]) {
  const startedAt = new Date();
  const o = parseConfig(options, argv, {});
  const { seconds, rates } = o;
  const { url: redisUrl } = await benchRedis('bench-ratelimit', o.redisUrl);
  const prefix = `bench-rl-${Date.now().toString(36)}`;
  const keys = redisKeys(prefix);
  const redis = createRedis(redisUrl);
  const rows: BenchRow[] = [];

  // 1. Accept throughput through a real gateway.
  progress('starting a gateway');
  const gw = await startGatewayProcess({ redisUrl, prefix, id: 'bench-rl', args: ['--max-inbox', '1000'] });
  try {
    progress(`accept, no policy (${seconds} s)`);
    await acceptPhase(gw.httpUrl, 1, o.concurrency, 'warm');
    const c0 = await commandStats(redis);
    const none1 = await acceptPhase(gw.httpUrl, seconds, o.concurrency, 'none');
    const opsNone = delta(c0, await commandStats(redis));
    const noneMsgs = none1 * seconds;
    await publishAppLimits(redis, keys, {
      [APP]: {
        ratePerSecond: 10_000_000,
        burst: 10_000_000,
        maxDeferred: 10_000_000,
        policy: 'bench/within',
      },
    });
    await new Promise((r) => setTimeout(r, 1500));
    progress(`accept, policy every push is within (${seconds} s)`);
    const within = await acceptPhase(gw.httpUrl, seconds, o.concurrency, 'within');
    await publishAppLimits(redis, keys, { [APP]: fullPolicy('bench/full') });
    await new Promise((r) => setTimeout(r, 1500));
    progress(`accept, whole policy (rate, daily caps, adaptive) every push is within (${seconds} s)`);
    const cf = await commandStats(redis);
    const full1 = await acceptPhase(gw.httpUrl, seconds, o.concurrency, 'full');
    const opsFull = delta(cf, await commandStats(redis));
    // The same two again, in the other order (no policy, then the whole policy): the machine's
    // drift over the run weighs on both sides of the ratio alike.
    await publishAppLimits(redis, keys, {}, [APP]);
    await new Promise((r) => setTimeout(r, 1500));
    progress(`accept, no policy again (${seconds} s)`);
    const none2 = await acceptPhase(gw.httpUrl, seconds, o.concurrency, 'none2');
    await publishAppLimits(redis, keys, { [APP]: fullPolicy('bench/full') });
    await new Promise((r) => setTimeout(r, 1500));
    progress(`accept, whole policy again (${seconds} s)`);
    const full2 = await acceptPhase(gw.httpUrl, seconds, o.concurrency, 'full2');
    const none = (none1 + none2) / 2;
    const full = (full1 + full2) / 2;
    await publishAppLimits(redis, keys, {
      [APP]: { ratePerSecond: 1, burst: 1, maxDeferred: 10_000_000, policy: 'bench/defer' },
    });
    await new Promise((r) => setTimeout(r, 1500));
    progress(`accept, policy deferring every push (${seconds} s)`);
    const c1 = await commandStats(redis);
    const deferred = await acceptPhase(gw.httpUrl, seconds, o.concurrency, 'defer');
    const opsDeferAccept = delta(c1, await commandStats(redis));
    rows.push(
      {
        metric: 'accept, no policy',
        unit: 'push/s',
        value: none,
        note: `mean of two phases: ${none1.toFixed(0)}, ${none2.toFixed(0)}`,
      },
      {
        metric: 'accept, policy (within limit)',
        unit: 'push/s',
        value: within,
        baseline: none,
        baselineName: 'no policy',
        note: 'rate limit only (one GCRA script per shard a push touches)',
      },
      {
        metric: 'accept, whole policy (within; caps + adaptive)',
        unit: 'push/s',
        value: full,
        baseline: none,
        baselineName: 'no policy',
        note: `mean of two phases: ${full1.toFixed(0)}, ${full2.toFixed(0)}; + one cap script per device bucket`,
      },
      {
        metric: 'accept, policy (all deferred)',
        unit: 'push/s',
        value: deferred,
        baseline: none,
        baselineName: 'no policy',
      },
    );
    // Release what was deferred, counting Redis commands for the release half of its life.
    const deferredCount = Math.round(deferred * seconds);
    await publishAppLimits(redis, keys, {
      [APP]: { ratePerSecond: 5000, burst: 100, maxDeferred: 10_000_000, policy: 'bench/release' },
    });
    const c2 = await commandStats(redis);
    const t0 = Date.now();
    for (;;) {
      const depth = (
        await Promise.all(Array.from({ length: 16 }, (_, s) => redis.llen(keys.appLimitShard(APP, s)[1])))
      ).reduce((a, b) => a + b, 0);
      if (depth === 0 || Date.now() - t0 > 120_000) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const opsRelease = delta(c2, await commandStats(redis));
    const deferredLife = new Map(opsDeferAccept.by);
    for (const [c, n] of opsRelease.by) deferredLife.set(c, (deferredLife.get(c) ?? 0) + n);
    const fullMsgs = full1 * seconds;
    rows.push(
      {
        metric: 'redis commands per push within the whole policy',
        unit: 'cmds',
        value: opsFull.total / Math.max(1, fullMsgs),
        baseline: opsNone.total / Math.max(1, noneMsgs),
        baselineName: 'unlimited push',
        note: `INFO commandstats delta / pushes: ${topCommands(opsFull.by, fullMsgs)} (unlimited: ${topCommands(opsNone.by, noneMsgs)})`,
      },
      {
        metric: 'redis commands per deferred push (whole life)',
        unit: 'cmds',
        value: (opsDeferAccept.total + opsRelease.total) / Math.max(1, deferredCount),
        baseline: opsNone.total / Math.max(1, noneMsgs),
        baselineName: 'unlimited push',
        note: `accept + queue + release + store, incl. background polling (noisy at low push rates): ${topCommands(deferredLife, deferredCount)}`,
      },
    );
  } finally {
    await stopGateway(gw);
  }

  // 2. Rate accuracy of the limiter itself (admission in fan-out calls, two releasers).
  const r2 = createRedis(redisUrl);
  for (const rate of rates) {
    const app = `acc-${rate}`;
    const cfg: AppLimitConfig = {
      ratePerSecond: rate,
      burst: Math.max(16, Math.round(rate / 10)),
      maxDeferred: 100_000_000,
    };
    const backlog = Math.round(rate * (seconds + 2));
    progress(`rate ${rate}/s: queueing ${backlog}`);
    const body = JSON.stringify({
      id: 'bench',
      exp: Date.now() + 3_600_000,
      ttl: 3600,
      priority: 'normal',
      sent: 0,
      data: 1,
    });
    for (let i = 0; i < backlog; i += 1000) {
      const devices = Array.from({ length: Math.min(1000, backlog - i) }, (_, k) => `d-${i + k}`);
      await admitToAppLimit(redis, keys, app, cfg, devices, { exp: Date.now() + 3_600_000, body });
    }
    const times: number[] = [];
    const configs = { get: (a: string) => (a === app ? cfg : undefined), apps: () => [app] };
    const mk = (r: PgRedis, owner: string) =>
      new AppLimitReleaser({
        redis: r,
        keys,
        configs,
        owner,
        log: silentLogger,
        scanIntervalMs: 200,
        store: async (_a, entries) => {
          const t = Date.now();
          for (let k = 0; k < entries.length; k++) times.push(t);
        },
        expired: () => {},
      });
    const a = mk(redis, 'a');
    const b = mk(r2, 'b');
    const ops0 = await commandStats(redis);
    a.start();
    b.start();
    // The window starts a second after the first release (the burst) and must end before the stop.
    await new Promise((r) => setTimeout(r, (seconds + 2.5) * 1000));
    await Promise.all([a.stop(), b.stop()]);
    const releaseOps = delta(ops0, await commandStats(redis)).total - 1;
    // From the end of the first second (the burst) for `seconds`.
    const start = times[0]! + 1000;
    const inWindow = times.filter((t) => t >= start && t < start + seconds * 1000).length;
    const perSec: number[] = [];
    for (let s = 0; s < seconds; s++)
      perSec.push(times.filter((t) => t >= start + s * 1000 && t < start + (s + 1) * 1000).length);
    const worst = Math.max(...perSec.map((n) => Math.abs(n - rate) / rate));
    rows.push({
      metric: `released at ${rate}/s`,
      unit: 'msg/s',
      value: inWindow / seconds,
      baseline: rate,
      baselineName: 'configured',
      note: `worst second ${(worst * 100).toFixed(1)}% off`,
    });
    rows.push({
      metric: `redis commands per released message at ${rate}/s`,
      unit: 'cmds',
      value: releaseOps / Math.max(1, times.length),
      note: 'release scripts, lends, acks of batches (the store itself not included); admission is 1 script per push, per shard a fan-out touches',
    });
    for (let s = 0; s < 16; s++) await redis.del(...keys.appLimitShard(app, s)); // one hashtag per call
  }
  r2.disconnect();
  redis.disconnect();
  // The machine's load, so figures from a shared machine are read for what they are.
  const loadAverage = os.loadavg().map((x) => Math.round(x * 10) / 10);
  report('ratelimit', { seconds, rates, concurrency: o.concurrency, loadAverage }, rows, startedAt);
}
