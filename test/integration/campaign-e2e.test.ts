import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loopbackSource } from '../../client/simulator.js';
import { campaignMessageId, readCampaignProgress } from '../../common/campaign/plan.js';
import { createRedis, type PgRedis } from '../../common/redis/connection.js';
import { redisKeys } from '../../common/redis/keys.js';
import { TagCampaignResource } from '../../operator/controllers/tagcampaign/controller.js';
import type { KubeObject } from '../../operator/runtime/kube.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { clientFor, operatorOnPrefix, type OperatorProcess } from '../support/operator.js';
import {
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

/**
 * One campaign end to end (issue 11, "Must show"): a TagCampaign applied to the real control
 * plane, the operator (a child process) publishing its plan, and 20,000 matching devices of a tag
 * expression with allOf and noneOf, 60% online across two gateways and 40% offline, plus devices
 * that do not match, sent at 1,000/s by two dispatcher replicas. Real Redis, gateways, devices
 * (the client library, which dedupes by id and acks) and dispatchers; the status the operator
 * writes on the TagCampaign ends Completed with the counts the devices saw. The PushGateway's
 * own pods are on kwok nodes here: the gateway and dispatcher processes run on the host.
 */
const kubeconfig = inject('kubeconfig');
const client = clientFor(kubeconfig);
const redisUrl = inject('redisUrl');
const prefix = uniquePrefix('cmp-e2e');
const keys = redisKeys(prefix);

const MATCHING = 20_000;
const ONLINE = 12_000; // 60%
const RATE = 1000;
// Non-matching: news but churned (noneOf), and sports only (no allOf); some of each online.
const NON_MATCHING = 1000;
const NON_MATCHING_ONLINE = 400;

type Campaign = KubeObject & {
  status?: { phase?: string; counters?: Record<string, number>; progress?: string };
};

describe('a campaign to 20,000 devices at 1,000/s', () => {
  let redis: PgRedis;
  let ns: string;
  let operator: OperatorProcess | undefined;
  const gateways: GatewayProcess[] = [];
  const dispatchers: DispatcherProcess[] = [];
  const online: RecordingDevice[] = [];
  const offline: { device: string; tags: string[] }[] = [];
  const matching = new Set<string>();

  const tagsOf = (i: number) => (i % 2 ? ['news', 'vip'] : ['news', 'vip', 'beijing']);
  const nonMatchingTags = (i: number) => (i % 2 ? ['news', 'vip', 'churned'] : ['sports', 'vip']);

  async function connectAll(devices: RecordingDevice[], wave = 500) {
    for (let i = 0; i < devices.length; i += wave) {
      const part = devices.slice(i, i + wave);
      await Promise.all(part.map((d) => d.client.start()));
    }
    await until(() => devices.every((d) => d.client.connected), 60_000, 'devices connected');
  }

  function device(name: string, tags: string[], i: number) {
    return new RecordingDevice({
      device: name,
      endpoints: [gateways[i % 2]!.wsUrl],
      tags,
      localAddress: loopbackSource(i, 64),
    });
  }

  beforeAll(async () => {
    redis = createRedis(redisUrl);
    ns = await createTestNamespace(testKubeConfig(kubeconfig), 'cmp-e2e');
    // The PushGateway the campaign names, on this test's key prefix (where its plan goes).
    operator = await operatorOnPrefix(kubeconfig, client, {
      namespace: ns,
      redisUrl,
      prefix,
      leaseName: 'cmp-e2e',
      args: ['--campaign-status-seconds', '2'],
    });
    const gwArgs = ['--max-pending-handshakes-per-address', '1000', '--accept-rate', '5000'];
    gateways.push(
      ...(await Promise.all(
        ['cmp-a', 'cmp-b'].map((id) => startGatewayProcess({ redisUrl, prefix, id, args: gwArgs })),
      )),
    );
    for (let i = 0; i < MATCHING; i++) {
      const name = `m-${i}`;
      matching.add(name);
      if (i < ONLINE) online.push(device(name, tagsOf(i), i));
      else offline.push({ device: name, tags: tagsOf(i) });
    }
    for (let i = 0; i < NON_MATCHING; i++) {
      const name = `x-${i}`;
      if (i < NON_MATCHING_ONLINE) online.push(device(name, nonMatchingTags(i), i));
      else offline.push({ device: name, tags: nonMatchingTags(i) });
    }
    // Dispatchers are long-running: started first, not just before the campaign.
    dispatchers.push(...(await Promise.all([0, 1].map(() => startDispatcherProcess({ redisUrl, prefix })))));
    await registerDevices(redis, keys, offline);
    await connectAll(online);
    // The gateways finish the hello storm's index writes before the campaign starts.
    await sleep(3000);
  }, 240_000);

  afterAll(async () => {
    for (const d of online) d.client.stop();
    await Promise.all(dispatchers.map((d) => stopDispatcher(d)));
    await Promise.all(gateways.map((g) => stopGateway(g)));
    await operator?.stop();
    redis.disconnect();
    client.close();
  });

  it('every matching device exactly once (offline ones on reconnect), no other; 20 s at an even 1,000/s; counts add up', async () => {
    const applied = await client.apply<Campaign>(
      TagCampaignResource,
      {
        apiVersion: 'pushgate.dev/v1alpha1',
        kind: 'TagCampaign',
        metadata: { name: 'spring-sale', namespace: ns },
        spec: {
          gatewayRef: { name: 'main' },
          appId: APP,
          target: { allOf: ['news', 'vip'], noneOf: ['churned'] },
          message: { title: 'Spring sale', body: '20% off', data: { sku: '42' }, ttlSeconds: 3600 },
          // Burst 10% of the rate: any second holds at most rate + burst (the upper bound of the
          // +-10%), and a replica held up for up to ~80 ms (GC, a busy machine) catches up.
          rate: { messagesPerSecond: RATE, burst: RATE / 10 },
        },
      } as KubeObject,
      { fieldManager: 'test', force: true },
    );
    const uid = applied.metadata!.uid!;
    const mid = campaignMessageId(uid);
    const p = await untilProgress(redis, keys, uid, (x) => x.finishedAt !== undefined, 90_000, 'finish');

    expect(p.counters).toMatchObject({
      targeted: MATCHING,
      sent: MATCHING,
      expired: 0,
      failed: 0,
      deferred: 0,
    });
    expect(p.counters.targeted).toBe(p.counters.sent + p.counters.expired + p.counters.failed);
    // Sending takes 20 s +- 5%.
    const took = p.finishedAt! - p.startedAt!;
    expect(took).toBeGreaterThan(19_000);
    expect(took).toBeLessThan(21_000);
    // Every full second within +-10% of 1,000 (the dispatchers' count per second of Redis time).
    const perSecond = await redis.hgetall(keys.campaignRate(uid));
    const seconds = Object.keys(perSecond)
      .map(Number)
      .sort((a, b) => a - b);
    const full = seconds.slice(1, -1);
    const counts = full.map((x) => Number(perSecond[String(x)]));
    console.log(
      `campaign ${MATCHING} devices at ${RATE}/s: sending took ${took} ms; full seconds ${Math.min(...counts)}-${Math.max(...counts)}`,
    );
    expect(full.length).toBeGreaterThanOrEqual(18);
    for (const s of full) {
      const n = Number(perSecond[String(s)]);
      const all = seconds.map((x) => perSecond[String(x)]).join(' ');
      expect(n, `second ${s - seconds[0]!} of ${all}`).toBeGreaterThanOrEqual(RATE * 0.9);
      expect(n, `second ${s - seconds[0]!} of ${all}`).toBeLessThanOrEqual(RATE * 1.1);
    }

    // Online devices: the matching ones got it once (after dedupe), the others not at all.
    await until(
      () => online.every((d) => !matching.has(d.device) || d.pushes.length >= 1),
      20_000,
      'online matching devices received',
    );
    for (const d of online) {
      const got = d.ids().filter((id) => id === mid).length;
      expect(got, d.device).toBe(matching.has(d.device) ? 1 : 0);
    }

    // Offline devices reconnect (waves of 2,000) and find it in their inbox, the others nothing.
    let reconnected = 0;
    for (let i = 0; i < offline.length; i += 2000) {
      const wave = offline.slice(i, i + 2000).map((o, j) => device(o.device, o.tags, i + j));
      await connectAll(wave);
      await until(
        () => wave.every((d) => !matching.has(d.device) || d.pushes.length >= 1),
        30_000,
        'reconnected devices received',
      );
      await sleep(300); // anything more would arrive now
      for (const d of wave) {
        expect(d.ids().filter((id) => id === mid).length, d.device).toBe(matching.has(d.device) ? 1 : 0);
        if (matching.has(d.device)) reconnected++;
      }
      for (const d of wave) d.client.stop();
    }
    expect(reconnected).toBe(MATCHING - ONLINE);

    // Delivered and acked, as the gateways counted them, match what the devices saw.
    const seen = MATCHING; // every matching device surfaced it exactly once (checked above)
    const final = await untilProgress(
      redis,
      keys,
      uid,
      (x) => x.counters.delivered >= seen && x.counters.acked >= seen,
      10_000,
      'delivered and acked counted',
    );
    await sleep(1500); // one more flush: nothing beyond
    const settled = await readCampaignProgress(redis, keys, uid);
    expect(settled.counters.delivered).toBe(seen);
    expect(settled.counters.acked).toBe(seen);
    expect(final.counters.sent).toBe(MATCHING);

    // The TagCampaign's status, as the operator writes it from the same progress.
    const done = await eventually(
      async () => {
        const c = await client.get<Campaign>(TagCampaignResource, ns, 'spring-sale');
        return c.status?.phase === 'Completed' && c.status.counters?.acked === seen && c;
      },
      { what: 'TagCampaign Completed with every ack counted', timeoutMs: 30_000 },
    );
    const c = done.status!.counters!;
    expect(c).toMatchObject({ targeted: MATCHING, sent: MATCHING, expired: 0, failed: 0, delivered: seen });
    expect(c.targeted).toBe(c.sent! + c.expired! + c.failed!);
    expect(done.status!.progress).toBe(`${MATCHING}/${MATCHING} (100%)`);
  }, 300_000);
});
