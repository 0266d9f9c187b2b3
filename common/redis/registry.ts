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

/**
 * Who holds a gateway id: a random instance id per gateway process, kept in the record. A
 * gateway writes its record only while the id is its own (or free), so two processes can never
 * both believe they are one gateway (routing would send one's deliveries to the other).
 */
export interface GatewayIdClaim {
  instance: string;
  /** Overwrite a record held by this (stale) instance. */
  takeOverFrom?: string;
}

export type RegisterResult = { ok: true } | { ok: false; holder: string };

// KEYS: record, index. ARGV: instance, takeOverFrom, ttlMs, updatedAt, id, field/value pairs.
const registerClaimedLua = `
local cur = redis.call('HGET', KEYS[1], 'instance')
if cur and cur ~= '' and cur ~= ARGV[1] and cur ~= ARGV[2] then return cur end
redis.call('HSET', KEYS[1], 'instance', ARGV[1], unpack(ARGV, 6))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[4]) - 10 * tonumber(ARGV[3]))
return ''
`;

// KEYS: record, index. ARGV: instance, id.
const unregisterClaimedLua = `
local cur = redis.call('HGET', KEYS[1], 'instance')
if cur and cur ~= '' and cur ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
`;

function recordFields(rec: GatewayRecord): Record<string, string> {
  return {
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
  };
}

/**
 * Writes (refreshes) a gateway's record. With `claim`, only while the id is free or held by
 * `claim.instance` (or by `claim.takeOverFrom`); otherwise nothing is written and the holder's
 * instance is returned. Without `claim` (tests seeding records) the write is unconditional.
 */
export async function registerGateway(
  redis: PgRedis,
  keys: RedisKeys,
  rec: GatewayRecord,
  ttlMs = GATEWAY_RECORD_TTL_MS,
  claim?: GatewayIdClaim,
): Promise<RegisterResult> {
  const key = keys.gateway(rec.id);
  if (claim) {
    const holder = (await redis.eval(
      registerClaimedLua,
      2,
      key,
      keys.gatewayIndex(),
      claim.instance,
      claim.takeOverFrom ?? '',
      ttlMs,
      rec.updatedAt,
      rec.id,
      ...Object.entries(recordFields(rec)).flat(),
    )) as string;
    return holder ? { ok: false, holder } : { ok: true };
  }
  const p = redis.multi();
  p.hset(key, recordFields(rec));
  p.pexpire(key, ttlMs);
  p.zadd(keys.gatewayIndex(), rec.updatedAt, rec.id);
  p.zremrangebyscore(keys.gatewayIndex(), '-inf', rec.updatedAt - 10 * ttlMs);
  await p.exec();
  return { ok: true };
}

/** Remove a gateway's record at once (clean shutdown); with `instance`, only while it holds the id. */
export async function unregisterGateway(redis: PgRedis, keys: RedisKeys, id: string, instance?: string) {
  if (instance !== undefined) {
    await redis.eval(unregisterClaimedLua, 2, keys.gateway(id), keys.gatewayIndex(), instance, id);
    return;
  }
  await redis.multi().del(keys.gateway(id)).zrem(keys.gatewayIndex(), id).exec();
}

export class GatewayIdInUseError extends Error {
  override name = 'GatewayIdInUseError';
  constructor(
    readonly id: string,
    readonly holder: string,
  ) {
    super(
      `gateway id '${id}' is held by another live gateway (instance ${holder}, which keeps refreshing its ` +
        `registration); give this gateway another --gateway-id, or stop the other one`,
    );
  }
}

/**
 * Takes a gateway id at startup. Free (or a record without holder): taken at once. Held by
 * another instance: watch the record for one refresh period of any gateway (they refresh at
 * least every GATEWAY_RECORD_TTL_MS / 3). A live holder refreshes it meanwhile, and this
 * gateway refuses to start (GatewayIdInUseError). A dead one (kill -9, then a restart of the
 * same pod) does not, and its id is taken over. Judged by change, not by the holder's clock, so
 * clock skew between hosts cannot fool it.
 */
export async function claimGatewayId(
  redis: PgRedis,
  keys: RedisKeys,
  rec: () => GatewayRecord,
  instance: string,
  opts: { observeMs?: number; pollMs?: number } = {},
): Promise<void> {
  const observeMs = opts.observeMs ?? GATEWAY_RECORD_TTL_MS / 3 + 1000;
  const first = await registerGateway(redis, keys, rec(), GATEWAY_RECORD_TTL_MS, { instance });
  if (first.ok) return;
  const key = keys.gateway(rec().id);
  const holder = first.holder;
  const seen = await redis.hget(key, 'updatedAt');
  const deadline = Date.now() + observeMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 200));
    const [now, updatedAt] = await redis.hmget(key, 'instance', 'updatedAt');
    if (now == null) {
      // Expired or unregistered meanwhile: free.
      const again = await registerGateway(redis, keys, rec(), GATEWAY_RECORD_TTL_MS, { instance });
      if (again.ok) return;
      throw new GatewayIdInUseError(rec().id, again.holder);
    }
    if (now !== holder || updatedAt !== seen) throw new GatewayIdInUseError(rec().id, now);
  }
  const taken = await registerGateway(redis, keys, rec(), GATEWAY_RECORD_TTL_MS, {
    instance,
    takeOverFrom: holder,
  });
  if (!taken.ok) throw new GatewayIdInUseError(rec().id, taken.holder);
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

/** One gateway's record while it lives (registered within the TTL); undefined otherwise. */
export async function readGateway(
  redis: PgRedis,
  keys: RedisKeys,
  id: string,
): Promise<GatewayRecord | undefined> {
  return parseRecord(await redis.hgetall(keys.gateway(id)));
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

/**
 * The health check's write: sets a gateway's witness to `next` and returns what was there
 * before ('' when missing). The witness lives ten times the check interval, so a gateway that
 * stops checking (exit, freeze) leaves nothing behind for long.
 */
export async function swapWitness(
  redis: Pick<PgRedis, 'set'>,
  keys: RedisKeys,
  gatewayId: string,
  next: string,
  ttlMs: number,
): Promise<string> {
  const before = await redis.set(keys.gatewayWitness(gatewayId), next, 'PX', ttlMs, 'GET');
  return before ?? '';
}
