import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../common/logger.js';
import {
  groupDocument,
  groupListDocument,
  metricValueList,
  resourceListDocument,
  route,
  status,
  type PodMetricValue,
} from './api.js';
import { authenticate, type CallerTls, type RequestHeaderConfig } from './auth.js';
import { formatSelector, matches, parseSelector, SelectorError } from './selector.js';
import type { ConnectionSource, PodLister, PodSummary } from './source.js';

export interface AdapterDeps {
  source: ConnectionSource;
  pods: PodLister;
  /** Current request-header settings (reloaded when the ConfigMap changes). */
  requestHeader: () => RequestHeaderConfig;
  log: Logger;
}

export interface AdapterResponse {
  code: number;
  body: unknown;
}

/**
 * Answers one request. Everything the adapter decides is here, without sockets, so unit
 * tests drive it with fakes and the integration test drives the same code through the
 * aggregator.
 */
export async function handleRequest(
  deps: AdapterDeps,
  method: string,
  url: URL,
  tls: CallerTls,
  headers: Record<string, string | string[] | undefined>,
): Promise<AdapterResponse> {
  const r = route(method, url.pathname);
  if (r.kind === 'health') return { code: 200, body: 'ok' };
  const auth = authenticate(tls, headers, deps.requestHeader());
  if (!auth.ok) return { code: auth.status.code, body: auth.status };
  switch (r.kind) {
    case 'error':
      return { code: r.status.code, body: r.status };
    case 'groupList':
      return { code: 200, body: groupListDocument() };
    case 'group':
      return { code: 200, body: groupDocument() };
    case 'resources':
      return { code: 200, body: resourceListDocument(r.version) };
    case 'podMetric':
      break;
  }

  let podSelector: string;
  let metricRequirements;
  try {
    podSelector = formatSelector(parseSelector(url.searchParams.get('labelSelector') ?? ''));
    metricRequirements = parseSelector(url.searchParams.get('metricLabelSelector') ?? '');
  } catch (err) {
    if (err instanceof SelectorError) {
      const s = status(400, 'BadRequest', `invalid label selector: ${err.message}`);
      return { code: 400, body: s };
    }
    throw err;
  }

  try {
    if (!(await deps.pods.namespaceExists(r.namespace))) {
      const s = status(404, 'NotFound', `namespaces "${r.namespace}" not found`, {
        name: r.namespace,
        kind: 'namespaces',
      });
      return { code: 404, body: s };
    }
    let pods: PodSummary[];
    if (r.pod === '*') {
      pods = await deps.pods.listPods(r.namespace, podSelector);
    } else {
      const pod = await deps.pods.getPod(r.namespace, r.pod);
      pods = pod && matches(parseSelector(podSelector), pod.labels) ? [pod] : [];
    }
    const counts = await deps.source.podConnections(r.namespace);
    // Our series carry no labels, so a metric selector either selects all of them or none.
    const values: PodMetricValue[] = matches(metricRequirements, {})
      ? pods.flatMap((p) => {
          const c = counts.get(p.name);
          return c
            ? [
                {
                  namespace: r.namespace,
                  pod: p.name,
                  value: c.connections,
                  timestamp: new Date(c.updatedAt),
                },
              ]
            : [];
        })
      : [];
    if (r.pod !== '*' && values.length === 0) {
      const s = status(
        404,
        'NotFound',
        `the server could not find the metric ${r.metric} for pods ${r.pod}`,
        {
          name: r.pod,
          kind: 'pods',
        },
      );
      return { code: 404, body: s };
    }
    deps.log.debug(
      { namespace: r.namespace, selector: podSelector, pods: pods.length, values: values.length },
      'metric read',
    );
    return { code: 200, body: metricValueList(r.version, r.metric, values) };
  } catch (err) {
    deps.log.warn({ err, path: url.pathname }, 'metric read failed');
    const s = status(503, 'ServiceUnavailable', `could not read ${r.metric}: ${(err as Error).message}`);
    return { code: 503, body: s };
  }
}

export interface ServingCert {
  cert: string;
  key: string;
}

/**
 * The HTTPS server the aggregator calls. Client certificates are requested, verified against
 * the request-header client CA by TLS, but not required at the TLS layer: a caller without
 * one gets a 401 Status (readable) instead of a handshake failure (opaque).
 */
export function createAdapterServer(deps: AdapterDeps, serving: ServingCert): https.Server {
  const server = https.createServer(
    { ...serving, ca: deps.requestHeader().clientCA, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      const tls: CallerTls = {
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
        commonName: peer && typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined,
      };
      const url = new URL(req.url ?? '/', 'https://adapter');
      handleRequest(deps, req.method ?? 'GET', url, tls, req.headers).then(
        ({ code, body }) => {
          // The aggregator polls /openapi/v2 and /openapi/v3, which this API does not publish: debug, not noise.
          if (code >= 400) {
            const level = code === 404 && url.pathname.startsWith('/openapi/') ? 'debug' : 'info';
            deps.log[level](
              { code, path: url.pathname, reason: (body as { message?: string }).message },
              'refused',
            );
          }
          const text = typeof body === 'string' ? body : JSON.stringify(body);
          res.writeHead(code, {
            'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
          });
          res.end(text);
        },
        (err: unknown) => {
          deps.log.error({ err }, 'request failed');
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify(status(500, 'InternalError', 'internal error')));
        },
      );
    },
  );
  return server;
}

/** Installs a new client CA on a running server (the ConfigMap changed: CA rotation). */
export function updateClientCA(server: https.Server, serving: ServingCert, clientCA: string): void {
  server.setSecureContext({ ...serving, ca: clientCA });
}
