import {
  GROUP,
  RATE_LIMIT_POLICY,
  VERSION,
  parseRateLimitPolicy,
  type RateLimitPolicy,
} from '../../api/index.js';
import type { Logger } from '../../../common/logger.js';
import { deferredStats } from '../../../common/ratelimit/app-limit.js';
import { parseAppLimitConfig, withAdaptiveFactor } from '../../../common/ratelimit/releaser.js';
import { parseAdaptiveState } from '../../../common/ratelimit/adaptive.js';
import { setConditions, type ConditionInput, type Condition } from '../../runtime/conditions.js';
import type { Controller, SyncResult } from '../../runtime/controller.js';
import type { EventRecorder } from '../../runtime/events.js';
import type { Informer } from '../../runtime/informer.js';
import {
  objectKey,
  splitKey,
  type KubeClient,
  type KubeObject,
  type ResourceType,
} from '../../runtime/kube.js';
import type { Manager } from '../../runtime/manager.js';
import { writeStatus } from '../../runtime/status.js';
import { FIELD_MANAGER } from '../../identity.js';
import { PushGatewayResource } from '../pushgateway/names.js';
import type { GatewayRedis, GatewayRedisHandle } from '../shared/gateway-redis.js';
import { EVERY_APP, planPolicies, type PolicyDecision } from './plan.js';

export const RateLimitPolicyResource: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: RATE_LIMIT_POLICY.kind,
  plural: RATE_LIMIT_POLICY.plural,
  namespaced: true,
};

export interface RateLimitPolicyControllerOptions {
  client: KubeClient;
  manager: Manager;
  recorder: EventRecorder;
  log: Logger;
  /** The shared lookup of a PushGateway's Redis (one connection per URL for every controller). */
  gatewayRedis: GatewayRedis;
  /** How often status (deferred depth, oldest age) is refreshed while a policy exists. */
  statusRefreshMs?: number;
}

/**
 * RateLimitPolicy: resolves each policy's gateway and apps, decides conflicts (planPolicies:
 * the earlier claim of an app on a gateway wins, the later gets Conflict), publishes the
 * effective limits to the gateway's Redis (keys.appLimitConfig, which every gateway reads
 * once a second, so an edit is in force within seconds, no restart), and writes status: Ready
 * and Conflict conditions with observedGeneration, per app the effective rate, the deferred
 * depth and the oldest deferred age. Policies only name gateways of their own namespace, so a
 * sync of one policy plans its whole namespace (conflicts are decided among them) and queues
 * the status of its neighbours.
 */
export class RateLimitPolicyController {
  readonly controller: Controller;
  /** The last publish error per gateway (namespace/name), for the status path. */
  private readonly publishErrors = new Map<string, string>();

  constructor(private readonly o: RateLimitPolicyControllerOptions) {
    this.controller = o.manager.controller({
      name: 'ratelimitpolicy',
      for: RateLimitPolicyResource,
      watches: [
        {
          kind: PushGatewayResource,
          // A gateway appearing, changing (its Redis) or going concerns the policies naming it.
          map: (gw) =>
            this.policyInformer()
              .list(gw.metadata?.namespace)
              .filter(
                (p) =>
                  (p as { spec?: { gatewayRef?: { name?: string } } }).spec?.gatewayRef?.name ===
                  gw.metadata?.name,
              )
              .map(objectKey),
          path: 'sync',
        },
      ],
      reconciler: { sync: (key) => this.sync(key), updateStatus: (key) => this.updateStatus(key) },
      workers: 2,
    });
  }

  private policyInformer(): Informer {
    return this.controller.informer(RateLimitPolicyResource);
  }

  private gatewayInformer(): Informer {
    return this.controller.informer(PushGatewayResource);
  }

  /** The Redis a PushGateway's gateways use and their keys, from its spec.redis (shared lookup). */
  private gatewayRedis(gatewayKey: string): Promise<GatewayRedisHandle> {
    return this.o.gatewayRedis.of(this.gatewayInformer(), gatewayKey);
  }

  /** The decisions for the policies of one namespace, from the cache. */
  private plan(ns: string): {
    decisions: PolicyDecision[];
    parsed: Map<string, { raw: KubeObject; p: RateLimitPolicy }>;
  } {
    const parsed = new Map<string, { raw: KubeObject; p: RateLimitPolicy }>();
    for (const raw of this.policyInformer().list(ns)) {
      try {
        parsed.set(objectKey(raw), { raw, p: parseRateLimitPolicy(raw) });
      } catch (err) {
        this.o.log.warn({ policy: objectKey(raw), err: (err as Error).message }, 'invalid RateLimitPolicy');
      }
    }
    const decisions = planPolicies(
      [...parsed.values()].map((x) => x.p),
      (n, name) => this.gatewayInformer().get(`${n}/${name}`) !== undefined,
    );
    return { decisions, parsed };
  }

  /**
   * Publishes, for every gateway of the key's namespace, the apps its policies hold, and
   * removes what they no longer hold (entries written by policies of this namespace only).
   */
  async sync(key: string): Promise<SyncResult> {
    const { log } = this.o;
    const ns = splitKey(key).namespace ?? '';
    const { decisions } = this.plan(ns);
    const gatewayKeys = new Set([
      ...decisions.map((d) => d.gatewayKey),
      ...this.gatewayInformer()
        .list(ns)
        .map((g) => objectKey(g)),
    ]);
    for (const gk of gatewayKeys) {
      if (!this.gatewayInformer().get(gk)) continue;
      const desired: Record<string, string> = {};
      for (const d of decisions)
        if (d.gatewayKey === gk)
          for (const [app, c] of Object.entries(d.published)) desired[app] = JSON.stringify(c);
      try {
        const { redis, keys } = await this.gatewayRedis(gk);
        const hash = keys.appLimitConfig();
        const current = await redis.hgetall(hash);
        const stale = Object.entries(current)
          .filter(
            ([app, json]) => !(app in desired) && parseAppLimitConfig(json)?.policy?.startsWith(`${ns}/`),
          )
          .map(([app]) => app);
        const changed = Object.entries(desired).filter(([app, json]) => current[app] !== json);
        if (changed.length || stale.length) {
          const m = redis.multi();
          if (changed.length) m.hset(hash, Object.fromEntries(changed));
          if (stale.length) m.hdel(hash, ...stale);
          await m.exec();
          log.info(
            { gateway: gk, published: changed.map(([a]) => a), removed: stale },
            'rate limits published',
          );
        }
        this.publishErrors.delete(gk);
      } catch (err) {
        this.publishErrors.set(gk, (err as Error).message);
        log.warn({ gateway: gk, err: (err as Error).message }, 'could not publish rate limits');
      }
    }
    // Neighbours' conflicts may have changed with this policy: recompute their status too.
    for (const d of decisions) if (d.key !== key) this.controller.enqueue(d.key, 'status', 'neighbour');
    return this.policyInformer().get(key) ? { requeueAfterMs: this.o.statusRefreshMs ?? 10_000 } : undefined;
  }

  async updateStatus(key: string): Promise<void> {
    const ns = splitKey(key).namespace ?? '';
    const { decisions, parsed } = this.plan(ns);
    const d = decisions.find((x) => x.key === key);
    const x = parsed.get(key);
    if (!d || !x) return;
    const redis = this.publishErrors.has(d.gatewayKey)
      ? undefined
      : await this.gatewayRedis(d.gatewayKey).catch(() => undefined);
    await this.writePolicyStatus(x.raw, x.p, d, this.publishErrors.get(d.gatewayKey), redis);
  }

  private async writePolicyStatus(
    raw: KubeObject,
    p: RateLimitPolicy,
    d: PolicyDecision,
    publishError: string | undefined,
    gatewayRedis: GatewayRedisHandle | undefined,
  ) {
    const redis = gatewayRedis?.redis;
    const generation = p.metadata.generation;
    const held = Object.keys(d.published);
    const conflictNote = d.conflicts
      .map(
        (c) =>
          `app ${c.app === EVERY_APP ? '"*" (every app)' : `"${c.app}"`} on PushGateway ${d.gatewayKey} is held by RateLimitPolicy ${c.heldBy}`,
      )
      .join('; ');
    const ready: ConditionInput = !d.gatewayFound
      ? {
          type: 'Ready',
          status: 'False',
          reason: 'GatewayNotFound',
          message: `PushGateway ${d.gatewayKey} does not exist`,
          observedGeneration: generation,
        }
      : publishError
        ? {
            type: 'Ready',
            status: 'False',
            reason: 'PublishFailed',
            message: `could not publish to the gateway's Redis: ${publishError}`,
            observedGeneration: generation,
          }
        : held.length === 0
          ? {
              type: 'Ready',
              status: 'False',
              reason: 'Conflict',
              message: conflictNote,
              observedGeneration: generation,
            }
          : {
              type: 'Ready',
              status: 'True',
              reason: 'Published',
              message: `in force for ${held.join(', ')} on ${d.gatewayKey}`,
              observedGeneration: generation,
            };
    const conflict: ConditionInput = d.conflicts.length
      ? {
          type: 'Conflict',
          status: 'True',
          reason: 'AppClaimedByOtherPolicy',
          message: conflictNote,
          observedGeneration: generation,
        }
      : {
          type: 'Conflict',
          status: 'False',
          reason: 'NoConflict',
          message: 'no other policy claims these apps on this gateway',
          observedGeneration: generation,
        };
    const prev = (raw as { status?: { conditions?: Condition[] } }).status?.conditions;
    const wasConflict = prev?.find((c) => c.type === 'Conflict')?.status === 'True';
    if (d.conflicts.length && !wasConflict)
      await this.o.recorder.record(
        RateLimitPolicyResource,
        raw,
        'Warning',
        'Conflict',
        'Resolve',
        conflictNote,
      );
    const apps: {
      appId: string;
      effectiveMessagesPerSecond: number;
      deferredMessages?: number;
      oldestDeferredSeconds?: number;
    }[] = [];
    let deferred = 0;
    // The gateways' adaptive throttling state (common/ratelimit/adaptive.ts): the rate in force.
    const adaptive: Record<string, string> = redis
      ? await redis.hgetall(gatewayRedis.keys.appLimitAdaptive()).catch(() => ({}))
      : {};
    const throttled: { app: string; rate: number; configured: number; reason: string }[] = [];
    for (const app of held) {
      const pub = d.published[app]!;
      const rate = Math.round(withAdaptiveFactor(pub, adaptive[app]).ratePerSecond * 100) / 100;
      if (rate < pub.ratePerSecond)
        throttled.push({
          app,
          rate,
          configured: pub.ratePerSecond,
          reason: parseAdaptiveState(adaptive[app])?.reason ?? 'Throttled',
        });
      const entry: (typeof apps)[number] = {
        appId: app,
        effectiveMessagesPerSecond: rate,
      };
      if (redis && app !== EVERY_APP) {
        const st = await deferredStats(redis, gatewayRedis.keys, app).catch(() => undefined);
        if (st) {
          entry.deferredMessages = st.depth;
          entry.oldestDeferredSeconds = st.oldestAgeSeconds;
          deferred += st.depth;
        }
      }
      apps.push(entry);
    }
    const throttledNote = throttled
      .map((t) => `app "${t.app}" at ${t.rate}/s of ${t.configured}/s (${reasonText(t.reason)})`)
      .join('; ');
    const throttledCond: ConditionInput = throttled.length
      ? {
          type: 'Throttled',
          status: 'True',
          reason: throttled[0]!.reason,
          message: throttledNote,
          observedGeneration: generation,
        }
      : {
          type: 'Throttled',
          status: 'False',
          reason: p.spec.adaptive.enabled ? 'Healthy' : 'AdaptiveDisabled',
          message: p.spec.adaptive.enabled
            ? 'every app runs at its configured rate'
            : 'adaptive throttling is off: every app runs at its configured rate',
          observedGeneration: generation,
        };
    // An event when an app's rate in force moves (cut, a recovery step, back to configured).
    const before = new Map(
      (
        (raw as { status?: { apps?: { appId: string; effectiveMessagesPerSecond: number }[] } }).status
          ?.apps ?? []
      ).map((a) => [a.appId, a.effectiveMessagesPerSecond]),
    );
    for (const a of apps) {
      const was = before.get(a.appId);
      if (was === undefined || was === a.effectiveMessagesPerSecond) continue;
      const t = throttled.find((x) => x.app === a.appId);
      await this.o.recorder.record(
        RateLimitPolicyResource,
        raw,
        t && a.effectiveMessagesPerSecond < was ? 'Warning' : 'Normal',
        t ? (a.effectiveMessagesPerSecond < was ? 'Throttled' : 'Recovering') : 'Recovered',
        'AdaptiveThrottling',
        `app "${a.appId}": effective rate ${was}/s -> ${a.effectiveMessagesPerSecond}/s${t ? ` (${reasonText(t.reason)})` : ' (the configured rate)'}`,
      );
    }
    const status = {
      observedGeneration: generation,
      conditions: setConditions(prev, [ready, conflict, throttledCond], new Date()),
      appliedTo: {
        gateway: d.gatewayKey.split('/')[1],
        appIds: held,
        targets: `${d.gatewayKey.split('/')[1]}: ${held.length ? held.join(', ') : '(none)'}`.slice(0, 256),
      },
      ...(apps.length
        ? { effectiveMessagesPerSecond: Math.min(...apps.map((a) => a.effectiveMessagesPerSecond)) }
        : {}),
      deferredMessages: deferred,
      apps,
    };
    await writeStatus(this.o.client, RateLimitPolicyResource, raw, status, FIELD_MANAGER);
  }

  close(): void {
    // The connections belong to the shared GatewayRedis (closed by the operator command).
  }
}

/** The adaptive throttling reasons in words (condition and event messages). */
function reasonText(reason: string): string {
  switch (reason) {
    case 'ErrorRatio':
      return 'ErrorRatio: downstream errors over the threshold';
    case 'TimeoutRatio':
      return 'TimeoutRatio: downstream timeouts over the threshold';
    case 'Recovering':
      return 'Recovering: stepping back to the configured rate';
    default:
      return reason;
  }
}
