import { API_VERSION, PUSH_GATEWAY, RATE_LIMIT_POLICY, TAG_CAMPAIGN } from '../group.js';

/**
 * Manifests shared by the unit tests (zod, parse<Kind>) and the integration test (the real
 * kube-apiserver): the smallest manifest of each kind that is valid, and a table of bad ones,
 * each with the field path the rejection must name. One table, two judges: when the zod schema
 * and the generated CRD disagree about a case, one of the two tests fails.
 */

export type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
};

export const minimalPushGateway = (name = 'minimal'): Manifest => ({
  apiVersion: API_VERSION,
  kind: PUSH_GATEWAY.kind,
  metadata: { name },
  spec: { regions: [{ name: 'cn-north-1' }], redis: { secretName: 'pushgate-redis' } },
});

export const minimalTagCampaign = (name = 'minimal'): Manifest => ({
  apiVersion: API_VERSION,
  kind: TAG_CAMPAIGN.kind,
  metadata: { name },
  spec: {
    gatewayRef: { name: 'main' },
    appId: 'shop',
    target: { allOf: ['vip'] },
    message: { title: 'Hello' },
  },
});

export const minimalRateLimitPolicy = (name = 'minimal'): Manifest => ({
  apiVersion: API_VERSION,
  kind: RATE_LIMIT_POLICY.kind,
  metadata: { name },
  spec: { gatewayRef: { name: 'main' } },
});

/** The defaults a minimal manifest gets, as the field descriptions document them. */
export const DOCUMENTED_DEFAULTS = {
  PushGateway: {
    imagePullPolicy: 'IfNotPresent',
    resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '4Gi' } },
    regions: [
      {
        name: 'cn-north-1',
        minReplicas: 2,
        maxReplicas: 10,
        targetConnectionsPerPod: 50_000,
        maxConnectionsPerPod: 100_000,
      },
    ],
    ports: { websocket: 8080, metrics: 9090 },
    heartbeat: { minSeconds: 30, maxSeconds: 300, initialSeconds: 60 },
    drain: { closesPerSecond: 500, gracePeriodSeconds: 300 },
    protection: {
      maxTagsPerApp: 10_000,
      tagUpdatesPerMinute: 30,
      framesPerSecond: 20,
      maxPendingHandshakes: 1000,
      maxPendingHandshakesPerAddress: 100,
    },
    redis: { secretName: 'pushgate-redis', key: 'url', cluster: false, keyPrefix: 'pg' },
    sidecars: [],
    nodeTuning: { enabled: false, sysctls: {}, nofile: 1_048_576 },
    service: { type: 'LoadBalancer', annotations: {} },
    placement: {
      tolerations: [],
      zoneSpread: { enabled: true, maxSkew: 1, whenUnsatisfiable: 'ScheduleAnyway' },
    },
    scaling: { scaleDownStabilizationSeconds: 300, scaleDownPodsPerMinute: 1 },
    metricsAdapter: { enabled: true },
    dispatcher: {
      enabled: true,
      replicas: 2,
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
    },
  },
  TagCampaign: {
    gatewayRef: { name: 'main' },
    appId: 'shop',
    target: { allDevices: false, allOf: ['vip'] },
    message: { title: 'Hello', ttlSeconds: 86_400, priority: 'normal' },
    schedule: {},
    suspend: false,
    dryRun: false,
    cancel: false,
  },
  RateLimitPolicy: {
    gatewayRef: { name: 'main' },
    appIds: [],
    perApp: { messagesPerSecond: 10_000, burst: 10_000, maxDeferredMessages: 100_000 },
    campaigns: { defaultMessagesPerSecond: 1_000, maxMessagesPerSecond: 5_000 },
    adaptive: {
      enabled: true,
      errorRatioPercent: 5,
      timeoutRatioPercent: 10,
      windowSeconds: 30,
      decreasePercent: 50,
      recoveryPercent: 10,
      recoveryIntervalSeconds: 10,
      minRatePercent: 10,
    },
  },
} as const;

/** True when an issue at `issuePath` names `expected` (the same field or something inside it). */
export const namesField = (issuePath: string, expected: string) =>
  issuePath === expected || issuePath.startsWith(`${expected}.`) || issuePath.startsWith(`${expected}[`);

const MINIMAL = {
  PushGateway: minimalPushGateway,
  TagCampaign: minimalTagCampaign,
  RateLimitPolicy: minimalRateLimitPolicy,
} as const;
export type KindName = keyof typeof MINIMAL;

export interface BadManifestCase {
  /** What is wrong, as the test title. */
  name: string;
  kind: KindName;
  /** Edits to the minimal manifest's spec: path (`regions[0].minReplicas`) -> value; undefined deletes. */
  edits?: Record<string, unknown>;
  /** Replace the whole manifest instead (e.g. no spec at all). */
  manifest?: (m: Manifest) => Manifest;
  /** The field path the error must name, as the API server writes it (`spec.regions[0].name`). */
  path: string;
  /** Text the API server's message must contain besides the path (our CEL message, for example). */
  says?: string;
  /**
   * 'rejects' (default): parse<Kind> rejects it too, naming the path. 'prunes': unknown fields;
   * only the API server's strict field validation rejects them, zod ignores unknown keys (the
   * server never hands the operator a field its schema lacks).
   */
  zod?: 'rejects' | 'prunes';
}

const region = (name: string) => ({ name });
const named =
  (name: string) =>
  (m: Manifest): Manifest => ({ ...m, metadata: { ...m.metadata, name } });
const pgwWithTls = { tls: { secretName: 'gw-tls' } };

/**
 * Issue 14: manifests the API server used to accept although no object could be built from
 * them, or that disagreed with the device protocol and the push API. Each is refused by the API
 * server (schema or CEL) and by parse<Kind> (the same rules in zod).
 */
export const ISSUE_14_BAD_MANIFESTS: readonly BadManifestCase[] = [
  // ---- PushGateway: names budgeted against the derived names and label values
  {
    name: 'a 60-character name (its region Service would be 71 characters)',
    kind: 'PushGateway',
    manifest: named('g'.repeat(60)),
    path: 'metadata.name',
    says: 'must fit 63 characters',
  },
  {
    name: 'a 64-character name (over a label value)',
    kind: 'PushGateway',
    manifest: named('g'.repeat(64)),
    path: 'metadata.name',
  },
  {
    name: 'name and region together one over 63',
    kind: 'PushGateway',
    edits: { 'regions[0].name': 'r'.repeat(33) },
    manifest: named('g'.repeat(30)),
    path: 'metadata.name',
    says: 'must fit 63 characters',
  },
  { name: 'a name with a dot', kind: 'PushGateway', manifest: named('gw.main'), path: 'metadata.name' },
  { name: 'a name with a leading digit', kind: 'PushGateway', manifest: named('1gw'), path: 'metadata.name' },
  {
    name: 'a 63-character region name',
    kind: 'PushGateway',
    edits: { 'regions[0].name': 'r'.repeat(63) },
    path: 'spec.regions[0].name',
  },
  {
    name: 'a 41-character region name (over the region budget)',
    kind: 'PushGateway',
    edits: { 'regions[0].name': 'r'.repeat(41) },
    path: 'spec.regions[0].name',
  },
  // ---- quantities
  {
    name: 'a negative CPU request',
    kind: 'PushGateway',
    edits: { resources: { requests: { cpu: '-1' } } },
    path: 'spec.resources.requests.cpu',
  },
  {
    name: 'a negative integer memory request',
    kind: 'PushGateway',
    edits: { resources: { requests: { memory: -5 } } },
    path: 'spec.resources.requests',
  },
  {
    name: 'a CPU request above its limit',
    kind: 'PushGateway',
    edits: { resources: { requests: { cpu: '2' }, limits: { cpu: '1500m' } } },
    path: 'spec.resources.requests',
    says: 'above the limit',
  },
  {
    name: 'a memory request above its limit',
    kind: 'PushGateway',
    edits: { resources: { requests: { memory: '8Gi' }, limits: { memory: '4Gi' } } },
    path: 'spec.resources.requests',
    says: 'above the limit',
  },
  {
    name: 'an unknown resource name (cpus)',
    kind: 'PushGateway',
    edits: { resources: { requests: { cpus: '1' } } },
    path: 'spec.resources.requests',
    says: 'resource names',
  },
  {
    name: 'an extended resource without a domain (gpu)',
    kind: 'PushGateway',
    edits: { resources: { limits: { gpu: 1 } } },
    path: 'spec.resources.limits',
    says: 'resource names',
  },
  {
    name: 'hugepages without a size',
    kind: 'PushGateway',
    edits: { resources: { limits: { 'hugepages-': '2Mi' } } },
    path: 'spec.resources.limits',
  },
  {
    name: 'a quantity with two dots',
    kind: 'PushGateway',
    edits: { resources: { requests: { cpu: '1.5.5' } } },
    path: 'spec.resources.requests.cpu',
  },
  {
    name: 'a negative sidecar CPU request',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe', image: 'busybox', resources: { requests: { cpu: '-100m' } } }] },
    path: 'spec.sidecars[0].resources.requests.cpu',
  },
  // ---- images
  {
    name: 'an image with a trailing space',
    kind: 'PushGateway',
    edits: { image: 'pushgate:1 ' },
    path: 'spec.image',
  },
  {
    name: 'an image with a space inside',
    kind: 'PushGateway',
    edits: { image: 'push gate:1' },
    path: 'spec.image',
  },
  { name: 'an empty image', kind: 'PushGateway', edits: { image: '' }, path: 'spec.image' },
  {
    name: 'a sidecar image with a tab',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe', image: 'busybox\t' }] },
    path: 'spec.sidecars[0].image',
  },
  // ---- sidecars: names and fields checked as the Pod would check them
  {
    name: 'a sidecar named gateway',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'gateway', image: 'busybox' }] },
    path: 'spec.sidecars[0].name',
    says: 'built-in containers',
  },
  {
    name: 'a sidecar named sidecar',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'sidecar', image: 'busybox' }] },
    path: 'spec.sidecars[0].name',
    says: 'built-in containers',
  },
  {
    // Container names are unique across a pod's init containers and containers.
    name: 'a sidecar named node-topology (the init container that reads the Node zone)',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'node-topology', image: 'busybox' }] },
    path: 'spec.sidecars[0].name',
    says: 'built-in containers',
  },
  {
    name: 'a sidecar name in capitals',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'Probe', image: 'busybox' }] },
    path: 'spec.sidecars[0].name',
  },
  {
    name: 'two sidecars with one name',
    kind: 'PushGateway',
    edits: {
      sidecars: [
        { name: 'probe', image: 'busybox' },
        { name: 'probe', image: 'busybox' },
      ],
    },
    path: 'spec.sidecars[1]',
  },
  {
    name: 'a sidecar field that is not a Container field',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe', image: 'busybox', privileged: true }] },
    path: 'spec.sidecars[0].privileged',
    says: 'unknown field',
    zod: 'prunes',
  },
  {
    name: 'a sidecar port 0',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe', image: 'busybox', ports: [{ containerPort: 0 }] }] },
    path: 'spec.sidecars[0].ports[0].containerPort',
  },
  {
    name: 'a sidecar port name of 16 characters',
    kind: 'PushGateway',
    edits: {
      sidecars: [{ name: 'probe', image: 'busybox', ports: [{ containerPort: 7000, name: 'p'.repeat(16) }] }],
    },
    path: 'spec.sidecars[0].ports[0].name',
  },
  {
    name: "a sidecar on the gateway's websocket port",
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe', image: 'busybox', ports: [{ containerPort: 8080 }] }] },
    path: 'spec.sidecars',
    says: "gateway's websocket or metrics port",
  },
  {
    name: 'a sidecar port protocol HTTP',
    kind: 'PushGateway',
    edits: {
      sidecars: [{ name: 'probe', image: 'busybox', ports: [{ containerPort: 7000, protocol: 'HTTP' }] }],
    },
    path: 'spec.sidecars[0].ports[0].protocol',
  },
  {
    name: 'a sidecar env var without a name',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe', image: 'busybox', env: [{ value: 'x' }] }] },
    path: 'spec.sidecars[0].env[0].name',
    says: 'Required',
  },
  {
    name: 'a sidecar env var with value and valueFrom',
    kind: 'PushGateway',
    edits: {
      sidecars: [
        {
          name: 'probe',
          image: 'busybox',
          env: [{ name: 'A', value: 'x', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
        },
      ],
    },
    path: 'spec.sidecars[0].env',
    says: 'not both',
  },
  {
    name: "a sidecar env var name with '='",
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe', image: 'busybox', env: [{ name: 'A=B', value: 'x' }] }] },
    path: 'spec.sidecars[0].env[0].name',
  },
  {
    name: 'a sidecar mounting a volume the pod does not have',
    kind: 'PushGateway',
    edits: {
      sidecars: [{ name: 'probe', image: 'busybox', volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
    },
    path: 'spec.sidecars[0].volumeMounts[0].name',
  },
  {
    name: 'a sidecar mounting tls without spec.tls',
    kind: 'PushGateway',
    edits: {
      sidecars: [{ name: 'probe', image: 'busybox', volumeMounts: [{ name: 'tls', mountPath: '/tls' }] }],
    },
    path: 'spec.sidecars',
    says: 'only when spec.tls is set',
  },
  {
    name: 'a sidecar mount path that is relative',
    kind: 'PushGateway',
    edits: {
      ...pgwWithTls,
      sidecars: [{ name: 'probe', image: 'busybox', volumeMounts: [{ name: 'tls', mountPath: 'tls' }] }],
    },
    path: 'spec.sidecars[0].volumeMounts[0].mountPath',
  },
  {
    name: 'a sidecar imagePullPolicy Sometimes',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe', image: 'busybox', imagePullPolicy: 'Sometimes' }] },
    path: 'spec.sidecars[0].imagePullPolicy',
  },
  {
    name: 'a sidecar command that is a string',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe', image: 'busybox', command: 'sleep 1' }] },
    path: 'spec.sidecars[0].command',
  },
  // ---- keys: node selectors, annotations
  {
    name: 'a nodeSelector key with a space',
    kind: 'PushGateway',
    edits: { 'regions[0].nodeSelector': { 'node pool': 'gw' } },
    path: 'spec.regions[0].nodeSelector',
    says: 'qualified names',
  },
  {
    name: 'a nodeSelector value of 64 characters',
    kind: 'PushGateway',
    edits: { 'regions[0].nodeSelector': { pool: 'v'.repeat(64) } },
    path: 'spec.regions[0].nodeSelector',
  },
  {
    name: 'a nodeSelector value with a slash',
    kind: 'PushGateway',
    edits: { 'regions[0].nodeSelector': { pool: 'a/b' } },
    path: 'spec.regions[0].nodeSelector',
  },
  {
    name: 'a nodeSelector key with a capitalised prefix',
    kind: 'PushGateway',
    edits: { 'regions[0].nodeSelector': { 'Example.com/pool': 'gw' } },
    path: 'spec.regions[0].nodeSelector',
  },
  {
    name: 'an annotation key with two slashes',
    kind: 'PushGateway',
    edits: { 'service.annotations': { 'a/b/c': 'x' } },
    path: 'spec.service.annotations',
    says: 'qualified names',
  },
  {
    name: 'an annotation key with an empty prefix',
    kind: 'PushGateway',
    edits: { 'service.annotations': { '/name': 'x' } },
    path: 'spec.service.annotations',
  },
  {
    name: 'an annotation key whose name part is 64 characters',
    kind: 'PushGateway',
    edits: { 'service.annotations': { [`example.com/${'n'.repeat(64)}`]: 'x' } },
    path: 'spec.service.annotations',
  },
  // ---- tolerations, with the Pod's rules
  {
    name: 'a toleration Exists with a value',
    kind: 'PushGateway',
    edits: { 'placement.tolerations': [{ key: 'dedicated', operator: 'Exists', value: 'gw' }] },
    path: 'spec.placement.tolerations[0].value',
    says: 'cannot have a value',
  },
  {
    name: 'a toleration without a key and operator Equal',
    kind: 'PushGateway',
    edits: { 'placement.tolerations': [{ value: 'gw' }] },
    path: 'spec.placement.tolerations[0].operator',
    says: 'must use operator Exists',
  },
  {
    name: 'tolerationSeconds with effect NoSchedule',
    kind: 'PushGateway',
    edits: {
      'placement.tolerations': [{ key: 'k', value: 'v', effect: 'NoSchedule', tolerationSeconds: 30 }],
    },
    path: 'spec.placement.tolerations[0].tolerationSeconds',
    says: 'NoExecute',
  },
  {
    name: 'tolerationSeconds without an effect',
    kind: 'PushGateway',
    edits: { 'placement.tolerations': [{ key: 'k', value: 'v', tolerationSeconds: 30 }] },
    path: 'spec.placement.tolerations[0].tolerationSeconds',
  },
  {
    name: 'a toleration key with a space',
    kind: 'PushGateway',
    edits: { 'placement.tolerations': [{ key: 'bad key', operator: 'Exists' }] },
    path: 'spec.placement.tolerations[0].key',
  },
  {
    name: 'a toleration value with a space',
    kind: 'PushGateway',
    edits: { 'placement.tolerations': [{ key: 'k', value: 'a b' }] },
    path: 'spec.placement.tolerations[0].value',
  },
  // ---- Secret keys
  { name: 'a redis key of ..', kind: 'PushGateway', edits: { 'redis.key': '..' }, path: 'spec.redis.key' },
  { name: 'a redis key of .', kind: 'PushGateway', edits: { 'redis.key': '.' }, path: 'spec.redis.key' },
  {
    name: 'a redis key starting with .. (the Secret volume bookkeeping)',
    kind: 'PushGateway',
    edits: { 'redis.key': '..data' },
    path: 'spec.redis.key',
  },
  {
    name: 'a redis key with a slash',
    kind: 'PushGateway',
    edits: { 'redis.key': 'a/b' },
    path: 'spec.redis.key',
  },
  // ---- Redis cluster mode and key prefix (the programs' --redis-cluster and --key-prefix)
  {
    name: 'an empty redis keyPrefix',
    kind: 'PushGateway',
    edits: { 'redis.keyPrefix': '' },
    path: 'spec.redis.keyPrefix',
  },
  {
    name: 'a redis keyPrefix with a space',
    kind: 'PushGateway',
    edits: { 'redis.keyPrefix': 'team a' },
    path: 'spec.redis.keyPrefix',
  },
  {
    name: 'a redis keyPrefix with a brace (would pin every key to one cluster slot)',
    kind: 'PushGateway',
    edits: { 'redis.keyPrefix': '{pg}' },
    path: 'spec.redis.keyPrefix',
  },
  {
    name: 'a redis keyPrefix with a slash',
    kind: 'PushGateway',
    edits: { 'redis.keyPrefix': 'team/a' },
    path: 'spec.redis.keyPrefix',
  },
  {
    name: 'a redis keyPrefix of 65 characters',
    kind: 'PushGateway',
    edits: { 'redis.keyPrefix': 'p'.repeat(65) },
    path: 'spec.redis.keyPrefix',
  },
  {
    name: 'redis cluster as a string',
    kind: 'PushGateway',
    edits: { 'redis.cluster': 'yes' },
    path: 'spec.redis.cluster',
  },
  // ---- cross-field
  {
    name: 'nofile below maxConnectionsPerPod',
    kind: 'PushGateway',
    edits: { 'nodeTuning.nofile': 65_536 },
    path: 'spec.nodeTuning.nofile',
    says: 'maxConnectionsPerPod + 1024',
  },
  {
    name: 'nofile equal to maxConnectionsPerPod (no descriptors left for the process)',
    kind: 'PushGateway',
    edits: { 'nodeTuning.nofile': 100_000 },
    path: 'spec.nodeTuning.nofile',
  },
  // ---- TagCampaign
  {
    name: 'every anyOf tag also in noneOf',
    kind: 'TagCampaign',
    edits: { target: { anyOf: ['vip', 'gold'], noneOf: ['gold', 'vip'] } },
    path: 'spec.target.noneOf',
    says: 'matches no device',
  },
  {
    name: 'a duplicate allOf tag',
    kind: 'TagCampaign',
    edits: { 'target.allOf': ['vip', 'vip'] },
    path: 'spec.target.allOf[1]',
  },
  {
    name: 'a duplicate anyOf tag',
    kind: 'TagCampaign',
    edits: { target: { anyOf: ['a', 'b', 'a'] } },
    path: 'spec.target.anyOf[2]',
  },
  {
    name: 'a duplicate noneOf tag',
    kind: 'TagCampaign',
    edits: { 'target.noneOf': ['x', 'x'] },
    path: 'spec.target.noneOf[1]',
  },
  {
    name: 'a data key of 10000 characters',
    kind: 'TagCampaign',
    edits: { 'message.data': { ['k'.repeat(10_000)]: 'v' } },
    path: 'spec.message',
  },
  {
    name: 'a body over 4096 characters',
    kind: 'TagCampaign',
    edits: { 'message.body': 'b'.repeat(4097) },
    path: 'spec.message.body',
  },
  {
    name: 'a body of 3000 two-byte characters (6000 bytes)',
    kind: 'TagCampaign',
    edits: { 'message.body': 'é'.repeat(3000) },
    path: 'spec.message',
    says: '4096 bytes',
  },
  {
    name: 'title, body and data together over the push limit',
    kind: 'TagCampaign',
    edits: { message: { title: 't'.repeat(200), body: 'b'.repeat(3000), data: { k: 'v'.repeat(1000) } } },
    path: 'spec.message',
    says: '4096 bytes',
  },
  {
    name: 'a data value over 4096 characters',
    kind: 'TagCampaign',
    edits: { 'message.data': { k: 'v'.repeat(4097) } },
    path: 'spec.message.data',
  },
  {
    name: 'a TTL of 28 days (the old CRD bound)',
    kind: 'TagCampaign',
    edits: { 'message.ttlSeconds': 2_419_200 },
    path: 'spec.message.ttlSeconds',
  },
  {
    name: 'a collapse key with a space',
    kind: 'TagCampaign',
    edits: { 'message.collapseKey': 'big sale' },
    path: 'spec.message.collapseKey',
  },
  {
    name: 'a collapse key of 65 characters',
    kind: 'TagCampaign',
    edits: { 'message.collapseKey': 'c'.repeat(65) },
    path: 'spec.message.collapseKey',
  },
  { name: 'an app id starting with .', kind: 'TagCampaign', edits: { appId: '.shop' }, path: 'spec.appId' },
  {
    name: 'an app id with : (cannot be an apps Secret key)',
    kind: 'TagCampaign',
    edits: { appId: 'shop:1' },
    path: 'spec.appId',
  },
  {
    name: 'an app id of 129 characters',
    kind: 'TagCampaign',
    edits: { appId: 'a'.repeat(129) },
    path: 'spec.appId',
  },
  {
    name: 'a tag of 65 characters',
    kind: 'TagCampaign',
    edits: { 'target.allOf': ['t'.repeat(65)] },
    path: 'spec.target.allOf[0]',
  },
  {
    name: 'a tag with !',
    kind: 'TagCampaign',
    edits: { target: { anyOf: ['!vip'] } },
    path: 'spec.target.anyOf[0]',
  },
  {
    name: 'a tag with a brace',
    kind: 'TagCampaign',
    edits: { 'target.allOf': ['{vip}'] },
    path: 'spec.target.allOf[0]',
  },
  {
    name: 'a gatewayRef name in capitals',
    kind: 'TagCampaign',
    edits: { gatewayRef: { name: 'Main' } },
    path: 'spec.gatewayRef.name',
  },
  {
    name: "a gatewayRef to another namespace's gateway (only the campaign's own namespace)",
    kind: 'TagCampaign',
    edits: { gatewayRef: { name: 'main', namespace: 'other-team' } },
    path: 'spec.gatewayRef.namespace',
    says: 'unknown field',
    zod: 'prunes',
  },
  {
    name: 'cancel as a string',
    kind: 'TagCampaign',
    edits: { cancel: 'yes' },
    path: 'spec.cancel',
  },
  {
    name: 'a region named dispatcher (the dispatcher Deployment has that name)',
    kind: 'PushGateway',
    edits: { 'regions[0].name': 'dispatcher' },
    path: 'spec.regions',
    says: 'reserved',
  },
  {
    name: 'zero dispatcher replicas (turn it off with enabled: false)',
    kind: 'PushGateway',
    edits: { 'dispatcher.replicas': 0 },
    path: 'spec.dispatcher.replicas',
  },
  {
    name: 'a dispatcher memory request above its limit',
    kind: 'PushGateway',
    edits: { 'dispatcher.resources': { requests: { memory: '1Gi' }, limits: { memory: '512Mi' } } },
    path: 'spec.dispatcher.resources.requests',
  },
  // ---- RateLimitPolicy
  {
    name: 'an app id with @',
    kind: 'RateLimitPolicy',
    edits: { appIds: ['shop@x'] },
    path: 'spec.appIds[0]',
  },
  {
    name: 'an app id starting with .',
    kind: 'RateLimitPolicy',
    edits: { appIds: ['.hidden'] },
    path: 'spec.appIds[0]',
  },
];

export interface GoodManifestCase {
  name: string;
  kind: KindName;
  edits?: Record<string, unknown>;
  manifest?: (m: Manifest) => Manifest;
}

/**
 * Manifests at the edges that must be accepted (by the API server and by parse<Kind>): what the
 * device protocol allows, the exact bounds, the Pod shapes Kubernetes accepts.
 */
export const GOOD_MANIFESTS: readonly GoodManifestCase[] = [
  { name: 'a tag _beta (devices carry it)', kind: 'TagCampaign', edits: { 'target.allOf': ['_beta'] } },
  { name: 'an app id _internal (the gateway serves it)', kind: 'TagCampaign', edits: { appId: '_internal' } },
  { name: 'an app id of 128 characters', kind: 'TagCampaign', edits: { appId: 'a'.repeat(128) } },
  {
    name: 'tags with . : @ and a leading dot',
    kind: 'TagCampaign',
    edits: { target: { anyOf: ['.hidden', 'city:beijing', 'user@x', 't'.repeat(64)], noneOf: ['.hidden'] } },
  },
  {
    name: 'a collapse key _promo:2026',
    kind: 'TagCampaign',
    edits: { 'message.collapseKey': '_promo:2026' },
  },
  { name: 'a TTL of exactly 7 days', kind: 'TagCampaign', edits: { 'message.ttlSeconds': 604_800 } },
  { name: 'created already cancelled', kind: 'TagCampaign', edits: { cancel: true } },
  {
    name: 'the dispatcher off, or with 100 replicas',
    kind: 'PushGateway',
    edits: { dispatcher: { enabled: false, replicas: 100 } },
  },
  {
    name: 'a pending-handshake budget per address equal to the total',
    kind: 'PushGateway',
    edits: { protection: { maxPendingHandshakes: 50, maxPendingHandshakesPerAddress: 50 } },
  },
  { name: 'a TTL of 0 (now or never)', kind: 'TagCampaign', edits: { 'message.ttlSeconds': 0 } },
  {
    name: 'a body that makes the payload exactly 4096 bytes',
    kind: 'TagCampaign',
    edits: { message: { body: 'b'.repeat(4084) } },
  },
  {
    name: 'a PushGateway name of 52 with a 10-character region (63 exactly)',
    kind: 'PushGateway',
    manifest: named('g'.repeat(52)),
  },
  {
    name: 'a region name of 40 characters',
    kind: 'PushGateway',
    edits: { 'regions[0].name': 'r'.repeat(40) },
    manifest: named('gw-short'),
  },
  {
    name: 'hugepages and an extended resource, requests equal to limits',
    kind: 'PushGateway',
    edits: {
      resources: {
        requests: { cpu: 1, memory: '2Gi', 'hugepages-2Mi': '64Mi', 'example.com/nic': 1 },
        limits: { cpu: '1000m', memory: '2Gi', 'hugepages-2Mi': '64Mi', 'example.com/nic': 1 },
      },
    },
  },
  {
    name: 'a request below its limit in other units',
    kind: 'PushGateway',
    edits: { resources: { requests: { cpu: '500m', memory: '1000Mi' }, limits: { cpu: 1, memory: '1Gi' } } },
  },
  {
    name: 'a sidecar with ports, env, a tls mount and probes',
    kind: 'PushGateway',
    edits: {
      ...pgwWithTls,
      sidecars: [
        {
          name: 'envoy',
          image: 'envoyproxy/envoy:v1.31@sha256:' + 'a'.repeat(64),
          imagePullPolicy: 'IfNotPresent',
          args: ['--config-path', '/etc/envoy.yaml'],
          env: [
            { name: 'LOG_LEVEL', value: 'info' },
            { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          ],
          ports: [{ containerPort: 9901, name: 'admin', protocol: 'TCP' }],
          resources: { requests: { cpu: '100m' }, limits: { cpu: '200m' } },
          volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }],
          readinessProbe: { httpGet: { path: '/ready', port: 9901 } },
          securityContext: { runAsNonRoot: true },
        },
      ],
    },
  },
  {
    name: 'tolerations: Exists without a key, NoExecute with seconds, Equal with key and value',
    kind: 'PushGateway',
    edits: {
      'placement.tolerations': [
        { operator: 'Exists' },
        {
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 30,
        },
        { key: 'dedicated', value: 'gateways', effect: 'NoSchedule' },
      ],
    },
  },
  {
    name: 'a prefixed nodeSelector key and an empty value',
    kind: 'PushGateway',
    edits: { 'regions[0].nodeSelector': { 'node.example.com/pool': 'gateways', 'example.com/gw': '' } },
  },
  {
    name: 'cloud load-balancer annotations',
    kind: 'PushGateway',
    edits: {
      'service.annotations': {
        'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb',
        'example.com/note': 'free text, with spaces / and = signs',
      },
    },
  },
  {
    name: 'nofile of exactly maxConnectionsPerPod + 1024',
    kind: 'PushGateway',
    edits: { 'nodeTuning.nofile': 101_024 },
  },
  { name: 'a redis key .hidden (one dot is fine)', kind: 'PushGateway', edits: { 'redis.key': '.hidden' } },
  {
    name: 'a Redis Cluster with its own key prefix',
    kind: 'PushGateway',
    edits: { 'redis.cluster': true, 'redis.keyPrefix': 'team-a:push_2' },
  },
  {
    name: 'a redis keyPrefix of 64 characters',
    kind: 'PushGateway',
    edits: { 'redis.keyPrefix': 'p'.repeat(64) },
  },
  {
    name: 'anyOf with one tag not in noneOf',
    kind: 'TagCampaign',
    edits: { target: { anyOf: ['vip', 'gold'], noneOf: ['gold'] } },
  },
  {
    name: 'app ids _internal and shop-v2.beta',
    kind: 'RateLimitPolicy',
    edits: { appIds: ['_internal', 'shop-v2.beta'] },
  },
];

export const BAD_MANIFESTS: readonly BadManifestCase[] = [
  // ---- PushGateway
  {
    name: 'no regions',
    kind: 'PushGateway',
    edits: { regions: undefined },
    path: 'spec.regions',
    says: 'Required',
  },
  { name: 'empty regions', kind: 'PushGateway', edits: { regions: [] }, path: 'spec.regions' },
  {
    name: 'too many regions',
    kind: 'PushGateway',
    edits: { regions: Array.from({ length: 9 }, (_, i) => region(`r${i}`)) },
    path: 'spec.regions',
  },
  {
    name: 'no redis',
    kind: 'PushGateway',
    edits: { redis: undefined },
    path: 'spec.redis',
    says: 'Required',
  },
  {
    name: 'redis without secretName',
    kind: 'PushGateway',
    edits: { redis: { key: 'url' } },
    path: 'spec.redis.secretName',
  },
  {
    name: 'minReplicas > maxReplicas',
    kind: 'PushGateway',
    edits: { 'regions[0].minReplicas': 5, 'regions[0].maxReplicas': 2 },
    path: 'spec.regions[0].minReplicas',
    says: 'minReplicas must be less than or equal to maxReplicas',
  },
  {
    name: 'minReplicas above the default maxReplicas',
    kind: 'PushGateway',
    edits: { 'regions[0].minReplicas': 11 },
    path: 'spec.regions[0].minReplicas',
    says: 'minReplicas must be less than or equal to maxReplicas',
  },
  {
    name: 'target connections not below the hard max',
    kind: 'PushGateway',
    edits: { 'regions[0].targetConnectionsPerPod': 100_000, 'regions[0].maxConnectionsPerPod': 100_000 },
    path: 'spec.regions[0].targetConnectionsPerPod',
    says: 'targetConnectionsPerPod must be less than maxConnectionsPerPod',
  },
  {
    name: 'duplicate region names',
    kind: 'PushGateway',
    edits: { regions: [region('cn-east-1'), region('cn-east-1')] },
    path: 'spec.regions[1]',
  },
  {
    name: 'region name not a DNS label',
    kind: 'PushGateway',
    edits: { 'regions[0].name': 'CN_North' },
    path: 'spec.regions[0].name',
  },
  {
    name: 'minReplicas of the wrong type',
    kind: 'PushGateway',
    edits: { 'regions[0].minReplicas': 'two' },
    path: 'spec.regions[0].minReplicas',
    says: 'integer',
  },
  {
    name: 'zero minReplicas',
    kind: 'PushGateway',
    edits: { 'regions[0].minReplicas': 0 },
    path: 'spec.regions[0].minReplicas',
  },
  {
    name: 'zero drain rate',
    kind: 'PushGateway',
    edits: { 'drain.closesPerSecond': 0 },
    path: 'spec.drain.closesPerSecond',
  },
  {
    name: 'negative drain grace period',
    kind: 'PushGateway',
    edits: { 'drain.gracePeriodSeconds': -30 },
    path: 'spec.drain.gracePeriodSeconds',
  },
  {
    name: 'initial heartbeat above max',
    kind: 'PushGateway',
    edits: { 'heartbeat.initialSeconds': 600, 'heartbeat.maxSeconds': 300 },
    path: 'spec.heartbeat.initialSeconds',
    says: 'minSeconds <= initialSeconds <= maxSeconds',
  },
  {
    name: 'same port twice',
    kind: 'PushGateway',
    edits: { ports: { websocket: 9090, metrics: 9090 } },
    path: 'spec.ports.metrics',
    says: 'must differ',
  },
  {
    name: 'port out of range',
    kind: 'PushGateway',
    edits: { 'ports.websocket': 70_000 },
    path: 'spec.ports.websocket',
  },
  {
    name: 'unknown service type',
    kind: 'PushGateway',
    edits: { 'service.type': 'ExternalName' },
    path: 'spec.service.type',
    says: 'Unsupported value',
  },
  {
    name: 'bad resource quantity',
    kind: 'PushGateway',
    edits: { resources: { requests: { cpu: 'lots' } } },
    path: 'spec.resources.requests.cpu',
  },
  {
    name: 'sidecar without image',
    kind: 'PushGateway',
    edits: { sidecars: [{ name: 'probe' }] },
    path: 'spec.sidecars[0].image',
    says: 'Required',
  },
  {
    name: 'bad sysctl name',
    kind: 'PushGateway',
    edits: { 'nodeTuning.sysctls': { 'Net Core': '1' } },
    path: 'spec.nodeTuning.sysctls',
    says: 'sysctl names',
  },
  {
    name: 'file limit too low',
    kind: 'PushGateway',
    edits: { 'nodeTuning.nofile': 10 },
    path: 'spec.nodeTuning.nofile',
  },
  {
    name: 'unknown toleration operator',
    kind: 'PushGateway',
    edits: { 'placement.tolerations': [{ key: 'k', operator: 'Maybe' }] },
    path: 'spec.placement.tolerations[0].operator',
  },
  {
    name: 'tls without secretName',
    kind: 'PushGateway',
    edits: { tls: {} },
    path: 'spec.tls.secretName',
    says: 'Required',
  },
  {
    name: 'zero distinct tags per app',
    kind: 'PushGateway',
    edits: { 'protection.maxTagsPerApp': 0 },
    path: 'spec.protection.maxTagsPerApp',
  },
  {
    name: 'tag updates per minute above the cap',
    kind: 'PushGateway',
    edits: { 'protection.tagUpdatesPerMinute': 601 },
    path: 'spec.protection.tagUpdatesPerMinute',
  },
  {
    name: 'more pending handshakes per address than in total',
    kind: 'PushGateway',
    edits: { protection: { maxPendingHandshakes: 10, maxPendingHandshakesPerAddress: 11 } },
    path: 'spec.protection.maxPendingHandshakesPerAddress',
    says: 'cannot exceed',
  },
  {
    name: 'drain grace period too short for the connections of a pod',
    kind: 'PushGateway',
    edits: { drain: { closesPerSecond: 100, gracePeriodSeconds: 60 } },
    path: 'spec.drain.gracePeriodSeconds',
    says: 'too short',
  },
  {
    name: 'unknown spec field',
    kind: 'PushGateway',
    edits: { replicas: 3 },
    path: 'spec.replicas',
    says: 'unknown field',
    zod: 'prunes',
  },
  {
    name: 'unknown region field',
    kind: 'PushGateway',
    edits: { 'regions[0].zone': 'a' },
    path: 'spec.regions[0].zone',
    says: 'unknown field',
    zod: 'prunes',
  },
  // ---- TagCampaign
  {
    name: 'no spec at all',
    kind: 'TagCampaign',
    manifest: ({ spec: _spec, ...rest }) => rest,
    path: 'spec',
    says: 'Required',
  },
  {
    name: 'no gatewayRef',
    kind: 'TagCampaign',
    edits: { gatewayRef: undefined },
    path: 'spec.gatewayRef',
    says: 'Required',
  },
  {
    name: 'no appId',
    kind: 'TagCampaign',
    edits: { appId: undefined },
    path: 'spec.appId',
    says: 'Required',
  },
  { name: 'appId with spaces', kind: 'TagCampaign', edits: { appId: 'my shop' }, path: 'spec.appId' },
  {
    name: 'empty target',
    kind: 'TagCampaign',
    edits: { target: {} },
    path: 'spec.target',
    says: 'exactly one of allDevices',
  },
  {
    name: 'allDevices and tags together',
    kind: 'TagCampaign',
    edits: { target: { allDevices: true, anyOf: ['vip'] } },
    path: 'spec.target',
    says: 'exactly one of allDevices',
  },
  {
    name: 'only noneOf tags',
    kind: 'TagCampaign',
    edits: { target: { noneOf: ['vip'] } },
    path: 'spec.target',
    says: 'exactly one of allDevices',
  },
  {
    name: 'same tag in allOf and noneOf',
    kind: 'TagCampaign',
    edits: { target: { allOf: ['vip', 'beta'], noneOf: ['beta'] } },
    path: 'spec.target.noneOf',
    says: 'matches no device',
  },
  {
    name: 'tag with a space',
    kind: 'TagCampaign',
    edits: { 'target.allOf': ['big spender'] },
    path: 'spec.target.allOf[0]',
  },
  {
    name: 'empty message',
    kind: 'TagCampaign',
    edits: { message: {} },
    path: 'spec.message',
    says: 'a title, a body or data',
  },
  {
    name: 'unknown priority',
    kind: 'TagCampaign',
    edits: { 'message.priority': 'urgent' },
    path: 'spec.message.priority',
    says: 'Unsupported value',
  },
  {
    name: 'negative TTL',
    kind: 'TagCampaign',
    edits: { 'message.ttlSeconds': -1 },
    path: 'spec.message.ttlSeconds',
  },
  {
    name: 'TTL above 7 days (the push API bound)',
    kind: 'TagCampaign',
    edits: { 'message.ttlSeconds': 604_801 },
    path: 'spec.message.ttlSeconds',
  },
  {
    name: 'TTL of the wrong type',
    kind: 'TagCampaign',
    edits: { 'message.ttlSeconds': '1h' },
    path: 'spec.message.ttlSeconds',
    says: 'integer',
  },
  {
    name: 'zero rate',
    kind: 'TagCampaign',
    edits: { rate: { messagesPerSecond: 0 } },
    path: 'spec.rate.messagesPerSecond',
  },
  {
    name: 'negative burst',
    kind: 'TagCampaign',
    edits: { rate: { messagesPerSecond: 100, burst: -5 } },
    path: 'spec.rate.burst',
  },
  {
    name: 'rate without messagesPerSecond',
    kind: 'TagCampaign',
    edits: { rate: { burst: 10 } },
    path: 'spec.rate.messagesPerSecond',
    says: 'Required',
  },
  {
    name: 'deadline before start',
    kind: 'TagCampaign',
    edits: { schedule: { startTime: '2026-03-20T09:00:00+08:00', deadline: '2026-03-20T08:59:59+08:00' } },
    path: 'spec.schedule.deadline',
    says: 'deadline must be after startTime',
  },
  {
    name: 'start time not RFC 3339',
    kind: 'TagCampaign',
    edits: { 'schedule.startTime': 'tomorrow 9am' },
    path: 'spec.schedule.startTime',
  },
  {
    name: 'unknown time zone',
    kind: 'TagCampaign',
    edits: { 'schedule.quietHours': { timeZone: 'Mars/Olympus_Mons', start: '22:00', end: '08:00' } },
    path: 'spec.schedule.quietHours.timeZone',
    says: 'Mars/Olympus_Mons',
  },
  {
    name: 'time zone not shaped like one',
    kind: 'TagCampaign',
    edits: { 'schedule.quietHours': { timeZone: 'asia/shanghai', start: '22:00', end: '08:00' } },
    path: 'spec.schedule.quietHours.timeZone',
  },
  {
    name: 'time zone Local',
    kind: 'TagCampaign',
    edits: { 'schedule.quietHours': { timeZone: 'Local', start: '22:00', end: '08:00' } },
    path: 'spec.schedule.quietHours.timeZone',
  },
  {
    name: 'quiet hours at 25:00',
    kind: 'TagCampaign',
    edits: { 'schedule.quietHours': { timeZone: 'Asia/Shanghai', start: '25:00', end: '08:00' } },
    path: 'spec.schedule.quietHours.start',
  },
  {
    name: 'quiet hours that start when they end',
    kind: 'TagCampaign',
    edits: { 'schedule.quietHours': { timeZone: 'Asia/Shanghai', start: '08:00', end: '08:00' } },
    path: 'spec.schedule.quietHours.end',
    says: 'must differ',
  },
  {
    name: 'suspend of the wrong type',
    kind: 'TagCampaign',
    edits: { suspend: 'yes' },
    path: 'spec.suspend',
    says: 'boolean',
  },
  {
    name: 'unknown message field',
    kind: 'TagCampaign',
    edits: { 'message.sound': 'ding' },
    path: 'spec.message.sound',
    says: 'unknown field',
    zod: 'prunes',
  },
  // ---- RateLimitPolicy
  {
    name: 'no gatewayRef',
    kind: 'RateLimitPolicy',
    edits: { gatewayRef: undefined },
    path: 'spec.gatewayRef',
    says: 'Required',
  },
  {
    name: 'zero per-app rate',
    kind: 'RateLimitPolicy',
    edits: { 'perApp.messagesPerSecond': 0 },
    path: 'spec.perApp.messagesPerSecond',
  },
  {
    name: 'negative per-app burst',
    kind: 'RateLimitPolicy',
    edits: { 'perApp.burst': -1 },
    path: 'spec.perApp.burst',
  },
  {
    name: 'default campaign rate above the maximum',
    kind: 'RateLimitPolicy',
    edits: { campaigns: { defaultMessagesPerSecond: 6000, maxMessagesPerSecond: 5000 } },
    path: 'spec.campaigns.defaultMessagesPerSecond',
    says: 'must not exceed maxMessagesPerSecond',
  },
  {
    name: 'campaign maximum above the app rate',
    kind: 'RateLimitPolicy',
    edits: { 'perApp.messagesPerSecond': 1000 },
    path: 'spec.campaigns.maxMessagesPerSecond',
    says: 'must not exceed perApp.messagesPerSecond',
  },
  {
    name: 'per-device cap without messagesPerDay',
    kind: 'RateLimitPolicy',
    edits: { perDevice: {} },
    path: 'spec.perDevice.messagesPerDay',
    says: 'Required',
  },
  {
    name: 'high-priority cap above the daily cap',
    kind: 'RateLimitPolicy',
    edits: { perDevice: { messagesPerDay: 10, highPriorityMessagesPerDay: 11 } },
    path: 'spec.perDevice.highPriorityMessagesPerDay',
    says: 'must not exceed messagesPerDay',
  },
  {
    name: 'error ratio above 100 percent',
    kind: 'RateLimitPolicy',
    edits: { 'adaptive.errorRatioPercent': 150 },
    path: 'spec.adaptive.errorRatioPercent',
  },
  {
    name: 'decrease of 100 percent',
    kind: 'RateLimitPolicy',
    edits: { 'adaptive.decreasePercent': 100 },
    path: 'spec.adaptive.decreasePercent',
  },
  {
    name: 'duplicate app ids',
    kind: 'RateLimitPolicy',
    edits: { appIds: ['shop', 'shop'] },
    path: 'spec.appIds[1]',
  },
  { name: 'bad app id', kind: 'RateLimitPolicy', edits: { appIds: ['my shop'] }, path: 'spec.appIds[0]' },
  {
    name: 'unknown perApp field',
    kind: 'RateLimitPolicy',
    edits: { 'perApp.rate': 5 },
    path: 'spec.perApp.rate',
    says: 'unknown field',
    zod: 'prunes',
  },
  ...ISSUE_14_BAD_MANIFESTS,
];

/** `regions[0].minReplicas` -> ['regions', 0, 'minReplicas']. */
export function parsePath(path: string): (string | number)[] {
  return path
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

type Tree = Record<string | number, unknown>;

/** Sets (or with undefined, deletes) the value at `path` inside `root`, creating objects on the way. */
export function setPath(root: Tree, path: string, value: unknown): void {
  const keys = parsePath(path);
  let node: Tree = root;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Tree;
  }
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
}

/** The manifest a case describes, named `name` (unless the case names it itself). */
export function badManifest(c: BadManifestCase | GoodManifestCase, name: string): Manifest {
  const m = MINIMAL[c.kind](name);
  for (const [path, value] of Object.entries(c.edits ?? {})) setPath(m.spec!, path, structuredClone(value));
  return c.manifest ? c.manifest(m) : m;
}

/** A unique, DNS-safe object name for case number `i`. */
export const caseObjectName = (i: number) => `bad-${String(i).padStart(2, '0')}`;
