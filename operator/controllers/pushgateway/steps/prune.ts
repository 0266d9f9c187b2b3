import type { KubeObject, ResourceType } from '../../../runtime/kube.js';
import { splitKey } from '../../../runtime/kube.js';
import { Resources } from '../../../runtime/resources.js';
import { done, type Step } from '../../../runtime/steps.js';
import { LABEL_REGION, ownerKeyOf } from '../names.js';
import { OWNED_KINDS } from '../owned.js';
import { idOf, owned, recordRegionEvent, type SyncContext } from './context.js';

/** Deletes children this PushGateway owns that the spec no longer asks for (a region removed, node tuning off). */
export const prune: Step<SyncContext> = {
  name: 'prune',
  async run(ctx) {
    const want = new Set(ctx.desired.map(idOf));
    const { namespace } = splitKey(ctx.key);
    const stale: { kind: ResourceType; obj: KubeObject }[] = [];
    for (const kind of OWNED_KINDS) {
      for (const obj of owned(ctx, kind).list(kind.namespaced ? namespace : undefined)) {
        if (ownerKeyOf(obj) !== ctx.key) continue;
        const uid = obj.metadata?.ownerReferences?.find((r) => r.controller)?.uid;
        if (uid && uid !== ctx.gw.metadata.uid) continue; // an older PushGateway of the same name: GC's job
        const apiVersion = kind.group ? `${kind.group}/${kind.version}` : kind.version;
        if (!want.has(idOf({ ...obj, apiVersion, kind: kind.kind }))) stale.push({ kind, obj });
      }
    }
    const removedRegions = new Set<string>();
    await Promise.all(
      stale.map(async ({ kind, obj }) => {
        await ctx.env.client.deleteIfExists(kind, obj.metadata?.namespace, obj.metadata!.name!);
        const region = obj.metadata?.labels?.[LABEL_REGION];
        if (kind === Resources.Deployment && region) removedRegions.add(region);
      }),
    );
    for (const region of removedRegions)
      recordRegionEvent(ctx, 'RegionRemoved', 'Prune', `removed the gateways of region ${region}`);
    return done();
  },
};
