import { FIELD_MANAGER } from '../../../identity.js';
import { TerminalError } from '../../../runtime/errors.js';
import { KubeApiError, type KubeObject } from '../../../runtime/kube.js';
import { resourceOf } from '../../../runtime/resources.js';
import { done, type Step } from '../../../runtime/steps.js';
import { LABEL_REGION } from '../names.js';
import { owned, recordRegionEvent, type SyncContext } from './context.js';

/**
 * An apply error as a person can act on it. What the API server refuses for its content
 * (400, 422, and the 500 server-side apply answers for two list entries with one key) is a
 * TerminalError naming the object: retrying the same spec gives the same answer. Anything
 * else (a conflict, an unreachable API server, a quota that may be raised) stays transient.
 */
export function explainApplyError(obj: KubeObject, err: unknown): unknown {
  if (!(err instanceof KubeApiError)) return err;
  const id = `${obj.kind} ${obj.metadata?.name}`;
  const dup = /(\.[\w.[\]=]+)?:? ?duplicate entries for key \[([^\]]+)\]/.exec(err.detail);
  if (err.status === 500 && dup) {
    return new TerminalError(
      'ApplyFailed',
      `the ${id} built from this spec has two entries with ${dup[2]}${dup[1] ? ` in ${dup[1].slice(1)}` : ''}; names in the pod must be unique (check spec.sidecars)`,
    );
  }
  if (err.status === 400 || err.status === 422) {
    // The API server's own sentence names the field ("spec.template...: Invalid value: ...").
    const detail = err.detail.replace(/^[\w.]+ "[^"]*" is invalid: /, '');
    return new TerminalError(
      'ApplyFailed',
      `the API server refuses the ${id} built from this spec: ${detail}`,
    );
  }
  return err;
}

const WORKLOAD_KINDS = new Set([
  'Deployment',
  'Service',
  'HorizontalPodAutoscaler',
  'PodDisruptionBudget',
  'DaemonSet',
]);
export const isWorkload = (o: KubeObject) => WORKLOAD_KINDS.has(o.kind ?? '');

/**
 * Server-side apply of part of the desired set (identities and config first, so a pod never
 * starts before its ServiceAccount and ConfigMap exist; then the workloads).
 */
function applyPhase(name: string, which: (o: KubeObject) => boolean): Step<SyncContext> {
  return {
    name,
    async run(ctx) {
      const { client } = ctx.env;
      await Promise.all(
        ctx.desired.filter(which).map(async (obj) => {
          const isNewRegion =
            obj.kind === 'Deployment' &&
            !owned(ctx, resourceOf(obj)).get(`${obj.metadata?.namespace}/${obj.metadata?.name}`);
          try {
            await client.apply(resourceOf(obj), obj, { fieldManager: FIELD_MANAGER });
          } catch (err) {
            throw explainApplyError(obj, err);
          }
          if (isNewRegion) {
            const region = obj.metadata?.labels?.[LABEL_REGION];
            recordRegionEvent(ctx, 'RegionProvisioned', 'Apply', `created the gateways of region ${region}`);
          }
        }),
      );
      return done();
    },
  };
}

export const applyIdentitiesAndConfig = applyPhase('apply-identities-and-config', (o) => !isWorkload(o));
export const applyWorkloads = applyPhase('apply-workloads', isWorkload);
