import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, redisKeys, registerGateway, type PgRedis } from '../../common/redis/index.js';
import {
  startAdapterBehindAggregator,
  waitForMetricsAPIAvailable,
  type RunningAdapter,
} from '../support/metrics-adapter.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { kubectl } from '../support/stack.js';
import {
  applyPushGateway,
  clientFor,
  createGatewaySecrets,
  installCRDs,
  samplePushGateway,
  startOperator,
  type OperatorProcess,
} from '../support/operator.js';

/**
 * The operator setting that wires the metrics adapter (`--metrics-adapter-service`): with a real
 * adapter process behind an ExternalName Service, the operator registers the custom.metrics
 * APIServices while a PushGateway asks for the adapter, the aggregator reports them Available and
 * serves the adapter's values through them, a hand-deleted APIService comes back, and they go
 * when no PushGateway asks any more.
 */
describe('operator: metrics adapter APIService wiring', () => {
  const kubeconfig = inject('kubeconfig');
  const kc = testKubeConfig(inject('kubeconfig'));
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const registration = kc.makeApiClient(k8s.ApiregistrationV1Api);
  const keyPrefix = `pg-mas-${process.pid}`;
  let namespace: string;
  let adapter: RunningAdapter | undefined;
  let operator: OperatorProcess | undefined;
  let redis: PgRedis;
  const apiServiceNames = ['v1beta2.custom.metrics.k8s.io', 'v1beta1.custom.metrics.k8s.io'];
  const read = (name: string) => registration.readAPIService({ name }).catch(() => undefined);

  beforeAll(async () => {
    await installCRDs(kubeconfig);
    namespace = await createTestNamespace(kc, 'mas');
    redis = createRedis(inject('redisUrl'));
    // The adapter and its Service, but no APIService: registering it is the operator's job here.
    adapter = await startAdapterBehindAggregator({
      kubeconfig,
      redisUrl: inject('redisUrl'),
      keyPrefix,
      namespace,
      registerAPIServices: false,
    });
    const caFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'pushgate-mas-')), 'ca.crt');
    writeFileSync(caFile, adapter.servingCert);
    operator = startOperator(kubeconfig, [
      '--namespace',
      namespace,
      '--leader-elect=false',
      '--metrics-adapter-service',
      `${namespace}/pushgate-metrics-adapter:${adapter.port}`,
      '--metrics-adapter-ca-file',
      caFile,
    ]);
  });

  afterAll(async () => {
    await operator?.stop();
    await adapter?.stop(); // also deletes the APIServices, whoever made them
    await redis?.quit();
    if (namespace) await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('registers nothing while no PushGateway asks for the adapter', async () => {
    const client = clientFor(kubeconfig);
    await createGatewaySecrets(client, namespace);
    await applyPushGateway(
      client,
      samplePushGateway(namespace, 'optout', (spec) => (spec.metricsAdapter = { enabled: false })),
    );
    // Give the operator time to see it and act (it would act within a second or two).
    await new Promise((r) => setTimeout(r, 3000));
    for (const name of apiServiceNames) expect(await read(name), name).toBeUndefined();
  });

  it('registers the APIServices when one does, and the aggregator serves the adapter through them', async () => {
    const client = clientFor(kubeconfig);
    await applyPushGateway(client, samplePushGateway(namespace, 'main'));
    await waitForMetricsAPIAvailable(kubeconfig, 60_000, operator!.logs());
    const v1beta2 = (await read(apiServiceNames[0]!))!;
    expect(v1beta2.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('pushgate-operator');
    expect(v1beta2.spec?.service).toMatchObject({
      namespace,
      name: 'pushgate-metrics-adapter',
      port: adapter!.port,
    });
    expect(v1beta2.spec?.caBundle).toBeTruthy();

    // A value published where gateways publish comes back through the operator-made APIService.
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'gw-0', labels: { app: 'probe' } },
        spec: { containers: [{ name: 'gateway', image: 'registry.invalid/pushgate:test' }] },
      },
    });
    await registerGateway(redis, redisKeys(keyPrefix), {
      id: `${namespace}/gw-0`,
      podName: 'gw-0',
      namespace,
      region: 'cn-east-1',
      zone: 'cn-east-1a',
      endpoint: 'ws://127.0.0.1:1/gw-0',
      connections: 4242,
      maxConnections: 100_000,
      ready: true,
      draining: false,
      updatedAt: Date.now(),
    });
    const raw = await kubectl(kubeconfig, [
      'get',
      '--raw',
      `/apis/custom.metrics.k8s.io/v1beta2/namespaces/${namespace}/pods/*/pushgate_gateway_connections?labelSelector=app%3Dprobe`,
    ]);
    const list = JSON.parse(raw) as { items: { describedObject: { name: string }; value: string }[] };
    expect(list.items.map((i) => [i.describedObject.name, i.value])).toEqual([['gw-0', '4242']]);
  });

  it('restores an APIService deleted by hand', async () => {
    const before = (await read(apiServiceNames[0]!))!.metadata!.uid;
    await registration.deleteAPIService({ name: apiServiceNames[0]! });
    const restored = await eventually(
      async () => {
        const a = await read(apiServiceNames[0]!);
        return a && a.metadata?.uid !== before ? a : undefined;
      },
      { what: 'the APIService to be recreated', timeoutMs: 30_000 },
    );
    expect(restored.spec?.service?.name).toBe('pushgate-metrics-adapter');
  });

  it('removes them when no PushGateway asks any more', async () => {
    const client = clientFor(kubeconfig);
    await applyPushGateway(
      client,
      samplePushGateway(namespace, 'main', (spec) => (spec.metricsAdapter = { enabled: false })),
    );
    await eventually(
      async () => (await Promise.all(apiServiceNames.map(read))).every((a) => a === undefined),
      { what: 'the APIServices to be removed', timeoutMs: 30_000 },
    );
  });
});
