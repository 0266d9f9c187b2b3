import * as k8s from '@kubernetes/client-node';
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, redisKeys, registerGateway, type PgRedis } from '../../common/redis/index.js';
import { GATEWAY_CONNECTIONS_METRIC as METRIC } from '../../workloads/metrics-adapter/api.js';
import { startAdapterBehindAggregator, type RunningAdapter } from '../support/metrics-adapter.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { kubectl } from '../support/stack.js';

/**
 * The real metrics adapter process behind the real aggregator of kube-apiserver: reads go
 * through `kubectl get --raw`, counts come from the gateway registry in a real Redis (written
 * with the gateways' own writer, registerGateway), pods from the API server. Bad input is
 * sent both through the aggregator and straight to the adapter, which must answer each with
 * its documented Status and keep serving.
 */
describe('pushgate metrics-adapter through the aggregation layer', () => {
  const kubeconfig = inject('kubeconfig');
  const kc = testKubeConfig(kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const keyPrefix = `pgtest-ma-${Math.random().toString(36).slice(2, 8)}`;
  const keys = redisKeys(keyPrefix);
  let redis: PgRedis;
  let namespace: string;
  let adapter: RunningAdapter;

  const raw = (p: string) => kubectl(kubeconfig, ['get', '--raw', p]);
  const rawError = (p: string) =>
    raw(p).then(
      (out) => {
        throw new Error(`expected an error, got ${out}`);
      },
      (err: { stderr: string }) => err.stderr.trim(),
    );
  const metricPath = (version: string, ns: string, pod: string, metric = METRIC, query = '') =>
    `/apis/custom.metrics.k8s.io/${version}/namespaces/${ns}/pods/${pod}/${metric}${query}`;

  /** A direct HTTPS call to the adapter, as the aggregator would make it (or not). */
  function direct(
    p: string,
    opts: { cert?: string; key?: string; headers?: Record<string, string> } = {},
  ): Promise<{ code: number; body: { kind?: string; code?: number; message?: string } }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: adapter.port,
          path: p,
          ca: adapter.servingCert,
          servername: 'localhost',
          cert: opts.cert,
          key: opts.key,
          headers: opts.headers,
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ code: res.statusCode ?? 0, body: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }
  const pki = (file: string) => readFileSync(path.join(path.dirname(kubeconfig), 'pki', file), 'utf8');

  beforeAll(async () => {
    namespace = await createTestNamespace(kc, 'madapter');
    redis = createRedis(inject('redisUrl'));
    adapter = await startAdapterBehindAggregator({
      kubeconfig,
      redisUrl: inject('redisUrl'),
      keyPrefix,
      namespace,
    });
    for (const [name, region] of [
      ['gw-east-0', 'cn-east-1'],
      ['gw-east-1', 'cn-east-1'],
      ['gw-north-0', 'cn-north-1'],
    ] as const) {
      await core.createNamespacedPod({
        namespace,
        body: {
          metadata: { name, labels: { app: 'pushgate-gateway', region } },
          spec: {
            nodeSelector: { 'topology.kubernetes.io/region': region },
            containers: [{ name: 'gateway', image: 'registry.invalid/pushgate:test' }],
          },
        },
      });
    }
    const now = Date.now();
    const record = (podName: string, region: string, connections: number) =>
      registerGateway(redis, keys, {
        id: `${namespace}/${podName}`,
        podName,
        namespace,
        region,
        zone: `${region}a`,
        endpoint: `ws://127.0.0.1:1/${podName}`,
        connections,
        maxConnections: 100_000,
        ready: true,
        draining: false,
        updatedAt: now,
      });
    await record('gw-east-0', 'cn-east-1', 321);
    await record('gw-east-1', 'cn-east-1', 123);
    await record('gw-north-0', 'cn-north-1', 7);
    // A record for a pod in another namespace must never leak into this one.
    await registerGateway(redis, keys, {
      id: 'elsewhere/gw-east-0',
      podName: 'gw-east-0',
      namespace: 'elsewhere',
      region: 'cn-east-1',
      zone: 'cn-east-1a',
      endpoint: 'ws://127.0.0.1:1/x',
      connections: 99_999,
      maxConnections: 100_000,
      ready: true,
      draining: false,
      updatedAt: now,
    });
  });

  afterAll(async () => {
    await adapter?.stop();
    if (namespace) await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    redis?.disconnect();
  });

  it('publishes discovery for both versions through the aggregator', async () => {
    for (const version of ['v1beta2', 'v1beta1']) {
      const list = JSON.parse(await raw(`/apis/custom.metrics.k8s.io/${version}`));
      expect(list).toMatchObject({
        kind: 'APIResourceList',
        groupVersion: `custom.metrics.k8s.io/${version}`,
      });
      expect(list.resources.map((r: { name: string }) => r.name)).toEqual([`pods/${METRIC}`]);
    }
  });

  it('kubectl get --raw returns each selected pod with its connection count', async () => {
    type Item = {
      describedObject: { name: string };
      value: string;
      metric?: { name: string };
      metricName?: string;
    };
    const values = (list: { items: Item[] }) =>
      Object.fromEntries(list.items.map((i) => [i.describedObject.name, i.value]));

    const all = JSON.parse(
      await raw(metricPath('v1beta2', namespace, '*', METRIC, '?labelSelector=app%3Dpushgate-gateway')),
    );
    expect(all.kind).toBe('MetricValueList');
    expect(values(all)).toEqual({ 'gw-east-0': '321', 'gw-east-1': '123', 'gw-north-0': '7' });
    expect(all.items[0].metric.name).toBe(METRIC);

    const east = JSON.parse(
      await raw(metricPath('v1beta2', namespace, '*', METRIC, '?labelSelector=region%3Dcn-east-1')),
    );
    expect(values(east)).toEqual({ 'gw-east-0': '321', 'gw-east-1': '123' });

    const v1beta1 = JSON.parse(
      await raw(
        metricPath(
          'v1beta1',
          namespace,
          '*',
          METRIC,
          `?labelSelector=${encodeURIComponent('region in (cn-north-1)')}`,
        ),
      ),
    );
    expect(values(v1beta1)).toEqual({ 'gw-north-0': '7' });
    expect(v1beta1.items[0].metricName).toBe(METRIC);

    const one = JSON.parse(await raw(metricPath('v1beta2', namespace, 'gw-east-1')));
    expect(values(one)).toEqual({ 'gw-east-1': '123' });
  });

  it('answers bad input through the aggregator with the documented errors', async () => {
    expect(await rawError(metricPath('v1beta2', namespace, '*', 'no_such_metric'))).toBe(
      `Error from server (NotFound): the server could not find the metric no_such_metric for pods; served: ${METRIC}`,
    );
    expect(await rawError(metricPath('v1beta2', 'no-such-namespace', '*'))).toBe(
      'Error from server (NotFound): namespaces "no-such-namespace" not found',
    );
    expect(
      await rawError(
        metricPath('v1beta2', namespace, '*', METRIC, `?labelSelector=${encodeURIComponent('app in (x')}`),
      ),
    ).toBe("Error from server (BadRequest): invalid label selector: unbalanced parentheses in 'app in (x'");
    expect(await rawError(metricPath('v1beta2', namespace, 'gw-missing'))).toBe(
      `Error from server (NotFound): the server could not find the metric ${METRIC} for pods gw-missing`,
    );
  });

  it('refuses callers the aggregation layer did not vouch for with a 401 Status', async () => {
    const p = metricPath('v1beta2', namespace, '*');
    const proxyCert = { cert: pki('front-proxy-client.crt'), key: pki('front-proxy-client.key') };
    const cases = [
      ['no client certificate', {}, /no client certificate/],
      // The cluster admin's certificate is valid for kube-apiserver, but not signed by the front-proxy CA.
      [
        'a certificate from another CA',
        { cert: pki('admin.crt'), key: pki('admin.key'), headers: { 'X-Remote-User': 'admin' } },
        /not signed by the request-header client CA/,
      ],
      ['the front proxy without a user', proxyCert, /sent no user/],
    ] as const;
    expect(existsSync(path.join(path.dirname(kubeconfig), 'pki', 'front-proxy-client.crt'))).toBe(true);
    for (const [, opts, message] of cases) {
      const res = await direct(p, opts);
      expect(res.code).toBe(401);
      expect(res.body).toMatchObject({ kind: 'Status', code: 401, reason: 'Unauthorized' });
      expect(res.body.message).toMatch(message);
    }
    // The same certificate with a user header is the aggregator's call, and is answered.
    const ok = await direct(p, {
      ...proxyCert,
      headers: { 'X-Remote-User': 'someone', 'X-Remote-Group': 'g' },
    });
    expect(ok.code).toBe(200);
    expect(ok.body.kind).toBe('MetricValueList');
  });

  it('is still serving after all of that', async () => {
    expect(adapter.alive()).toBe(true);
    await eventually(
      async () => JSON.parse(await raw(metricPath('v1beta2', namespace, 'gw-north-0'))).items.length === 1,
      {
        what: 'a good read after the bad ones',
        timeoutMs: 10_000,
      },
    );
  });
});
