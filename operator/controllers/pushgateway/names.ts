import { API_VERSION, GROUP, PUSH_GATEWAY, VERSION, type PushGateway } from '../../api/index.js';
import {
  LABEL_COMPONENT,
  LABEL_INSTANCE,
  LABEL_MANAGED_BY,
  LABEL_NAME,
  LABEL_PART_OF,
  MANAGED_BY,
} from '../../identity.js';
import type { KubeObject, ObjectMeta, OwnerReference, ResourceType } from '../../runtime/kube.js';
import { ownerKeyOf as runtimeOwnerKeyOf } from '../../runtime/owners.js';

/**
 * Names, labels and owner references of everything a PushGateway owns, in one place: the
 * builders, the pruner and the status computer all find children by these. The operator-wide
 * marks (field manager, managed-by label and selector) are in operator/identity.ts.
 */

/** Where PushGateways live in the API. */
export const PushGatewayResource: ResourceType = {
  group: GROUP,
  version: VERSION,
  kind: PUSH_GATEWAY.kind,
  plural: PUSH_GATEWAY.plural,
  namespaced: true,
};

/** The PushGateway a child belongs to (its name; the namespace is the child's own). */
export const LABEL_GATEWAY = 'pushgate.dev/gateway';
/** For cluster-scoped children, which cannot carry an owner reference to a namespaced owner. */
export const LABEL_GATEWAY_NAMESPACE = 'pushgate.dev/gateway-namespace';
export const LABEL_REGION = 'pushgate.dev/region';

/** Pod-template annotation: a hash of the gateway configuration, so a config change rolls the pods. */
export const ANNOTATION_CONFIG_HASH = 'pushgate.dev/config-hash';

/** The per-pod metric the HPA scales on (served by the pushgate metrics adapter or prometheus-adapter). */
export const CONNECTIONS_METRIC = 'pushgate_gateway_connections';

export type Component = 'gateway' | 'node-tuner' | 'config' | 'rbac' | 'dispatcher';

export const gatewayName = (gw: PushGateway) => gw.metadata.name!;
export const namespaceOf = (gw: PushGateway) => gw.metadata.namespace!;

export const names = {
  config: (gw: PushGateway) => `${gatewayName(gw)}-gateway-config`,
  /** The secret of the probe app the built-in sidecar uses to test its gateway like a device. */
  probeSecret: (gw: PushGateway) => `${gatewayName(gw)}-probe`,
  region: (gw: PushGateway, region: string) => `${gatewayName(gw)}-${region}`,
  nodeTuner: (gw: PushGateway) => `${gatewayName(gw)}-node-tuner`,
  /** The campaign dispatcher's Deployment and ServiceAccount (the region name is reserved for it). */
  dispatcher: (gw: PushGateway) => `${gatewayName(gw)}-dispatcher`,
  gatewayServiceAccount: (gw: PushGateway) => `${gatewayName(gw)}-gateway`,
  nodeTunerServiceAccount: (gw: PushGateway) => `${gatewayName(gw)}-node-tuner`,
  /** Shared by every PushGateway: what a node tuner may do to Nodes (report its result). */
  nodeTunerClusterRole: 'pushgate-node-tuner',
  /** Shared by every PushGateway: gateway pods read their own Node's topology labels. */
  gatewayNodeReaderClusterRole: 'pushgate-gateway-node-reader',
  gatewayNodeReaderClusterRoleBinding: (gw: PushGateway) =>
    `pushgate-gateway-node-reader-${namespaceOf(gw)}-${gatewayName(gw)}`,
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

/** The labels that select a PushGateway's dispatcher pods (stable: a Deployment selector is immutable). */
export function dispatcherSelector(gw: PushGateway): Record<string, string> {
  return { [LABEL_INSTANCE]: gatewayName(gw), [LABEL_COMPONENT]: 'dispatcher' };
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

/** Cluster-scoped children (and pods) name their PushGateway by these labels. */
export const OWNER_LABELS = { name: LABEL_GATEWAY, namespace: LABEL_GATEWAY_NAMESPACE };

/** The `namespace/name` key of the PushGateway that owns `child`, or undefined if none does. */
export const ownerKeyOf = (child: KubeObject): string | undefined =>
  runtimeOwnerKeyOf(child, PushGatewayResource, OWNER_LABELS);
