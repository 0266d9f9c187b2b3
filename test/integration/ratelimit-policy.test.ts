import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { KubeObject } from '../../operator/runtime/kube.js';
import { RateLimitPolicyResource } from '../../operator/controllers/ratelimitpolicy/controller.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { kubectl } from '../support/stack.js';
import { clientFor, operatorOnPrefix, type OperatorProcess } from '../support/operator.js';
import { createRedis } from '../../common/redis/connection.js';
import { DEFAULT_KEY_PREFIX, redisKeys } from '../../common/redis/keys.js';
import { scrapeSum } from '../support/prometheus.js';
import {
  APP,
  OTHER_APP,
  basicAuth,
  RecordingDevice,
  sleep,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';

/**
 * The RateLimitPolicy controller on the real control plane, with the operator as a child
 * process publishing to the run's real Redis under the PushGateway's own key prefix
 * (spec.redis.keyPrefix), and a real gateway (on the host, on that prefix) enforcing what it
 * publishes for a real device.
 */
const kubeconfig = inject('kubeconfig');
const redisUrl = inject('redisUrl');
const client = clientFor(kubeconfig);
const prefix = uniquePrefix('rl-op');
let ns: string;
let operator: OperatorProcess;
let gw: GatewayProcess;
let device: RecordingDevice;

type Policy = KubeObject & {
  status?: {
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
    effectiveMessagesPerSecond?: number;
    deferredMessages?: number;
    apps?: {
      appId: string;
      effectiveMessagesPerSecond: number;
      deferredMessages?: number;
      oldestDeferredSeconds?: number;
    }[];
  };
};

const policy = (name: string, rate: number, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'pushgate.dev/v1alpha1',
  kind: 'RateLimitPolicy',
  metadata: { name, namespace: ns },
  spec: {
    gatewayRef: { name: 'main' },
    appIds: [APP],
    perApp: { messagesPerSecond: rate, burst: 2, maxDeferredMessages: 1000 },
    campaigns: { defaultMessagesPerSecond: 1, maxMessagesPerSecond: 1 },
    ...extra,
  },
});
const applyPolicy = (obj: object) =>
  client.apply(RateLimitPolicyResource, obj as KubeObject, { fieldManager: 'test', force: true });
const getPolicy = (name: string) => client.get<Policy>(RateLimitPolicyResource, ns, name);
const cond = (p: Policy, type: string) => p.status?.conditions?.find((c) => c.type === type);

async function push(i: number) {
  const res = await fetch(`${gw.httpUrl}/v1/apps/${APP}/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: basicAuth() },
    body: JSON.stringify({ to: { device: 'rl-dev' }, data: { i } }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

beforeAll(async () => {
  ns = await createTestNamespace(testKubeConfig(kubeconfig), 'op-rlp');
  // The gateway's own key prefix (spec.redis.keyPrefix): the operator publishes under it.
  operator = await operatorOnPrefix(kubeconfig, client, {
    namespace: ns,
    redisUrl,
    prefix,
    leaseName: 'op-rlp',
  });
  gw = await startGatewayProcess({ redisUrl, prefix, id: 'rlp-gw' });
  device = new RecordingDevice({ device: 'rl-dev', endpoints: [gw.wsUrl] });
  await device.client.start();
}, 180_000);

afterAll(async () => {
  device?.client.stop();
  await stopGateway(gw);
  await operator?.stop();
  client.close();
});

describe('RateLimitPolicy controller', () => {
  it('publishes the policy: Ready with observedGeneration, the effective rate per app, printer columns; the gateway enforces it', async () => {
    await applyPolicy(policy('first', 2));
    const p = await eventually(
      async () => {
        const x = await getPolicy('first');
        return (
          cond(x, 'Ready')?.status === 'True' && x.status?.observedGeneration === x.metadata?.generation && x
        );
      },
      { what: 'policy Ready', timeoutMs: 60_000 },
    );
    expect(cond(p, 'Conflict')?.status).toBe('False');
    expect(p.status?.apps?.[0]).toMatchObject({ appId: APP, effectiveMessagesPerSecond: 2 });
    // Published under the PushGateway's spec.redis.keyPrefix, not the default prefix.
    const redis = createRedis(redisUrl);
    const published = await redis.hget(redisKeys(prefix).appLimitConfig(), APP);
    const underDefault = await redis.hget(redisKeys(DEFAULT_KEY_PREFIX).appLimitConfig(), APP);
    redis.disconnect();
    expect(JSON.parse(published!)).toMatchObject({ policy: `${ns}/first`, ratePerSecond: 2 });
    expect(underDefault ?? '').not.toContain(`"${ns}/first"`);
    // The gateway reads it within about a second: 2 go at once (burst), the rest are deferred.
    await sleep(1500);
    const answers = [];
    for (let i = 0; i < 12; i++) answers.push(await push(i));
    expect(answers.filter((a) => a.body.state === 'deferred').length).toBeGreaterThanOrEqual(8);
    expect(answers[11]!.headers.get('ratelimit-limit')).toBe('2');
    // Status shows the queue (refreshed every 10 s) and kubectl get prints it.
    const withDepth = await eventually(
      async () => {
        const x = await getPolicy('first');
        return (x.status?.deferredMessages ?? 0) > 0 && x;
      },
      { what: 'deferred depth in status', timeoutMs: 30_000 },
    );
    expect(withDepth.status?.apps?.[0]?.deferredMessages).toBeGreaterThan(0);
    const table = await kubectl(kubeconfig, ['-n', ns, 'get', 'ratelimitpolicy', 'first']);
    expect(table).toMatch(/^NAME\s+GATEWAY\s+TARGETS\s+APP-RATE\s+EFFECTIVE\s+DEFERRED\s+/m);
    expect(table).toMatch(new RegExp(`^first\\s+main\\s+main: ${APP}\\s+2\\s+2\\s+\\d+\\s+`, 'm'));
    const explain = await kubectl(kubeconfig, ['explain', 'ratelimitpolicy.spec.perDevice.messagesPerDay']);
    expect(explain).toMatch(/UTC/);
  }, 120_000);

  it('a live edit of the rate is in force within 5 s, with no restart', async () => {
    const before = await getPolicy('first');
    const t0 = Date.now();
    await applyPolicy(policy('first', 200));
    let limit = '';
    for (;;) {
      const a = await push(1000 + Math.floor(Math.random() * 1000));
      limit = a.headers.get('ratelimit-limit') ?? '';
      if (limit === '200' || Date.now() - t0 > 10_000) break;
      await sleep(100);
    }
    const took = Date.now() - t0;
    console.log(JSON.stringify({ liveEditMs: took }));
    expect(limit).toBe('200');
    expect(took).toBeLessThanOrEqual(5000);
    // The gateway was not restarted, and what waited under the old rate drains at the new one.
    expect(gw.proc.exitCode).toBeNull();
    await until(() => device.pushes.length >= 12, 10_000, 'the deferred ones delivered at the new rate');
    expect((await getPolicy('first')).metadata?.generation).toBeGreaterThan(before.metadata!.generation!);
  }, 60_000);

  it('a second policy for the same app gets Conflict, a condition and an event naming the first; never merged', async () => {
    await sleep(1100); // a later creationTimestamp (second resolution)
    await applyPolicy(policy('second', 1));
    const p = await eventually(
      async () => {
        const x = await getPolicy('second');
        return cond(x, 'Conflict')?.status === 'True' && x;
      },
      { what: 'Conflict', timeoutMs: 60_000 },
    );
    expect(cond(p, 'Conflict')!.message).toContain(`held by RateLimitPolicy ${ns}/first`);
    expect(cond(p, 'Ready')).toMatchObject({ status: 'False', reason: 'Conflict' });
    const events = await kubectl(kubeconfig, [
      ...[
        '-n',
        ns,
        'get',
        'events',
        '--field-selector',
        'involvedObject.kind=RateLimitPolicy,involvedObject.name=second',
      ],
      ...['-o', 'custom-columns=REASON:.reason,MESSAGE:.message'],
    ]);
    expect(events).toMatch(new RegExp(`Conflict\\s+.*held by RateLimitPolicy ${ns}/first`));
    // The first still holds the app: the gateway still answers with its rate.
    await sleep(1500);
    expect((await push(5000)).headers.get('ratelimit-limit')).toBe('200');
    expect(cond(await getPolicy('first'), 'Ready')?.status).toBe('True');
  }, 90_000);

  it('adaptive throttling: the gateway cuts the rate on a breach; status shows Effective, a Throttled condition and events, and the recovery', async () => {
    // A policy of its own app, recovering in one step 15 s after a cut.
    await applyPolicy(
      policy('adaptive', 100, {
        appIds: [OTHER_APP],
        perApp: { messagesPerSecond: 100, burst: 100, maxDeferredMessages: 1000 },
        adaptive: {
          windowSeconds: 30,
          decreasePercent: 50,
          recoveryPercent: 50,
          recoveryIntervalSeconds: 15,
        },
      }),
    );
    await eventually(
      async () => {
        const x = await getPolicy('adaptive');
        return cond(x, 'Ready')?.status === 'True' && cond(x, 'Throttled')?.status === 'False' && x;
      },
      { what: 'adaptive policy Ready, not throttled', timeoutMs: 60_000 },
    );
    // Stand-in for the signal only: downstream outcomes as gateways count them (60 errors of
    // 100 stores this second). The real gateway's next AIMD step sees the breach and cuts.
    const redis = createRedis(redisUrl);
    const keys = redisKeys(prefix);
    const sec = Math.floor(Date.now() / 1000);
    await redis.hincrby(keys.appLimitOutcomes(OTHER_APP), `${sec}:n`, 100);
    await redis.hincrby(keys.appLimitOutcomes(OTHER_APP), `${sec}:e`, 60);
    redis.disconnect();
    const cut = await eventually(
      async () => {
        const x = await getPolicy('adaptive');
        return cond(x, 'Throttled')?.status === 'True' && x;
      },
      { what: 'Throttled', timeoutMs: 30_000 },
    );
    expect(cond(cut, 'Throttled')).toMatchObject({ reason: 'ErrorRatio' });
    expect(cond(cut, 'Throttled')!.message).toContain(`"${OTHER_APP}" at 50/s of 100/s`);
    expect(cut.status?.effectiveMessagesPerSecond).toBe(50);
    expect(cut.status?.apps?.[0]).toMatchObject({ appId: OTHER_APP, effectiveMessagesPerSecond: 50 });
    const table = await kubectl(kubeconfig, ['-n', ns, 'get', 'ratelimitpolicy', 'adaptive']);
    expect(table).toMatch(new RegExp(`^adaptive\\s+main\\s+main: ${OTHER_APP}\\s+100\\s+50\\s+`, 'm'));
    // The gateway paces at the cut rate (it rereads the factor once a second).
    const effective = () =>
      scrapeSum(`${gw.httpUrl}/metrics`, 'pushgate_ratelimit_effective_rate', (l) => l.app === OTHER_APP);
    const deadline = Date.now() + 3000;
    while ((await effective()) !== 50 && Date.now() < deadline) await sleep(200);
    expect(await effective()).toBe(50);
    // Healthy since: one recovery step (50% of 100/s) brings it back.
    const back = await eventually(
      async () => {
        const x = await getPolicy('adaptive');
        return cond(x, 'Throttled')?.status === 'False' && x;
      },
      { what: 'recovered', timeoutMs: 45_000 },
    );
    expect(cond(back, 'Throttled')).toMatchObject({ reason: 'Healthy' });
    expect(back.status?.effectiveMessagesPerSecond).toBe(100);
    const events = await kubectl(kubeconfig, [
      ...['-n', ns, 'get', 'events', '--field-selector', 'involvedObject.name=adaptive'],
      ...['-o', 'custom-columns=REASON:.reason,MESSAGE:.message'],
    ]);
    expect(events).toMatch(
      new RegExp(`Throttled\\s+app "${OTHER_APP}": effective rate 100/s -> 50/s \\(ErrorRatio`),
    );
    expect(events).toMatch(new RegExp(`Recovered\\s+app "${OTHER_APP}": effective rate 50/s -> 100/s`));
  }, 150_000);
});
