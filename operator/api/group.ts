/**
 * The one API group and version of pushgate's custom resources, and the names each kind is
 * known by (kind, plural, singular, short names). Controllers, the CRD generator and tests
 * all read them from here so a rename happens in one place.
 */
export const GROUP = 'pushgate.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;

/**
 * `kubectl get pushgate-all` lists every pushgate resource (all three kinds), like `kubectl get
 * all`. Not `pushgate`: a category spelled like the start of a kind reads as one, and `kubectl get
 * pushgate NAME` then fails; a hyphenated `-all` cannot be a kind's plural, singular or short name.
 */
export const CATEGORY = 'pushgate-all';

/**
 * The node labels a region's pods select by default, and pods are spread across inside a region
 * (the well-known Kubernetes topology labels; defined once in common/topology.ts, which the
 * gateway pods' node-topology init container reads too).
 */
export { REGION_LABEL, ZONE_LABEL } from '../../common/topology.js';

export interface KindNames {
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  shortNames: string[];
}

export const PUSH_GATEWAY = {
  kind: 'PushGateway',
  listKind: 'PushGatewayList',
  plural: 'pushgateways',
  singular: 'pushgateway',
  shortNames: ['pgw'],
} as const satisfies KindNames;

export const TAG_CAMPAIGN = {
  kind: 'TagCampaign',
  listKind: 'TagCampaignList',
  plural: 'tagcampaigns',
  singular: 'tagcampaign',
  shortNames: ['tc'],
} as const satisfies KindNames;

export const RATE_LIMIT_POLICY = {
  kind: 'RateLimitPolicy',
  listKind: 'RateLimitPolicyList',
  plural: 'ratelimitpolicies',
  singular: 'ratelimitpolicy',
  shortNames: ['rlp'],
} as const satisfies KindNames;

/** The CRD object name of a kind: `<plural>.<group>`. */
export const crdName = (names: KindNames) => `${names.plural}.${GROUP}`;
