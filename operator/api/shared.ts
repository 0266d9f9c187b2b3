import { z } from 'zod';
import { API_VERSION, type KindNames } from './group.js';

/**
 * Pieces every kind uses: names, references, quantities, conditions, object meta, and the
 * `withRules` helper that states a cross-field rule ONCE and gets both a CEL
 * `x-kubernetes-validations` entry (enforced by the API server) and a zod refinement
 * (enforced by `parse<Kind>` in the operator), so the two cannot disagree.
 */

/** One cross-field rule: the CEL the API server runs, and the same check in TypeScript. */
export interface Rule<T> {
  /** CEL, evaluated with `self` bound to the object the rule is attached to (after defaulting). */
  rule: string;
  /** What the user reads; say what is wrong and what is allowed. */
  message: string;
  /** Where the error points, relative to `self` (`.maxReplicas`); omitted = the object itself. */
  fieldPath?: string;
  /**
   * The TypeScript twin of `rule`: returns false when the value breaks the rule. Only a
   * transition rule (one that reads `oldSelf`) goes without: parse sees no old object.
   */
  check?: (value: T) => boolean;
}

/** The transition rule of a field that cannot change once the object exists. */
export const immutable = <T>(what: string): Rule<T> => ({
  rule: 'self == oldSelf',
  message: `${what} is immutable; create a new object instead`,
});

/** The `x-kubernetes-validations` entries of `rules` (what goes into the CRD). */
export const celOf = <T>(rules: readonly Rule<T>[]) =>
  rules.map(({ rule, message, fieldPath }) => ({ rule, message, ...(fieldPath ? { fieldPath } : {}) }));

/**
 * Attaches `rules` to `schema` twice: as CEL for the CRD (via `.meta`) and as zod
 * refinements for `parse<Kind>`. `description` goes on the same node (kubectl explain).
 */
export function withRules<S extends z.ZodType>(
  schema: S,
  description: string,
  rules: readonly Rule<z.output<S>>[],
): S {
  for (const r of rules) {
    if (!r.check && !r.rule.includes('oldSelf')) throw new Error(`rule "${r.rule}" needs a TypeScript check`);
  }
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (r.check && !r.check(value as z.output<S>)) {
        ctx.addIssue({
          code: 'custom',
          message: r.message,
          path: r.fieldPath ? r.fieldPath.replace(/^\./, '').split('.') : [],
        });
      }
    }
  }) as unknown as S;
  return refined.meta({ description, 'x-kubernetes-validations': celOf(rules) }) as S;
}

/**
 * `schema`, defaulting (when absent) to its own value parsed from `{}`, written out in full.
 * The API server validates a schema default as written, without applying the nested defaults
 * first, so a bare `{}` default would fail every CEL rule that reads a nested field.
 */
export function defaultsToFull<S extends z.ZodType>(schema: S) {
  return schema.prefault(schema.parse({}) as never);
}

/** An RFC 1123 DNS label: what Kubernetes accepts as a Service/Secret/region name. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const dnsLabel = (description: string) =>
  z
    .string()
    .min(1)
    .max(63)
    .regex(DNS_LABEL, 'must be a DNS label: lower-case letters, digits and -')
    .describe(description);

/** An RFC 1123 DNS subdomain: what Kubernetes accepts as most object names. */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const objectName = (description: string) =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(DNS_SUBDOMAIN, 'must be a DNS subdomain: lower-case letters, digits, - and .')
    .describe(description);

/** A reference to another object in the same namespace, by name. */
export const localObjectReferenceSchema = (what: string) =>
  z
    .object({ name: objectName(`Name of the ${what} (same namespace).`) })
    .describe(`Reference to the ${what}.`);

/** A key inside a Secret in the same namespace. */
export const secretKeyReferenceSchema = (what: string, defaultKey: string) =>
  z
    .object({
      secretName: objectName(`Name of the Secret (same namespace) that holds the ${what}.`),
      key: z
        .string()
        .min(1)
        .max(253)
        .regex(/^[-._a-zA-Z0-9]+$/, 'must be a Secret data key: letters, digits, -, _ and .')
        .default(defaultKey)
        .describe(`Key inside the Secret whose value is the ${what}. Defaults to "${defaultKey}".`),
    })
    .describe(`Where the ${what} comes from: a key of a Secret in the same namespace.`);

/** A Kubernetes resource quantity (`500m`, `2Gi`, `4`); the same grammar as k8s.io/apimachinery. */
export const QUANTITY =
  /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
export const quantitySchema = z
  .union([
    z.int().nonnegative(),
    z.string().regex(QUANTITY, 'must be a Kubernetes quantity such as 500m, 2Gi or 4'),
  ])
  .describe('A Kubernetes resource quantity, such as 500m (CPU) or 2Gi (memory).');
export type Quantity = z.output<typeof quantitySchema>;

export const resourceListSchema = (description: string) =>
  z
    .record(z.string().min(1).max(253), quantitySchema)
    .refine((m) => Object.keys(m).length <= 16, { message: 'at most 16 resources' })
    .meta({ description, maxProperties: 16 });

/** Container resources, the shape of core/v1 ResourceRequirements (requests and limits). */
export const resourceRequirementsSchema = z
  .object({
    requests: resourceListSchema(
      'Minimum resources the scheduler reserves, by resource name (cpu, memory).',
    ).optional(),
    limits: resourceListSchema(
      'Maximum resources the container may use, by resource name (cpu, memory).',
    ).optional(),
  })
  .describe('CPU and memory requests and limits, as in a Pod container.');
export type ResourceRequirements = z.output<typeof resourceRequirementsSchema>;

/** A map of strings (labels, annotations, selectors). */
export const stringMapSchema = (description: string, maxProperties = 64) =>
  z
    .record(z.string().min(1).max(253), z.string().max(4096))
    .refine((m) => Object.keys(m).length <= maxProperties, { message: `at most ${maxProperties} entries` })
    .meta({ description, maxProperties });

/** Condition types every pushgate kind reports (EMQX-operator style). */
export const CONDITION_READY = 'Ready';
export const CONDITION_PROGRESSING = 'Progressing';
export const CONDITION_DEGRADED = 'Degraded';

/** One status condition, the shape of metav1.Condition. */
export const conditionSchema = z
  .object({
    type: z
      .string()
      .min(1)
      .max(316)
      .describe('Type of the condition: Ready, Progressing or Degraded (and kind-specific ones).'),
    status: z.enum(['True', 'False', 'Unknown']).describe('Status of the condition: True, False or Unknown.'),
    observedGeneration: z
      .int()
      .nonnegative()
      .optional()
      .describe('The .metadata.generation the condition was computed from.'),
    lastTransitionTime: z.iso
      .datetime({ offset: true })
      .describe('When the condition last changed status (RFC 3339).'),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
      .describe('A CamelCase word saying why the condition has its status, for machines.'),
    message: z
      .string()
      .max(32768)
      .describe('A sentence saying why the condition has its status, for humans (may be empty).'),
  })
  .describe('One observation of the state of the object.');
export type Condition = z.output<typeof conditionSchema>;

export const conditionsSchema = z
  .array(conditionSchema)
  .max(16)
  .meta({
    description: 'The latest observations of the object state: Ready, Progressing and Degraded.',
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  });

/** Status fields every kind has: the generation the status was computed from, and conditions. */
export const statusBaseFields = {
  observedGeneration: z
    .int()
    .nonnegative()
    .optional()
    .describe('The .metadata.generation this status was computed from.'),
  conditions: conditionsSchema.optional(),
};

/**
 * Object metadata as the operator sees it. The API server owns its validation (the CRD
 * schema only says `type: object`), so this is loose: unknown keys are kept.
 */
export const objectMetaSchema = z.looseObject({
  name: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.int().optional(),
  creationTimestamp: z.union([z.string(), z.date()]).optional(),
  deletionTimestamp: z.union([z.string(), z.date()]).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
  ownerReferences: z.array(z.looseObject({})).optional(),
});
export type ObjectMeta = z.output<typeof objectMetaSchema>;

/** Checks that the `key` field is unique across list items (the zod twin of a list-type map). */
export function uniqueBy<T>(items: readonly T[], key: (item: T) => string): string | undefined {
  const seen = new Set<string>();
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) return k;
    seen.add(k);
  }
  return undefined;
}

/**
 * A list keyed by `name` (`x-kubernetes-list-type: map`): the API server rejects two items with
 * the same name, and server-side apply merges items by name instead of replacing the list.
 */
export function namedList<S extends z.ZodType<{ name: string }>>(
  item: S,
  { min = 0, max }: { min?: number; max: number },
  description: string,
) {
  const list = z.array(item).max(max);
  return (min > 0 ? list.min(min) : list)
    .superRefine((items, ctx) => {
      items.forEach((it, i) => {
        if (items.findIndex((other) => other.name === it.name) !== i) {
          ctx.addIssue({ code: 'custom', message: `duplicate name "${it.name}"`, path: [i, 'name'] });
        }
      });
    })
    .meta({ description, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] });
}

/**
 * The whole object of a kind, `{apiVersion, kind, metadata, spec, status?}`. `spec` is required
 * (the CRD says so too); a minimal manifest sets only what has no default.
 */
export function kindSchema<Spec extends z.ZodType, Status extends z.ZodType>(
  names: KindNames,
  spec: Spec,
  status: Status,
) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(names.kind),
    metadata: objectMetaSchema,
    spec,
    status: status.optional(),
  });
}

/** A manifest that does not satisfy its kind's schema; `issues` name each field. */
export class ApiValidationError extends Error {
  override name = 'ApiValidationError';
  constructor(
    readonly kind: string,
    readonly issues: readonly { path: string; message: string }[],
  ) {
    super(`invalid ${kind}: ${issues.map((i) => `${i.path || '<root>'}: ${i.message}`).join('; ')}`);
  }
}

/** `a.b[0].c` from a zod issue path, the same notation the API server uses in its errors. */
export function fieldPathOf(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

/** Parses `obj` with `schema` (applying defaults) or throws an ApiValidationError naming the fields. */
export function parseOrThrow<S extends z.ZodType>(kind: string, schema: S, obj: unknown): z.output<S> {
  const result = schema.safeParse(obj);
  if (result.success) return result.data;
  throw new ApiValidationError(
    kind,
    result.error.issues.map((i) => ({ path: fieldPathOf(i.path), message: i.message })),
  );
}
