import { campaignRateLimitSchema, type RateLimitPolicy, type TagCampaignSpec } from '../../api/index.js';
import { EVERY_APP, planPolicies } from '../ratelimitpolicy/plan.js';

/** The campaign limits when no RateLimitPolicy covers the app: the policy's own documented defaults. */
export const BUILT_IN_CAMPAIGN_LIMITS = campaignRateLimitSchema.parse({});

/** The rate a campaign runs at, and why (the status says so). */
export interface CampaignRateDecision {
  perSecond: number;
  burst: number;
  /** spec.rate.messagesPerSecond, when set. */
  requested?: number;
  /** The highest rate allowed: the covering policy's campaigns.maxMessagesPerSecond. */
  max: number;
  /** namespace/name of the RateLimitPolicy that covers the app on the gateway; undefined = none. */
  policy?: string;
  /** The request (or the default) was above the maximum and was lowered to it. */
  capped: boolean;
  /** One sentence for the RateCapped condition. */
  message: string;
}

/**
 * Decides a campaign's rate from its spec and the RateLimitPolicies of its namespace (pure).
 * The policy that covers the app on the campaign's gateway is the one planPolicies gives the
 * app (the earliest claim; an app named explicitly before the catch-all `*` policy), the same
 * decision the gateways enforce. rate = spec.rate or the policy's campaigns default, capped at
 * its campaigns maximum. An app no policy covers gets the policy defaults (1000/s, at most
 * 5000/s), never an unlimited rate.
 */
export function decideCampaignRate(
  spec: TagCampaignSpec,
  namespace: string,
  policies: readonly RateLimitPolicy[],
  gatewayExists: (namespace: string, name: string) => boolean,
): CampaignRateDecision {
  const gatewayKey = `${namespace}/${spec.gatewayRef.name}`;
  const decisions = planPolicies([...policies], gatewayExists).filter((d) => d.gatewayKey === gatewayKey);
  const holder =
    decisions.find((d) => d.published[spec.appId] !== undefined) ??
    decisions.find((d) => d.published[EVERY_APP] !== undefined);
  const policy = holder && policies.find((p) => `${p.metadata.namespace}/${p.metadata.name}` === holder.key);
  const limits = policy?.spec.campaigns ?? BUILT_IN_CAMPAIGN_LIMITS;
  const requested = spec.rate?.messagesPerSecond;
  const wanted = requested ?? limits.defaultMessagesPerSecond;
  const perSecond = Math.min(wanted, limits.maxMessagesPerSecond);
  const capped = wanted > perSecond;
  const burst = Math.max(1, Math.min(spec.rate?.burst ?? perSecond, limits.maxMessagesPerSecond));
  const by = policy
    ? `RateLimitPolicy ${holder!.key}`
    : `the built-in campaign limits (no RateLimitPolicy covers app ${spec.appId} on PushGateway ${gatewayKey})`;
  const asked = requested !== undefined ? `spec.rate asks ${requested}/s` : `the default is ${wanted}/s`;
  const message = capped
    ? `${asked}; ${by} allows at most ${limits.maxMessagesPerSecond}/s: running at ${perSecond}/s`
    : `${asked}, within ${by} (at most ${limits.maxMessagesPerSecond}/s): running at ${perSecond}/s`;
  return {
    perSecond,
    burst,
    ...(requested !== undefined ? { requested } : {}),
    max: limits.maxMessagesPerSecond,
    ...(policy ? { policy: holder!.key } : {}),
    capped,
    message,
  };
}
