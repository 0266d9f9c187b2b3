import { z } from 'zod';
import {
  DNS_LABEL_MAX,
  DNS_LABEL_PATTERN,
  DNS_SUBDOMAIN_PATTERN,
  LABEL_VALUE_PATTERN,
  QUALIFIED_NAME_PATTERN,
  SECRET_KEY_PATTERN,
  isSecretKey,
} from '../../common/protocol/ids.js';
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
  return refineWith(schema, rules).meta({ description, 'x-kubernetes-validations': celOf(rules) }) as S;
}

/** The zod side of `rules`: each TypeScript check as a refinement at the rule's field path. */
function refineWith<S extends z.ZodType>(schema: S, rules: readonly Rule<z.output<S>>[]): S {
  return schema.superRefine((value, ctx) => {
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
export const DNS_LABEL = new RegExp(DNS_LABEL_PATTERN);
export const dnsLabel = (description: string) =>
  z
    .string()
    .min(1)
    .max(DNS_LABEL_MAX)
    .regex(DNS_LABEL, 'must be a DNS label: lower-case letters, digits and -')
    .describe(description);

/** An RFC 1123 DNS subdomain: what Kubernetes accepts as most object names. */
export const DNS_SUBDOMAIN = new RegExp(DNS_SUBDOMAIN_PATTERN);
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
      key: withRules(
        z
          .string()
          .min(1)
          .max(253)
          .regex(new RegExp(SECRET_KEY_PATTERN), 'must be a Secret data key: letters, digits, -, _ and .')
          .default(defaultKey),
        `Key inside the Secret whose value is the ${what}. Defaults to "${defaultKey}".`,
        [
          {
            rule: "self != '.' && !self.startsWith('..')",
            message: 'a Secret key cannot be . or start with ..',
            check: isSecretKey,
          },
        ],
      ),
    })
    .describe(`Where the ${what} comes from: a key of a Secret in the same namespace.`);

/**
 * A Kubernetes resource quantity (`500m`, `2Gi`, `4`); the grammar of k8s.io/apimachinery
 * without a sign: a container resource is never negative (`-1` as an integer is refused by the
 * CEL rule of the resource list, since an int-or-string field carries no minimum).
 */
export const QUANTITY =
  /^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
export const quantitySchema = z
  .union([
    z.int().nonnegative(),
    z.string().max(64).regex(QUANTITY, 'must be a non-negative Kubernetes quantity such as 500m, 2Gi or 4'),
  ])
  .describe('A Kubernetes resource quantity, such as 500m (CPU) or 2Gi (memory).');
export type Quantity = z.output<typeof quantitySchema>;

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
/** The value of a quantity as a number (for comparisons; CEL's quantity() does the same). */
export function quantityValue(q: Quantity): number {
  if (typeof q === 'number') return q;
  const m = /^\+?([0-9.]+)(([KMGTPE]i)|[numkMGTPE]|[eE][-+]?[0-9.]+)?$/.exec(q);
  if (!m) return NaN;
  const suffix = m[2] ?? '';
  if (/^[eE]/.test(suffix)) return Number(m[1]) * 10 ** Number(suffix.slice(1));
  return Number(m[1]) * (SUFFIX[suffix] ?? NaN);
}

/**
 * Resource names a container may request: the standard ones, hugepages, and extended resources
 * named by a domain (`nvidia.com/gpu`). `cpus` or `gpu` is a typo the Deployment would refuse.
 */
export const RESOURCE_NAME_PATTERN =
  '^(cpu|memory|ephemeral-storage|hugepages-[0-9]+[KMGTPE]i|([a-z0-9]([-a-z0-9]*[a-z0-9])?\\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$';
const RESOURCE_NAME = new RegExp(RESOURCE_NAME_PATTERN);

export const resourceListSchema = (description: string) =>
  withRules(
    z
      .record(z.string().min(1).max(253), quantitySchema)
      .refine((m) => Object.keys(m).length <= 16, { message: 'at most 16 resources' })
      .meta({ maxProperties: 16 }),
    description,
    [
      {
        rule: `self.all(k, k.matches(r'${RESOURCE_NAME_PATTERN}'))`,
        message:
          'resource names are cpu, memory, ephemeral-storage, hugepages-<size> or a domain-qualified extended resource',
        check: (m) => Object.keys(m).every((k) => RESOURCE_NAME.test(k)),
      },
      {
        rule: "self.all(k, quantity(string(self[k])).compareTo(quantity('0')) >= 0)",
        message: 'a resource quantity cannot be negative',
        check: (m) => Object.values(m).every((q) => quantityValue(q) >= 0),
      },
    ],
  );

/** Container resources, the shape of core/v1 ResourceRequirements (requests and limits). */
export const resourceRequirementsSchema = withRules(
  z.object({
    requests: resourceListSchema(
      'Minimum resources the scheduler reserves, by resource name (cpu, memory).',
    ).optional(),
    limits: resourceListSchema(
      'Maximum resources the container may use, by resource name (cpu, memory).',
    ).optional(),
  }),
  'CPU and memory requests and limits, as in a Pod container.',
  [
    {
      rule:
        '!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || ' +
        'quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)',
      message: 'a request cannot be above the limit of the same resource',
      fieldPath: '.requests',
      check: (r) =>
        Object.entries(r.requests ?? {}).every(
          ([k, q]) => r.limits?.[k] === undefined || quantityValue(q) <= quantityValue(r.limits[k]),
        ),
    },
  ],
);
export type ResourceRequirements = z.output<typeof resourceRequirementsSchema>;

/** A map of strings (labels, annotations, selectors). */
export const stringMapSchema = (description: string, maxProperties = 64) =>
  z
    .record(z.string().min(1).max(253), z.string().max(4096))
    .refine((m) => Object.keys(m).length <= maxProperties, { message: `at most ${maxProperties} entries` })
    .meta({ description, maxProperties });

const QUALIFIED_NAME = new RegExp(QUALIFIED_NAME_PATTERN);
const LABEL_VALUE = new RegExp(LABEL_VALUE_PATTERN);
/** A qualified-name key (label, annotation, node selector): prefix at most 253, name 1-63. */
export const isQualifiedName = (k: string) =>
  QUALIFIED_NAME.test(k) && (k.includes('/') ? k.indexOf('/') <= 253 : true);
const QUALIFIED_KEY_CEL = `k.matches(r'${QUALIFIED_NAME_PATTERN}') && (!k.contains('/') || k.indexOf('/') <= 253)`;

/** Annotations: keys are qualified names, values free text. */
export const annotationsSchema = (description: string, maxProperties = 64) =>
  withRules(
    z
      .record(z.string().min(1).max(317), z.string().max(4096))
      .refine((m) => Object.keys(m).length <= maxProperties, { message: `at most ${maxProperties} entries` })
      .meta({ maxProperties }),
    description,
    [
      {
        rule: `self.all(k, ${QUALIFIED_KEY_CEL})`,
        message: 'annotation keys must be qualified names such as example.com/name',
        check: (m) => Object.keys(m).every(isQualifiedName),
      },
    ],
  );

/** Labels or a node selector: keys are qualified names, values label values (63 at most). */
export const labelMapSchema = (description: string, maxProperties = 16) =>
  withRules(
    z
      .record(z.string().min(1).max(317), z.string().max(DNS_LABEL_MAX))
      .refine((m) => Object.keys(m).length <= maxProperties, { message: `at most ${maxProperties} entries` })
      .meta({ maxProperties }),
    description,
    [
      {
        rule: `self.all(k, ${QUALIFIED_KEY_CEL} && self[k].matches(r'${LABEL_VALUE_PATTERN}'))`,
        message:
          'keys must be qualified names (example.com/name) and values label values (letters, digits, - _ . inside)',
        check: (m) => Object.entries(m).every(([k, v]) => isQualifiedName(k) && LABEL_VALUE.test(v)),
      },
    ],
  );

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

/** Rules on the name of objects of a kind (the CRD's metadata.name pattern and maxLength). */
export interface NameRules {
  pattern: string;
  maxLength: number;
  message: string;
}

/**
 * The whole object of a kind, `{apiVersion, kind, metadata, spec, status?}`. `spec` is required
 * (the CRD says so too); a minimal manifest sets only what has no default.
 */
export function kindSchema<Spec extends z.ZodType, Status extends z.ZodType>(
  names: KindNames,
  spec: Spec,
  status: Status,
  nameRules?: NameRules,
) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(names.kind),
    metadata: nameRules
      ? objectMetaSchema.extend({
          name: z
            .string()
            .max(nameRules.maxLength)
            .regex(new RegExp(nameRules.pattern), nameRules.message)
            .optional(),
        })
      : objectMetaSchema,
    spec,
    status: status.optional(),
  });
}

/**
 * Rules on the whole object (they may read metadata.name). zod gets them here; the CRD gets the
 * same list as root `x-kubernetes-validations` from its KindDefinition (crd.ts).
 */
export function withRootRules<S extends z.ZodType>(schema: S, rules: readonly Rule<z.output<S>>[]): S {
  return refineWith(schema, rules);
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
