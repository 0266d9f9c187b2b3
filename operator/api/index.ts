/**
 * pushgate's API: the zod schemas of PushGateway, TagCampaign and RateLimitPolicy
 * (pushgate.dev/v1alpha1) and the TypeScript types inferred from them. The CRDs in crds/ are
 * generated from these schemas (npm run gen:crds), so schema, CRD and code cannot drift.
 */
export * from './group.js';
export * from './shared.js';
export * from './pushgateway.js';
export * from './tagcampaign.js';
export * from './ratelimitpolicy.js';
