import { createHash } from 'node:crypto';
import { z } from 'zod';
import { appId, collapseKey, tag } from '../protocol/ids.js';
import type { PgRedis } from '../redis/connection.js';
import type { RedisKeys } from '../redis/keys.js';

/**
 * The contract between the TagCampaign controller (operator) and the campaign dispatchers, in
 * the PushGateway's Redis (the same pattern as RateLimitPolicy: the operator publishes, the data
 * path reads Redis, nothing on the data path talks to the Kubernetes API).
 *
 *   controller  --publishCampaign-->  keys.campaignPlan(id) + keys.campaignIndex()
 *   dispatchers --read the index and plans, send, count-->  keys.campaignProgress(id)
 *   gateways    --count deliveries and acks of campaign messages-->  keys.campaignProgress(id)
 *   controller  <--readCampaignProgress-- folds the counters into .status (a few times a minute)
 *   controller  --removeCampaign-->  on delete: the plan, the index entry, the progress and
 *                                    every key the dispatcher made for it
 *
 * `id` is the TagCampaign's metadata.uid: a campaign deleted and created again under the same
 * name is a new campaign with fresh state.
 */

export const CAMPAIGN_STATES = ['run', 'suspend', 'cancel'] as const;
export type CampaignState = (typeof CAMPAIGN_STATES)[number];

export const campaignPlanSchema = z.object({
  /** metadata.uid of the TagCampaign. */
  id: z.string().min(1).max(64),
  /** namespace/name, for logs and events. */
  name: z.string().min(1).max(320),
  /** metadata.generation the plan was published from. */
  generation: z.int().nonnegative(),
  app: appId,
  target: z.object({
    allDevices: z.boolean(),
    allOf: z.array(tag).default([]),
    anyOf: z.array(tag).default([]),
    noneOf: z.array(tag).default([]),
  }),
  push: z.object({
    /** The push frame's `data` (campaignPushData of spec.message). */
    data: z.unknown(),
    ttlSeconds: z.int().nonnegative(),
    priority: z.enum(['normal', 'high']),
    collapseKey: collapseKey.optional(),
  }),
  /** The campaign's own rate, already capped by the RateLimitPolicy's campaigns.maxMessagesPerSecond. */
  rate: z.object({ perSecond: z.number().positive(), burst: z.int().positive() }),
  /** ms since the epoch: nothing is sent before. */
  startAt: z.int().nonnegative(),
  /** ms since the epoch: what is not sent by then is counted expired. */
  deadline: z.int().nonnegative().optional(),
  quietHours: z.object({ timeZone: z.string(), start: z.string(), end: z.string() }).optional(),
  /** run; suspend (keep the cursor, send nothing); cancel (stop for good, counts final). */
  state: z.enum(CAMPAIGN_STATES),
  dryRun: z.boolean(),
});
export type CampaignPlan = z.output<typeof campaignPlanSchema>;

/** The counters of one campaign as Redis holds them (HINCRBY by dispatchers and gateways). */
export const CAMPAIGN_COUNTERS = [
  'targeted',
  'sent',
  'delivered',
  'acked',
  'deferred',
  'expired',
  'failed',
] as const;
export type CampaignCounter = (typeof CAMPAIGN_COUNTERS)[number];

export interface CampaignProgress {
  counters: Record<CampaignCounter, number>;
  /** ms: the audience snapshot finished (targeted is final from then on). */
  snapshotAt?: number;
  /** ms: the first message was sent. */
  startedAt?: number;
  /** ms: every target is sent, expired or failed (or the campaign was cancelled). */
  finishedAt?: number;
  /** Messages/s over the last few seconds, as the dispatchers measured it. */
  ratePerSecond?: number;
  /** Why sending is slower than the plan's rate right now, when it is. */
  throttled?: 'CampaignRate' | 'AppLimit' | 'QuietHours' | 'DeviceCap';
  /**
   * Set by a dispatcher that stopped the campaign because Redis lost part of its state (a
   * cursor or the progress of a campaign that had already sent): it does not start again from
   * zero silently. The campaign sends nothing more; a new campaign is the way on.
   */
  error?: string;
}

/** Prefix of a campaign's message id: API message ids (base36 + hex) never contain a dot. */
const CAMPAIGN_MESSAGE_PREFIX = 'c.';

/**
 * The message id of a campaign: one per campaign, the same for every device and every replay,
 * so a resend after a crash is a duplicate to the store (idempotent by id) and to the device
 * (it dedupes by id). Gateways attribute deliveries and acks to the campaign by it
 * (campaignOfMessageId). Ids longer than fit a message id are hashed (not attributed then;
 * Kubernetes uids are 36 characters and always fit).
 */
export function campaignMessageId(id: string): string {
  return id.length <= 62
    ? `${CAMPAIGN_MESSAGE_PREFIX}${id}`
    : `h.${createHash('sha256').update(id).digest('base64url').slice(0, 40)}`;
}

/** The campaign a message id belongs to (undefined for push API messages). */
export function campaignOfMessageId(messageId: string): string | undefined {
  return messageId.startsWith(CAMPAIGN_MESSAGE_PREFIX)
    ? messageId.slice(CAMPAIGN_MESSAGE_PREFIX.length)
    : undefined;
}

/** Publishes (or replaces) a campaign's plan; dispatchers pick it up within about a second. */
export async function publishCampaign(redis: PgRedis, keys: RedisKeys, plan: CampaignPlan): Promise<void> {
  const valid = campaignPlanSchema.parse(plan);
  await redis.set(keys.campaignPlan(valid.id), JSON.stringify(valid));
  await redis.sadd(keys.campaignIndex(), valid.id);
}

/** Every published plan (unparseable ones are skipped and returned by id in `invalid`). */
export async function readCampaignPlans(
  redis: PgRedis,
  keys: RedisKeys,
): Promise<{ plans: CampaignPlan[]; invalid: string[] }> {
  const ids = await redis.smembers(keys.campaignIndex());
  const plans: CampaignPlan[] = [];
  const invalid: string[] = [];
  for (const id of ids) {
    const raw = await redis.get(keys.campaignPlan(id));
    const parsed = raw ? campaignPlanSchema.safeParse(JSON.parse(raw)) : undefined;
    if (parsed?.success) plans.push(parsed.data);
    else invalid.push(id);
  }
  return { plans, invalid };
}

/**
 * A gateway's aggregated count of a campaign's deliveries (devices that read its message, each
 * once: a receipt, or the ack of a device without receipts) or acks, while the campaign's
 * progress exists (a deleted campaign's progress is not created again without TTL).
 */
export async function countCampaignDelivery(
  redis: PgRedis,
  keys: RedisKeys,
  id: string,
  counter: 'delivered' | 'acked',
  n: number,
): Promise<void> {
  await redis.pgIncrIfExists(keys.campaignProgress(id), counter, n);
}

/** The progress of a campaign (all zero before anything happened). */
export async function readCampaignProgress(
  redis: PgRedis,
  keys: RedisKeys,
  id: string,
): Promise<CampaignProgress> {
  const h = await redis.hgetall(keys.campaignProgress(id));
  const n = (k: string) => (h[k] === undefined ? undefined : Number(h[k]));
  const counters = Object.fromEntries(CAMPAIGN_COUNTERS.map((c) => [c, n(c) ?? 0])) as Record<
    CampaignCounter,
    number
  >;
  return {
    counters,
    snapshotAt: n('snapshotAt'),
    startedAt: n('startedAt'),
    finishedAt: n('finishedAt'),
    ratePerSecond: n('ratePerSecond'),
    throttled: (h.throttled || undefined) as CampaignProgress['throttled'],
    error: h.error || undefined,
  };
}

/**
 * Removes a campaign (the TagCampaign was deleted): the index entry first, so no dispatcher
 * takes it up again, then the plan and the progress. Every other key a dispatcher made for the
 * campaign (cursor, audience snapshot, rate cell) is the dispatcher's to collect once the id
 * has left the index.
 */
export async function removeCampaign(redis: PgRedis, keys: RedisKeys, id: string): Promise<void> {
  await redis.srem(keys.campaignIndex(), id);
  await redis.del(keys.campaignPlan(id), keys.campaignProgress(id)); // one slot: {cmp:<id>}
}
