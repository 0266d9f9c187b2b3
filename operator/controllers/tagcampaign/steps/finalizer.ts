import { removeCampaign } from '../../../../common/campaign/plan.js';
import type { KubeObject } from '../../../runtime/kube.js';
import { done, type Step } from '../../../runtime/steps.js';
import { PushGatewayResource } from '../../pushgateway/names.js';
import { GatewayRedisError } from '../../shared/gateway-redis.js';
import { TagCampaignResource } from '../resource.js';
import type { CampaignContext, CampaignEnv } from './context.js';

/** Held on every campaign until its state is removed from the gateway's Redis. */
export const CAMPAIGN_FINALIZER = 'pushgate.dev/campaign-cleanup';

const finalizersOf = (o: KubeObject): string[] => (o.metadata?.finalizers as string[] | undefined) ?? [];

/**
 * The finalizer goes on before the plan is published, so a campaign that was ever published
 * cannot be deleted without its Redis state being removed (or the removal given up on, with
 * an event). A merge patch with resourceVersion: a conflicting write is retried.
 */
export const ensureFinalizer: Step<CampaignContext> = {
  name: 'ensure-finalizer',
  async run(ctx) {
    const finalizers = finalizersOf(ctx.raw);
    if (finalizers.includes(CAMPAIGN_FINALIZER)) return done();
    await ctx.env.client.mergePatch(TagCampaignResource, ctx.tc.metadata.namespace, ctx.tc.metadata.name!, {
      metadata: {
        finalizers: [...finalizers, CAMPAIGN_FINALIZER],
        resourceVersion: ctx.raw.metadata?.resourceVersion,
      },
    });
    return done();
  },
};

async function release(env: CampaignEnv, raw: KubeObject): Promise<void> {
  const finalizers = finalizersOf(raw).filter((f) => f !== CAMPAIGN_FINALIZER);
  await env.client.mergePatch(TagCampaignResource, raw.metadata?.namespace, raw.metadata!.name!, {
    metadata: { finalizers, resourceVersion: raw.metadata?.resourceVersion },
  });
}

export interface FinalizeOptions {
  /** After this long since deletionTimestamp, an unreachable Redis no longer blocks deletion. */
  cleanupTimeoutMs: number;
  now: number;
  /** Called with what could not be removed when giving up (retried in the background). */
  abandon(gatewayKey: string, id: string): void;
}

/**
 * A deleted campaign: stop it and remove its state (removeCampaign: the index entry, then the
 * plan and progress; the dispatchers collect their own keys once the id left the index), then
 * release the finalizer. A PushGateway that is gone took its dispatchers with it (they are its
 * children): nothing can send, the finalizer is released at once. A Redis that cannot be
 * reached (Secret gone, Redis down) is retried with backoff for cleanupTimeoutMs, then the
 * finalizer is released anyway with a Warning event naming what was left.
 */
export async function finalizeCampaign(
  env: CampaignEnv,
  raw: KubeObject,
  gatewayKey: string,
  o: FinalizeOptions,
): Promise<void> {
  if (!finalizersOf(raw).includes(CAMPAIGN_FINALIZER)) return;
  const id = raw.metadata!.uid!;
  const record = (type: 'Normal' | 'Warning', reason: string, note: string) =>
    env.recorder.record(TagCampaignResource, raw, type, reason, 'Delete', note);
  try {
    const { redis, keys } = await env.gatewayRedis.of(
      env.controller.informer(PushGatewayResource),
      gatewayKey,
    );
    await removeCampaign(redis, keys, id);
    await record(
      'Normal',
      'StateRemoved',
      `removed the campaign's plan and progress from the Redis of PushGateway ${gatewayKey}`,
    );
  } catch (err) {
    if (err instanceof GatewayRedisError && err.reason === 'GatewayNotFound') {
      await record(
        'Normal',
        'GatewayGone',
        `PushGateway ${gatewayKey} is gone, and its dispatchers with it: nothing sends this campaign; its Redis state, if any, is left there`,
      );
    } else {
      const deletedAt = new Date(raw.metadata!.deletionTimestamp as string).getTime();
      const message = err instanceof Error ? err.message : String(err);
      if (o.now - deletedAt < o.cleanupTimeoutMs) {
        await record(
          'Warning',
          'CleanupPending',
          `could not remove the campaign's state from Redis yet (retrying): ${message}`,
        );
        throw err;
      }
      o.abandon(gatewayKey, id);
      await record(
        'Warning',
        'CleanupAbandoned',
        `gave up removing campaign ${id} from the Redis of PushGateway ${gatewayKey} after ${Math.round(o.cleanupTimeoutMs / 1000)}s (${message}); ` +
          'this operator process keeps retrying in the background; if it restarts first, remove the campaign id from the campaign index by hand',
      );
    }
  }
  await release(env, raw);
}
