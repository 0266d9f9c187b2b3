import type { ResourceType } from '../../runtime/kube.js';
import { Resources } from '../../runtime/resources.js';

/**
 * The kinds a PushGateway owns: the runtime watches each through the managed selector, so
 * drift is seen, and the pruner deletes what the spec no longer asks for. ClusterRoleBindings
 * name their PushGateway by labels (a namespaced owner cannot be referenced); the shared
 * node-tuner ClusterRole belongs to no single PushGateway and is never pruned.
 */
export const OWNED_KINDS: ResourceType[] = [
  Resources.Secret,
  Resources.ServiceAccount,
  Resources.Role,
  Resources.RoleBinding,
  Resources.ConfigMap,
  Resources.Deployment,
  Resources.Service,
  Resources.HorizontalPodAutoscaler,
  Resources.PodDisruptionBudget,
  Resources.DaemonSet,
  Resources.ClusterRoleBinding,
];
