import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';

/**
 * A small REST client for the Kubernetes API on node:https with one keep-alive agent.
 *
 * Why not the generated clients of @kubernetes/client-node: we need the same few verbs on
 * every kind (list, watch, server-side apply, apply to /status, delete), with the status
 * code on every error (410 Gone drives the informer), and watches whose lifetime we own.
 * The KubeConfig still does the auth work (certs, tokens, exec plugins).
 */

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
  [key: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [key: string]: unknown;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** An error answered by the API server (`status` is the HTTP code; `reason` from the Status object). */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    /** The API server's own message (the Status object's), without status code or path. */
    readonly detail: string,
    readonly path: string,
  ) {
    super(`${status} ${reason}: ${detail} (${path})`);
  }
}

export const isNotFound = (err: unknown) => err instanceof KubeApiError && err.status === 404;
export const isConflict = (err: unknown) => err instanceof KubeApiError && err.status === 409;
export const isGone = (err: unknown) => err instanceof KubeApiError && err.status === 410;
export const isAlreadyExists = (err: unknown) =>
  isConflict(err) && (err as KubeApiError).reason === 'AlreadyExists';

/** A kind as the API server serves it: where its REST path lives. */
export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export const apiVersionOf = (r: ResourceType) => (r.group ? `${r.group}/${r.version}` : r.version);

/** `/api/v1/namespaces/ns/configmaps/name`, `/apis/apps/v1/deployments`... */
export function resourcePath(
  r: ResourceType,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

export interface WatchHandle {
  /** Ends the stream; `onEnd` is called once, with no error. */
  abort(): void;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** Per-request timeout in ms (not for watches). */
  timeoutMs?: number;
}

/** Counts every request by verb and resource, so the operator can report its own API load (and the bench can see hot loops). */
export type RequestObserver = (verb: string, status: number, resource: string) => void;

/** The resource (plural) a REST path names: `/apis/apps/v1/namespaces/x/deployments/y/status` -> `deployments`. */
export function resourceOfPath(path: string): string {
  const parts = path.split('?')[0]!.split('/').filter(Boolean);
  // Skip 'api/v1' or 'apis/<group>/<version>', then an optional 'namespaces/<ns>'.
  let i = parts[0] === 'api' ? 2 : 3;
  if (parts[i] === 'namespaces' && parts.length > i + 2) i += 2;
  return parts[i] ?? 'unknown';
}

export class KubeClient {
  private agent: http.Agent | undefined;
  private readonly server: URL;
  private observers: RequestObserver[] = [];

  constructor(
    readonly kc: KubeConfig,
    private readonly defaultTimeoutMs = 30_000,
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  onRequest(observer: RequestObserver): void {
    this.observers.push(observer);
  }

  /** The auth headers and TLS options from the kubeconfig; the agent is built once and reused. */
  private async requestOptions(): Promise<https.RequestOptions> {
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    if (!this.agent) {
      const tls = {
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        keepAlive: true,
        maxSockets: 32,
        ...(opts.rejectUnauthorized !== undefined ? { rejectUnauthorized: opts.rejectUnauthorized } : {}),
      };
      this.agent =
        this.server.protocol === 'http:' ? new http.Agent({ keepAlive: true }) : new https.Agent(tls);
    }
    const headers = { ...(opts.headers ?? {}) } as http.OutgoingHttpHeaders;
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    return { agent: this.agent, headers };
  }

  private url(path: string, query?: RequestOptions['query']): URL {
    const u = new URL(this.server.toString().replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  }

  private async open(method: string, path: string, o: RequestOptions): Promise<http.IncomingMessage> {
    const base = await this.requestOptions();
    const url = this.url(path, o.query);
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: http.OutgoingHttpHeaders = {
      ...(base.headers as http.OutgoingHttpHeaders),
      accept: 'application/json',
    };
    if (payload !== undefined) {
      headers['content-type'] = o.contentType ?? 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    const lib = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: base.agent }, resolve);
      req.on('error', reject);
      if (o.timeoutMs !== undefined) {
        req.setTimeout(o.timeoutMs, () =>
          req.destroy(new Error(`${method} ${path}: timed out after ${o.timeoutMs} ms`)),
        );
      }
      req.end(payload);
    });
  }

  private observe(verb: string, status: number, path: string): void {
    const resource = resourceOfPath(path);
    for (const o of this.observers) o(verb, status, resource);
  }

  /** One request; resolves with the parsed body, rejects with KubeApiError on a non-2xx answer. */
  async request<T = unknown>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const verb = method === 'PATCH' && o.contentType === 'application/apply-patch+yaml' ? 'APPLY' : method;
    let res: http.IncomingMessage;
    try {
      res = await this.open(method, path, { timeoutMs: this.defaultTimeoutMs, ...o });
    } catch (err) {
      this.observe(verb, 0, path);
      throw err;
    }
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    this.observe(verb, status, path);
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (status < 200 || status >= 300) {
      const s = (body ?? {}) as { reason?: string; message?: string };
      throw new KubeApiError(
        status,
        s.reason ?? http.STATUS_CODES[status] ?? 'Unknown',
        s.message ?? text.slice(0, 300),
        path,
      );
    }
    return body as T;
  }

  get<T extends KubeObject>(r: ResourceType, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>('GET', resourcePath(r, namespace, name));
  }

  /** Lists every page (limit/continue), so a big list never arrives as one huge response. */
  async list<T extends KubeObject>(
    r: ResourceType,
    namespace?: string,
    query: { labelSelector?: string; fieldSelector?: string } = {},
  ): Promise<KubeList<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const page = await this.request<KubeList<T>>('GET', resourcePath(r, namespace), {
        query: { ...query, limit: 500, continue: cont },
      });
      items.push(...page.items);
      cont = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (cont);
    return { metadata: { resourceVersion }, items };
  }

  /**
   * Server-side apply: the whole desired object, one field manager, `force` so this manager
   * takes back fields someone else changed (we own these objects). `dryRun` asks the API
   * server to validate and admit the object without storing it.
   */
  apply<T extends KubeObject>(
    r: ResourceType,
    obj: KubeObject,
    {
      fieldManager,
      force = true,
      subresource,
      dryRun = false,
    }: { fieldManager: string; force?: boolean; subresource?: string; dryRun?: boolean },
  ): Promise<T> {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`apply ${r.kind}: metadata.name is required`);
    return this.request<T>('PATCH', resourcePath(r, obj.metadata?.namespace, name, subresource), {
      query: { fieldManager, force, dryRun: dryRun ? 'All' : undefined },
      body: { ...obj, apiVersion: apiVersionOf(r), kind: r.kind },
      contentType: 'application/apply-patch+yaml',
    });
  }

  create<T extends KubeObject>(r: ResourceType, obj: KubeObject): Promise<T> {
    return this.request<T>('POST', resourcePath(r, obj.metadata?.namespace), {
      body: { ...obj, apiVersion: apiVersionOf(r), kind: r.kind },
    });
  }

  /** PUT with the object's resourceVersion: optimistic concurrency (a 409 means someone else wrote first). */
  replace<T extends KubeObject>(r: ResourceType, obj: KubeObject): Promise<T> {
    return this.request<T>('PUT', resourcePath(r, obj.metadata?.namespace, obj.metadata?.name), {
      body: { ...obj, apiVersion: apiVersionOf(r), kind: r.kind },
    });
  }

  mergePatch<T extends KubeObject>(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    subresource?: string,
  ): Promise<T> {
    return this.request<T>('PATCH', resourcePath(r, namespace, name, subresource), {
      body: patch,
      contentType: 'application/merge-patch+json',
    });
  }

  async delete(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    propagationPolicy = 'Background',
  ): Promise<void> {
    await this.request('DELETE', resourcePath(r, namespace, name), { body: { propagationPolicy } });
  }

  /** Deletes, treating "already gone" as success (deletes race with the garbage collector and users). */
  async deleteIfExists(r: ResourceType, namespace: string | undefined, name: string): Promise<void> {
    try {
      await this.delete(r, namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Opens a watch stream. `onEvent` gets every decoded event (ERROR events included: the
   * caller decides what a 410 means); `onEnd` is called exactly once, when the stream
   * ends for any reason (server closed it, network error, non-200 answer, or abort()).
   */
  watch(
    r: ResourceType,
    namespace: string | undefined,
    query: { resourceVersion?: string; labelSelector?: string; timeoutSeconds?: number },
    onEvent: (e: WatchEvent) => void,
    onEnd: (err?: Error) => void,
  ): WatchHandle {
    const path = resourcePath(r, namespace);
    let ended = false;
    let res: http.IncomingMessage | undefined;
    let aborted = false;
    const end = (err?: Error) => {
      if (ended) return;
      ended = true;
      res?.destroy();
      onEnd(aborted ? undefined : err);
    };
    this.open('GET', path, { query: { ...query, watch: true, allowWatchBookmarks: true } }).then(
      (response) => {
        res = response;
        this.observe('WATCH', response.statusCode ?? 0, path);
        if (aborted) return end();
        if (response.statusCode !== 200) {
          const chunks: Buffer[] = [];
          response.on('data', (c: Buffer) => chunks.push(c));
          response.on('end', () => {
            let s: { reason?: string; message?: string } = {};
            try {
              s = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              /* not a Status */
            }
            const code = response.statusCode ?? 0;
            end(
              new KubeApiError(code, s.reason ?? http.STATUS_CODES[code] ?? 'Unknown', s.message ?? '', path),
            );
          });
          response.on('error', end);
          return;
        }
        const lines = createInterface({ input: response, crlfDelay: Infinity });
        lines.on('line', (line) => {
          if (ended || !line) return;
          let e: WatchEvent;
          try {
            e = JSON.parse(line) as WatchEvent;
          } catch {
            return end(new Error(`watch ${path}: undecodable event`));
          }
          onEvent(e);
        });
        // readline re-emits the response's errors (ECONNRESET when the API server dies): an
        // 'error' with no listener would crash the process, so every emitter ends the watch.
        lines.on('error', end);
        response.on('error', end);
        response.on('close', () => end());
        lines.on('close', () => end());
      },
      (err: Error) => end(err),
    );
    return {
      abort: () => {
        aborted = true;
        end();
      },
    };
  }

  close(): void {
    this.agent?.destroy();
  }
}

export const objectKey = (o: KubeObject) =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata?.name ?? '');

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
