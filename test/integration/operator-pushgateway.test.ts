import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { KubeObject } from '../../operator/runtime/kube.js';
import { Resources } from '../../operator/runtime/resources.js';
import { PushGatewayResource } from '../../operator/controllers/pushgateway/controller.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { kubectl } from '../support/stack.js';
import { startKwokMetrics, type KwokMetrics } from '../support/metrics-adapter.js';
import {
  applyPushGateway,
  clientFor,
  createGatewaySecrets,
  getOrUndefined,
  installCRDs,
  isReady,
  probe,
  samplePushGateway,
  startOperator,
  type OperatorProcess,
} from '../support/operator.js';

/**
 * The PushGateway controller on the shared real control plane (kube-apiserver, the real
 * kube-controller-manager for Deployments/ReplicaSets/DaemonSets/HPA/garbage collection, the
 * real scheduler, kwok nodes in three regions), with the operator as a child process.
 */
const kubeconfig = inject('kubeconfig');
const client = clientFor(kubeconfig);
let ns: string;
let operator: OperatorProcess;
let metrics: KwokMetrics;

type Pod = KubeObject & {
  spec?: { nodeName?: string };
  status?: { conditions?: { type: string; status: string }[] };
};
type Node = KubeObject & { metadata: { labels: Record<string, string> } };
const REGIONS = ['cn-north-1', 'cn-east-1', 'cn-south-1'];

const podReady = (p: Pod) =>
  p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

beforeAll(async () => {
  ns = await createTestNamespace(testKubeConfig(inject('kubeconfig')), 'op-pgw');
  await installCRDs(kubeconfig);
  await createGatewaySecrets(client, ns);
  // kwok's pods run no gateway: a stand-in publishes their (zero) connection counts, so the
  // HPAs read their metric through the real adapter and Ready can mean what it says.
  metrics = await startKwokMetrics({ kubeconfig, redisUrl: inject('redisUrl'), namespace: ns });
  operator = startOperator(kubeconfig, [
    '--namespace',
    ns,
    '--lease-namespace',
    ns,
    '--lease-name',
    'op-pgw',
  ]);
});

afterAll(async () => {
  await operator?.stop();
  await metrics?.stop();
  client.close();
});

describe('PushGateway controller', () => {
  it('provisions the sample three-region PushGateway: per region a Deployment pinned to its nodes with Ready pods, Service, HPA, PDB; a node-tuner pod on every node of those regions; Ready status', async () => {
    await applyPushGateway(client, samplePushGateway(ns));
    const status = await eventually(() => isReady(client, ns, 'main'), {
      timeoutMs: 90_000,
      what: 'PushGateway Ready=True',
    });

    const nodes = (await client.list<Node>(Resources.Node)).items;
    const regionOf = new Map(
      nodes.map((n) => [n.metadata.name!, n.metadata.labels['topology.kubernetes.io/region']]),
    );
    const wantReplicas: Record<string, number> = { 'cn-north-1': 3, 'cn-east-1': 3, 'cn-south-1': 2 };
    for (const region of REGIONS) {
      const name = `main-${region}`;
      const dep = await client.get<KubeObject & { status?: { readyReplicas?: number } }>(
        Resources.Deployment,
        ns,
        name,
      );
      expect(dep.status?.readyReplicas, name).toBe(wantReplicas[region]);
      for (const r of [Resources.Service, Resources.HorizontalPodAutoscaler, Resources.PodDisruptionBudget]) {
        expect(await getOrUndefined(client, r, ns, name), `${r.kind} ${name}`).toBeDefined();
      }
      const pods = (
        await client.list<Pod>(Resources.Pod, ns, { labelSelector: `pushgate.dev/region=${region}` })
      ).items;
      expect(pods.length).toBe(wantReplicas[region]);
      for (const p of pods) {
        expect(regionOf.get(p.spec!.nodeName!), `${p.metadata?.name} on ${p.spec?.nodeName}`).toBe(region);
        expect(podReady(p)).toBe(true);
      }
    }
    expect(status.readyRegions).toBe('3/3');
    expect(status.regions).toEqual([
      { name: 'cn-north-1', replicas: 3, readyReplicas: 3, connections: 0 },
      { name: 'cn-east-1', replicas: 3, readyReplicas: 3, connections: 0 },
      { name: 'cn-south-1', replicas: 2, readyReplicas: 2, connections: 0 },
    ]);

    // One node-tuner pod on each node of the three regions (all 9 kwok nodes here).
    const regionNodes = nodes.filter((n) =>
      REGIONS.includes(n.metadata.labels['topology.kubernetes.io/region']!),
    );
    const tuners = (
      await client.list<Pod>(Resources.Pod, ns, { labelSelector: 'app.kubernetes.io/component=node-tuner' })
    ).items;
    expect(tuners.map((p) => p.spec?.nodeName).sort()).toEqual(
      regionNodes.map((n) => n.metadata.name).sort(),
    );

    const table = await kubectl(kubeconfig, ['-n', ns, 'get', 'pushgateway']);
    expect(table).toMatch(/^NAME\s+READY\s+REGIONS/m);
    expect(table).toMatch(/^main\s+True\s+3\/3\s+8\b/m);

    // Important transitions are Kubernetes Events on the PushGateway.
    const events = await kubectl(kubeconfig, [
      '-n',
      ns,
      'get',
      'events',
      '--field-selector',
      'involvedObject.kind=PushGateway',
      '-o',
      'custom-columns=REASON:.reason',
    ]);
    expect(events).toMatch(/RegionProvisioned/);
    expect(events).toMatch(/\bReady\b/);

    const ready = await probe(await operator.probePort, '/readyz');
    expect(ready.status).toBe(200);
  });

  it('restores a child Deployment deleted by hand, and a Service edited by hand; the probe secret keeps its value', async () => {
    type Secret = KubeObject & { data: Record<string, string> };
    const probe = await client.get<Secret>(Resources.Secret, ns, 'main-probe');
    expect(Buffer.from(probe.data.secret!, 'base64').toString().length).toBeGreaterThanOrEqual(32);
    const before = await client.get(Resources.Deployment, ns, 'main-cn-east-1');
    await client.delete(Resources.Deployment, ns, 'main-cn-east-1');
    await eventually(
      async () => {
        const d = await getOrUndefined(client, Resources.Deployment, ns, 'main-cn-east-1');
        return d && d.metadata?.uid !== before.metadata?.uid && !d.metadata?.deletionTimestamp;
      },
      { timeoutMs: 30_000, what: 'the Deployment to come back' },
    );
    await client.mergePatch(Resources.Service, ns, 'main-cn-north-1', {
      spec: { selector: { 'app.kubernetes.io/instance': 'someone-else' } },
    });
    await eventually(
      async () => {
        const s = await client.get<KubeObject & { spec: { selector: Record<string, string> } }>(
          Resources.Service,
          ns,
          'main-cn-north-1',
        );
        return s.spec.selector['app.kubernetes.io/instance'] === 'main';
      },
      { timeoutMs: 30_000, what: 'the Service selector to be restored' },
    );
    // A spec edit of a child that reports status (generation bumps) is undone too.
    type Dep = KubeObject & {
      spec: { template: { spec: { containers: { name: string; image: string }[] } } };
    };
    const image = (d: Dep) => d.spec.template.spec.containers.find((c) => c.name === 'gateway')!.image;
    const want = image(await client.get<Dep>(Resources.Deployment, ns, 'main-cn-south-1'));
    await client.request('PATCH', `/apis/apps/v1/namespaces/${ns}/deployments/main-cn-south-1`, {
      body: { spec: { template: { spec: { containers: [{ name: 'gateway', image: 'evil:latest' }] } } } },
      contentType: 'application/strategic-merge-patch+json',
    });
    await eventually(
      async () => image(await client.get<Dep>(Resources.Deployment, ns, 'main-cn-south-1')) === want,
      {
        timeoutMs: 30_000,
        what: 'the Deployment image to be restored',
      },
    );
    await eventually(() => isReady(client, ns, 'main'), { timeoutMs: 60_000, what: 'Ready again' });
    expect((await client.get<Secret>(Resources.Secret, ns, 'main-probe')).data).toEqual(probe.data);
  });

  it('converges spec changes: a region removed loses its objects, a region added gets them', async () => {
    await applyPushGateway(
      client,
      samplePushGateway(ns, 'main', (spec) => {
        spec.regions = spec.regions.filter((r: { name: string }) => r.name !== 'cn-south-1');
      }),
    );
    await eventually(
      async () => {
        for (const r of [
          Resources.Deployment,
          Resources.Service,
          Resources.HorizontalPodAutoscaler,
          Resources.PodDisruptionBudget,
        ]) {
          if (await getOrUndefined(client, r, ns, 'main-cn-south-1')) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, what: 'cn-south-1 objects to be deleted' },
    );
    const st = await eventually(() => isReady(client, ns, 'main'), {
      timeoutMs: 60_000,
      what: 'Ready with two regions',
    });
    expect(st.readyRegions).toBe('2/2');
    // The node tuner now runs on the two remaining regions' nodes only.
    await eventually(
      async () => {
        const tuners = (
          await client.list<Pod>(Resources.Pod, ns, {
            labelSelector: 'app.kubernetes.io/component=node-tuner',
          })
        ).items;
        const live = tuners.filter((p) => !p.metadata?.deletionTimestamp);
        return live.length === 6 && live.every((p) => !p.spec?.nodeName?.includes('cn-south-1'));
      },
      { timeoutMs: 60_000, what: 'node tuners only on cn-north-1 and cn-east-1 nodes' },
    );

    await applyPushGateway(client, samplePushGateway(ns));
    const again = await eventually(() => isReady(client, ns, 'main'), {
      timeoutMs: 90_000,
      what: 'Ready with three regions',
    });
    expect(again.readyRegions).toBe('3/3');
  });

  it('fills in the documented defaults for a minimal PushGateway (one region, only required fields)', async () => {
    await applyPushGateway(client, {
      ...samplePushGateway(ns, 'minimal'),
      spec: {
        regions: [{ name: 'cn-north-1' }],
        redis: { secretName: 'pushgate-redis' },
        ports: { websocket: 8080 },
      },
    });
    const st = await eventually(() => isReady(client, ns, 'minimal'), {
      timeoutMs: 90_000,
      what: 'a minimal PushGateway Ready',
    });
    expect(st.readyRegions).toBe('1/1');
    expect(st.regions).toEqual([{ name: 'cn-north-1', replicas: 2, readyReplicas: 2, connections: 0 }]); // minReplicas default 2
    expect(await getOrUndefined(client, Resources.DaemonSet, ns, 'minimal-node-tuner')).toBeUndefined(); // node tuning defaults to off
  });

  it('deleting the PushGateway garbage-collects every child, the cluster-wide binding too', async () => {
    await client.delete(PushGatewayResource, ns, 'main', 'Foreground');
    await client.delete(PushGatewayResource, ns, 'minimal', 'Foreground');
    await eventually(
      async () => {
        for (const r of [
          Resources.Deployment,
          Resources.Service,
          Resources.HorizontalPodAutoscaler,
          Resources.PodDisruptionBudget,
          Resources.DaemonSet,
          Resources.ConfigMap,
          Resources.Secret,
          Resources.ServiceAccount,
          Resources.Role,
          Resources.RoleBinding,
        ]) {
          const left = (
            await client.list(r, ns, { labelSelector: 'app.kubernetes.io/managed-by=pushgate-operator' })
          ).items;
          if (left.length) return false;
        }
        const crbs = (
          await client.list(Resources.ClusterRoleBinding, undefined, {
            labelSelector: `pushgate.dev/gateway-namespace=${ns}`,
          })
        ).items;
        return crbs.length === 0;
      },
      { timeoutMs: 60_000, what: 'every child to be garbage-collected' },
    );
  });
});
