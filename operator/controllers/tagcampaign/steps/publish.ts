import { parseRateLimitPolicy, type RateLimitPolicy } from '../../../api/index.js';
import { publishCampaign, readCampaignProgress } from '../../../../common/campaign/plan.js';
import { done, type Step } from '../../../runtime/steps.js';
import { PushGatewayResource } from '../../pushgateway/names.js';
import { RateLimitPolicyResource } from '../../ratelimitpolicy/controller.js';
import { buildCampaignPlan } from '../desired.js';
import { decideCampaignRate } from '../rate.js';
import type { CampaignContext } from './context.js';

/**
 * The gateway's Redis (shared lookup: a missing PushGateway or Secret is a GatewayRedisError,
 * retried with backoff and shown in status) and the rate: spec.rate or the covering policy's
 * default, capped at its maximum (decideCampaignRate, pure).
 */
export const resolve: Step<CampaignContext> = {
  name: 'resolve',
  async run(ctx) {
    const { controller, log, gatewayRedis } = ctx.env;
    const gateways = controller.informer(PushGatewayResource);
    ctx.redis = await gatewayRedis.of(gateways, ctx.gatewayKey);
    const gw = (gateways.get(ctx.gatewayKey) as { spec?: { dispatcher?: { enabled?: boolean } } } | undefined)
      ?.spec;
    if (gw?.dispatcher?.enabled === false)
      ctx.noDispatcher = `PushGateway ${ctx.gatewayKey} runs no dispatcher (spec.dispatcher.enabled: false): the plan is published, nothing sends it`;
    const ns = ctx.tc.metadata.namespace!;
    const policies: RateLimitPolicy[] = [];
    for (const raw of controller.informer(RateLimitPolicyResource).list(ns)) {
      try {
        policies.push(parseRateLimitPolicy(raw));
      } catch (err) {
        log.debug({ err: (err as Error).message }, 'skipping an invalid RateLimitPolicy');
      }
    }
    ctx.rate = decideCampaignRate(
      ctx.tc.spec,
      ns,
      policies,
      (n, name) => gateways.get(`${n}/${name}`) !== undefined,
    );
    return done();
  },
};

/**
 * Publishes the plan when it differs from what this process last published (a spec edit:
 * suspend, resume, cancel, a new rate or schedule; a policy change; the first sync after a
 * restart). Dispatchers pick it up within about a second.
 */
export const publish: Step<CampaignContext> = {
  name: 'publish',
  async run(ctx) {
    const plan = buildCampaignPlan(ctx.tc, ctx.rate!);
    const json = JSON.stringify(plan);
    if (ctx.env.published.get(ctx.key) === json) return done();
    await publishCampaign(ctx.redis!.redis, ctx.redis!.keys, plan);
    ctx.env.published.set(ctx.key, json);
    ctx.env.log.info(
      { campaign: ctx.key, state: plan.state, rate: plan.rate.perSecond },
      'campaign published',
    );
    return done();
  },
};

/** Reads the progress the dispatchers and gateways count, for the status path. */
export const observe: Step<CampaignContext> = {
  name: 'observe',
  async run(ctx) {
    const progress = await readCampaignProgress(ctx.redis!.redis, ctx.redis!.keys, ctx.tc.metadata.uid!);
    ctx.env.observed.set(ctx.key, {
      uid: ctx.tc.metadata.uid!,
      generation: ctx.tc.metadata.generation ?? 0,
      observedAt: ctx.now,
      progress,
      rate: ctx.rate!,
      ...(ctx.noDispatcher ? { noDispatcher: ctx.noDispatcher } : {}),
    });
    return done();
  },
};
