import { campaignPushData, type TagCampaign } from '../../api/index.js';
import type { CampaignPlan, CampaignState } from '../../../common/campaign/plan.js';
import type { CampaignRateDecision } from './rate.js';

/** run / suspend / cancel from the spec: cancel wins (it is final), then suspend. */
export const campaignState = (tc: TagCampaign): CampaignState =>
  tc.spec.cancel ? 'cancel' : tc.spec.suspend ? 'suspend' : 'run';

/** When sending may begin: spec.schedule.startTime, else the campaign's creation. */
export function startAtOf(tc: TagCampaign): number {
  const start = tc.spec.schedule.startTime;
  if (start) return Date.parse(start);
  const created = tc.metadata.creationTimestamp;
  return created ? new Date(created as string).getTime() : 0;
}

/**
 * The plan the dispatchers run (pure: the campaign and its decided rate in, the plan out).
 * The id is metadata.uid, so a campaign deleted and created again under its name starts over.
 */
export function buildCampaignPlan(tc: TagCampaign, rate: CampaignRateDecision): CampaignPlan {
  const { spec, metadata } = tc;
  const m = spec.message;
  return {
    id: metadata.uid!,
    name: `${metadata.namespace}/${metadata.name}`,
    generation: metadata.generation ?? 0,
    app: spec.appId,
    target: {
      allDevices: spec.target.allDevices,
      allOf: spec.target.allOf ?? [],
      anyOf: spec.target.anyOf ?? [],
      noneOf: spec.target.noneOf ?? [],
    },
    push: {
      data: campaignPushData(m),
      ttlSeconds: m.ttlSeconds,
      priority: m.priority,
      ...(m.collapseKey !== undefined ? { collapseKey: m.collapseKey } : {}),
    },
    rate: { perSecond: rate.perSecond, burst: rate.burst },
    startAt: startAtOf(tc),
    ...(spec.schedule.deadline ? { deadline: Date.parse(spec.schedule.deadline) } : {}),
    ...(spec.schedule.quietHours ? { quietHours: { ...spec.schedule.quietHours } } : {}),
    state: campaignState(tc),
    dryRun: spec.dryRun,
  };
}
