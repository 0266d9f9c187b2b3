import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';

/**
 * Proves the control plane under `npm test` is real: kube-scheduler places pods onto kwok
 * nodes, kwok makes them Ready, and kube-controller-manager's garbage collector removes them
 * once their Deployment is gone.
 */
describe('local control plane', () => {
  const kc = testKubeConfig(inject('kubeconfig'));
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  let namespace: string;

  beforeAll(async () => {
    namespace = await createTestNamespace(kc, 'cluster');
  });
  afterAll(async () => {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('has nine or more Ready kwok nodes over three regions', async () => {
    const nodes = (await core.listNode()).items;
    const ready = nodes.filter((n) =>
      n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    expect(ready.length).toBeGreaterThanOrEqual(9);
    const regions = new Set(ready.map((n) => n.metadata?.labels?.['topology.kubernetes.io/region']));
    expect([...regions].sort()).toEqual(['cn-east-1', 'cn-north-1', 'cn-south-1']);
  });

  it('schedules a Deployment onto kwok nodes, and garbage-collects its pods when it is deleted', async () => {
    const labels = { app: 'smoke' };
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'smoke' },
        spec: {
          replicas: 3,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              nodeSelector: { 'topology.kubernetes.io/region': 'cn-east-1' },
              containers: [{ name: 'main', image: 'registry.invalid/smoke:1' }],
            },
          },
        },
      },
    });
    const pods = await eventually(
      async () => {
        const list = (await core.listNamespacedPod({ namespace, labelSelector: 'app=smoke' })).items;
        const ready = list.filter((p) =>
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        return ready.length === 3 ? list : undefined;
      },
      { what: '3 Ready pods', timeoutMs: 90_000 },
    );
    for (const pod of pods) {
      expect(pod.spec?.nodeName).toMatch(/^kwok-cn-east-1[abc]-/);
    }

    await apps.deleteNamespacedDeployment({ name: 'smoke', namespace, propagationPolicy: 'Background' });
    await eventually(
      async () =>
        (await core.listNamespacedPod({ namespace, labelSelector: 'app=smoke' })).items.length === 0,
      { what: 'pods to be garbage-collected', timeoutMs: 90_000 },
    );
  });
});
