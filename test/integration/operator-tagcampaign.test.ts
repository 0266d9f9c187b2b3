import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, type PgRedis } from '../../common/redis/connection.js';
import { redisKeys } from '../../common/redis/keys.js';
import {
  campaignMessageId,
  publishCampaign,
  removeCampaign,
  type CampaignPlan,
} from '../../common/campaign/plan.js';
import { RateLimitPolicyResource } from '../../operator/controllers/ratelimitpolicy/controller.js';
import { TagCampaignResource } from '../../operator/controllers/tagcampaign/controller.js';
import { CAMPAIGN_FINALIZER } from '../../operator/controllers/tagcampaign/steps/finalizer.js';
import { isNotFound, type KubeObject } from '../../operator/runtime/kube.js';
import { Resources } from '../../operator/runtime/resources.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { kubectl } from '../support/stack.js';
import {
  applyPushGateway,
  clientFor,
  installCRDs,
  samplePushGateway,
  startOperator,
  type OperatorProcess,
} from '../support/operator.js';
import { APP, sleep, uniquePrefix } from '../support/gateway.js';
import {
  devicesHolding,
  registerDevices,
  startDispatcherProcess,
  stopDispatcher,
} from '../support/campaign.js';

/**
 * The TagCampaign controller on the real control plane, the operator as a child process, with
 * the run's real Redis. The dispatcher is a separate process (workloads/dispatcher, another
 * piece of issue 11): here the test stands in for it by writing the progress hash the
 * dispatchers and gateways write (common/campaign/plan.ts), and reads the plans the operator
 * publishes. The operator polls progress every 2 s here (--campaign-status-seconds 2; 12 s by
 * default), so the bound on status writes is checked against that.
 */
const kubeconfig = inject('kubeconfig');
const redisUrl = inject('redisUrl');
const client = clientFor(kubeconfig);
const prefix = uniquePrefix('tc-op');
const keys = redisKeys(prefix);
/** The PushGateway `main` on the test's key prefix (spec.redis.keyPrefix), which its campaigns use. */
const mainGateway = (patch: NonNullable<Parameters<typeof samplePushGateway>[2]> = () => {}) =>
  samplePushGateway(ns, 'main', (spec) => {
    spec.redis = { ...spec.redis, keyPrefix: prefix };
    patch(spec);
  });
const POLL_S = 2;
let ns: string;
let operator: OperatorProcess;
let redis: PgRedis;

type Cond = { type: string; status: string; reason: string; message: string };
type Campaign = KubeObject & {
  status?: {
    phase?: string;
    observedGeneration?: number;
    conditions?: Cond[];
    counters?: Record<string, number>;
    progress?: string;
    ratePerSecond?: number;
    plannedRatePerSecond?: number;
    eta?: string;
    estimatedCompletionTime?: string;
    startTime?: string;
    completionTime?: string;
  };
};

const APP_CAPPED = 'shop';
const campaign = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'pushgate.dev/v1alpha1',
  kind: 'TagCampaign',
  metadata: { name, namespace: ns },
  spec: {
    gatewayRef: { name: 'main' },
    appId: APP_CAPPED,
    target: { allOf: ['vip'], noneOf: ['churned'] },
    message: { title: 'Sale', body: '20% off', data: { sku: '42' }, ttlSeconds: 3600, collapseKey: 'sale' },
    ...spec,
  },
});
const apply = (obj: object) =>
  client.apply(TagCampaignResource, obj as KubeObject, { fieldManager: 'test', force: true });
const get = (name: string) => client.get<Campaign>(TagCampaignResource, ns, name);
/** The campaign is gone from the API (its finalizer released). */
const gone = (name: string) =>
  get(name).then(
    () => false,
    (err: unknown) => isNotFound(err),
  );
const cond = (c: Campaign, type: string) => c.status?.conditions?.find((x) => x.type === type);
const patchSpec = (name: string, spec: object) =>
  client.mergePatch<Campaign>(TagCampaignResource, ns, name, { spec });

async function plan(uid: string): Promise<CampaignPlan | undefined> {
  const raw = await redis.get(keys.campaignPlan(uid));
  return raw ? (JSON.parse(raw) as CampaignPlan) : undefined;
}
/** What a dispatcher (and the gateways) would write: the progress hash of the campaign. */
const writeProgress = (uid: string, fields: Record<string, string | number>) =>
  redis.hset(keys.campaignProgress(uid), fields);

async function events(name: string): Promise<{ type: string; reason: string; note: string }[]> {
  const list = await client.list<
    KubeObject & { type: string; reason: string; note: string; regarding: { name: string } }
  >(Resources.Event, ns);
  return list.items
    .filter((e) => e.regarding?.name === name)
    .map(({ type, reason, note }) => ({ type, reason, note }));
}
const hasEvent = (name: string, reason: string) =>
  eventually(async () => (await events(name)).find((e) => e.reason === reason), {
    what: `event ${reason} on ${name}`,
    timeoutMs: 30_000,
  });

const until = <T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000) =>
  eventually(check, { what, timeoutMs });

/** Counts the writes that changed a campaign's status, as the API server's watch reports them. */
function countStatusWrites(name: string): {
  count: () => number;
  phase: () => string | undefined;
  stop: () => void;
} {
  let n = 0;
  let last: string | undefined;
  let phase: string | undefined;
  const handle = client.watch(
    TagCampaignResource,
    ns,
    {},
    (e) => {
      const o = e.object as Campaign;
      if (o.metadata?.name !== name) return;
      const s = JSON.stringify(o.status ?? {});
      if (last !== undefined && s !== last) n++;
      last = s;
      phase = o.status?.phase;
    },
    () => undefined,
  );
  return { count: () => n, phase: () => phase, stop: () => handle.abort() };
}

beforeAll(async () => {
  ns = await createTestNamespace(testKubeConfig(kubeconfig), 'op-tc');
  await installCRDs(kubeconfig);
  redis = createRedis(redisUrl);
  await client.apply(
    Resources.Secret,
    { metadata: { name: 'pushgate-redis', namespace: ns }, stringData: { url: redisUrl } },
    { fieldManager: 'test' },
  );
  // A second gateway whose Redis is down (nothing listens on port 1): the campaign there cannot publish.
  await client.apply(
    Resources.Secret,
    { metadata: { name: 'dead-redis', namespace: ns }, stringData: { url: 'redis://127.0.0.1:1' } },
    { fieldManager: 'test' },
  );
  await applyPushGateway(client, mainGateway());
  await applyPushGateway(
    client,
    samplePushGateway(ns, 'down', (spec) => (spec.redis = { secretName: 'dead-redis' })),
  );
  await client.apply(
    RateLimitPolicyResource,
    {
      apiVersion: 'pushgate.dev/v1alpha1',
      kind: 'RateLimitPolicy',
      metadata: { name: 'limits', namespace: ns },
      spec: {
        gatewayRef: { name: 'main' },
        appIds: [APP_CAPPED],
        campaigns: { defaultMessagesPerSecond: 100, maxMessagesPerSecond: 300 },
      },
    } as KubeObject,
    { fieldManager: 'test' },
  );
  operator = startOperator(kubeconfig, [
    ...['--namespace', ns, '--lease-namespace', ns, '--lease-name', 'op-tc'],
    ...['--campaign-status-seconds', String(POLL_S)],
    ...['--campaign-cleanup-timeout-seconds', '5', '--campaign-orphan-sweep-seconds', '1'],
  ]);
}, 180_000);

afterAll(async () => {
  await operator?.stop();
  redis?.disconnect();
  client.close();
});

describe('TagCampaign controller', () => {
  it('publishes the plan with the rate capped by the policy; progress drives phase, conditions, events, progress, rate, ETA and the columns', async () => {
    await apply(campaign('sale', { rate: { messagesPerSecond: 1000 } }));
    const created = await get('sale');
    const uid = created.metadata!.uid!;
    // publishCampaign writes the plan, then the index entry: wait for both.
    const p = await until('the plan in Redis, indexed', async () =>
      (await redis.sismember(keys.campaignIndex(), uid)) === 1 ? plan(uid) : undefined,
    );
    expect(p).toMatchObject({
      id: uid,
      name: `${ns}/sale`,
      app: APP_CAPPED,
      state: 'run',
      dryRun: false,
      rate: { perSecond: 300 },
      target: { allDevices: false, allOf: ['vip'], anyOf: [], noneOf: ['churned'] },
      push: {
        data: { title: 'Sale', body: '20% off', data: { sku: '42' } },
        ttlSeconds: 3600,
        collapseKey: 'sale',
      },
    });
    expect(p.startAt).toBe(Date.parse(created.metadata!.creationTimestamp!));
    const running = await until('Running', async () => {
      const c = await get('sale');
      return c.status?.phase === 'Running' && c;
    });
    expect(running.metadata?.finalizers).toContain(CAMPAIGN_FINALIZER);
    expect(cond(running, 'RateCapped')).toMatchObject({ status: 'True', reason: 'PolicyMaximum' });
    expect(cond(running, 'RateCapped')?.message).toMatch(/at most 300\/s/);
    expect(running.status?.plannedRatePerSecond).toBe(300);
    expect(running.status?.observedGeneration).toBe(running.metadata?.generation);

    // The dispatcher snapshots 1000 devices and sends 400 at 100/s, held back by the app limit.
    const now = Date.now();
    await writeProgress(uid, {
      targeted: 1000,
      sent: 400,
      delivered: 350,
      acked: 300,
      deferred: 20,
      snapshotAt: now,
      startedAt: now,
      ratePerSecond: 100,
      throttled: 'AppLimit',
    });
    const moving = await until('progress in status', async () => {
      const c = await get('sale');
      return c.status?.progress === '400/1000 (40%)' && c;
    });
    expect(moving.status?.counters).toMatchObject({
      targeted: 1000,
      sent: 400,
      delivered: 350,
      acked: 300,
      deferred: 20,
    });
    expect(moving.status?.ratePerSecond).toBe(100);
    expect(moving.status?.eta).toBe('6s');
    expect(Date.parse(moving.status!.estimatedCompletionTime!)).toBeGreaterThan(now);
    expect(moving.status?.startTime).toBeDefined();
    expect(cond(moving, 'Throttled')).toMatchObject({ status: 'True', reason: 'AppLimit' });
    expect(cond(moving, 'Progressing')).toMatchObject({ status: 'True', reason: 'Sending' });

    const table = await kubectl(kubeconfig, ['-n', ns, 'get', 'tagcampaign', 'sale']);
    expect(table).toMatch(/^NAME\s+PHASE\s+PROGRESS\s+RATE\s+ETA\s+AGE\s*$/m);
    expect(table).toMatch(/^sale\s+Running\s+400\/1000 \(40%\)\s+100\s+6s\s+\S+\s*$/m);

    await writeProgress(uid, {
      sent: 990,
      expired: 10,
      delivered: 900,
      finishedAt: Date.now(),
      ratePerSecond: 0,
    });
    const done = await until('Completed', async () => {
      const c = await get('sale');
      return c.status?.phase === 'Completed' && c;
    });
    expect(cond(done, 'Complete')).toMatchObject({ status: 'True', reason: 'Completed' });
    expect(cond(done, 'Progressing')).toMatchObject({ status: 'False' });
    expect(done.status?.progress).toBe('1000/1000 (100%)');
    expect(done.status?.completionTime).toBeDefined();
    for (const reason of ['RateCapped', 'Started', 'Completed']) await hasEvent('sale', reason);
  }, 90_000);

  it('an app no policy covers gets the built-in limits (not unlimited), and says so', async () => {
    await apply(campaign('other-app', { appId: 'news', rate: { messagesPerSecond: 100_000 } }));
    const c = await until('RateCapped', async () => {
      const x = await get('other-app');
      return cond(x, 'RateCapped') && x;
    });
    expect(cond(c, 'RateCapped')).toMatchObject({ status: 'True', reason: 'PolicyMaximum' });
    expect(cond(c, 'RateCapped')?.message).toMatch(/no RateLimitPolicy covers app news/);
    expect((await plan(c.metadata!.uid!))?.rate.perSecond).toBe(5000);
  }, 60_000);

  it('status writes while running stay within one per poll, and stop once Completed', async () => {
    await apply(campaign('busy'));
    const uid = (await get('busy')).metadata!.uid!;
    await until('Running', async () => (await get('busy')).status?.phase === 'Running');
    await writeProgress(uid, { targeted: 1_000_000, snapshotAt: Date.now(), startedAt: Date.now() });
    // A dispatcher counting every 100 ms: the counters change far more often than status may.
    let sent = 0;
    let counting = true;
    const counter = (async () => {
      while (counting) {
        sent += 50;
        await writeProgress(uid, { sent, ratePerSecond: 500 });
        await sleep(100);
      }
    })();
    const writes = countStatusWrites('busy');
    const windowS = 12;
    await sleep(windowS * 1000);
    const whileRunning = writes.count();
    console.log(
      `status writes of a running campaign in ${windowS} s (poll ${POLL_S} s, progress changing every 100 ms): ${whileRunning}`,
    );
    // At most one write per poll (plus one for a poll that straddles the window's edge).
    expect(whileRunning).toBeLessThanOrEqual(windowS / POLL_S + 1);
    expect(whileRunning).toBeGreaterThanOrEqual(2); // it does keep status moving
    await writeProgress(uid, { finishedAt: Date.now() });
    // Counted from the write the watch saw reach Completed (a GET can see it before the watch does).
    await until('Completed, as the watch saw it', async () => writes.phase() === 'Completed');
    const atCompletion = writes.count();
    await sleep(4 * POLL_S * 1000);
    counting = false;
    await counter;
    writes.stop();
    console.log(`status writes in the ${4 * POLL_S} s after Completed: ${writes.count() - atCompletion}`);
    expect(writes.count() - atCompletion).toBe(0);
  }, 90_000);

  it('suspend and resume republish the plan; cancel is final and cannot be undone; immutable fields stay', async () => {
    await apply(campaign('pausable'));
    const uid = (await get('pausable')).metadata!.uid!;
    await until('Running', async () => (await get('pausable')).status?.phase === 'Running');
    await writeProgress(uid, {
      targeted: 100,
      sent: 10,
      snapshotAt: Date.now(),
      startedAt: Date.now(),
      ratePerSecond: 5,
    });

    await patchSpec('pausable', { suspend: true });
    await until('plan suspended', async () => (await plan(uid))?.state === 'suspend');
    const suspended = await until('Suspended', async () => {
      const c = await get('pausable');
      return c.status?.phase === 'Suspended' && c;
    });
    expect(cond(suspended, 'Suspended')).toMatchObject({ status: 'True' });
    expect(suspended.status?.ratePerSecond).toBe(0);
    await hasEvent('pausable', 'Suspended');

    await patchSpec('pausable', { suspend: false });
    await until('plan running again', async () => (await plan(uid))?.state === 'run');
    await until('Running again', async () => (await get('pausable')).status?.phase === 'Running');
    await hasEvent('pausable', 'Resumed');

    // What the CRD refuses mid-run: the app, the target, and un-cancelling.
    await expect(patchSpec('pausable', { appId: 'news' })).rejects.toThrow(/appId is immutable/);
    await expect(patchSpec('pausable', { target: { allOf: ['other'] } })).rejects.toThrow(
      /target is immutable/,
    );

    await patchSpec('pausable', { cancel: true });
    await until('plan cancelled', async () => (await plan(uid))?.state === 'cancel');
    const cancelled = await until('Cancelled', async () => {
      const c = await get('pausable');
      return c.status?.phase === 'Cancelled' && c;
    });
    expect(cond(cancelled, 'Progressing')).toMatchObject({ status: 'False', reason: 'Cancelled' });
    expect(cancelled.status?.completionTime).toBeUndefined(); // the dispatchers have not stopped yet
    await expect(patchSpec('pausable', { cancel: false })).rejects.toThrow(/cannot be resumed/);
    await hasEvent('pausable', 'Cancelled');
    // The dispatcher stops and writes its final counts: status takes them and is final.
    await writeProgress(uid, { sent: 12, finishedAt: Date.now(), ratePerSecond: 0 });
    const final = await until('final counts', async () => {
      const c = await get('pausable');
      return c.status?.completionTime !== undefined && c;
    });
    expect(final.status?.counters?.sent).toBe(12);
    expect(final.status?.progress).toBe('12/100 (12%)');
  }, 90_000);

  it('says so, with a Warning, when the ETA passes the deadline, and does not speed up', async () => {
    const deadline = new Date(Date.now() + 120_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await apply(campaign('late', { schedule: { deadline } }));
    const uid = (await get('late')).metadata!.uid!;
    await until('Running', async () => (await get('late')).status?.phase === 'Running');
    await writeProgress(uid, {
      targeted: 100_000,
      sent: 100,
      snapshotAt: Date.now(),
      startedAt: Date.now(),
      ratePerSecond: 50,
    });
    const late = await until('ETAPastDeadline', async () => {
      const c = await get('late');
      return cond(c, 'Progressing')?.reason === 'ETAPastDeadline' && c;
    });
    expect(cond(late, 'Progressing')?.message).toMatch(/devices will be counted expired/);
    expect(Date.parse(late.status!.estimatedCompletionTime!)).toBeGreaterThan(Date.parse(deadline));
    expect((await hasEvent('late', 'ETAPastDeadline')).type).toBe('Warning');
    const p = await plan(uid);
    expect(p?.rate.perSecond).toBe(100); // the policy default, unchanged
    expect(p?.deadline).toBe(Date.parse(deadline));
  }, 60_000);

  it('a future startTime stays Pending, then runs', async () => {
    const start = new Date(Date.now() + 6000).toISOString().replace(/\.\d+Z$/, 'Z');
    await apply(campaign('later', { schedule: { startTime: start } }));
    const pending = await until('Pending', async () => {
      const c = await get('later');
      return c.status?.phase === 'Pending' && c;
    });
    expect(cond(pending, 'Progressing')).toMatchObject({ reason: 'WaitingForStartTime' });
    expect((await plan(pending.metadata!.uid!))?.startAt).toBe(Date.parse(start));
    await until(
      'Running after startTime',
      async () => (await get('later')).status?.phase === 'Running',
      30_000,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(start));
  }, 60_000);

  it('deleting a campaign removes its plan, progress and index entry, then the finalizer', async () => {
    const uid = (await get('sale')).metadata!.uid!;
    expect(await redis.exists(keys.campaignPlan(uid), keys.campaignProgress(uid))).toBe(2);
    await client.delete(TagCampaignResource, ns, 'sale');
    await until('campaign gone', () => gone('sale'));
    expect(await redis.exists(keys.campaignPlan(uid), keys.campaignProgress(uid))).toBe(0);
    expect(await redis.sismember(keys.campaignIndex(), uid)).toBe(0);
  }, 60_000);

  it('a missing gateway is an honest condition, retried, and does not block deletion', async () => {
    await apply(campaign('orphan', { gatewayRef: { name: 'nosuch' } }));
    const c = await until('GatewayNotFound', async () => {
      const x = await get('orphan');
      return cond(x, 'Progressing')?.reason === 'GatewayNotFound' && x;
    });
    expect(c.status?.phase).toBe('Pending');
    expect(cond(c, 'Progressing')?.message).toMatch(/PushGateway .*\/nosuch does not exist/);
    expect((await hasEvent('orphan', 'GatewayNotFound')).type).toBe('Warning');
    await client.delete(TagCampaignResource, ns, 'orphan');
    await until('orphan deleted', () => gone('orphan'));
  }, 60_000);

  it('a campaign deleted while its Redis is down is released after the cleanup timeout, with a Warning', async () => {
    await apply(campaign('stuck', { gatewayRef: { name: 'down' } }));
    const c = await until('RedisUnavailable', async () => {
      const x = await get('stuck');
      return cond(x, 'Progressing')?.reason === 'RedisUnavailable' && x;
    });
    expect(c.metadata?.finalizers).toContain(CAMPAIGN_FINALIZER);
    const t0 = Date.now();
    await client.delete(TagCampaignResource, ns, 'stuck');
    // Still there while the cleanup is retried (5 s here)...
    await sleep(1500);
    expect((await get('stuck')).metadata?.deletionTimestamp).toBeDefined();
    // ...then released, with a Warning naming what was left.
    await until('stuck released', () => gone('stuck'), 60_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(5000);
    const ev = await hasEvent('stuck', 'CleanupAbandoned');
    expect(ev.type).toBe('Warning');
    expect(ev.note).toMatch(/gave up removing campaign/);
  }, 90_000);

  it("a published campaign without a TagCampaign (a cleanup that gave up, then an operator restart) is removed from Redis; another namespace's is left alone", async () => {
    // What a deletion whose cleanup gave up leaves behind once the operator that would retry it
    // restarted: the plan, indexed, with progress. Dispatchers would go on sending it.
    const base = (id: string, name: string): CampaignPlan => ({
      id,
      name,
      generation: 1,
      app: APP_CAPPED,
      target: { allDevices: true, allOf: [], anyOf: [], noneOf: [] },
      push: { data: { title: 'left over' }, ttlSeconds: 60, priority: 'normal' },
      rate: { perSecond: 10, burst: 10 },
      startAt: 0,
      state: 'run',
      dryRun: false,
    });
    const orphan = base('00000000-dead-4000-8000-000000000001', `${ns}/deleted-long-ago`);
    const foreign = base('00000000-dead-4000-8000-000000000002', 'someone-else/theirs');
    await publishCampaign(redis, keys, orphan);
    await publishCampaign(redis, keys, foreign);
    await writeProgress(orphan.id, { targeted: 10, sent: 3 });
    await until('the orphan removed by the sweep', async () =>
      (await redis.sismember(keys.campaignIndex(), orphan.id)) === 0 ? true : undefined,
    );
    expect(await redis.exists(keys.campaignPlan(orphan.id), keys.campaignProgress(orphan.id))).toBe(0);
    // Another namespace's plan (a Redis shared with PushGateways this operator does not watch)
    // and a live campaign of this namespace survive several sweeps.
    await apply(campaign('keeper'));
    const keeper = (await get('keeper')).metadata!.uid!;
    await until('keeper published', async () =>
      (await redis.sismember(keys.campaignIndex(), keeper)) === 1 ? true : undefined,
    );
    await sleep(3000);
    expect(await redis.sismember(keys.campaignIndex(), foreign.id)).toBe(1);
    expect(await redis.sismember(keys.campaignIndex(), keeper)).toBe(1);
    await client.delete(TagCampaignResource, ns, 'keeper');
    await until('keeper deleted', () => gone('keeper'));
    await removeCampaign(redis, keys, foreign.id);
  }, 60_000);
});

describe('the dispatcher workload of a PushGateway', () => {
  type Dep = KubeObject & {
    spec: {
      replicas: number;
      template: {
        spec: {
          serviceAccountName: string;
          containers: { command: string[]; env: { name: string; value?: string; valueFrom?: unknown }[] }[];
        };
      };
    };
  };
  it('is provisioned like the other children (Deployment, ServiceAccount, the Redis Secret env), follows spec.dispatcher, and is pruned when turned off', async () => {
    const dep = await until('dispatcher Deployment', () =>
      client.get<Dep>(Resources.Deployment, ns, 'main-dispatcher').catch(() => undefined),
    );
    expect(dep.spec.replicas).toBe(2);
    const c = dep.spec.template.spec.containers[0]!;
    expect(c.command).toEqual(['pushgate', 'dispatcher']);
    expect(c.env.find((e) => e.name === 'PUSHGATE_REDIS_URL')?.valueFrom).toEqual({
      secretKeyRef: { name: 'pushgate-redis', key: 'url' },
    });
    // The gateway's key prefix and cluster mode, as its gateways get them (the plans are under it).
    expect(c.env.find((e) => e.name === 'PUSHGATE_KEY_PREFIX')?.value).toBe(prefix);
    expect(c.env.find((e) => e.name === 'PUSHGATE_REDIS_CLUSTER')?.value).toBe('false');
    expect(
      await client.get(Resources.ServiceAccount, ns, dep.spec.template.spec.serviceAccountName),
    ).toBeDefined();

    await applyPushGateway(
      client,
      mainGateway((spec) => (spec.dispatcher = { replicas: 4 })),
    );
    await until(
      '4 replicas',
      async () => (await client.get<Dep>(Resources.Deployment, ns, 'main-dispatcher')).spec.replicas === 4,
    );

    await applyPushGateway(
      client,
      mainGateway((spec) => (spec.dispatcher = { enabled: false })),
    );
    await until('dispatcher pruned', async () => {
      const absent = (r: typeof Resources.Deployment) =>
        client.get(r, ns, 'main-dispatcher').then(
          () => false,
          (err: unknown) => isNotFound(err),
        );
      return (await absent(Resources.Deployment)) && (await absent(Resources.ServiceAccount));
    });
  }, 90_000);
});

describe('with a real dispatcher process', () => {
  it('the plan the operator publishes is what `pushgate dispatcher` runs: 200 of 300 devices reached, status Completed with counts that add up', async () => {
    const devices = Array.from({ length: 300 }, (_, i) => ({
      device: `e2e-${i}`,
      tags: i < 200 ? ['vip', 'e2e'] : ['e2e'],
    }));
    await registerDevices(redis, keys, devices);
    const dispatcher = await startDispatcherProcess({ redisUrl, prefix });
    try {
      await apply(
        campaign('real', {
          gatewayRef: { name: 'main' },
          appId: APP,
          target: { allOf: ['vip', 'e2e'] },
          rate: { messagesPerSecond: 100 },
        }),
      );
      const uid = (await get('real')).metadata!.uid!;
      const done = await until(
        'Completed by the dispatcher',
        async () => {
          const c = await get('real');
          return c.status?.phase === 'Completed' && c;
        },
        60_000,
      );
      expect(done.status?.counters).toMatchObject({ targeted: 200, sent: 200, expired: 0, failed: 0 });
      expect(done.status?.progress).toBe('200/200 (100%)');
      expect(done.status?.startTime).toBeDefined();
      expect(Date.parse(done.status!.completionTime!)).toBeGreaterThanOrEqual(
        Date.parse(done.status!.startTime!),
      );
      const holding = await devicesHolding(
        redis,
        keys,
        devices.map((d) => d.device),
        campaignMessageId(uid),
      );
      expect(holding.size).toBe(200);
      expect([...holding].every((d) => Number(d.slice(4)) < 200)).toBe(true);
    } finally {
      await stopDispatcher(dispatcher);
    }
  }, 90_000);
});
