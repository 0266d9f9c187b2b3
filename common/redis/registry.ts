import type { PgRedis } from './connection.js';
import type { RedisKeys } from './keys.js';

/**
 * The gateway registry: every gateway pod writes its record every few seconds with a short
 * TTL. Readers: the locator (ranking), the metrics adapter (per-pod connection counts for the
 * HPA), the operator (status). The prober writes probe results beside it.
 */
export interface GatewayRecord {
  id: string;
  podName: string;
  namespace: string;
  region: string;
  zone: string;
  /** WebSocket URL devices connect to (ws:// or wss://, including the path). */
  endpoint: string;
  connections: number;
  maxConnections: number;
  ready: boolean;
  draining: boolean;
  /** ms since epoch of this write. */
  updatedAt: number;
}

/** How long a registration lives without a refresh. Gateways refresh every ttl/3. */
export const GATEWAY_RECORD_TTL_MS = 15_000;
const PROBE_WINDOW = 50;

export async function registerGateway(
  redis: PgRedis,
  keys: RedisKeys,
  rec: GatewayRecord,
  ttlMs = GATEWAY_RECORD_TTL_MS,
) {
  const key = keys.gateway(rec.id);
  const p = redis.multi();
  p.hset(key, {
    id: rec.id,
    podName: rec.podName,
    namespace: rec.namespace,
    region: rec.region,
    zone: rec.zone,
    endpoint: rec.endpoint,
    connections: String(rec.connections),
    maxConnections: String(rec.maxConnections),
    ready: rec.ready ? '1' : '0',
    draining: rec.draining ? '1' : '0',
    updatedAt: String(rec.updatedAt),
  });
  p.pexpire(key, ttlMs);
  p.zadd(keys.gatewayIndex(), rec.updatedAt, rec.id);
  p.zremrangebyscore(keys.gatewayIndex(), '-inf', rec.updatedAt - 10 * ttlMs);
  await p.exec();
}

/** Remove a gateway's record at once (clean shutdown). */
export async function unregisterGateway(redis: PgRedis, keys: RedisKeys, id: string) {
  await redis.multi().del(keys.gateway(id)).zrem(keys.gatewayIndex(), id).exec();
}

function parseRecord(h: Record<string, string>): GatewayRecord | undefined {
  if (!h.id) return undefined;
  return {
    id: h.id,
    podName: h.podName ?? '',
    namespace: h.namespace ?? '',
    region: h.region ?? '',
    zone: h.zone ?? '',
    endpoint: h.endpoint ?? '',
    connections: Number(h.connections ?? 0),
    maxConnections: Number(h.maxConnections ?? 0),
    ready: h.ready === '1',
    draining: h.draining === '1',
    updatedAt: Number(h.updatedAt ?? 0),
  };
}

/**
 * Live gateway records (registered within the TTL), optionally only those of one namespace.
 * Sorted by id.
 */
export async function listGateways(
  redis: PgRedis,
  keys: RedisKeys,
  filter: { namespace?: string; now?: number; ttlMs?: number } = {},
): Promise<GatewayRecord[]> {
  const now = filter.now ?? Date.now();
  const ids = await redis.zrangebyscore(
    keys.gatewayIndex(),
    now - (filter.ttlMs ?? GATEWAY_RECORD_TTL_MS),
    '+inf',
  );
  if (ids.length === 0) return [];
  const p = redis.pipeline();
  for (const id of ids) p.hgetall(keys.gateway(id));
  const rows = (await p.exec()) ?? [];
  const out: GatewayRecord[] = [];
  for (const [err, h] of rows) {
    if (err) continue;
    const rec = parseRecord(h as Record<string, string>);
    if (rec && (!filter.namespace || rec.namespace === filter.namespace)) out.push(rec);
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

export interface ProbeStats {
  /** Results in the window (up to 50 most recent). */
  samples: number;
  /** Fraction of successful probes, 0..1; undefined when never probed. */
  successRate?: number;
  /** Mean latency of successful probes (ms). */
  meanLatencyMs?: number;
}

/** The prober records one probe of a gateway (public-path connect + push round trip). */
export async function recordProbeResult(
  redis: PgRedis,
  keys: RedisKeys,
  gatewayId: string,
  ok: boolean,
  latencyMs: number,
) {
  const key = keys.gatewayProbes(gatewayId);
  await redis
    .multi()
    .lpush(key, `${ok ? 1 : 0}:${Math.max(0, Math.round(latencyMs))}`)
    .ltrim(key, 0, PROBE_WINDOW - 1)
    .pexpire(key, 10 * 60_000)
    .exec();
}

export function summarizeProbes(entries: string[]): ProbeStats {
  let ok = 0;
  let latency = 0;
  for (const e of entries) {
    const [flag, ms] = e.split(':');
    if (flag === '1') {
      ok++;
      latency += Number(ms) || 0;
    }
  }
  return {
    samples: entries.length,
    successRate: entries.length ? ok / entries.length : undefined,
    meanLatencyMs: ok ? latency / ok : undefined,
  };
}

export async function probeStats(
  redis: PgRedis,
  keys: RedisKeys,
  gatewayIds: string[],
): Promise<Map<string, ProbeStats>> {
  const p = redis.pipeline();
  for (const id of gatewayIds) p.lrange(keys.gatewayProbes(id), 0, PROBE_WINDOW - 1);
  const rows = (await p.exec()) ?? [];
  const out = new Map<string, ProbeStats>();
  gatewayIds.forEach((id, i) => out.set(id, summarizeProbes((rows[i]?.[1] as string[] | undefined) ?? [])));
  return out;
}
