import type { ResourceType } from './kube.js';

/**
 * The built-in kinds the operator reads or writes, with their REST coordinates. A static
 * table instead of discovery: these are GA APIs whose paths do not move, and a table makes
 * every path the operator can touch visible (and matches the RBAC it is granted).
 */
const r = (
  group: string,
  version: string,
  kind: string,
  plural: string,
  namespaced = true,
): ResourceType => ({
  group,
  version,
  kind,
  plural,
  namespaced,
});

export const Resources = {
  Namespace: r('', 'v1', 'Namespace', 'namespaces', false),
  Node: r('', 'v1', 'Node', 'nodes', false),
  ConfigMap: r('', 'v1', 'ConfigMap', 'configmaps'),
  Secret: r('', 'v1', 'Secret', 'secrets'),
  Service: r('', 'v1', 'Service', 'services'),
  ServiceAccount: r('', 'v1', 'ServiceAccount', 'serviceaccounts'),
  Pod: r('', 'v1', 'Pod', 'pods'),
  CoreEvent: r('', 'v1', 'Event', 'events'),
  Deployment: r('apps', 'v1', 'Deployment', 'deployments'),
  DaemonSet: r('apps', 'v1', 'DaemonSet', 'daemonsets'),
  HorizontalPodAutoscaler: r('autoscaling', 'v2', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers'),
  PodDisruptionBudget: r('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets'),
  Role: r('rbac.authorization.k8s.io', 'v1', 'Role', 'roles'),
  RoleBinding: r('rbac.authorization.k8s.io', 'v1', 'RoleBinding', 'rolebindings'),
  ClusterRole: r('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', false),
  ClusterRoleBinding: r(
    'rbac.authorization.k8s.io',
    'v1',
    'ClusterRoleBinding',
    'clusterrolebindings',
    false,
  ),
  Lease: r('coordination.k8s.io', 'v1', 'Lease', 'leases'),
  APIService: r('apiregistration.k8s.io', 'v1', 'APIService', 'apiservices', false),
  Event: r('events.k8s.io', 'v1', 'Event', 'events'),
  ServiceCIDR: r('networking.k8s.io', 'v1', 'ServiceCIDR', 'servicecidrs', false),
  CustomResourceDefinition: r(
    'apiextensions.k8s.io',
    'v1',
    'CustomResourceDefinition',
    'customresourcedefinitions',
    false,
  ),
} satisfies Record<string, ResourceType>;

/** The ResourceType of a manifest, by its apiVersion and kind (only kinds in the table above). */
export function resourceOf(obj: { apiVersion?: string; kind?: string }): ResourceType {
  const found = Object.values(Resources).find(
    (t) => t.kind === obj.kind && (t.group ? `${t.group}/${t.version}` : t.version) === obj.apiVersion,
  );
  if (!found) throw new Error(`no resource type for ${obj.apiVersion} ${obj.kind}`);
  return found;
}
