import { randomBytes } from 'node:crypto';
import { isAlreadyExists, type KubeObject } from '../../../runtime/kube.js';
import { Resources } from '../../../runtime/resources.js';
import { done, requeue, type Step } from '../../../runtime/steps.js';
import { PROBE_SECRET_KEY, buildProbeSecret } from '../builders.js';
import { names } from '../names.js';
import { owned, type SyncContext } from './context.js';

/** The probe Secret's value as the cache has it, if it exists. */
export function cachedProbeSecret(ctx: SyncContext): string | undefined {
  const name = names.probeSecret(ctx.gw);
  const cached = owned(ctx, Resources.Secret).get(`${ctx.gw.metadata.namespace}/${name}`) as
    (KubeObject & { data?: Record<string, string> }) | undefined;
  const existing = cached?.data?.[PROBE_SECRET_KEY];
  return existing ? Buffer.from(existing, 'base64').toString() : undefined;
}

/**
 * The probe secret is generated once and then kept: created (never applied over) when
 * missing, and from then on part of the desired set with the value it already has.
 */
export const ensureProbeSecret: Step<SyncContext> = {
  name: 'ensure-probe-secret',
  async run(ctx) {
    const existing = cachedProbeSecret(ctx);
    if (existing) {
      ctx.desired.unshift(buildProbeSecret(ctx.gw, existing));
      return done();
    }
    const value = randomBytes(24).toString('base64url');
    try {
      await ctx.env.client.create(Resources.Secret, buildProbeSecret(ctx.gw, value));
      ctx.desired.unshift(buildProbeSecret(ctx.gw, value));
    } catch (err) {
      // Created meanwhile (our cache lags): its informer event brings us back with its value.
      if (!isAlreadyExists(err)) throw err;
      return requeue(1000, 'probe secret exists but is not in the cache yet');
    }
    return done();
  },
};
