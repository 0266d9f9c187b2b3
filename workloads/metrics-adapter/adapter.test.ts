import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.js';
import { GATEWAY_CONNECTIONS_METRIC as METRIC, metricValueList, route } from './api.js';
import { authenticate, requestHeaderConfigFromConfigMap, type RequestHeaderConfig } from './auth.js';
import { formatSelector, matches, parseSelector } from './selector.js';
import { handleRequest, type AdapterDeps } from './server.js';
import type { PodSummary } from './source.js';
import { generateServingCert } from './tls.js';

describe('label selectors', () => {
  it.each([
    ['', {}, true],
    ['app=gw', { app: 'gw' }, true],
    ['app==gw', { app: 'gw' }, true],
    ['app=gw', { app: 'other' }, false],
    ['app!=gw', {}, true],
    ['app!=gw', { app: 'gw' }, false],
    ['region in (cn-east-1, cn-north-1)', { region: 'cn-north-1' }, true],
    ['region notin (cn-east-1)', { region: 'cn-east-1' }, false],
    ['pushgate.dev/gateway', { 'pushgate.dev/gateway': 'x' }, true],
    ['!legacy', { legacy: '' }, false],
    ['app=gw,!legacy,region in (a,b)', { app: 'gw', region: 'b' }, true],
  ])('%j matches %j: %s', (text, labels, want) => {
    expect(matches(parseSelector(text), labels)).toBe(want);
  });

  it.each([
    ['a in (b', /unbalanced/],
    ['a=b,', /empty requirement/],
    ['a=b c', /cannot parse/],
    ['-bad=x', /invalid label key/],
    ['a=b/c', /invalid label value/],
    ['a in ((b))', /unbalanced/],
  ])('rejects %j', (text, error) => {
    expect(() => parseSelector(text)).toThrow(error);
  });

  it('formats back to a string the API server reads the same way', () => {
    const text = 'app==gw,tier!=canary,region in (a,b),!legacy,ready';
    expect(formatSelector(parseSelector(text))).toBe('app=gw,tier!=canary,region in (a,b),!legacy,ready');
  });
});

describe('route', () => {
  const base = '/apis/custom.metrics.k8s.io';
  it.each([
    ['/healthz', { kind: 'health' }],
    ['/apis', { kind: 'groupList' }],
    [base, { kind: 'group' }],
    [`${base}/v1beta1`, { kind: 'resources', version: 'v1beta1' }],
    [
      `${base}/v1beta2/namespaces/ns1/pods/*/${METRIC}`,
      { kind: 'podMetric', version: 'v1beta2', namespace: 'ns1', pod: '*', metric: METRIC },
    ],
    [
      `${base}/v1beta1/namespaces/ns1/pods/gw-0/${METRIC}`,
      { kind: 'podMetric', version: 'v1beta1', namespace: 'ns1', pod: 'gw-0', metric: METRIC },
    ],
  ])('%s', (path, want) => {
    expect(route('GET', path)).toEqual(want);
  });

  it.each([
    [`${base}/v1beta2/namespaces/ns1/pods/*/cpu`, 404, /could not find the metric cpu/],
    [`${base}/v1/namespaces/ns1/pods/*/${METRIC}`, 404, /v1 is not served/],
    [`/apis/metrics.k8s.io/v1beta1`, 404, /not served here/],
    [`${base}/v1beta2/namespaces/Bad_NS/pods/*/${METRIC}`, 400, /invalid namespace name/],
    [`${base}/v1beta2/namespaces/ns1/metrics/${METRIC}`, 404, /could not find/],
    ['/openapi/v2', 404, /could not find/],
  ])('%s → %d', (path, code, message) => {
    const r = route('GET', path);
    expect(r.kind).toBe('error');
    if (r.kind !== 'error') return;
    expect(r.status).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code });
    expect(r.status.message).toMatch(message);
  });

  it('refuses writes', () => {
    const r = route('POST', `${base}/v1beta2`);
    expect(r.kind === 'error' && r.status.code).toBe(405);
  });
});

describe('metricValueList', () => {
  const values = [
    { namespace: 'ns', pod: 'gw-0', value: 1234, timestamp: new Date('2026-01-01T00:00:05.123Z') },
  ];
  it('v1beta2 nests the metric name', () => {
    expect(metricValueList('v1beta2', METRIC, values)).toEqual({
      kind: 'MetricValueList',
      apiVersion: 'custom.metrics.k8s.io/v1beta2',
      metadata: {},
      items: [
        {
          describedObject: { kind: 'Pod', namespace: 'ns', name: 'gw-0', apiVersion: '/v1' },
          metric: { name: METRIC, selector: null },
          timestamp: '2026-01-01T00:00:05Z',
          value: '1234',
        },
      ],
    });
  });
  it('v1beta1 has metricName beside the value', () => {
    expect(metricValueList('v1beta1', METRIC, values).items[0]).toMatchObject({
      metricName: METRIC,
      value: '1234',
    });
  });
});

const config: RequestHeaderConfig = {
  clientCA: 'unused',
  allowedNames: ['front-proxy-client'],
  usernameHeaders: ['X-Remote-User'],
  groupHeaders: ['X-Remote-Group'],
  extraHeaderPrefixes: ['X-Remote-Extra-'],
};
const proxy = { authorized: true, commonName: 'front-proxy-client' };
const asUser = {
  'x-remote-user': 'system:kube-controller-manager',
  'x-remote-group': ['system:authenticated'],
};

describe('authenticate (aggregation-layer request-header rules)', () => {
  it('accepts the front proxy and takes the user from its headers', () => {
    const result = authenticate(proxy, { ...asUser, 'x-remote-extra-scopes': 'a' }, config);
    expect(result).toEqual({
      ok: true,
      caller: {
        user: 'system:kube-controller-manager',
        groups: ['system:authenticated'],
        extra: { scopes: ['a'] },
        proxy: 'front-proxy-client',
      },
    });
  });

  it.each([
    ['no certificate', { authorized: false }, asUser, /no client certificate/],
    [
      'a certificate from another CA',
      {
        authorized: false,
        commonName: 'front-proxy-client',
        authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      },
      asUser,
      /not signed by the request-header client CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/,
    ],
    ['a CN not allowed', { authorized: true, commonName: 'mallory' }, asUser, /CN 'mallory' is not one of/],
    ['no user header', proxy, {}, /sent no user/],
  ])('refuses %s with 401', (_name, tls, headers, message) => {
    const result = authenticate(tls, headers, config);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.status).toMatchObject({ code: 401, reason: 'Unauthorized' });
    expect(result.status.message).toMatch(message);
  });

  it('accepts any CN the CA signed when allowed names are empty', () => {
    expect(
      authenticate({ authorized: true, commonName: 'anyone' }, asUser, { ...config, allowedNames: [] }).ok,
    ).toBe(true);
  });

  it('reads the ConfigMap kube-apiserver writes', () => {
    expect(
      requestHeaderConfigFromConfigMap({
        'requestheader-client-ca-file': 'PEM',
        'requestheader-allowed-names': '["front-proxy-client"]',
        'requestheader-username-headers': '["X-Remote-User"]',
        'requestheader-group-headers': '["X-Remote-Group"]',
        'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
      }),
    ).toEqual({ ...config, clientCA: 'PEM' });
    expect(() => requestHeaderConfigFromConfigMap({})).toThrow(/no requestheader-client-ca-file/);
  });
});

describe('handleRequest', () => {
  const pods: PodSummary[] = [
    { name: 'gw-a', labels: { app: 'gw', region: 'cn-east-1' } },
    { name: 'gw-b', labels: { app: 'gw', region: 'cn-east-1' } },
    { name: 'gw-c', labels: { app: 'gw', region: 'cn-north-1' } },
  ];
  const deps: AdapterDeps = {
    log: silentLogger,
    requestHeader: () => config,
    pods: {
      namespaceExists: async (ns) => ns === 'ns1',
      listPods: async (_ns, selector) => pods.filter((p) => matches(parseSelector(selector), p.labels)),
      getPod: async (_ns, name) => pods.find((p) => p.name === name),
    },
    source: {
      // gw-b has not published yet: it is left out, as the HPA expects for a missing metric.
      podConnections: async () =>
        new Map([
          ['gw-a', { connections: 700, updatedAt: Date.parse('2026-01-01T00:00:00Z') }],
          ['gw-c', { connections: 10, updatedAt: Date.parse('2026-01-01T00:00:00Z') }],
        ]),
    },
  };
  const get = (path: string, tls = proxy, headers: Record<string, string | string[]> = asUser) =>
    handleRequest(deps, 'GET', new URL(path, 'https://adapter'), tls, headers);
  const base = '/apis/custom.metrics.k8s.io/v1beta2/namespaces';

  it('answers the pods the selector picks that have a published count', async () => {
    const res = await get(
      `${base}/ns1/pods/*/${METRIC}?labelSelector=${encodeURIComponent('region=cn-east-1')}`,
    );
    expect(res.code).toBe(200);
    const items = (res.body as { items: { describedObject: { name: string }; value: string }[] }).items;
    expect(items.map((i) => [i.describedObject.name, i.value])).toEqual([['gw-a', '700']]);
  });

  it('answers one pod by name', async () => {
    const res = await get(`${base}/ns1/pods/gw-c/${METRIC}`);
    expect(res.code).toBe(200);
    expect((res.body as { items: unknown[] }).items).toHaveLength(1);
  });

  it('returns nothing for a metric selector our unlabelled series cannot satisfy', async () => {
    const res = await get(`${base}/ns1/pods/*/${METRIC}?metricLabelSelector=queue%3Dx`);
    expect((res.body as { items: unknown[] }).items).toEqual([]);
  });

  it.each([
    [`${base}/ns1/pods/*/unknown_metric`, 404, /could not find the metric unknown_metric/],
    [`${base}/missing/pods/*/${METRIC}`, 404, /namespaces "missing" not found/],
    [
      `${base}/ns1/pods/*/${METRIC}?labelSelector=${encodeURIComponent('app in (gw')}`,
      400,
      /invalid label selector/,
    ],
    [`${base}/ns1/pods/gw-b/${METRIC}`, 404, /could not find the metric .* for pods gw-b/],
  ])('%s → %d Status', async (path, code, message) => {
    const res = await get(path);
    expect(res.code).toBe(code);
    expect(res.body).toMatchObject({ kind: 'Status', code });
    expect((res.body as { message: string }).message).toMatch(message);
  });

  it('refuses an unauthenticated caller before reading anything', async () => {
    const res = await get(`${base}/ns1/pods/*/${METRIC}`, { authorized: false } as typeof proxy, {});
    expect(res.code).toBe(401);
  });

  it('answers health probes without a certificate', async () => {
    expect((await get('/healthz', { authorized: false } as typeof proxy, {})).code).toBe(200);
  });

  it('turns a registry failure into a 503 Status', async () => {
    const broken: AdapterDeps = {
      ...deps,
      source: {
        podConnections: () => Promise.reject(new Error('connect ECONNREFUSED')),
      },
    };
    const res = await handleRequest(
      broken,
      'GET',
      new URL(`${base}/ns1/pods/*/${METRIC}`, 'https://a'),
      proxy,
      asUser,
    );
    expect(res.code).toBe(503);
    expect((res.body as { message: string }).message).toMatch(/ECONNREFUSED/);
  });
});

describe('generateServingCert', () => {
  it('makes a server certificate for the names the aggregator dials', async () => {
    const { cert, key } = await generateServingCert(['adapter.ns.svc', 'localhost', '127.0.0.1']);
    const x509 = new X509Certificate(cert);
    expect(x509.subjectAltName).toBe('DNS:adapter.ns.svc, DNS:localhost, IP Address:127.0.0.1');
    expect(x509.checkHost('adapter.ns.svc')).toBe('adapter.ns.svc');
    expect(key).toMatch(/BEGIN PRIVATE KEY/);
  });
});
