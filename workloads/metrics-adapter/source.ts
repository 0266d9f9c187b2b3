import * as k8s from '@kubernetes/client-node';
import { listGateways, type PgRedis, type RedisKeys } from '../../common/redis/index.js';

/** One pod's published connection count. */
export interface PodConnections {
  connections: number;
  /** ms since epoch of the gateway's write. */
  updatedAt: number;
}

/** Where connection counts come from: pod name → latest count, for one namespace. */
export interface ConnectionSource {
  podConnections(namespace: string): Promise<Map<string, PodConnections>>;
}

/**
 * The gateway registry in Redis: every gateway pod refreshes its record (with its live
 * connection count) every few seconds under a short TTL, so a pod that died stops counting
 * within the TTL. If a pod restarted under a new gateway id, its newest record wins.
 */
export function redisConnectionSource(redis: PgRedis, keys: RedisKeys): ConnectionSource {
  return {
    async podConnections(namespace) {
      const out = new Map<string, PodConnections>();
      for (const rec of await listGateways(redis, keys, { namespace })) {
        if (!rec.podName) continue;
        const prev = out.get(rec.podName);
        if (!prev || prev.updatedAt < rec.updatedAt) {
          out.set(rec.podName, { connections: rec.connections, updatedAt: rec.updatedAt });
        }
      }
      return out;
    },
  };
}

export interface PodSummary {
  name: string;
  labels: Record<string, string>;
}

/** The API-server reads the adapter needs (namespaced pods, namespace existence). */
export interface PodLister {
  namespaceExists(namespace: string): Promise<boolean>;
  listPods(namespace: string, labelSelector: string): Promise<PodSummary[]>;
  getPod(namespace: string, name: string): Promise<PodSummary | undefined>;
}

const isNotFound = (err: unknown) => (err as { code?: number }).code === 404;

/**
 * Pods straight from the API server on each request (the label selector is evaluated
 * server-side). The HPA asks once per sync period per HPA, so this is a handful of LISTs
 * per minute per region; an informer cache would be the next step for thousands of HPAs.
 */
export function apiServerPodLister(kc: k8s.KubeConfig, namespaceCacheMs = 10_000): PodLister {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const known = new Map<string, number>();
  const summary = (p: k8s.V1Pod): PodSummary => ({
    name: p.metadata!.name!,
    labels: p.metadata?.labels ?? {},
  });
  return {
    async namespaceExists(namespace) {
      const seen = known.get(namespace);
      if (seen !== undefined && Date.now() - seen < namespaceCacheMs) return true;
      try {
        await core.readNamespace({ name: namespace });
        known.set(namespace, Date.now());
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    },
    async listPods(namespace, labelSelector) {
      const list = await core.listNamespacedPod({ namespace, labelSelector: labelSelector || undefined });
      return list.items.filter((p) => !p.metadata?.deletionTimestamp).map(summary);
    },
    async getPod(namespace, name) {
      try {
        return summary(await core.readNamespacedPod({ namespace, name }));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
  };
}
