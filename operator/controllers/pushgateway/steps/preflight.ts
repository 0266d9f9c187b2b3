import { createHash } from 'node:crypto';
import { FIELD_MANAGER } from '../../../identity.js';
import { TerminalError } from '../../../runtime/errors.js';
import { resourceOf } from '../../../runtime/resources.js';
import { done, type Step } from '../../../runtime/steps.js';
import { buildProbeSecret } from '../builders.js';
import { findUnbuildable } from '../buildable.js';
import { explainApplyError } from './apply.js';
import type { SyncContext } from './context.js';
import { cachedProbeSecret } from './probe-secret.js';

/**
 * All or nothing: before anything is written, the objects built from the spec are checked,
 * first here (findUnbuildable), then by the API server itself in a dry run of every
 * server-side apply. One refused object stops the whole sync with a TerminalError that
 * names every refused object, so a spec never leaves a Deployment without its Service.
 */
export const checkBuildable: Step<SyncContext> = {
  name: 'check-buildable',
  async run(ctx) {
    const problems = findUnbuildable(ctx.desired);
    if (problems.length) throw new TerminalError('InvalidSpec', problems.join('; '));
    return done();
  },
};

const BINDINGS = new Set(['RoleBinding', 'ClusterRoleBinding']);

export const dryRun: Step<SyncContext> = {
  name: 'dry-run',
  async run(ctx) {
    const { client, preflighted } = ctx.env;
    // The probe Secret is created in a later step; its stand-in here is only validated.
    // Role bindings are left out: the API server checks a binding against its Role (the
    // escalation check), which a dry run has not created, and what they hold comes from the
    // operator alone, not from the spec.
    const all = [buildProbeSecret(ctx.gw, cachedProbeSecret(ctx) ?? 'dry-run'), ...ctx.desired].filter(
      (o) => !BINDINGS.has(o.kind ?? ''),
    );
    const digest = createHash('sha256').update(JSON.stringify(all)).digest('hex');
    if (preflighted.get(ctx.key) === digest) return done();
    const results = await Promise.all(
      all.map((obj) =>
        client.apply(resourceOf(obj), obj, { fieldManager: FIELD_MANAGER, dryRun: true }).then(
          () => undefined,
          (err: unknown) => explainApplyError(obj, err),
        ),
      ),
    );
    const refused = results.filter((r): r is TerminalError => r instanceof TerminalError);
    if (refused.length) throw new TerminalError('ApplyFailed', refused.map((e) => e.message).join('; '));
    const transient = results.find((r) => r !== undefined);
    if (transient) throw transient;
    preflighted.set(ctx.key, digest);
    return done();
  },
};
