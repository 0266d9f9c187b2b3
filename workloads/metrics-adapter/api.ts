/**
 * The custom.metrics.k8s.io API as pure data: which paths exist, the discovery documents, the
 * MetricValueList answers (v1beta1 and v1beta2 differ in where the metric name sits) and
 * Kubernetes `Status` errors. The server (server.ts) only routes and fetches.
 */

export const GROUP = 'custom.metrics.k8s.io';
export const VERSIONS = ['v1beta2', 'v1beta1'] as const;
export type Version = (typeof VERSIONS)[number];

/**
 * The metric the HPA scales gateway pods on: open device connections of one pod. The same
 * name is the Prometheus gauge the gateway exposes, so an HPA spec works unchanged whether
 * this adapter or prometheus-adapter serves it.
 */
export const GATEWAY_CONNECTIONS_METRIC = 'pushgate_gateway_connections';
export const METRICS = [GATEWAY_CONNECTIONS_METRIC] as const;

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason:
    | 'NotFound'
    | 'BadRequest'
    | 'Unauthorized'
    | 'Forbidden'
    | 'MethodNotAllowed'
    | 'InternalError'
    | 'ServiceUnavailable';
  details?: { name?: string; group?: string; kind?: string };
  code: number;
}

export function status(
  code: number,
  reason: Status['reason'],
  message: string,
  details?: Status['details'],
): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

export type Route =
  | { kind: 'health' }
  | { kind: 'groupList' }
  | { kind: 'group' }
  | { kind: 'resources'; version: Version }
  | { kind: 'podMetric'; version: Version; namespace: string; pod: string | '*'; metric: string }
  | { kind: 'error'; status: Status };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Maps a request path to what it asks for, or to the Status it gets. */
export function route(method: string, pathname: string): Route {
  if (pathname === '/healthz' || pathname === '/readyz' || pathname === '/livez') return { kind: 'health' };
  if (method !== 'GET')
    return {
      kind: 'error',
      status: status(405, 'MethodNotAllowed', `${method} is not supported; this API is read-only`),
    };
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== 'apis')
    return {
      kind: 'error',
      status: status(404, 'NotFound', `the server could not find the requested resource ${pathname}`),
    };
  if (parts.length === 1) return { kind: 'groupList' };
  if (parts[1] !== GROUP)
    return { kind: 'error', status: status(404, 'NotFound', `API group ${parts[1]} is not served here`) };
  if (parts.length === 2) return { kind: 'group' };
  const version = parts[2] as Version;
  if (!VERSIONS.includes(version)) {
    return {
      kind: 'error',
      status: status(
        404,
        'NotFound',
        `${GROUP}/${parts[2]} is not served here; versions: ${VERSIONS.join(', ')}`,
      ),
    };
  }
  if (parts.length === 3) return { kind: 'resources', version };
  // namespaces/{ns}/pods/{name|*}/{metric}
  if (parts.length === 8 && parts[3] === 'namespaces' && parts[5] === 'pods') {
    const [namespace, pod, metric] = [parts[4]!, parts[6]!, parts[7]!];
    if (!DNS_LABEL.test(namespace))
      return { kind: 'error', status: status(400, 'BadRequest', `invalid namespace name '${namespace}'`) };
    if (pod !== '*' && !DNS_SUBDOMAIN.test(pod))
      return { kind: 'error', status: status(400, 'BadRequest', `invalid pod name '${pod}'`) };
    if (!(METRICS as readonly string[]).includes(metric)) {
      return {
        kind: 'error',
        status: status(
          404,
          'NotFound',
          `the server could not find the metric ${metric} for pods; served: ${METRICS.join(', ')}`,
          {
            group: GROUP,
            kind: 'pods',
            name: metric,
          },
        ),
      };
    }
    return { kind: 'podMetric', version, namespace, pod, metric };
  }
  return {
    kind: 'error',
    status: status(
      404,
      'NotFound',
      `the server could not find ${pathname}; served: /apis/${GROUP}/{version}/namespaces/{namespace}/pods/{name|*}/{metric}`,
    ),
  };
}

export function groupDocument() {
  const versions = VERSIONS.map((v) => ({ groupVersion: `${GROUP}/${v}`, version: v }));
  return { kind: 'APIGroup', apiVersion: 'v1', name: GROUP, versions, preferredVersion: versions[0] };
}

export function groupListDocument() {
  const { kind: _kind, apiVersion: _apiVersion, ...group } = groupDocument();
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [group] };
}

export function resourceListDocument(version: Version) {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: `${GROUP}/${version}`,
    resources: METRICS.map((m) => ({
      name: `pods/${m}`,
      singularName: '',
      namespaced: true,
      kind: 'MetricValueList',
      verbs: ['get'],
    })),
  };
}

export interface PodMetricValue {
  namespace: string;
  pod: string;
  value: number;
  /** When the gateway published the value. */
  timestamp: Date;
}

/**
 * A MetricValueList. v1beta2 nests the name and selector under `metric`; v1beta1 has
 * `metricName` and `selector` beside the value. Values are integers (connections), which
 * is a valid resource.Quantity as a plain decimal string.
 */
export function metricValueList(version: Version, metric: string, values: PodMetricValue[]) {
  const items = values.map((v) => {
    const describedObject = { kind: 'Pod', namespace: v.namespace, name: v.pod, apiVersion: '/v1' };
    const common = {
      describedObject,
      timestamp: v.timestamp.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      value: String(Math.round(v.value)),
    };
    // The series carry no labels of their own, so there is no metric selector to echo.
    const selector = null;
    return version === 'v1beta2'
      ? { ...common, metric: { name: metric, selector } }
      : { ...common, metricName: metric, selector };
  });
  return { kind: 'MetricValueList', apiVersion: `${GROUP}/${version}`, metadata: {}, items };
}
