import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { campaignMessageId, readCampaignProgress } from '../../common/campaign/plan.js';
import { createRedis, type PgRedis } from '../../common/redis/connection.js';
import { redisKeys, type RedisKeys } from '../../common/redis/keys.js';
import {
  campaignPlan,
  devicesHolding,
  publishCampaign,
  registerDevices,
  startDispatcherProcess,
  stopDispatcher,
  untilProgress,
  type DispatcherProcess,
} from '../support/campaign.js';
import { uniquePrefix } from '../support/gateway.js';
import { scrapeSum } from '../support/prometheus.js';

/**
 * The campaign dispatcher on its own: real Redis, real `pushgate dispatcher` processes, devices
 * registered in the tag index (offline: a campaign's message waits in their inboxes, which the
 * tests read). Plans are published with publishCampaign, as the TagCampaign controller (another
 * helper's work, operator/controllers/tagcampaign) publishes them. The 20k end-to-end run with
 * gateways and devices is campaign-e2e.test.ts.
 */

const redisUrl = inject('redisUrl');

interface Env {
  prefix: string;
  keys: RedisKeys;
  redis: PgRedis;
  dispatchers: DispatcherProcess[];
}

function setup(name: string): Env {
  const prefix = uniquePrefix(name);
  const env: Env = {
    prefix,
    keys: redisKeys(prefix),
    redis: undefined as unknown as PgRedis,
    dispatchers: [],
  };
  beforeAll(() => {
    env.redis = createRedis(redisUrl);
  });
  afterAll(async () => {
    await Promise.all(env.dispatchers.map((d) => stopDispatcher(d)));
    env.redis.disconnect();
  });
  return env;
}

async function dispatcher(env: Env, args: string[] = [], extraEnv: NodeJS.ProcessEnv = {}) {
  const d = await startDispatcherProcess({ redisUrl, prefix: env.prefix, args, env: extraEnv });
  env.dispatchers.push(d);
  return d;
}

/** n devices `dev-<i>` with the tags of `tagsOf(i)`. */
function fleet(n: number, tagsOf: (i: number) => string[], name = 'dev') {
  return Array.from({ length: n }, (_, i) => ({ device: `${name}-${i}`, tags: tagsOf(i) }));
}

export async function sentNow(env: Env, id: string) {
  return (await readCampaignProgress(env.redis, env.keys, id)).counters.sent;
}

describe('a campaign to its audience snapshot', () => {
  const env = setup('cmp-basic');
  // 0..599 news (100 of them also churned), 600..999 sports only.
  const devices = fleet(1000, (i) => (i < 600 ? (i % 6 === 0 ? ['news', 'churned'] : ['news']) : ['sports']));
  const matching = devices
    .filter((d) => d.tags.includes('news') && !d.tags.includes('churned'))
    .map((d) => d.device);

  beforeAll(async () => {
    await registerDevices(env.redis, env.keys, devices);
    await dispatcher(env);
  });

  it('reaches every matching device once, no other, and not devices tagged after the snapshot; counts add up', async () => {
    const plan = campaignPlan({
      target: { allDevices: false, allOf: ['news'], anyOf: [], noneOf: ['churned'] },
      rate: { perSecond: 250, burst: 10 },
    });
    await publishCampaign(env.redis, env.keys, plan);
    await untilProgress(env.redis, env.keys, plan.id, (p) => p.snapshotAt !== undefined, 10_000, 'snapshot');
    // Devices that gain the tag after the snapshot are not part of this campaign.
    const late = fleet(50, () => ['news'], 'late');
    await registerDevices(env.redis, env.keys, late);
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      20_000,
      'finish',
    );
    expect(p.counters).toMatchObject({ targeted: 500, sent: 500, expired: 0, failed: 0, deferred: 0 });
    expect(p.counters.targeted).toBe(p.counters.sent + p.counters.expired + p.counters.failed);
    expect(p.startedAt).toBeGreaterThanOrEqual(p.snapshotAt!);
    expect(p.finishedAt).toBeGreaterThanOrEqual(p.startedAt!);
    // 500 at 250/s: about two seconds of sending, paced (not all at once).
    expect(p.finishedAt! - p.startedAt!).toBeGreaterThan(1500);
    const mid = campaignMessageId(plan.id);
    const all = [...devices, ...late].map((d) => d.device);
    const holding = await devicesHolding(env.redis, env.keys, all, mid);
    expect([...holding].sort()).toEqual([...matching].sort());
  });

  it('a bad plan is logged with its field and skipped; the others still run', async () => {
    const bad = 'bad-plan-1';
    await env.redis.set(
      env.keys.campaignPlan(bad),
      JSON.stringify({ ...campaignPlan({ id: bad }), rate: { perSecond: -1, burst: 1 } }),
    );
    await env.redis.sadd(env.keys.campaignIndex(), bad);
    await env.redis.set(env.keys.campaignPlan('not-json'), '{oops');
    await env.redis.sadd(env.keys.campaignIndex(), 'not-json');
    const plan = campaignPlan({
      target: { allDevices: false, allOf: ['sports'], anyOf: [], noneOf: [] },
      rate: { perSecond: 400, burst: 20 },
    });
    await publishCampaign(env.redis, env.keys, plan);
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      20_000,
      'finish',
    );
    expect(p.counters.sent).toBe(400);
    const logs = env.dispatchers[0]!.logs.join('\n');
    expect(logs).toMatch(
      /"campaign":"bad-plan-1","problem":"rate.perSecond: [^"]+".*invalid campaign plan skipped/,
    );
    expect(logs).toMatch(/"campaign":"not-json","problem":"not JSON".*invalid campaign plan skipped/);
    expect(env.dispatchers[0]!.proc.exitCode).toBeNull();
    expect(
      await scrapeSum(
        `http://127.0.0.1:${env.dispatchers[0]!.port}/metrics`,
        'pushgate_dispatcher_invalid_plans_total',
      ),
    ).toBeGreaterThan(0);
  });
});
