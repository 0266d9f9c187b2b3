import type { RateLimitPolicy } from '../../api/index.js';
import type { AppLimitConfig } from '../../../common/ratelimit/app-limit.js';

/** The app key a policy without appIds publishes: every app on the gateway without a policy of its own. */
export const EVERY_APP = '*';

export interface PolicyDecision {
  /** namespace/name of the policy. */
  key: string;
  /** namespace/name of the PushGateway it names. */
  gatewayKey: string;
  gatewayFound: boolean;
  /** The apps it claims (EVERY_APP for an empty appIds). */
  apps: string[];
  /** Apps it claims that an earlier policy of the same gateway already holds, with that policy. */
  conflicts: { app: string; heldBy: string }[];
  /** The limit it publishes for each app it holds (conflicting ones excluded). */
  published: Record<string, AppLimitConfig>;
}

const created = (p: RateLimitPolicy) => {
  const t = p.metadata.creationTimestamp;
  return t ? new Date(t as string).getTime() : 0;
};
const keyOf = (p: RateLimitPolicy) => `${p.metadata.namespace}/${p.metadata.name}`;

/**
 * The limit a policy publishes for one app: the configured rate, the daily caps and the adaptive
 * throttling parameters. The throttled rate is not published here: the gateways measure and
 * step it themselves (common/ratelimit/adaptive.ts, keys.appLimitAdaptive), the controller reads
 * it back for status.
 */
export function effectiveLimit(p: RateLimitPolicy): AppLimitConfig {
  return {
    ratePerSecond: p.spec.perApp.messagesPerSecond,
    burst: p.spec.perApp.burst,
    maxDeferred: p.spec.perApp.maxDeferredMessages,
    configuredRatePerSecond: p.spec.perApp.messagesPerSecond,
    policy: keyOf(p),
    ...(p.spec.perDevice
      ? {
          perDevice: {
            messagesPerDay: p.spec.perDevice.messagesPerDay,
            ...(p.spec.perDevice.highPriorityMessagesPerDay !== undefined
              ? { highPriorityMessagesPerDay: p.spec.perDevice.highPriorityMessagesPerDay }
              : {}),
          },
        }
      : {}),
    adaptive: { ...p.spec.adaptive },
  };
}

/**
 * Decides, for the policies of one namespace, which policy holds which app on which gateway:
 * the earliest (creationTimestamp, then name) claim of an app on a gateway wins; a later policy
 * claiming the same app there gets a conflict naming the holder, and publishes nothing for that
 * app (never silently merged). Pure: the controller reads the result and acts.
 */
export function planPolicies(
  policies: RateLimitPolicy[],
  gatewayExists: (namespace: string, name: string) => boolean,
): PolicyDecision[] {
  const ordered = [...policies].sort((a, b) => created(a) - created(b) || keyOf(a).localeCompare(keyOf(b)));
  const holders = new Map<string, string>(); // gatewayKey \0 app -> policy key
  return ordered.map((p) => {
    const ns = p.metadata.namespace ?? '';
    const gatewayKey = `${ns}/${p.spec.gatewayRef.name}`;
    const apps = p.spec.appIds.length ? p.spec.appIds : [EVERY_APP];
    const d: PolicyDecision = {
      key: keyOf(p),
      gatewayKey,
      gatewayFound: gatewayExists(ns, p.spec.gatewayRef.name),
      apps,
      conflicts: [],
      published: {},
    };
    for (const app of apps) {
      const slot = `${gatewayKey}\u0000${app}`;
      const holder = holders.get(slot);
      if (holder) d.conflicts.push({ app, heldBy: holder });
      else {
        holders.set(slot, d.key);
        if (d.gatewayFound) d.published[app] = effectiveLimit(p);
      }
    }
    return d;
  });
}
