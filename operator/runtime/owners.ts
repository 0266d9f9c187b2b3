import { apiVersionOf, type KubeObject, type ResourceType } from './kube.js';

/** Labels that name an owner where an owner reference cannot (cluster-scoped children, pods). */
export interface OwnerLabels {
  /** Label holding the owner's name. */
  name: string;
  /** Label holding the owner's namespace; absent = the child's own namespace. */
  namespace?: string;
}

/**
 * The `namespace/name` key of the `owner`-kind object that controls `child`: its controller
 * owner reference when it has one, else the owner labels. undefined = not ours.
 */
export function ownerKeyOf(child: KubeObject, owner: ResourceType, labels?: OwnerLabels): string | undefined {
  const meta = child.metadata;
  const ref = meta?.ownerReferences?.find(
    (r) => r.controller && r.kind === owner.kind && r.apiVersion === apiVersionOf(owner),
  );
  if (ref && meta?.namespace) return `${meta.namespace}/${ref.name}`;
  if (!labels) return undefined;
  const name = meta?.labels?.[labels.name];
  const ns = (labels.namespace ? meta?.labels?.[labels.namespace] : undefined) ?? meta?.namespace;
  return name && ns ? `${ns}/${name}` : undefined;
}
