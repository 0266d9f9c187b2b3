import { API_VERSION, PUSH_GATEWAY, type PushGateway } from '../../api/index.js';
import type { KubeObject, ObjectMeta, OwnerReference } from '../../runtime/kube.js';

/**
 * Names, labels and owner references of everything a PushGateway owns, in one place: the
 * builders, the pruner and the status computer all find children by these.
 */

export const FIELD_MANAGER = 'pushgate-operator';
export const MANAGED_BY = 'pushgate-operator';

export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_PART_OF = 'app.kubernetes.io/part-of';
/** The PushGateway a child belongs to (its name; the namespace is the child's own). */
export const LABEL_GATEWAY = 'pushgate.dev/gateway';
/** For cluster-scoped children, which cannot carry an owner reference to a namespaced owner. */
export const LABEL_GATEWAY_NAMESPACE = 'pushgate.dev/gateway-namespace';
export const LABEL_REGION = 'pushgate.dev/region';

/** Pod-template annotation: a hash of the gateway configuration, so a config change rolls the pods. */
export const ANNOTATION_CONFIG_HASH = 'pushgate.dev/config-hash';

/** The per-pod metric the HPA scales on (served by the pushgate metrics adapter or prometheus-adapter). */
export const CONNECTIONS_METRIC = 'pushgate_gateway_connections';

/** Every child the operator manages carries this label; informers select on it. */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

export type Component = 'gateway' | 'node-tuner' | 'config' | 'rbac';

export const gatewayName = (gw: PushGateway) => gw.metadata.name!;
export const namespaceOf = (gw: PushGateway) => gw.metadata.namespace!;

export const names = {
  config: (gw: PushGateway) => `${gatewayName(gw)}-gateway-config`,
  /** The secret of the probe app the built-in sidecar uses to test its gateway like a device. */
  probeSecret: (gw: PushGateway) => `${gatewayName(gw)}-probe`,
  region: (gw: PushGateway, region: string) => `${gatewayName(gw)}-${region}`,
  nodeTuner: (gw: PushGateway) => `${gatewayName(gw)}-node-tuner`,
  gatewayServiceAccount: (gw: PushGateway) => `${gatewayName(gw)}-gateway`,
  nodeTunerServiceAccount: (gw: PushGateway) => `${gatewayName(gw)}-node-tuner`,
  /** Shared by every PushGateway: what a node tuner may do to Nodes (report its result). */
  nodeTunerClusterRole: 'pushgate-node-tuner',
  nodeTunerClusterRoleBinding: (gw: PushGateway) =>
    `pushgate-node-tuner-${namespaceOf(gw)}-${gatewayName(gw)}`,
};

export function commonLabels(gw: PushGateway, component: Component): Record<string, string> {
  return {
    [LABEL_NAME]: 'pushgate',
    [LABEL_INSTANCE]: gatewayName(gw),
    [LABEL_COMPONENT]: component,
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_PART_OF]: 'pushgate',
    [LABEL_GATEWAY]: gatewayName(gw),
  };
}

/** The labels that select one region's gateway pods (stable: a Deployment selector is immutable). */
export function regionSelector(gw: PushGateway, region: string): Record<string, string> {
  return { [LABEL_INSTANCE]: gatewayName(gw), [LABEL_COMPONENT]: 'gateway', [LABEL_REGION]: region };
}

export function ownerReference(gw: PushGateway): OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: PUSH_GATEWAY.kind,
    name: gatewayName(gw),
    uid: gw.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Metadata of a namespaced child: same namespace, labels, and the PushGateway as controller owner. */
export function childMeta(
  gw: PushGateway,
  name: string,
  component: Component,
  extraLabels: Record<string, string> = {},
): ObjectMeta {
  return {
    name,
    namespace: namespaceOf(gw),
    labels: { ...commonLabels(gw, component), ...extraLabels },
    ownerReferences: [ownerReference(gw)],
  };
}

/** The `namespace/name` key of the PushGateway that owns `child`, or undefined if none does. */
export function ownerKeyOf(child: KubeObject): string | undefined {
  const meta = child.metadata;
  const ref = meta?.ownerReferences?.find(
    (r) => r.controller && r.kind === PUSH_GATEWAY.kind && r.apiVersion === API_VERSION,
  );
  if (ref && meta?.namespace) return `${meta.namespace}/${ref.name}`;
  const gw = meta?.labels?.[LABEL_GATEWAY];
  const ns = meta?.labels?.[LABEL_GATEWAY_NAMESPACE] ?? meta?.namespace;
  return gw && ns ? `${ns}/${gw}` : undefined;
}
