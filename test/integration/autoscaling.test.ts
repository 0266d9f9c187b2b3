import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DeviceClient } from '../../client/device-client.js';
import { signDeviceToken } from '../../common/protocol/token.js';
import { parsePushGateway } from '../../operator/api/index.js';
import { buildGatewayHPA } from '../../operator/controllers/pushgateway/builders.js';
import { LABEL_INSTANCE } from '../../operator/identity.js';
import { LABEL_REGION, regionSelector } from '../../operator/controllers/pushgateway/names.js';
import { GATEWAY_CONNECTIONS_METRIC as METRIC } from '../../workloads/metrics-adapter/api.js';
import { startAdapterBehindAggregator, type RunningAdapter } from '../support/metrics-adapter.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { kubectl } from '../support/stack.js';
import { APP, SECRET, startGatewayProcess, stopGateway, type GatewayProcess } from '../support/gateway.js';

/**
 * The whole autoscaling loop with real parts: kube-controller-manager's HPA controller reads
 * pushgate_gateway_connections through the aggregator from the real metrics adapter process,
 * which reads the gateway registry in a real Redis, and scales a region's Deployment of kwok
 * pods.
 *
 * Where the counts come from: real gateway processes (`pushgate gateway`), one per Running pod
 * of each region's Deployment, started and stopped as the Deployment scales (kwok pods run no
 * containers, so a process on the host stands in for each pod, under the pod's name), holding
 * real device WebSocket connections made with the device client through the gateways' locator.
 * A gateway whose pod is removed gets SIGTERM and drains; its devices reconnect to the gateways
 * its drain hint names.
 *
 * The HPA is the operator's (buildGatewayHPA for a PushGateway with a 15 s scale-down window
 * and 1 pod per minute), with one change for test time: the scale-down period is 15 s instead
 * of 60 s. The Deployment is a plain one with the operator's name and pod labels.
 */
const SCALE_DOWN_WINDOW_S = 15;
const TARGET_PER_POD = 100;

/** A real gateway process standing in for one pod; `started` settles once it listens. */
interface StandIn {
  region: string;
  started: Promise<GatewayProcess>;
  stopping: boolean;
}

describe('HPA on gateway connections through the pushgate metrics adapter', () => {
  const kubeconfig = inject('kubeconfig');
  const redisUrl = inject('redisUrl');
  const kc = testKubeConfig(kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const autoscaling = kc.makeApiClient(k8s.AutoscalingV2Api);
  const keyPrefix = `pgtest-hpa-${Math.random().toString(36).slice(2, 8)}`;
  const regions = ['cn-east-1', 'cn-north-1'];
  let namespace: string;
  let adapter: RunningAdapter;
  const gateways = new Map<string, StandIn>();
  const devices: Record<string, DeviceClient[]> = { 'cn-east-1': [], 'cn-north-1': [] };
  let reconciler: NodeJS.Timeout | undefined;
  let reconciling = true;

  const deploymentName = (region: string) => `hpa-${region}`;

  /**
   * A PushGateway as the API parses it (defaults applied), never stored: the test applies the
   * operator's HPA for it directly, so the HPA under test is the one the operator ships.
   */
  const pushGateway = () =>
    parsePushGateway({
      apiVersion: 'pushgate.dev/v1alpha1',
      kind: 'PushGateway',
      metadata: { name: 'hpa', namespace, uid: 'not-stored' },
      spec: {
        regions: regions.map((name) => ({
          name,
          minReplicas: 2,
          maxReplicas: 8,
          targetConnectionsPerPod: TARGET_PER_POD,
          maxConnectionsPerPod: 1000,
        })),
        redis: { secretName: 'unused' },
        scaling: { scaleDownStabilizationSeconds: SCALE_DOWN_WINDOW_S, scaleDownPodsPerMinute: 1 },
      },
    });

  async function createRegion(region: string) {
    const gw = pushGateway();
    const spec = gw.spec.regions.find((r) => r.name === region)!;
    const hpa = buildGatewayHPA(gw, spec) as k8s.V2HorizontalPodAutoscaler;
    // Not owned: the PushGateway is never stored, and the garbage collector would delete
    // children of an owner that does not exist.
    delete hpa.metadata!.ownerReferences;
    // The one change for test time: the operator's scale-down period is 60 s (pods per minute);
    // here it is 15 s, so 5 -> 2 takes three periods of 15 s instead of three minutes.
    const down = hpa.spec!.behavior!.scaleDown!.policies!;
    expect(down).toEqual([{ type: 'Pods', value: 1, periodSeconds: 60 }]);
    down[0]!.periodSeconds = 15;
    expect(hpa.spec!.behavior!.scaleDown!.stabilizationWindowSeconds).toBe(SCALE_DOWN_WINDOW_S);
    expect(hpa.spec!.metrics![0]!.pods!.metric.name).toBe(METRIC);

    // The Deployment the HPA targets: the operator's name and pod labels, with one plain
    // container (kwok runs no containers; a gateway process stands in for each pod).
    const labels = regionSelector(gw, region);
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
    expect(hpa.spec!.scaleTargetRef.name).toBe(deploymentName(region));
    await autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace, body: hpa });
  }

  /** Starts the real gateway program standing in for one pod, under the pod's name. */
  function startGateway(podName: string, region: string) {
    const started = startGatewayProcess({
      redisUrl,
      prefix: keyPrefix,
      id: `${namespace}.${podName}`,
      region,
      args: [
        ...['--pod-name', podName, '--namespace', namespace, '--zone', `${region}a`],
        ...['--max-connections', '1000', '--drain-grace-ms', '2000'],
      ],
    });
    started.catch((err: unknown) => console.error(err));
    gateways.set(podName, { region, started, stopping: false });
  }

  /** Keeps one gateway process per Running pod: the pod "runs" the gateway. */
  async function reconcileGateways() {
    const pods = (await core.listNamespacedPod({ namespace, labelSelector: `${LABEL_INSTANCE}=hpa` })).items;
    const live = new Map(
      pods
        .filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp)
        .map((p) => [p.metadata!.name!, p.metadata!.labels![LABEL_REGION]!]),
    );
    for (const [name, region] of live) if (!gateways.has(name)) startGateway(name, region);
    for (const [name, gw] of gateways) {
      if (!live.has(name) && !gw.stopping) {
        // The pod was removed: its gateway drains (SIGTERM), as the kubelet would make it.
        gw.stopping = true;
        void gw.started.then(
          (g) => g.kill('SIGTERM'),
          () => undefined,
        );
      }
    }
  }

  const liveGateways = (region: string) =>
    [...gateways.values()].filter((g) => g.region === region && !g.stopping);

  /** Devices connect the way real ones do: ask a gateway's locator for this region, then connect. */
  async function connectDevices(region: string, count: number) {
    const locator = await liveGateways(region)[0]!.started;
    for (let i = 0; i < count; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, async (_, j) => {
          const device = `${region}-dev-${devices[region]!.length + i + j}`;
          return new DeviceClient({
            app: APP,
            device,
            token: await signDeviceToken(SECRET, { app: APP, device }),
            locatorUrl: locator.httpUrl,
            region,
            backoffMinMs: 200,
            backoffMaxMs: 2000,
          });
        }),
      );
      await Promise.all(batch.map((d) => d.start()));
      devices[region]!.push(...batch);
    }
  }

  type Item = { describedObject: { name: string }; value: string };
  const regionCounts = async (region: string) => {
    const list = JSON.parse(
      await kubectl(kubeconfig, [
        'get',
        '--raw',
        `/apis/custom.metrics.k8s.io/v1beta2/namespaces/${namespace}/pods/*/${METRIC}?labelSelector=${encodeURIComponent(`${LABEL_REGION}=${region}`)}`,
      ]),
    ) as { items: Item[] };
    return list.items.map((i) => Number(i.value));
  };
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const replicas = async (region: string) =>
    (await apps.readNamespacedDeployment({ namespace, name: deploymentName(region) })).spec?.replicas ?? 0;
  const hpaAverage = async (region: string) =>
    (await autoscaling.readNamespacedHorizontalPodAutoscaler({ namespace, name: deploymentName(region) }))
      .status?.currentMetrics?.[0]?.pods?.current.averageValue;

  beforeAll(async () => {
    namespace = await createTestNamespace(kc, 'autoscale');
    adapter = await startAdapterBehindAggregator({ kubeconfig, redisUrl, keyPrefix, namespace });
    for (const region of regions) await createRegion(region);
    const tick = () => {
      if (!reconciling) return;
      reconciler = setTimeout(() => {
        reconcileGateways().then(tick, (err: unknown) => {
          console.error('gateway reconciler', err);
          tick();
        });
      }, 1000);
    };
    await reconcileGateways();
    tick();
    await eventually(async () => regions.every((r) => liveGateways(r).length === 2), {
      what: 'two gateways per region',
      timeoutMs: 60_000,
    });
    await Promise.all([...gateways.values()].map((g) => g.started));
  });

  afterAll(async () => {
    reconciling = false;
    if (reconciler) clearTimeout(reconciler);
    for (const d of Object.values(devices).flat()) d.stop();
    await adapter?.stop();
    await Promise.all(
      [...gateways.values()].map(async ({ started }) => stopGateway(await started.catch(() => undefined))),
    );
    if (namespace) await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('raises one region to the replica count its connections need, and leaves the other alone', async () => {
    // 480 devices on 2 east pods at a target of 100 per pod: ceil(480 / 100) = 5 pods.
    // New pods start empty (scale-up moves no device), so at 5 pods the average is 96, within
    // the HPA's 10% tolerance: it stays at 5. North: 60 devices on 2 pods stays at the minimum.
    await connectDevices('cn-east-1', 480);
    await connectDevices('cn-north-1', 60);
    await eventually(async () => sum(await regionCounts('cn-east-1')) === 480, {
      what: 'the east gateways to publish 480 connections',
      timeoutMs: 20_000,
    });
    await eventually(async () => sum(await regionCounts('cn-north-1')) === 60, {
      what: 'the north gateways to publish 60 connections',
      timeoutMs: 20_000,
    });

    await eventually(async () => (await replicas('cn-east-1')) === 5, {
      what: 'cn-east-1 to scale to 5 replicas',
      timeoutMs: 90_000,
      intervalMs: 1000,
    });
    // The new pods got gateways of their own, and no device moved.
    await eventually(async () => liveGateways('cn-east-1').length === 5, {
      what: '5 east gateways',
      timeoutMs: 60_000,
    });
    await eventually(async () => (await regionCounts('cn-east-1')).length === 5, {
      what: 'the 5 east gateways to publish',
      timeoutMs: 30_000,
    });
    expect(sum(await regionCounts('cn-east-1'))).toBe(480);
    expect(await replicas('cn-east-1')).toBe(5);
    expect(await replicas('cn-north-1')).toBe(2);
    // The HPA's status is its last sync's reading: it reads all 60 north devices at its next one
    // (one run read 27 per pod, taken while the last north devices were still connecting).
    await eventually(async () => (await hpaAverage('cn-north-1')) === '30', {
      what: 'the north HPA to read 30 connections per pod',
      timeoutMs: 30_000,
      intervalMs: 1000,
    });
  });

  it('lowers it after the counts fall, only after the stabilization window, one pod per period, losing no device', async () => {
    // 430 of the 480 east devices go away; 50 stay.
    const leaving = devices['cn-east-1']!.splice(0, 430);
    for (const d of leaving) d.stop();
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

    // The 50 remaining devices end up on the 2 remaining gateways (those on a removed pod were
    // drained there), and the HPA reads their new average.
    await eventually(async () => liveGateways('cn-east-1').length === 2, {
      what: '2 east gateways',
      timeoutMs: 30_000,
    });
    await eventually(async () => devices['cn-east-1']!.every((d) => d.connected), {
      what: 'every remaining east device connected',
      timeoutMs: 30_000,
    });
    await eventually(async () => (await hpaAverage('cn-east-1')) === '25', {
      what: 'the HPA to read 50 connections over 2 pods',
      timeoutMs: 30_000,
      intervalMs: 500,
    });
    const counts = await regionCounts('cn-east-1');
    expect(counts).toHaveLength(2);
    expect(sum(counts)).toBe(50);
    expect(await replicas('cn-north-1')).toBe(2);
  });
});
