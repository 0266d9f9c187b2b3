import YAML from 'yaml';
import { z } from 'zod';
import {
  CATEGORY,
  GROUP,
  PUSH_GATEWAY,
  RATE_LIMIT_POLICY,
  TAG_CAMPAIGN,
  VERSION,
  crdName,
  type KindNames,
} from './group.js';
import {
  PUSH_GATEWAY_NAME_RULES,
  pushGatewayRootRules,
  pushGatewaySpecSchema,
  pushGatewayStatusSchema,
} from './pushgateway.js';
import { celOf, type NameRules, type Rule } from './shared.js';
import { rateLimitPolicySpecSchema, rateLimitPolicyStatusSchema } from './ratelimitpolicy.js';
import { tagCampaignSpecSchema, tagCampaignStatusSchema } from './tagcampaign.js';

/**
 * zod -> structural CRD schema. zod's JSON Schema (openapi-3.0 flavour, input side so defaults
 * and optional fields read as a user writes them) is close but not structural; this pass makes
 * it so: one `type` per node, no additionalProperties:false / propertyNames / const / $schema,
 * the int-or-string union of quantities as x-kubernetes-int-or-string, loose objects as
 * x-kubernetes-preserve-unknown-fields, and zod's own bounds and patterns that duplicate what
 * Kubernetes checks (safe-integer range, the date-time regex) dropped. Anything it cannot
 * express structurally throws, naming the path, instead of producing a CRD the server rejects.
 */

export type JsonSchema = { [key: string]: unknown };

/** zod's z.int() bounds: noise in a CRD (Kubernetes integers are int64). */
const SAFE_INT_BOUNDS = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);

/** Keys a structural schema must not carry (or that Kubernetes rejects). */
const DROPPED_KEYS = new Set(['$schema', 'propertyNames', 'const', 'id', '$id', 'examples']);

/** Keys in the order they are written, so the YAML reads top-down (docs, type, limits, children). */
const KEY_ORDER = [
  'description',
  'type',
  'format',
  'enum',
  'default',
  'nullable',
  'minimum',
  'exclusiveMinimum',
  'maximum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'required',
  'properties',
  'additionalProperties',
  'items',
  'anyOf',
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
];

const isObject = (v: unknown): v is JsonSchema => typeof v === 'object' && v !== null && !Array.isArray(v);

export class StructuralSchemaError extends Error {
  override name = 'StructuralSchemaError';
}

/** Converts one JSON Schema node (and its children) to its structural form. `at` names it in errors. */
export function toStructural(node: JsonSchema, at = '<root>'): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (DROPPED_KEYS.has(key)) continue;
    if (key === 'additionalProperties' && value === false) continue;
    if ((key === 'minimum' || key === 'maximum') && SAFE_INT_BOUNDS.has(value as number)) continue;
    if (key === 'x-kubernetes-validations' && Array.isArray(value) && value.length === 0) continue;
    out[key] = value;
  }

  if (Array.isArray(out.anyOf) || Array.isArray(out.oneOf)) intOrString(out, at);
  if (out.format === 'date-time') delete out.pattern; // the server checks RFC 3339 itself

  if (isObject(out.properties)) {
    const props: JsonSchema = {};
    for (const [name, child] of Object.entries(out.properties))
      props[name] = toStructural(child as JsonSchema, `${at}.${name}`);
    out.properties = props;
  }
  if (isObject(out.additionalProperties)) {
    if (Object.keys(out.additionalProperties).length === 0) {
      // z.looseObject: keep fields the schema does not name.
      delete out.additionalProperties;
      out['x-kubernetes-preserve-unknown-fields'] = true;
    } else {
      out.additionalProperties = toStructural(out.additionalProperties, `${at}[*]`);
    }
  }
  if (isObject(out.items)) out.items = toStructural(out.items, `${at}[]`);
  else if (out.items !== undefined) throw new StructuralSchemaError(`${at}: tuple items are not structural`);

  if (out['x-kubernetes-preserve-unknown-fields'] === true && isObject(out.properties)) {
    // Kubernetes disallows properties + preserve-unknown... unless the type is object; it is.
    out.type = 'object';
  }
  if (typeof out.type !== 'string' && out['x-kubernetes-int-or-string'] !== true) {
    throw new StructuralSchemaError(`${at}: no single type (${JSON.stringify(node).slice(0, 200)})`);
  }
  if (
    out['x-kubernetes-list-type'] === 'map' &&
    isObject((out.items as JsonSchema | undefined)?.properties)
  ) {
    // Keys of a list-type map must be required (or defaulted) in every item.
    const items = out.items as JsonSchema;
    const required = new Set((items.required as string[] | undefined) ?? []);
    for (const key of out['x-kubernetes-list-map-keys'] as string[]) {
      if (!required.has(key))
        throw new StructuralSchemaError(`${at}: list map key "${key}" must be required`);
    }
  }
  return ordered(out);
}

/** zod's `int | string-with-pattern` (a quantity) becomes Kubernetes' int-or-string. */
function intOrString(out: JsonSchema, at: string) {
  const branches = (out.anyOf ?? out.oneOf) as JsonSchema[];
  const types = branches.map((b) => b.type).sort();
  if (branches.length !== 2 || types[0] !== 'integer' || types[1] !== 'string') {
    throw new StructuralSchemaError(
      `${at}: unions other than integer|string are not structural; merge the branches and add a CEL rule`,
    );
  }
  const str = branches.find((b) => b.type === 'string')!;
  delete out.anyOf;
  delete out.oneOf;
  out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  if (typeof str.pattern === 'string') out.pattern = str.pattern;
  // Bounds the string form, so CEL rules reading it fit the cost budget.
  if (typeof str.maxLength === 'number') out.maxLength = str.maxLength;
  out['x-kubernetes-int-or-string'] = true;
}

function ordered(node: JsonSchema): JsonSchema {
  const keys = Object.keys(node).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return Object.fromEntries(keys.map((k) => [k, node[k]]));
}
const rank = (key: string) => {
  const i = KEY_ORDER.indexOf(key);
  return i === -1 ? KEY_ORDER.length : i;
};

/** The structural schema of one zod schema. */
export function structuralSchemaOf(schema: z.ZodType, at = '<root>'): JsonSchema {
  const json = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    reused: 'inline',
    cycles: 'throw',
    unrepresentable: 'throw',
  }) as JsonSchema;
  return toStructural(json, at);
}

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  /** 0 = shown by `kubectl get`; 1 = only with `-o wide`. */
  priority?: number;
}

export interface KindDefinition {
  names: KindNames;
  /** Top-level description (kubectl explain <kind>). */
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: PrinterColumn[];
  /** Pattern and length of metadata.name (the only metadata a CRD schema may restrict). */
  nameRules?: NameRules;
  /** CEL rules on the whole object (they may read self.metadata.name). */
  rootRules?: readonly Rule<never>[];
}

const readyColumn: PrinterColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: 'Status of the Ready condition.',
};
const reasonColumn: PrinterColumn = {
  name: 'Reason',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  description: 'Reason of the Ready condition.',
  priority: 1,
};
const ageColumn: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'Time since creation.',
};

/** The three kinds as CRDs: schemas, docs and the columns `kubectl get` shows. */
export const KINDS: readonly KindDefinition[] = [
  {
    names: PUSH_GATEWAY,
    description:
      'PushGateway runs the device gateways of a push platform in one or more regions: WebSocket ' +
      'servers that hold long-lived device connections, autoscaled on connections per pod and ' +
      'drained at a set rate during rollouts.',
    spec: pushGatewaySpecSchema,
    status: pushGatewayStatusSchema,
    nameRules: PUSH_GATEWAY_NAME_RULES,
    rootRules: pushGatewayRootRules as readonly Rule<never>[],
    printerColumns: [
      readyColumn,
      {
        name: 'Regions',
        type: 'string',
        jsonPath: '.status.readyRegions',
        description: 'Regions with all pods ready / regions.',
      },
      {
        name: 'Pods',
        type: 'integer',
        jsonPath: '.status.readyReplicas',
        description: 'Ready gateway pods.',
      },
      {
        name: 'Connections',
        type: 'integer',
        jsonPath: '.status.connections',
        description: 'Open device connections over all regions.',
      },
      ageColumn,
      reasonColumn,
    ],
  },
  {
    names: TAG_CAMPAIGN,
    description:
      'TagCampaign pushes one message to every device of an app that matches a tag expression ' +
      '(or to all of its devices) at a controlled rate, within a schedule and quiet hours.',
    spec: tagCampaignSpecSchema,
    status: tagCampaignStatusSchema,
    printerColumns: [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Lifecycle phase.' },
      {
        name: 'Progress',
        type: 'string',
        jsonPath: '.status.progress',
        description: 'Targeted devices done (sent + expired + failed) / targeted (percent).',
      },
      {
        name: 'Rate',
        type: 'integer',
        jsonPath: '.status.ratePerSecond',
        description: 'Messages per second sent now.',
      },
      {
        name: 'ETA',
        type: 'string',
        jsonPath: '.status.eta',
        description: 'Estimated time left when status was last written.',
      },
      ageColumn,
      {
        name: 'Gateway',
        type: 'string',
        jsonPath: '.spec.gatewayRef.name',
        description: 'The PushGateway used.',
        priority: 1,
      },
      {
        name: 'App',
        type: 'string',
        jsonPath: '.spec.appId',
        description: 'The app whose devices are targeted.',
        priority: 1,
      },
      {
        name: 'Planned-Rate',
        type: 'number',
        jsonPath: '.status.plannedRatePerSecond',
        description: 'The rate the campaign runs at (after the policy cap).',
        priority: 1,
      },
      {
        name: 'Delivered',
        type: 'integer',
        jsonPath: '.status.counters.delivered',
        description: 'Messages delivered.',
        priority: 1,
      },
      {
        name: 'Deferred',
        type: 'integer',
        jsonPath: '.status.counters.deferred',
        description: 'Messages held back by limits or quiet hours.',
        priority: 1,
      },
      {
        name: 'Failed',
        type: 'integer',
        jsonPath: '.status.counters.failed',
        description: 'Messages that failed.',
        priority: 1,
      },
    ],
  },
  {
    names: RATE_LIMIT_POLICY,
    description:
      'RateLimitPolicy sets the limits of apps on a PushGateway: a per-app leaky bucket (GCRA), ' +
      'per-device daily caps, campaign rates, and adaptive throttling. Over-limit messages are deferred, not dropped.',
    spec: rateLimitPolicySpecSchema,
    status: rateLimitPolicyStatusSchema,
    printerColumns: [
      {
        name: 'Gateway',
        type: 'string',
        jsonPath: '.spec.gatewayRef.name',
        description: 'The PushGateway the policy applies to.',
      },
      {
        name: 'Targets',
        type: 'string',
        jsonPath: '.status.appliedTo.targets',
        description: 'What the policy is in force on.',
      },
      {
        name: 'App-Rate',
        type: 'integer',
        jsonPath: '.spec.perApp.messagesPerSecond',
        description: 'Sustained messages per second per app.',
      },
      {
        name: 'Effective',
        type: 'number',
        jsonPath: '.status.effectiveMessagesPerSecond',
        description: 'The per-app rate in force now (after adaptive throttling).',
      },
      {
        name: 'Deferred',
        type: 'integer',
        jsonPath: '.status.deferredMessages',
        description: 'Messages waiting for the rate now.',
      },
      {
        name: 'Campaign-Max',
        type: 'integer',
        jsonPath: '.spec.campaigns.maxMessagesPerSecond',
        description: 'Highest rate of one campaign.',
      },
      readyColumn,
      ageColumn,
      {
        name: 'Apps',
        type: 'string',
        jsonPath: '.spec.appIds',
        description: 'App ids the policy applies to (empty = all).',
        priority: 1,
      },
    ],
  },
];

/** The whole openAPIV3Schema of a kind: apiVersion, kind, metadata, spec (required), status. */
export function openApiSchemaOf(def: KindDefinition): JsonSchema {
  const spec = structuralSchemaOf(def.spec, 'spec');
  const status = structuralSchemaOf(def.status, 'status');
  return ordered({
    description: def.description,
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: {
        description: `APIVersion of this object: ${GROUP}/${VERSION}.`,
        type: 'string',
      },
      kind: { description: `Kind of this object: ${def.names.kind}.`, type: 'string' },
      metadata: def.nameRules
        ? {
            type: 'object',
            properties: {
              name: {
                description: `Name of the object: ${def.nameRules.message}.`,
                type: 'string',
                maxLength: def.nameRules.maxLength,
                pattern: def.nameRules.pattern,
              },
            },
          }
        : { type: 'object' },
      spec,
      status,
    },
    ...(def.rootRules?.length ? { 'x-kubernetes-validations': celOf(def.rootRules) } : {}),
  });
}

/** The CustomResourceDefinition of a kind (apiextensions.k8s.io/v1). */
export function crdOf(def: KindDefinition) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: crdName(def.names),
      labels: { 'app.kubernetes.io/name': 'pushgate', 'app.kubernetes.io/part-of': 'pushgate' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: def.names.kind,
        listKind: def.names.listKind,
        plural: def.names.plural,
        singular: def.names.singular,
        shortNames: [...def.names.shortNames],
        categories: [CATEGORY],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns.map((c) => ({ ...c })),
          schema: { openAPIV3Schema: openApiSchemaOf(def) },
        },
      ],
    },
  };
}
export type CustomResourceDefinition = ReturnType<typeof crdOf>;

/** Every CRD, with the file name it is written to (`crds/<plural>.<group>.yaml`). */
export function allCrds(): { fileName: string; crd: CustomResourceDefinition }[] {
  return KINDS.map((def) => ({ fileName: `${crdName(def.names)}.yaml`, crd: crdOf(def) }));
}

/** The header of every generated file: where it comes from and how to change it. */
export const GENERATED_HEADER =
  '# Generated by `npm run gen:crds` from operator/api (zod schemas). Do not edit; change the schemas.\n';

/** Every CRD file's exact text, by file name: what `npm run gen:crds` writes and `--check` compares. */
export function renderCrdFiles(): Map<string, string> {
  return new Map(
    allCrds().map(({ fileName, crd }) => [
      fileName,
      GENERATED_HEADER + YAML.stringify(crd, { lineWidth: 0 }),
    ]),
  );
}
