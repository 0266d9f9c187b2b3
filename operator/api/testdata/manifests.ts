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
    redis: { secretName: 'pushgate-redis', key: 'url' },
    sidecars: [],
    nodeTuning: { enabled: false, sysctls: {}, nofile: 1_048_576 },
    service: { type: 'LoadBalancer', annotations: {} },
    placement: {
      tolerations: [],
      zoneSpread: { enabled: true, maxSkew: 1, whenUnsatisfiable: 'ScheduleAnyway' },
    },
    scaling: { scaleDownStabilizationSeconds: 300, scaleDownPodsPerMinute: 1 },
    metricsAdapter: { enabled: true },
  },
  TagCampaign: {
    gatewayRef: { name: 'main' },
    appId: 'shop',
    target: { allDevices: false, allOf: ['vip'] },
    message: { title: 'Hello', ttlSeconds: 86_400, priority: 'normal' },
    schedule: {},
    suspend: false,
    dryRun: false,
  },
  RateLimitPolicy: {
    gatewayRef: { name: 'main' },
    appIds: [],
    perApp: { messagesPerSecond: 10_000, burst: 10_000 },
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
    name: 'TTL above 28 days',
    kind: 'TagCampaign',
    edits: { 'message.ttlSeconds': 2_419_201 },
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

/** The manifest a case describes, named `name`. */
export function badManifest(c: BadManifestCase, name: string): Manifest {
  const m = MINIMAL[c.kind](name);
  for (const [path, value] of Object.entries(c.edits ?? {})) setPath(m.spec!, path, structuredClone(value));
  return c.manifest ? c.manifest(m) : m;
}

/** A unique, DNS-safe object name for case number `i`. */
export const caseObjectName = (i: number) => `bad-${String(i).padStart(2, '0')}`;
