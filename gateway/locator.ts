import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { PgRedis } from '../common/redis/connection.js';
import type { RedisKeys } from '../common/redis/keys.js';
import {
  GATEWAY_RECORD_TTL_MS,
  listGateways,
  probeStats,
  type GatewayRecord,
  type ProbeStats,
} from '../common/redis/registry.js';
import { appId, deviceId, regionName } from '../common/protocol/ids.js';

/**
 * The locator hands a device several gateway endpoints, best first (vivo's traffic scheduling):
 *   1. nearest: the device's region first, then other regions;
 *   2. healthy: a recent registration, ready, not draining, below its connection limit, and a
 *      probe success rate of at least `minSuccessRate` (a gateway never probed counts as healthy);
 *      gateways failing probes come after the healthy ones of every region, not dropped, so a
 *      device always gets an answer;
 *   3. least loaded: connections / maxConnections in 10% bands;
 *   4. within a band, rendezvous hashing on the device id, so equal gateways share devices and
 *      one device keeps asking for the same order.
 */
export interface LocateRequest {
  device: string;
  region?: string;
  now: number;
  limit: number;
  staleMs?: number;
  minSuccessRate?: number;
}

export interface RankedGateway {
  record: GatewayRecord;
  healthy: boolean;
  load: number;
}

function rendezvous(device: string, id: string): number {
  return createHash('sha1').update(device).update('\0').update(id).digest().readUInt32BE(0);
}

export function rankGateways(
  records: GatewayRecord[],
  probes: ReadonlyMap<string, ProbeStats>,
  req: LocateRequest,
): RankedGateway[] {
  const staleMs = req.staleMs ?? GATEWAY_RECORD_TTL_MS;
  const minRate = req.minSuccessRate ?? 0.9;
  const usable = records.filter(
    (r) =>
      r.ready &&
      !r.draining &&
      req.now - r.updatedAt <= staleMs &&
      r.connections < r.maxConnections &&
      r.endpoint,
  );
  const ranked = usable.map((record) => {
    const rate = probes.get(record.id)?.successRate;
    return {
      record,
      healthy: rate === undefined || rate >= minRate,
      load: record.maxConnections > 0 ? record.connections / record.maxConnections : 1,
      sameRegion: req.region !== undefined && record.region === req.region,
      hash: rendezvous(req.device, record.id),
    };
  });
  ranked.sort(
    (a, b) =>
      Number(b.healthy) - Number(a.healthy) ||
      Number(b.sameRegion) - Number(a.sameRegion) ||
      Math.floor(a.load * 10) - Math.floor(b.load * 10) ||
      b.hash - a.hash,
  );
  return ranked.slice(0, req.limit).map(({ record, healthy, load }) => ({ record, healthy, load }));
}

const locateQuery = z.object({
  app: appId,
  device: deviceId,
  region: regionName,
  limit: z.coerce.number().int().min(1).max(10).default(3),
});

/**
 * GET /v1/locate?app=&device=&region=[&limit=] -> { endpoints: [{url, gateway, region, zone}], ttl }
 * Served by every gateway and by `pushgate locator`.
 *
 * The answer does not depend on whether the app exists: the route is unauthenticated, and a
 * 404 for unknown apps next to a 200 for known ones let anyone enumerate app ids (issue 13).
 * A device of an unknown app learns it where it must show a credential anyway: its hello is
 * closed with 4001.
 */
export function registerLocateRoute(app: FastifyInstance, redis: PgRedis, keys: RedisKeys) {
  app.get('/v1/locate', async (req, reply) => {
    const q = locateQuery.safeParse(req.query);
    if (!q.success) {
      const issue = q.error.issues[0];
      return reply
        .code(400)
        .send({ error: 'bad_request', message: `${issue?.path.join('.') || 'query'}: ${issue?.message}` });
    }
    const records = await listGateways(redis, keys);
    const probes = await probeStats(
      redis,
      keys,
      records.map((r) => r.id),
    );
    const ranked = rankGateways(records, probes, {
      device: q.data.device,
      region: q.data.region,
      now: Date.now(),
      limit: q.data.limit,
    });
    if (ranked.length === 0)
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({ error: 'no_gateway', message: 'no healthy gateway' });
    return {
      endpoints: ranked.map((r) => ({
        url: r.record.endpoint,
        gateway: r.record.id,
        region: r.record.region,
        zone: r.record.zone,
      })),
      ttl: 300,
    };
  });
}
