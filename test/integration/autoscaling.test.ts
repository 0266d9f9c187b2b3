import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, redisKeys, registerGateway, type PgRedis } from '../../common/redis/index.js';
import { GATEWAY_CONNECTIONS_METRIC as METRIC } from '../../workloads/metrics-adapter/api.js';
import {
  startAdapterBehindAggregator,
  type RunningAdapter,
} from '../../workloads/metrics-adapter/testing/harness.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';

/**
 * The whole autoscaling loop with real parts: kube-controller-manager's HPA controller reads
 * pushgate_gateway_connections through the aggregator from the real metrics adapter process,
 * which reads the gateway registry in a real Redis, and scales a region's Deployment of kwok
 * pods.
 *
 * Where the counts come from: entries this test writes into the registry with the gateways'
 * own writer (registerGateway), one per running pod, as each gateway pod does every few
 * seconds. The "devices" of a region are spread evenly over that region's pods, as the locator
 * spreads new connections. No gateway process runs per pod here.
 *
 * The HPA is written here (the operator's HPA builder had not landed); its behaviour is the
 * operator's, shortened: a scale-down stabilization window of 15 s instead of 300 s, and a
 * limit of 1 pod per 15 s instead of per minute.
 */
const SCALE_DOWN_WINDOW_S = 15;
const TARGET_PER_POD = 100;

describe('HPA on gateway connections through the pushgate metrics adapter', () => {
  const kubeconfig = inject('kubeconfig');
  const kc = testKubeConfig(kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const autoscaling = kc.makeApiClient(k8s.AutoscalingV2Api);
  const keyPrefix = `pgtest-hpa-${Math.random().toString(36).slice(2, 8)}`;
  const keys = redisKeys(keyPrefix);
  let redis: PgRedis;
  let namespace: string;
  let adapter: RunningAdapter;
  /** Device connections wanted per region; the publisher spreads them over the region's pods. */
  const demand: Record<string, number> = { 'cn-east-1': 0, 'cn-north-1': 0 };
  let publisher: NodeJS.Timeout | undefined;

  const deploymentName = (region: string) => `gateway-${region}`;

  async function createRegion(region: string) {
    const labels = { app: 'pushgate-gateway', 'pushgate.dev/region': region };
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: deploymentName(region), labels },
        spec: {
          replicas: 2,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              nodeSelector: { 'topology.kubernetes.io/region': region },
              containers: [{ name: 'gateway', image: 'registry.invalid/pushgate:test' }],
            },
          },
        },
      },
    });
    await autoscaling.createNamespacedHorizontalPodAutoscaler({
      namespace,
      body: {
        metadata: { name: deploymentName(region) },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: deploymentName(region) },
          minReplicas: 2,
          maxReplicas: 8,
          metrics: [
            {
              type: 'Pods',
              pods: {
                metric: { name: METRIC },
                target: { type: 'AverageValue', averageValue: String(TARGET_PER_POD) },
              },
            },
          ],
          behavior: {
            scaleUp: {
              stabilizationWindowSeconds: 0,
              policies: [{ type: 'Pods', value: 8, periodSeconds: 15 }],
            },
            scaleDown: {
              stabilizationWindowSeconds: SCALE_DOWN_WINDOW_S,
              policies: [{ type: 'Pods', value: 1, periodSeconds: 15 }],
            },
          },
        },
      },
    });
  }

  /** What every gateway pod does: refresh its registry record with its connection count. */
  async function publishOnce() {
    const now = Date.now();
    for (const region of Object.keys(demand)) {
      const pods = (
        await core.listNamespacedPod({ namespace, labelSelector: `pushgate.dev/region=${region}` })
      ).items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
      pods.sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
      const each = Math.floor(demand[region]! / Math.max(pods.length, 1));
      let rest = demand[region]! - each * pods.length;
      for (const pod of pods) {
        const podName = pod.metadata!.name!;
        const connections = each + (rest-- > 0 ? 1 : 0);
        await registerGateway(redis, keys, {
          id: `${namespace}.${podName}`,
          podName,
          namespace,
          region,
          zone: `${region}a`,
          endpoint: `ws://127.0.0.1:1/${podName}`,
          connections,
          maxConnections: 1000,
          ready: true,
          draining: false,
          updatedAt: now,
        });
      }
    }
  }

  const replicas = async (region: string) =>
    (await apps.readNamespacedDeployment({ namespace, name: deploymentName(region) })).spec?.replicas ?? 0;

  beforeAll(async () => {
    namespace = await createTestNamespace(kc, 'autoscale');
    redis = createRedis(inject('redisUrl'));
    adapter = await startAdapterBehindAggregator({
      kubeconfig,
      redisUrl: inject('redisUrl'),
      keyPrefix,
      namespace,
    });
    for (const region of Object.keys(demand)) await createRegion(region);
    const tick = () => {
      publisher = setTimeout(() => {
        publishOnce().then(tick, (err: unknown) => {
          console.error('publisher', err);
          tick();
        });
      }, 1000);
    };
    tick();
  });

  afterAll(async () => {
    if (publisher) clearTimeout(publisher);
    publisher = undefined;
    await adapter?.stop();
    if (namespace) await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    redis?.disconnect();
  });

  it('raises one region to the replica count its connections need, and leaves the other alone', async () => {
    // 2 pods x 240 = 480 connections at a target of 100 per pod: ceil(480 / 100) = 5 pods.
    // (At 5 pods each holds 96, within the HPA's 10% tolerance: it stays at 5.)
    demand['cn-east-1'] = 480;
    demand['cn-north-1'] = 60;
    await eventually(async () => (await replicas('cn-east-1')) === 5, {
      what: 'cn-east-1 to scale to 5 replicas',
      timeoutMs: 90_000,
      intervalMs: 1000,
    });
    const hpa = await autoscaling.readNamespacedHorizontalPodAutoscaler({
      namespace,
      name: deploymentName('cn-east-1'),
    });
    expect(hpa.status?.desiredReplicas).toBe(5);
    expect(hpa.status?.currentMetrics?.[0]?.pods?.metric.name).toBe(METRIC);
    expect(await replicas('cn-north-1')).toBe(2);
    const north = await autoscaling.readNamespacedHorizontalPodAutoscaler({
      namespace,
      name: deploymentName('cn-north-1'),
    });
    // The north HPA did read its metric (30 per pod) and keeps its minimum.
    expect(north.status?.currentMetrics?.[0]?.pods?.current.averageValue).toBe('30');
  });

  it('lowers it after the counts fall, only after the stabilization window, one pod per period', async () => {
    expect(await replicas('cn-east-1')).toBe(5);
    demand['cn-east-1'] = 50;
    const droppedAt = Date.now();

    const seen: { replicas: number; at: number }[] = [{ replicas: 5, at: droppedAt }];
    await eventually(
      async () => {
        const n = await replicas('cn-east-1');
        if (n !== seen[seen.length - 1]!.replicas) seen.push({ replicas: n, at: Date.now() });
        return n === 2;
      },
      { what: 'cn-east-1 to scale back to 2 replicas', timeoutMs: 150_000, intervalMs: 500 },
    );
    // One pod at a time (the pods-per-period limit), never below the minimum.
    expect(seen.map((s) => s.replicas)).toEqual([5, 4, 3, 2]);
    // The window holds the highest recommendation of its last 15 s; the last high one was made
    // at most one sync period (5 s) before the drop, so nothing goes for at least 10 s.
    expect(seen[1]!.at - droppedAt).toBeGreaterThanOrEqual((SCALE_DOWN_WINDOW_S - 5) * 1000);
    // And it reads the new average: 50 connections over the 2 pods left.
    await eventually(
      async () => {
        const hpa = await autoscaling.readNamespacedHorizontalPodAutoscaler({
          namespace,
          name: deploymentName('cn-east-1'),
        });
        return hpa.status?.currentMetrics?.[0]?.pods?.current.averageValue === '25';
      },
      { what: 'the HPA to report 25 connections per pod', timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(await replicas('cn-north-1')).toBe(2);
  });
});
