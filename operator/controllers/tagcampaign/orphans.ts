import { campaignPlanSchema, removeCampaign } from '../../../common/campaign/plan.js';
import type { Logger } from '../../../common/logger.js';
import type { PgRedis } from '../../../common/redis/connection.js';
import type { RedisKeys } from '../../../common/redis/keys.js';
import type { KubeObject } from '../../runtime/kube.js';

/**
 * Which published campaigns in one PushGateway's Redis have no TagCampaign any more (pure).
 *
 * The finalizer removes a deleted campaign's state, but it gives up after
 * --campaign-cleanup-timeout-seconds when the Redis is unreachable, and its retry lives only in
 * the operator's memory: an operator restart before the Redis came back would leave the plan
 * published, and the dispatchers would go on sending a campaign nobody can see. This is the
 * backstop: the published index is compared with the TagCampaigns the operator sees.
 *
 * Only plans of the gateway's own namespace are judged (an operator that watches one namespace,
 * or a Redis shared with PushGateways elsewhere, must not remove what it cannot see), and a plan
 * whose name cannot be read is left alone (it may be another writer's).
 */
export function orphanedCampaigns(
  gatewayNamespace: string,
  published: { id: string; plan: unknown }[],
  liveUids: ReadonlySet<string>,
): string[] {
  const out: string[] = [];
  for (const { id, plan } of published) {
    if (liveUids.has(id)) continue;
    const parsed = campaignPlanSchema.safeParse(plan);
    if (!parsed.success) continue;
    const ns = parsed.data.name.split('/')[0];
    if (ns !== gatewayNamespace || parsed.data.id !== id) continue;
    out.push(id);
  }
  return out;
}

/**
 * Reads one gateway's published campaigns and removes those without a TagCampaign. The live
 * campaigns are asked for after Redis was read: a campaign is in the operator's cache before
 * its plan is published, so a plan read from Redis whose campaign is not in the cache a moment
 * later has none (a snapshot taken before the reads would call a campaign created meanwhile an
 * orphan).
 */
export async function sweepOrphanedCampaigns(
  redis: PgRedis,
  keys: RedisKeys,
  gateway: KubeObject,
  liveUids: () => ReadonlySet<string>,
  log: Logger,
): Promise<string[]> {
  const ids = await redis.smembers(keys.campaignIndex());
  const candidates = ids.filter((id) => !liveUids().has(id));
  if (!candidates.length) return [];
  const published: { id: string; plan: unknown }[] = [];
  for (const id of candidates) {
    const raw = await redis.get(keys.campaignPlan(id));
    let plan: unknown;
    try {
      plan = raw ? JSON.parse(raw) : undefined;
    } catch {
      plan = undefined;
    }
    published.push({ id, plan });
  }
  const orphans = orphanedCampaigns(gateway.metadata!.namespace!, published, liveUids());
  for (const id of orphans) {
    await removeCampaign(redis, keys, id);
    log.warn(
      { gateway: `${gateway.metadata?.namespace}/${gateway.metadata?.name}`, id },
      'removed a published campaign that has no TagCampaign (its deletion could not clean up): the dispatchers stop sending it',
    );
  }
  return orphans;
}
