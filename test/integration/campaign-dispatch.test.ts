import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { campaignMessageId, readCampaignProgress, type CampaignPlan } from '../../common/campaign/plan.js';
import { publishAppLimits } from '../../common/ratelimit/releaser.js';
import { UNITS } from '../../workloads/dispatcher/units.js';
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
import {
  APP,
  RecordingDevice,
  sleep,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';
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

async function sentNow(env: Env, id: string) {
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

/** Publishes `plan` with a new state (as the controller does on spec.suspend / cancel). */
async function setState(env: Env, plan: CampaignPlan, state: CampaignPlan['state']) {
  await publishCampaign(env.redis, env.keys, { ...plan, state, generation: plan.generation + 1 });
}

async function holdingCount(env: Env, devices: { device: string }[], plan: CampaignPlan) {
  return (
    await devicesHolding(
      env.redis,
      env.keys,
      devices.map((d) => d.device),
      campaignMessageId(plan.id),
    )
  ).size;
}

describe('suspend, resume, cancel', () => {
  const env = setup('cmp-suspend');
  const devices = fleet(2000, () => ['news']);

  beforeAll(async () => {
    await registerDevices(env.redis, env.keys, devices);
    await dispatcher(env);
  });

  it('suspend stops sending within a second and keeps the cursor; resume finishes with no duplicate', async () => {
    const plan = campaignPlan({ rate: { perSecond: 400, burst: 20 } });
    await publishCampaign(env.redis, env.keys, plan);
    await untilProgress(env.redis, env.keys, plan.id, (p) => p.counters.sent >= 1000, 15_000, 'half sent');
    await setState(env, plan, 'suspend');
    await sleep(1000);
    const atOneSecond = await sentNow(env, plan.id);
    await sleep(1500);
    expect(await sentNow(env, plan.id)).toBe(atOneSecond);
    expect(atOneSecond).toBeLessThan(2000);
    expect(await holdingCount(env, devices, plan)).toBe(atOneSecond);
    await setState(env, { ...plan, generation: 2 }, 'run');
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      15_000,
      'finish',
    );
    expect(p.counters).toMatchObject({ targeted: 2000, sent: 2000, expired: 0, failed: 0 });
    expect(await holdingCount(env, devices, plan)).toBe(2000);
    // Every store was new: nothing was sent twice (a resend would be a duplicate in the store).
    const url = `http://127.0.0.1:${env.dispatchers[0]!.port}/metrics`;
    expect(await scrapeSum(url, 'pushgate_dispatcher_messages_total', (l) => l.outcome === 'duplicate')).toBe(
      0,
    );
  });

  it('cancel stops for good and the counts are final', async () => {
    const plan = campaignPlan({ rate: { perSecond: 400, burst: 20 } });
    await publishCampaign(env.redis, env.keys, plan);
    await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (p) => p.counters.sent >= 500,
      15_000,
      'a quarter sent',
    );
    await setState(env, plan, 'cancel');
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      5_000,
      'cancel',
    );
    await sleep(1500);
    const later = await readCampaignProgress(env.redis, env.keys, plan.id);
    expect(later.counters).toEqual(p.counters);
    expect(later.finishedAt).toBe(p.finishedAt);
    expect(p.counters.sent).toBeLessThan(2000);
    expect(await holdingCount(env, devices, plan)).toBe(p.counters.sent);
  });
});

describe('replicas: kill -9, a frozen replica, two racing', () => {
  const env = setup('cmp-replicas');
  const devices = fleet(3000, () => ['news']);
  const leaseMs = 1500;

  beforeAll(async () => {
    await registerDevices(env.redis, env.keys, devices);
    await Promise.all(
      [0, 1].map(() => dispatcher(env, ['--lease-ms', String(leaseMs), '--concurrency', '4'])),
    );
  });

  it('kill -9 of one of two replicas mid-campaign: the other continues from the cursors, every target once', async () => {
    const plan = campaignPlan({ rate: { perSecond: 500, burst: 20 } });
    const t0 = Date.now();
    await publishCampaign(env.redis, env.keys, plan);
    await untilProgress(env.redis, env.keys, plan.id, (p) => p.counters.sent >= 900, 15_000, '30% sent');
    const victim = env.dispatchers[0]!;
    expect(victim.logs.join('\n')).toMatch(/"msg":"dispatcher listening"/);
    victim.kill('SIGKILL');
    await victim.exited;
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      30_000,
      'finish',
    );
    expect(p.counters).toMatchObject({ targeted: 3000, sent: 3000, expired: 0, failed: 0 });
    expect(await holdingCount(env, devices, plan)).toBe(3000);
    // 3000 at 500/s is 6 s of sending; the dead replica's units waited one lease at most, while
    // the survivor worked the other units at the campaign's rate.
    expect(p.finishedAt! - t0).toBeLessThan(6000 + leaseMs + 3000);
  });

  it('a replica frozen past its lease (SIGSTOP) wakes fenced: nothing is counted twice, every target once', async () => {
    const survivor = env.dispatchers[1]!;
    const frozen = await dispatcher(env, ['--lease-ms', String(leaseMs), '--concurrency', '4']);
    const plan = campaignPlan({ rate: { perSecond: 500, burst: 20 } });
    await publishCampaign(env.redis, env.keys, plan);
    await untilProgress(env.redis, env.keys, plan.id, (p) => p.counters.sent >= 600, 15_000, '20% sent');
    frozen.kill('SIGSTOP');
    await sleep(leaseMs * 2 + 500);
    frozen.kill('SIGCONT');
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      30_000,
      'finish',
    );
    await sleep(500);
    const after = await readCampaignProgress(env.redis, env.keys, plan.id);
    expect(after.counters).toMatchObject({ targeted: 3000, sent: 3000, expired: 0, failed: 0 });
    expect(after.counters).toEqual(p.counters);
    expect(await holdingCount(env, devices, plan)).toBe(3000);
    expect(survivor.proc.exitCode).toBeNull();
  });

  it('two replicas racing for the units: each unit is worked by one holder at a time, cursors end at the lengths', async () => {
    const units = await env.redis.hgetall(env.keys.campaignUnits((await lastPlan(env)).id));
    let total = 0;
    for (let u = 0; u < UNITS; u++) {
      expect(units[`cursor:${u}`] ?? '0').toBe(units[`len:${u}`]);
      expect(units[`done:${u}`]).toBe('1');
      total += Number(units[`len:${u}`]);
    }
    expect(total).toBe(3000);
  });
});

async function lastPlan(env: Env): Promise<CampaignPlan> {
  const ids = await env.redis.smembers(env.keys.campaignIndex());
  const plans = await Promise.all(
    ids.map(async (id) => JSON.parse((await env.redis.get(env.keys.campaignPlan(id)))!) as CampaignPlan),
  );
  const progress = await Promise.all(plans.map((p) => readCampaignProgress(env.redis, env.keys, p.id)));
  let best = 0;
  progress.forEach((p, i) => {
    if ((p.snapshotAt ?? 0) > (progress[best]!.snapshotAt ?? 0)) best = i;
  });
  return plans[best]!;
}

describe('schedule: start time, quiet hours (injected clock), deadline', () => {
  const env = setup('cmp-schedule');
  const devices = fleet(1000, () => ['news']);
  const clockKey = `${env.prefix}:test-clock`;

  beforeAll(async () => {
    await registerDevices(env.redis, env.keys, devices);
    await dispatcher(env, [], { PUSHGATE_TEST_CLOCK_KEY: clockKey });
  });

  it('a future start time stays pending, then starts', async () => {
    const startAt = Date.now() + 2500;
    const plan = campaignPlan({ startAt, rate: { perSecond: 500, burst: 20 } });
    await publishCampaign(env.redis, env.keys, plan);
    await sleep(1500);
    const pending = await readCampaignProgress(env.redis, env.keys, plan.id);
    expect(pending.snapshotAt).toBeUndefined();
    expect(pending.counters.sent).toBe(0);
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      15_000,
      'finish',
    );
    expect(p.snapshotAt).toBeGreaterThanOrEqual(startAt);
    expect(p.counters.sent).toBe(1000);
  });

  it('quiet hours pause sending and it resumes at their end, nothing dropped', async () => {
    // The dispatcher's clock: 09:59:58 UTC today, then 11:00:00 when the test moves it.
    const day = Math.floor(Date.now() / 86_400_000) * 86_400_000;
    const setClock = (at: number) => env.redis.set(clockKey, String(at - Date.now()));
    await setClock(day + 10 * 3600_000 - 2000);
    const plan = campaignPlan({
      rate: { perSecond: 200, burst: 10 },
      quietHours: { timeZone: 'UTC', start: '10:00', end: '11:00' },
    });
    await publishCampaign(env.redis, env.keys, plan);
    await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (p) => p.throttled === 'QuietHours',
      10_000,
      'quiet hours',
    );
    const paused = await sentNow(env, plan.id);
    expect(paused).toBeGreaterThan(0);
    expect(paused).toBeLessThan(1000);
    await sleep(1500);
    expect(await sentNow(env, plan.id)).toBe(paused);
    await setClock(day + 11 * 3600_000);
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      15_000,
      'finish',
    );
    expect(p.counters).toMatchObject({ targeted: 1000, sent: 1000, expired: 0 });
    expect(p.throttled).toBeUndefined();
    await env.redis.del(clockKey);
  });

  it('a deadline counts the rest expired', async () => {
    const plan = campaignPlan({ rate: { perSecond: 200, burst: 10 }, deadline: Date.now() + 2500 });
    await publishCampaign(env.redis, env.keys, plan);
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      15_000,
      'finish',
    );
    expect(p.counters.expired).toBeGreaterThan(0);
    expect(p.counters.sent).toBeGreaterThan(0);
    expect(p.counters.sent + p.counters.expired + p.counters.failed).toBe(1000);
    expect(await holdingCount(env, devices, plan)).toBe(p.counters.sent);
  });

  it('a campaign suspended past its deadline finishes: the rest counted expired', async () => {
    const plan = campaignPlan({ rate: { perSecond: 200, burst: 10 }, deadline: Date.now() + 3000 });
    await publishCampaign(env.redis, env.keys, plan);
    await untilProgress(env.redis, env.keys, plan.id, (x) => x.counters.sent >= 100, 10_000, 'some sent');
    await setState(env, plan, 'suspend');
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      15_000,
      'finish',
    );
    expect(p.finishedAt).toBeGreaterThanOrEqual(plan.deadline!);
    expect(p.counters.sent).toBeLessThan(1000);
    expect(p.counters.sent + p.counters.expired + p.counters.failed).toBe(1000);
    expect(await holdingCount(env, devices, plan)).toBe(p.counters.sent);
  });

  it('dryRun snapshots and counts, sends nothing', async () => {
    const plan = campaignPlan({ dryRun: true });
    await publishCampaign(env.redis, env.keys, plan);
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      10_000,
      'finish',
    );
    expect(p.counters).toMatchObject({ targeted: 1000, sent: 0 });
    expect(await holdingCount(env, devices, plan)).toBe(0);
  });
});

describe('a Redis that forgets, and garbage collection', () => {
  const env = setup('cmp-lost');
  const devices = fleet(1000, () => ['news']);

  beforeAll(async () => {
    await registerDevices(env.redis, env.keys, devices);
    await dispatcher(env, ['--gc-interval-ms', '500']);
  });

  /** Sends about 30%, suspends, lets Redis forget `lost(id)`, resumes: the campaign must stop with `error`. */
  async function forgetMidway(lost: (id: string) => string, error: RegExp) {
    const plan = campaignPlan({ rate: { perSecond: 400, burst: 20 } });
    await publishCampaign(env.redis, env.keys, plan);
    await untilProgress(env.redis, env.keys, plan.id, (p) => p.counters.sent >= 300, 10_000, 'some sent');
    await setState(env, plan, 'suspend');
    await sleep(1000);
    const held = await holdingCount(env, devices, plan);
    await env.redis.del(lost(plan.id));
    await setState(env, { ...plan, generation: 2 }, 'run');
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.error !== undefined,
      10_000,
      'error',
    );
    expect(p.error).toMatch(error);
    await sleep(1000);
    expect(await holdingCount(env, devices, plan)).toBe(held);
  }

  it('progress lost after sending began: the campaign stops with an error, it does not resend to everyone', async () => {
    // The cursors survive, in the same slot; the campaign's message status (another slot) too.
    await forgetMidway((id) => env.keys.campaignProgress(id), /state lost: progress lost/);
    expect(env.dispatchers[0]!.logs.join('\n')).toMatch(/campaign state lost in Redis/);
  });

  it('cursors lost (progress kept): the campaign stops with an error, it does not start from zero', async () => {
    await forgetMidway((id) => env.keys.campaignUnits(id), /state lost: cursors lost/);
  });

  it("a deleted campaign's dispatcher keys are removed (the controller removes plan, progress and index entry)", async () => {
    const plan = campaignPlan({ rate: { perSecond: 1000, burst: 50 } });
    await publishCampaign(env.redis, env.keys, plan);
    await untilProgress(env.redis, env.keys, plan.id, (p) => p.counters.sent >= 100, 10_000, 'some sent');
    expect(await env.redis.exists(env.keys.campaignUnits(plan.id))).toBe(1);
    // What the controller does on delete.
    await env.redis.srem(env.keys.campaignIndex(), plan.id);
    await env.redis.del(env.keys.campaignPlan(plan.id), env.keys.campaignProgress(plan.id));
    const mine = () => [
      env.keys.campaignUnits(plan.id),
      env.keys.campaignRate(plan.id),
      env.keys.rateLimit(`cmp:${plan.id}`),
      ...Array.from({ length: UNITS }, (_, u) => env.keys.campaignAudience(plan.id, u)),
    ];
    const deadline = Date.now() + 10_000;
    while ((await env.redis.exists(...mine())) > 0 && Date.now() < deadline) await sleep(200);
    expect(await env.redis.exists(...mine())).toBe(0);
    expect(await env.redis.sismember(env.keys.campaignDispatched(), plan.id)).toBe(0);
    // And no progress was created again by a late batch or count.
    await sleep(1000);
    expect(await env.redis.exists(env.keys.campaignProgress(plan.id), ...mine())).toBe(0);
  });
});

describe('campaigns share a replica', () => {
  const env = setup('cmp-share');
  const devices = fleet(1000, () => ['news']);
  const fast = fleet(300, () => ['flash'], 'fast');

  beforeAll(async () => {
    await registerDevices(env.redis, env.keys, [...devices, ...fast]);
    await dispatcher(env, ['--concurrency', '2']);
  });

  it('a slow campaign with big units does not hold every unit slot while another waits', async () => {
    // 1,000 at 4/s: minutes, both slots of this replica busy with its units (16 devices each,
    // 8 s a unit).
    const slow = campaignPlan({ rate: { perSecond: 4, burst: 2 } });
    await publishCampaign(env.redis, env.keys, slow);
    await untilProgress(env.redis, env.keys, slow.id, (x) => x.counters.sent >= 4, 10_000, 'slow started');
    const quick = campaignPlan({
      target: { allDevices: false, allOf: ['flash'], anyOf: [], noneOf: [] },
      rate: { perSecond: 300, burst: 30 },
    });
    await publishCampaign(env.redis, env.keys, quick);
    const q = await untilProgress(
      env.redis,
      env.keys,
      quick.id,
      (x) => x.finishedAt !== undefined,
      6_000,
      'quick finish',
    );
    expect(q.counters.sent).toBe(300);
    const s = await readCampaignProgress(env.redis, env.keys, slow.id);
    expect(s.finishedAt).toBeUndefined();
    expect(s.counters.sent).toBeGreaterThan(4);
    await setState(env, slow, 'cancel');
  });
});

describe("two campaigns of one app over the app's limit", () => {
  const env = setup('cmp-applimit');
  const gateways: GatewayProcess[] = [];
  const devices: RecordingDevice[] = [];
  const arrivals: number[] = [];
  const limit = 200;

  beforeAll(async () => {
    await publishAppLimits(env.redis, env.keys, {
      [APP]: { ratePerSecond: limit, burst: 20, maxDeferred: 100_000, policy: 'default/limit' },
    });
    gateways.push(await startGatewayProcess({ redisUrl, prefix: env.prefix, id: 'cmp-gw' }));
    for (let i = 0; i < 300; i++) {
      const d = new RecordingDevice({ device: `on-${i}`, endpoints: [gateways[0]!.wsUrl], tags: ['news'] });
      d.client.on('push', () => arrivals.push(Date.now()));
      devices.push(d);
    }
    await Promise.all(devices.map((d) => d.client.start()));
    await until(() => devices.every((d) => d.client.connected), 30_000, 'devices connected');
    await dispatcher(env);
  });
  afterAll(async () => {
    devices.forEach((d) => d.client.stop());
    await Promise.all(gateways.map((g) => stopGateway(g)));
  });

  it('together they stay within the app limit (deferred, never dropped) and both finish', async () => {
    const a = campaignPlan({ rate: { perSecond: 500, burst: 20 } });
    const b = campaignPlan({ rate: { perSecond: 500, burst: 20 } });
    const t0 = Date.now();
    await Promise.all([publishCampaign(env.redis, env.keys, a), publishCampaign(env.redis, env.keys, b)]);
    const [pa, pb] = await Promise.all(
      [a, b].map((p) =>
        untilProgress(env.redis, env.keys, p.id, (x) => x.finishedAt !== undefined, 30_000, 'finish'),
      ),
    );
    for (const p of [pa!, pb!])
      expect(p.counters).toMatchObject({ targeted: 300, sent: 300, failed: 0, expired: 0 });
    expect(pa!.counters.deferred + pb!.counters.deferred).toBeGreaterThan(0);
    await until(() => devices.every((d) => d.pushes.length === 2), 20_000, 'both messages on every device');
    // 600 deliveries at the app's 200/s (burst 20): not faster than the limit allows.
    const span = Math.max(...arrivals) - t0;
    expect(span).toBeGreaterThanOrEqual(((600 - 20) / limit) * 1000 * 0.9);
    for (const d of devices) expect(new Set(d.ids()).size).toBe(2);
  });
});

describe('TTL 0: now or never', () => {
  const env = setup('cmp-ttl0');
  let gateway: GatewayProcess;
  const online: RecordingDevice[] = [];
  const offline = fleet(100, () => ['news'], 'off');

  beforeAll(async () => {
    gateway = await startGatewayProcess({ redisUrl, prefix: env.prefix, id: 'cmp-ttl0' });
    for (let i = 0; i < 50; i++)
      online.push(new RecordingDevice({ device: `on-${i}`, endpoints: [gateway.wsUrl], tags: ['news'] }));
    await Promise.all(online.map((d) => d.client.start()));
    await until(() => online.every((d) => d.client.connected), 30_000, 'devices connected');
    await registerDevices(env.redis, env.keys, offline);
    await dispatcher(env);
  });
  afterAll(async () => {
    online.forEach((d) => d.client.stop());
    await stopGateway(gateway);
  });

  it('reaches only the devices connected at send time; the others are counted expired, not sent', async () => {
    const plan = campaignPlan({ push: { data: { flash: 1 }, ttlSeconds: 0, priority: 'high' } });
    const mid = campaignMessageId(plan.id);
    await publishCampaign(env.redis, env.keys, plan);
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.finishedAt !== undefined,
      15_000,
      'finish',
    );
    expect(p.counters).toMatchObject({ targeted: 150, sent: 50, expired: 100, failed: 0 });
    await until(() => online.every((d) => d.ids().includes(mid)), 10_000, 'online devices received');
    // An offline device that connects now finds nothing.
    const late = new RecordingDevice({
      device: offline[0]!.device,
      endpoints: [gateway.wsUrl],
      tags: ['news'],
    });
    await late.client.start();
    await sleep(1000);
    expect(late.ids()).not.toContain(mid);
    late.client.stop();
    const final = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.counters.acked >= 50,
      10_000,
      'acked',
    );
    expect(final.counters.delivered).toBe(50);
  });
});

describe('delivered counts the devices that read it, once each; acked the acks', () => {
  const env = setup('cmp-recv');
  let gateway: GatewayProcess;
  const ackers: RecordingDevice[] = [];
  const readers: RecordingDevice[] = [];
  const reader = (i: number) =>
    new RecordingDevice({ device: `rd-${i}`, endpoints: [gateway.wsUrl], tags: ['news'], autoAck: false });

  beforeAll(async () => {
    gateway = await startGatewayProcess({ redisUrl, prefix: env.prefix, id: 'cmp-recv' });
    for (let i = 0; i < 10; i++)
      ackers.push(new RecordingDevice({ device: `ak-${i}`, endpoints: [gateway.wsUrl], tags: ['news'] }));
    // Devices that read (receipts, the client's default) but never ack: the app did not handle it.
    for (let i = 0; i < 20; i++) readers.push(reader(i));
    await Promise.all([...ackers, ...readers].map((d) => d.client.start()));
    await until(() => [...ackers, ...readers].every((d) => d.client.connected), 30_000, 'devices connected');
    await dispatcher(env);
  });
  afterAll(async () => {
    [...ackers, ...readers].forEach((d) => d.client.stop());
    await stopGateway(gateway);
  });

  it('readers count delivered, not acked; a resend after their reconnect counts nothing again', async () => {
    const plan = campaignPlan({});
    const mid = campaignMessageId(plan.id);
    await publishCampaign(env.redis, env.keys, plan);
    const p = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.counters.delivered >= 30 && x.counters.acked >= 10,
      15_000,
      'read and acked',
    );
    expect(p.counters).toMatchObject({ targeted: 30, sent: 30 });
    await sleep(1500); // one more flush: nothing beyond
    expect((await readCampaignProgress(env.redis, env.keys, plan.id)).counters).toMatchObject({
      delivered: 30,
      acked: 10,
    });
    // Unacked, the message is sent again on the readers' next connection: read again, not
    // counted again.
    readers.forEach((d) => d.client.stop());
    const again = Array.from({ length: 20 }, (_, i) => reader(i));
    readers.splice(0, readers.length, ...again);
    await Promise.all(again.map((d) => d.client.start()));
    await until(() => again.every((d) => d.ids().includes(mid)), 15_000, 'resent to the readers');
    await sleep(1500);
    expect((await readCampaignProgress(env.redis, env.keys, plan.id)).counters).toMatchObject({
      delivered: 30,
      acked: 10,
    });
    // Now they ack: acked catches up, delivered stays (an ack of a read message is no new read).
    for (const d of again) d.client.ack([mid]);
    const acked = await untilProgress(
      env.redis,
      env.keys,
      plan.id,
      (x) => x.counters.acked >= 30,
      10_000,
      'acked',
    );
    await sleep(1500);
    expect((await readCampaignProgress(env.redis, env.keys, plan.id)).counters).toMatchObject({
      delivered: 30,
      acked: 30,
    });
    expect(acked.counters.delivered).toBe(30);
  });
});

describe("a device's daily cap (RateLimitPolicy perDevice)", () => {
  const env = setup('cmp-devcap');
  const devices = fleet(200, () => ['news']);

  beforeAll(async () => {
    await publishAppLimits(env.redis, env.keys, {
      [APP]: { ratePerSecond: 10_000, burst: 10_000, maxDeferred: 100_000, perDevice: { messagesPerDay: 1 } },
    });
    await registerDevices(env.redis, env.keys, devices);
    await dispatcher(env);
  });

  it("a second campaign the same day is held for the next day: counted sent and deferred, throttled DeviceCap, not in today's inboxes", async () => {
    const first = campaignPlan({ rate: { perSecond: 400, burst: 20 } });
    await publishCampaign(env.redis, env.keys, first);
    const p1 = await untilProgress(
      env.redis,
      env.keys,
      first.id,
      (x) => x.finishedAt !== undefined,
      15_000,
      'first',
    );
    expect(p1.counters).toMatchObject({ targeted: 200, sent: 200, deferred: 0, failed: 0 });
    const second = campaignPlan({ rate: { perSecond: 100, burst: 10 } });
    await publishCampaign(env.redis, env.keys, second);
    await untilProgress(
      env.redis,
      env.keys,
      second.id,
      (x) => x.throttled === 'DeviceCap',
      10_000,
      'DeviceCap',
    );
    const p2 = await untilProgress(
      env.redis,
      env.keys,
      second.id,
      (x) => x.finishedAt !== undefined,
      15_000,
      'second',
    );
    expect(p2.counters).toMatchObject({ targeted: 200, sent: 200, deferred: 200, failed: 0, expired: 0 });
    expect(p2.counters.targeted).toBe(p2.counters.sent + p2.counters.expired + p2.counters.failed);
    expect(await holdingCount(env, devices, first)).toBe(200);
    expect(await holdingCount(env, devices, second)).toBe(0);
  });
});
