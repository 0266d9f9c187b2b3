import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { KubeObject } from '../../operator/runtime/kube.js';
import { Resources } from '../../operator/runtime/resources.js';
import { PushGatewayResource } from '../../operator/controllers/pushgateway/names.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { startKwokMetrics, type KwokMetrics } from '../support/metrics-adapter.js';
import {
  applyPushGateway,
  clientFor,
  createGatewaySecrets,
  getOrUndefined,
  installCRDs,
  isReady,
  metricSum,
  pushGatewayStatus,
  samplePushGateway,
  startOperator,
  type OperatorProcess,
} from '../support/operator.js';
import { kubectl } from '../support/stack.js';

/**
 * What the PushGateway's status and events say when it cannot work, on the real API server
 * with the operator as a process (issues 14 and 9): an unbuildable spec changes nothing and
 * ends in a terminal condition; pods that cannot be created or started, and Secrets the pods
 * need that do not exist, keep it from Ready and say what to do.
 */
const kubeconfig = inject('kubeconfig');
const client = clientFor(kubeconfig);
let ns: string;
let metrics: KwokMetrics;
const silent = new Set<string>(['nometric']);
let operator: OperatorProcess;
const policy = `pgtest-no-services-${Math.random().toString(36).slice(2, 8)}`;

type Cond = { type: string; status: string; reason: string; message: string };
const cond = async (name: string, type: string): Promise<Cond | undefined> =>
  (await pushGatewayStatus(client, ns, name))?.conditions?.find((c) => c.type === type);

/** Events on the PushGateway `name`, as `reason: note` (events.k8s.io, as kubectl describe shows them). */
async function events(name: string): Promise<{ type: string; reason: string; note: string }[]> {
  const list = await client.list<
    KubeObject & { type: string; reason: string; note: string; regarding: { name: string } }
  >(Resources.Event, ns);
  return list.items
    .filter((e) => e.regarding?.name === name)
    .map(({ type, reason, note }) => ({ type, reason, note }));
}

/** Whether the API server refuses a Service in the test namespace now (a dry run). */
const servicesRefused = () =>
  client
    .apply(
      Resources.Service,
      { metadata: { name: 'probe', namespace: ns }, spec: { ports: [{ port: 1 }] } },
      { fieldManager: 'test', dryRun: true },
    )
    .then(
      () => false,
      () => true,
    );

/** A one-region PushGateway (two pods) with the sample's Secrets, patched by `patch`. */
const small = (name: string, patch: (spec: Record<string, unknown>) => void = () => {}) =>
  samplePushGateway(ns, name, (spec) => {
    spec.regions = [{ name: 'cn-north-1', minReplicas: 2, maxReplicas: 4 }];
    spec.nodeTuning = { enabled: false };
    patch(spec);
  });

beforeAll(async () => {
  ns = await createTestNamespace(testKubeConfig(kubeconfig), 'op-status');
  await installCRDs(kubeconfig);
  await createGatewaySecrets(client, ns);
  // kwok's pods run no gateway: a stand-in publishes their counts (0), except for the pods of
  // PushGateways in `silent`, which are like gateways that never register.
  metrics = await startKwokMetrics({
    kubeconfig,
    redisUrl: inject('redisUrl'),
    namespace: ns,
    connections: (pod) => ([...silent].some((gw) => pod.startsWith(`${gw}-`)) ? undefined : 0),
  });
  operator = startOperator(kubeconfig, [
    '--namespace',
    ns,
    '--lease-namespace',
    ns,
    '--lease-name',
    'op-status',
  ]);
});

afterAll(async () => {
  await operator?.stop();
  await metrics?.stop();
  await kubectl(kubeconfig, [
    'delete',
    '--ignore-not-found',
    `validatingadmissionpolicybinding/${policy}`,
    `validatingadmissionpolicy/${policy}`,
  ]);
  client.close();
});

describe('PushGateway status when it cannot work', () => {
  it('a spec the API server refuses for one child creates no child at all: terminal ApplyFailed, Progressing=False, a Warning naming the object', async () => {
    // An admission policy in this namespace refuses Services: the CRD cannot know, the
    // Deployment alone would be accepted, and only a dry run of everything keeps it out.
    await kubectl(
      kubeconfig,
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'admissionregistration.k8s.io/v1',
            kind: 'ValidatingAdmissionPolicy',
            metadata: { name: policy },
            spec: {
              failurePolicy: 'Fail',
              matchConstraints: {
                resourceRules: [
                  {
                    apiGroups: [''],
                    apiVersions: ['v1'],
                    operations: ['CREATE', 'UPDATE'],
                    resources: ['services'],
                  },
                ],
              },
              validations: [{ expression: 'false', message: 'this namespace takes no Services' }],
            },
          },
          {
            apiVersion: 'admissionregistration.k8s.io/v1',
            kind: 'ValidatingAdmissionPolicyBinding',
            metadata: { name: policy },
            spec: {
              policyName: policy,
              validationActions: ['Deny'],
              matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } },
            },
          },
        ],
      }),
    );
    // The policy takes effect once the API server has loaded it; until then a dry run passes.
    await eventually(servicesRefused, {
      timeoutMs: 30_000,
      what: 'the admission policy in force',
    });

    await applyPushGateway(client, small('refused'));
    const ready = await eventually(
      async () => {
        const c = await cond('refused', 'Ready');
        return c?.reason === 'ApplyFailed' ? c : undefined;
      },
      { timeoutMs: 60_000, what: 'Ready=False ApplyFailed' },
    );
    expect(ready.status).toBe('False');
    expect(ready.message).toMatch(
      /^the API server refuses the Service refused-cn-north-1 built from this spec: /,
    );
    expect(ready.message).toMatch(/this namespace takes no Services/);
    expect(await cond('refused', 'Progressing')).toMatchObject({ status: 'False', reason: 'ApplyFailed' });
    expect(await cond('refused', 'Degraded')).toMatchObject({ status: 'True', reason: 'ApplyFailed' });
    // Nothing at all was created: no Deployment without its Service, not even the probe Secret.
    for (const [r, name] of [
      [Resources.Deployment, 'refused-cn-north-1'],
      [Resources.HorizontalPodAutoscaler, 'refused-cn-north-1'],
      [Resources.ConfigMap, 'refused-gateway-config'],
      [Resources.ServiceAccount, 'refused-gateway'],
      [Resources.Secret, 'refused-probe'],
    ] as const) {
      expect(await getOrUndefined(client, r, ns, name), `${r.kind} ${name}`).toBeUndefined();
    }
    await eventually(
      async () => (await events('refused')).some((e) => e.type === 'Warning' && e.reason === 'ApplyFailed'),
      { timeoutMs: 10_000, what: 'a Warning event ApplyFailed' },
    );
    // Terminal: recorded, not retried (no sync attempts while nothing changes).
    const syncs = () =>
      operator.probePort.then((port) =>
        metricSum(port, 'controller_runtime_reconcile_total', (l) => l.controller === 'pushgateway'),
      );
    const before = await syncs();
    await new Promise((r) => setTimeout(r, 3000));
    expect(await syncs()).toBe(before);
    expect(await metricSum(await operator.probePort, 'controller_runtime_reconcile_errors_total')).toBe(0);

    // The cause removed, a spec edit brings the key back and everything is created.
    await kubectl(kubeconfig, [
      'delete',
      `validatingadmissionpolicybinding/${policy}`,
      `validatingadmissionpolicy/${policy}`,
    ]);
    await eventually(async () => !(await servicesRefused()), {
      timeoutMs: 30_000,
      what: 'the admission policy gone',
    });
    await applyPushGateway(
      client,
      small('refused', (spec) => (spec.imagePullPolicy = 'Always')),
    );
    await eventually(() => isReady(client, ns, 'refused'), {
      timeoutMs: 90_000,
      what: 'Ready once admitted',
    });
  });

  it('pods the ReplicaSet cannot create: Degraded RolloutFailed with the reason, a Warning event, not Ready', async () => {
    await kubectl(
      kubeconfig,
      ['apply', '-n', ns, '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ResourceQuota',
        metadata: { name: 'no-pods' },
        spec: { hard: { pods: '0' } },
      }),
    );
    await applyPushGateway(client, small('noroom'));
    const degraded = await eventually(
      async () => {
        const c = await cond('noroom', 'Degraded');
        return c?.status === 'True' ? c : undefined;
      },
      // kube-controller-manager reports ReplicaFailure after its first failed pod creations.
      { timeoutMs: 90_000, what: 'Degraded=True' },
    );
    expect(degraded.reason).toBe('RolloutFailed');
    expect(degraded.message).toMatch(/cn-north-1: .*exceeded quota/);
    expect(await cond('noroom', 'Ready')).toMatchObject({ status: 'False' });
    await eventually(
      async () =>
        (await events('noroom')).some(
          (e) => e.type === 'Warning' && e.reason === 'RolloutFailed' && /exceeded quota/.test(e.note),
        ),
      { timeoutMs: 10_000, what: 'a Warning event RolloutFailed' },
    );
    await kubectl(kubeconfig, ['delete', '-n', ns, 'resourcequota/no-pods']);
    await client.delete(PushGatewayResource, ns, 'noroom');
  });

  it('a gateway container that cannot start: Degraded PodsFailing naming pod, container and reason, a Warning event', async () => {
    await applyPushGateway(client, small('pulls'));
    await eventually(() => isReady(client, ns, 'pulls'), { timeoutMs: 90_000, what: 'Ready first' });
    // kwok runs no containers; report what a kubelet reports when it cannot pull the image.
    type Pod = KubeObject & { status?: { containerStatuses?: { name: string }[] } };
    const pod = (await client.list<Pod>(Resources.Pod, ns, { labelSelector: 'pushgate.dev/gateway=pulls' }))
      .items[0]!;
    const statuses = (pod.status?.containerStatuses ?? []).map((c) =>
      c.name === 'gateway'
        ? {
            ...c,
            ready: false,
            state: {
              waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "registry.invalid/x"' },
            },
          }
        : c,
    );
    await client.mergePatch(
      Resources.Pod,
      ns,
      pod.metadata!.name!,
      { status: { containerStatuses: statuses } },
      'status',
    );
    const degraded = await eventually(
      async () => {
        const c = await cond('pulls', 'Degraded');
        return c?.reason === 'PodsFailing' ? c : undefined;
      },
      { timeoutMs: 30_000, what: 'Degraded=True PodsFailing' },
    );
    expect(degraded.message).toContain(
      `${pod.metadata!.name}/gateway: ImagePullBackOff (Back-off pulling image`,
    );
    expect(await cond('pulls', 'Ready')).toMatchObject({ status: 'False' });
    await eventually(
      async () => (await events('pulls')).some((e) => e.type === 'Warning' && e.reason === 'PodsFailing'),
      { timeoutMs: 10_000, what: 'a Warning event PodsFailing' },
    );
  });

  it('a missing apps Secret keeps it from Ready and says how to create it; creating it makes it Ready', async () => {
    await applyPushGateway(
      client,
      small('nosecret', (spec) => (spec.apps = { secretName: 'nosecret-apps' })),
    );
    const ready = await eventually(
      async () => {
        const c = await cond('nosecret', 'Ready');
        return c?.reason === 'SecretMissing' ? c : undefined;
      },
      { timeoutMs: 60_000, what: 'Ready=False SecretMissing' },
    );
    expect(ready.message).toBe(
      `Secret nosecret-apps (spec.apps.secretName) does not exist in namespace ${ns}; the gateways serve no app without it: kubectl -n ${ns} create secret generic nosecret-apps --from-literal=APP_ID=APP_SECRET`,
    );
    await eventually(
      async () =>
        (await events('nosecret')).some((e) => e.type === 'Warning' && e.reason === 'SecretMissing'),
      { timeoutMs: 10_000, what: 'a Warning event SecretMissing' },
    );
    // The workloads are there (the Secret may come later); only Ready waits for it.
    expect(await getOrUndefined(client, Resources.Deployment, ns, 'nosecret-cn-north-1')).toBeDefined();
    await client.create(Resources.Secret, {
      metadata: { name: 'nosecret-apps', namespace: ns },
      stringData: { shop: 'shop-secret-0123456789' },
    });
    await eventually(() => isReady(client, ns, 'nosecret'), {
      timeoutMs: 30_000,
      what: 'Ready once the Secret exists',
    });
  });

  it("an autoscaler that cannot read its metric keeps it from Ready with the HPA's own words; once the pods publish it is Ready", async () => {
    await applyPushGateway(client, small('nometric'));
    const ready = await eventually(
      async () => {
        const c = await cond('nometric', 'Ready');
        return c?.reason === 'MetricsUnavailable' ? c : undefined;
      },
      { timeoutMs: 90_000, what: 'Ready=False MetricsUnavailable' },
    );
    // The HPA's reason and message as kube-controller-manager wrote them, then what to check.
    expect(ready.message).toMatch(
      /^the autoscaler cannot read pushgate_gateway_connections \(cn-north-1: FailedGetPodsMetric: .*pushgate_gateway_connections/,
    );
    expect(ready.message).toContain('kubectl get apiservice v1beta2.custom.metrics.k8s.io');
    const st = await pushGatewayStatus(client, ns, 'nometric');
    expect(st?.readyRegions).toBe('1/1'); // the pods are fine; scaling is not
    expect(await cond('nometric', 'Degraded')).toMatchObject({ status: 'False' });

    silent.delete('nometric');
    await eventually(() => isReady(client, ns, 'nometric'), {
      timeoutMs: 60_000,
      what: 'Ready once the pods publish their counts',
    });
  });
});
