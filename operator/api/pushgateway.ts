import { z } from 'zod';
import { PUSH_GATEWAY, REGION_LABEL } from './group.js';
import { DEFAULT_KEY_PREFIX, KEY_PREFIX_MAX, KEY_PREFIX_PATTERN } from '../../common/redis/keys.js';
import {
  DNS_1035_LABEL_PATTERN,
  DNS_LABEL_MAX,
  LABEL_VALUE_PATTERN,
  QUALIFIED_NAME_PATTERN,
  REGION_MAX,
  regionName,
} from '../../common/protocol/ids.js';
import {
  annotationsSchema,
  dnsLabel,
  isQualifiedName,
  kindSchema,
  labelMapSchema,
  type NameRules,
  type Rule,
  namedList,
  parseOrThrow,
  resourceRequirementsSchema,
  secretKeyReferenceSchema,
  stringMapSchema,
  withRules,
  withRootRules,
  objectName,
  defaultsToFull,
  statusBaseFields,
} from './shared.js';

/**
 * PushGateway: the device gateways of one push platform, spread over regions. Each region is
 * a Deployment of gateway pods on the nodes of that region, scaled by an HPA on connections
 * per pod, behind a Service; the operator drains pods at a set rate during rollouts.
 */

const port = (description: string, dflt: number) =>
  z.int().min(1).max(65535).default(dflt).describe(`${description} Defaults to ${dflt}.`);

const regionFieldsSchema = withRules(
  z.object({
    name: regionName.describe(
      `Region name, such as cn-north-1: a DNS label of at most ${REGION_MAX} characters. Unique in ` +
        `the list; by default pods run on nodes whose ${REGION_LABEL} label equals it. The region's ` +
        'Deployment, Service and autoscaler are named <gateway>-<region>, which must fit 63 characters.',
    ),
    nodeSelector: labelMapSchema(
      `Node labels the region's pods must match. Defaults to {"${REGION_LABEL}": <name>}.`,
      16,
    ).optional(),
    minReplicas: z
      .int()
      .min(1)
      .max(1000)
      .default(2)
      .describe('Fewest gateway pods the autoscaler keeps in this region. Defaults to 2.'),
    maxReplicas: z
      .int()
      .min(1)
      .max(1000)
      .default(10)
      .describe('Most gateway pods the autoscaler may run in this region. Defaults to 10.'),
    targetConnectionsPerPod: z
      .int()
      .min(1)
      .max(10_000_000)
      .default(50_000)
      .describe(
        'Average open device connections per pod the autoscaler (HPA) aims for; must be below ' +
          'maxConnectionsPerPod. Defaults to 50000.',
      ),
    maxConnectionsPerPod: z
      .int()
      .min(1)
      .max(10_000_000)
      .default(100_000)
      .describe(
        'Hard cap of open connections per pod; past it the pod refuses new devices and the ' +
          'locator sends them elsewhere. Defaults to 100000.',
      ),
  }),
  'One region of gateways: where its pods run and how far it scales.',
  [
    {
      rule: 'self.minReplicas <= self.maxReplicas',
      message: 'minReplicas must be less than or equal to maxReplicas',
      fieldPath: '.minReplicas',
      check: (r) => r.minReplicas <= r.maxReplicas,
    },
    {
      rule: 'self.targetConnectionsPerPod < self.maxConnectionsPerPod',
      message: 'targetConnectionsPerPod must be less than maxConnectionsPerPod',
      fieldPath: '.targetConnectionsPerPod',
      check: (r) => r.targetConnectionsPerPod < r.maxConnectionsPerPod,
    },
  ],
);

/** The node selector of a region's pods: its own, or the region label equal to its name. */
export const regionNodeSelector = (region: {
  name: string;
  nodeSelector?: Record<string, string> | undefined;
}) => region.nodeSelector ?? { [REGION_LABEL]: region.name };

/**
 * A region, with nodeSelector filled in by parse (the API server cannot default one field from
 * another, so the stored object may lack it; controllers always see it set).
 */
export const regionSchema = regionFieldsSchema.transform((region) => ({
  ...region,
  nodeSelector: regionNodeSelector(region),
}));
export type PushGatewayRegion = z.output<typeof regionSchema>;

export const portsSchema = withRules(
  z.object({
    websocket: port('Container port devices connect to (WebSocket, and the push HTTP API).', 8080),
    metrics: port('Container port of the Prometheus /metrics endpoint and health probes.', 9090),
  }),
  'Container ports of the gateway.',
  [
    {
      rule: 'self.websocket != self.metrics',
      message: 'websocket and metrics ports must differ',
      fieldPath: '.metrics',
      check: (p) => p.websocket !== p.metrics,
    },
  ],
);

export const tlsSchema = z
  .object({
    secretName: objectName('Name of a kubernetes.io/tls Secret (tls.crt, tls.key) in the same namespace.'),
  })
  .describe(
    'Serve devices over TLS (wss://) with this certificate. Omit to serve plain ws:// (TLS ends at a load balancer).',
  );

export const appsSchema = z
  .object({
    secretName: objectName(
      'Name of a Secret in the same namespace with one key per app: the key is the app id, the value ' +
        'its secret (16 characters or more). The secret signs device tokens and authenticates the ' +
        "app's push API calls. Gateways read it when they start: after changing it, restart them " +
        '(kubectl rollout restart).',
    ),
  })
  .describe('The apps this gateway serves. Omit only for a gateway that serves no real app yet.');

export const heartbeatSchema = withRules(
  z.object({
    minSeconds: z
      .int()
      .min(5)
      .max(3600)
      .default(30)
      .describe('Shortest heartbeat interval the gateway tells a device to use. Defaults to 30.'),
    maxSeconds: z
      .int()
      .min(5)
      .max(3600)
      .default(300)
      .describe(
        'Longest heartbeat interval a device may grow to when its network keeps the connection ' +
          'alive (smart heartbeat). Defaults to 300.',
      ),
    initialSeconds: z
      .int()
      .min(5)
      .max(3600)
      .default(60)
      .describe('Heartbeat interval a newly connected device starts with. Defaults to 60.'),
  }),
  'Smart heartbeat: devices start at initialSeconds and adapt between minSeconds and maxSeconds.',
  [
    {
      rule: 'self.minSeconds <= self.initialSeconds && self.initialSeconds <= self.maxSeconds',
      message: 'heartbeat must satisfy minSeconds <= initialSeconds <= maxSeconds',
      fieldPath: '.initialSeconds',
      check: (h) => h.minSeconds <= h.initialSeconds && h.initialSeconds <= h.maxSeconds,
    },
  ],
);

export const drainSchema = z
  .object({
    closesPerSecond: z
      .int()
      .min(1)
      .max(100_000)
      .default(500)
      .describe(
        'Connections a draining pod closes per second (close code 1012, so devices reconnect ' +
          'elsewhere without a reconnect storm). Defaults to 500, like EMQX.',
      ),
    gracePeriodSeconds: z
      .int()
      .min(1)
      .max(86_400)
      .default(300)
      .describe(
        'Most seconds a pod may spend draining before it is killed (its terminationGracePeriodSeconds). ' +
          'Defaults to 300.',
      ),
  })
  .describe('How gateway pods hand their connections over when they stop (rollouts, scale-down).');

/**
 * Abuse protection of every gateway pod: what one device, one app or one source address may cost.
 * The defaults equal the gateway's own flag defaults (a unit test holds them together).
 */
export const protectionSchema = withRules(
  z.object({
    maxTagsPerApp: z
      .int()
      .min(1)
      .max(1_000_000)
      .default(10_000)
      .describe(
        'Distinct tags an app may have in its tag index (Redis memory is the bound). A device asking for a tag ' +
          'beyond them keeps its previous tags and gets the error frame tag_limit. Defaults to 10000.',
      ),
    tagUpdatesPerMinute: z
      .int()
      .min(1)
      .max(600)
      .default(30)
      .describe(
        'Tag/alias update frames one device may send per minute (burst 10); more get the error frame ' +
          'rate_limited. Defaults to 30.',
      ),
    framesPerSecond: z
      .int()
      .min(1)
      .max(1000)
      .default(20)
      .describe('Frames per second one device may send (burst: twice that). Defaults to 20.'),
    maxPendingHandshakes: z
      .int()
      .min(1)
      .max(1_000_000)
      .default(1000)
      .describe(
        'Connections per pod that have not said hello yet, in total. They have their own budget, outside ' +
          'maxConnectionsPerPod, so unauthenticated sockets can never lock devices out; when full, the one ' +
          'waiting longest is closed (1013). Defaults to 1000.',
      ),
    maxPendingHandshakesPerAddress: z
      .int()
      .min(1)
      .max(1_000_000)
      .default(100)
      .describe(
        'Connections per pod without hello from one source address (room for a reconnect storm behind one ' +
          'carrier NAT address). Defaults to 100.',
      ),
  }),
  'Abuse protection: what one device, app or source address may cost a gateway pod.',
  [
    {
      rule: 'self.maxPendingHandshakesPerAddress <= self.maxPendingHandshakes',
      message: 'protection.maxPendingHandshakesPerAddress cannot exceed protection.maxPendingHandshakes',
      fieldPath: '.maxPendingHandshakesPerAddress',
      check: (p) => p.maxPendingHandshakesPerAddress <= p.maxPendingHandshakes,
    },
  ],
);

export const redisSchema = secretKeyReferenceSchema('Redis URL (redis://... or rediss://...)', 'url')
  .extend({
    cluster: z
      .boolean()
      .default(false)
      .describe(
        'The URL is a seed node of a Redis Cluster (its user and password apply to every node). ' +
          'Passed to the gateways and the dispatcher (PUSHGATE_REDIS_CLUSTER) and used by the ' +
          'operator when it publishes limits and campaigns into this Redis. Defaults to false.',
      ),
    keyPrefix: z
      .string()
      .min(1)
      .max(KEY_PREFIX_MAX)
      .regex(new RegExp(KEY_PREFIX_PATTERN), 'must be letters, digits, :, _ and -')
      .default(DEFAULT_KEY_PREFIX)
      .describe(
        `Prefix of every Redis key of this gateway (letters, digits, :, _ and -; at most ${KEY_PREFIX_MAX} ` +
          'characters). Gateways with different prefixes can share one Redis as separate platforms. ' +
          'Passed to the gateways and the dispatcher (PUSHGATE_KEY_PREFIX) and used by the operator ' +
          `for this gateway's limits and campaigns; a metrics adapter must be given the same prefix. ` +
          `Defaults to "${DEFAULT_KEY_PREFIX}". Changing it starts the platform afresh (devices' ` +
          'routes and offline messages stay under the old prefix).',
      ),
  })
  .describe('The Redis that holds presence, routing and offline messages: a Secret key holding its URL.');

/** An image reference: no whitespace (the kubelet would fail to pull `nginx ` at run time). */
const imageSchema = (description: string) =>
  z
    .string()
    .min(1)
    .max(1024)
    .regex(/^\S+$/, 'must be an image reference without whitespace')
    .describe(description);

/** Containers the operator itself puts in every gateway pod; a sidecar cannot take their names. */
export const BUILT_IN_CONTAINERS = ['gateway', 'sidecar', 'node-topology'] as const;
/** Pod volumes a sidecar may mount: those the gateway pod has (tls and apps, when set). */
export const POD_VOLUMES = ['tls', 'apps'] as const;

const containerPortSchema = z
  .object({
    containerPort: z.int().min(1).max(65535).describe('Port the container listens on.'),
    name: z
      .string()
      .min(1)
      .max(15)
      .regex(
        /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
        'must be an IANA service name: lower-case letters, digits and -',
      )
      .optional()
      .describe('Port name (at most 15 characters), unique in the pod.'),
    protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional().describe('TCP (the default), UDP or SCTP.'),
  })
  .describe('A port of the sidecar.');

const envVarSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[ -<>-~]+$/, "must be printable ASCII without '='")
      .describe('Variable name.'),
    value: z.string().max(32768).optional().describe('Literal value.'),
    valueFrom: z
      .looseObject({})
      .meta({
        description: 'A core/v1 EnvVarSource (fieldRef, secretKeyRef, ...), checked by the API server.',
        'x-kubernetes-preserve-unknown-fields': true,
      })
      .optional(),
  })
  .describe('An environment variable of the sidecar.');

const volumeMountSchema = z
  .object({
    name: z
      .enum(POD_VOLUMES)
      .describe(
        'Volume of the gateway pod to mount: tls or apps (present when spec.tls or spec.apps is set).',
      ),
    mountPath: z
      .string()
      .min(1)
      .max(4096)
      .regex(/^\//, 'must be an absolute path')
      .describe('Where to mount it.'),
    readOnly: z.boolean().optional().describe('Mount read-only.'),
  })
  .describe('A volume of the gateway pod mounted into the sidecar.');

const probeSchema = (what: string) =>
  z
    .looseObject({})
    .meta({
      description: `${what}: a core/v1 Probe, checked by the API server when the Deployment is created.`,
      'x-kubernetes-preserve-unknown-fields': true,
    })
    .optional();

/**
 * A helper container next to the gateway: the core/v1 Container fields a sidecar needs, each
 * checked here (a field not listed is refused by strict validation, or pruned), so a sidecar
 * that cannot run is refused when it is applied, not when its Deployment is.
 */
export const sidecarSchema = withRules(
  z.object({
    name: dnsLabel('Container name, unique in the pod; not gateway or sidecar (the built-in containers).'),
    image: imageSchema('Container image.'),
    imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional().describe('Image pull policy.'),
    command: z
      .array(z.string().max(4096).describe('One word of the command.'))
      .max(64)
      .optional()
      .describe("Entrypoint (replaces the image's)."),
    args: z
      .array(z.string().max(4096).describe('One argument.'))
      .max(256)
      .optional()
      .describe('Arguments to the entrypoint.'),
    workingDir: z.string().max(4096).optional().describe('Working directory.'),
    env: z.array(envVarSchema).max(64).optional().describe('Environment variables.'),
    ports: z.array(containerPortSchema).max(16).optional().describe('Ports the sidecar listens on.'),
    resources: resourceRequirementsSchema.optional(),
    volumeMounts: z
      .array(volumeMountSchema)
      .max(2)
      .optional()
      .describe('Volumes of the gateway pod to mount.'),
    livenessProbe: probeSchema('Liveness probe'),
    readinessProbe: probeSchema('Readiness probe'),
    startupProbe: probeSchema('Startup probe'),
    securityContext: z
      .looseObject({})
      .meta({
        description: 'A core/v1 SecurityContext, checked by the API server when the Deployment is created.',
        'x-kubernetes-preserve-unknown-fields': true,
      })
      .optional(),
  }),
  'A container run beside the gateway in every gateway pod (a subset of core/v1 Container).',
  [
    {
      rule: `!(self.name in [${BUILT_IN_CONTAINERS.map((n) => `'${n}'`).join(', ')}])`,
      message: `${BUILT_IN_CONTAINERS.join(', ')} are the names of the built-in containers`,
      fieldPath: '.name',
      check: (c) => !(BUILT_IN_CONTAINERS as readonly string[]).includes(c.name),
    },
    {
      rule: '!has(self.env) || self.env.all(e, !(has(e.value) && has(e.valueFrom)))',
      message: 'an env var has value or valueFrom, not both',
      fieldPath: '.env',
      check: (c) => (c.env ?? []).every((e) => !(e.value !== undefined && e.valueFrom !== undefined)),
    },
  ],
);
export type Sidecar = z.output<typeof sidecarSchema>;

const SYSCTL_NAME = /^[a-z0-9]([-_a-z0-9]*[a-z0-9])?([./][a-z0-9]([-_a-z0-9]*[a-z0-9])?)*$/;

export const nodeTuningSchema = withRules(
  z.object({
    enabled: z
      .boolean()
      .default(false)
      .describe(
        'Run the node tuner DaemonSet (privileged) on the gateway nodes to raise kernel limits ' +
          'for many long-lived connections. Defaults to false.',
      ),
    sysctls: stringMapSchema(
      'Kernel parameters to set on the gateway nodes, overriding the tuner built-in values (e.g. ' +
        '{"net.core.somaxconn": "65535"}).',
      64,
    ).default({}),
    nofile: z
      .int()
      .min(1024)
      .max(16_777_216)
      .default(1_048_576)
      .describe('Open-file (file descriptor) limit for the gateway process. Defaults to 1048576.'),
  }),
  'Kernel tuning of the nodes gateways run on (file limits, socket buffers, port ranges).',
  [
    {
      rule: "self.sysctls.all(k, k.matches('^[a-z0-9]([-_a-z0-9]*[a-z0-9])?([./][a-z0-9]([-_a-z0-9]*[a-z0-9])?)*$'))",
      message: 'sysctl names must look like net.core.somaxconn',
      fieldPath: '.sysctls',
      check: (t) => Object.keys(t.sysctls).every((k) => SYSCTL_NAME.test(k)),
    },
  ],
);

export const serviceSchema = z
  .object({
    type: z
      .enum(['ClusterIP', 'NodePort', 'LoadBalancer'])
      .default('LoadBalancer')
      .describe('Type of the per-region Service devices connect through. Defaults to LoadBalancer.'),
    annotations: annotationsSchema(
      'Annotations for the Services (cloud load-balancer settings, for example); keys are qualified names.',
    ).default({}),
  })
  .describe('How the gateways of each region are exposed.');

export const tolerationSchema = withRules(
  z.object({
    key: z
      .string()
      .max(317)
      .optional()
      .describe('Taint key the toleration applies to (a qualified name); empty with Exists = every taint.'),
    operator: z
      .enum(['Exists', 'Equal'])
      .default('Equal')
      .describe('Exists (any value) or Equal (value must match). Defaults to Equal.'),
    value: z.string().max(DNS_LABEL_MAX).optional().describe('Taint value to match when operator is Equal.'),
    effect: z
      .enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute'])
      .optional()
      .describe('Taint effect to match; empty matches every effect.'),
    tolerationSeconds: z
      .int()
      .optional()
      .describe('For NoExecute: how long the pod stays bound after the taint appears.'),
  }),
  "A core/v1 Toleration, with the API server's rules for Pods.",
  [
    {
      rule: `!has(self.key) || self.key == '' || (self.key.matches(r'${QUALIFIED_NAME_PATTERN}') && (!self.key.contains('/') || self.key.indexOf('/') <= 253))`,
      message: 'the key must be a qualified name such as example.com/dedicated',
      fieldPath: '.key',
      check: (t) => !t.key || isQualifiedName(t.key),
    },
    {
      rule: "(has(self.key) && self.key != '') || self.operator == 'Exists'",
      message: 'a toleration without a key must use operator Exists (it then tolerates every taint)',
      fieldPath: '.operator',
      check: (t) => !!t.key || t.operator === 'Exists',
    },
    {
      rule: "self.operator != 'Exists' || !has(self.value) || self.value == ''",
      message: 'a toleration with operator Exists cannot have a value',
      fieldPath: '.value',
      check: (t) => t.operator !== 'Exists' || !t.value,
    },
    {
      rule: `!has(self.value) || self.value.matches(r'${LABEL_VALUE_PATTERN}')`,
      message: 'the value must be a label value (letters, digits, - _ . inside, at most 63)',
      fieldPath: '.value',
      check: (t) => !t.value || new RegExp(LABEL_VALUE_PATTERN).test(t.value),
    },
    {
      rule: "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
      message: 'tolerationSeconds applies only to effect NoExecute',
      fieldPath: '.tolerationSeconds',
      check: (t) => t.tolerationSeconds === undefined || t.effect === 'NoExecute',
    },
  ],
);

export const placementSchema = z
  .object({
    tolerations: z
      .array(tolerationSchema)
      .max(32)
      .default([])
      .describe('Tolerations of the gateway pods (for dedicated gateway nodes).'),
    zoneSpread: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            "Spread each region's pods across its zones (topology.kubernetes.io/zone). Defaults to true.",
          ),
        maxSkew: z
          .int()
          .min(1)
          .max(100)
          .default(1)
          .describe('Largest allowed difference in pod count between two zones. Defaults to 1.'),
        whenUnsatisfiable: z
          .enum(['ScheduleAnyway', 'DoNotSchedule'])
          .default('ScheduleAnyway')
          .describe(
            'What to do when the spread cannot be kept: ScheduleAnyway or DoNotSchedule. Defaults to ScheduleAnyway.',
          ),
      })
      .prefault({})
      .describe('Topology spread of gateway pods across zones inside a region.'),
  })
  .describe('Where gateway pods may run inside a region.');

export const scalingSchema = z
  .object({
    scaleDownStabilizationSeconds: z
      .int()
      .min(0)
      .max(3600)
      .default(300)
      .describe(
        'Seconds the autoscaler waits on lower recommendations before scaling down (HPA ' +
          'stabilization window), so a dip does not cost reconnects. Defaults to 300.',
      ),
    scaleDownPodsPerMinute: z
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe('Most pods the autoscaler removes per minute in one region. Defaults to 1.'),
  })
  .describe('Autoscaler behaviour; scale-down is slow because every removed pod drains connections.');

export const metricsAdapterSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'Register the pushgate custom metrics APIService so the HPA can scale on connections per ' +
          'pod. Defaults to true; turn off when prometheus-adapter serves the metric.',
      ),
  })
  .describe('The custom metrics API the autoscaler reads connection counts from.');

export const DISPATCHER_REGION_RESERVED = 'dispatcher';

export const dispatcherSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'Run the campaign dispatcher (pushgate dispatcher) for this gateway: it sends the TagCampaigns that ' +
          'name it. Defaults to true; without it campaigns stay at 0 sent.',
      ),
    replicas: z
      .int()
      .min(1)
      .max(100)
      .default(2)
      .describe(
        "Dispatcher pods; they split each campaign's devices by bucket and share its rate. Defaults to 2.",
      ),
    resources: resourceRequirementsSchema
      .prefault({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } })
      .describe(
        'CPU and memory of each dispatcher container. Defaults to requests cpu 100m, memory 128Mi and limit memory 512Mi.',
      ),
  })
  .describe(
    'The campaign dispatcher Deployment (<gateway>-dispatcher): the same image and Redis Secret as the gateways.',
  );

export const pushGatewaySpecSchema = withRules(
  z.object({
    image: imageSchema(
      "Gateway container image. Defaults to the operator's own image (one image runs every pushgate program).",
    ).optional(),
    imagePullPolicy: z
      .enum(['Always', 'IfNotPresent', 'Never'])
      .default('IfNotPresent')
      .describe('Image pull policy of the gateway containers. Defaults to IfNotPresent.'),
    resources: resourceRequirementsSchema
      .prefault({ requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '4Gi' } })
      .describe(
        'CPU and memory of each gateway container. Defaults to requests cpu 1, memory 2Gi and ' +
          'limit memory 4Gi (about 100000 connections at ~20 KB each, plus headroom).',
      ),
    regions: namedList(
      regionSchema,
      { min: 1, max: 8 },
      'The regions gateways run in (1 to 8), keyed by name.',
    ),
    ports: defaultsToFull(portsSchema),
    tls: tlsSchema.optional(),
    apps: appsSchema.optional(),
    heartbeat: defaultsToFull(heartbeatSchema),
    drain: defaultsToFull(drainSchema),
    protection: defaultsToFull(protectionSchema),
    redis: redisSchema,
    sidecars: namedList(
      sidecarSchema,
      { max: 8 },
      'Extra containers in every gateway pod, keyed by name.',
    ).default([]),
    nodeTuning: defaultsToFull(nodeTuningSchema),
    service: defaultsToFull(serviceSchema),
    placement: defaultsToFull(placementSchema),
    scaling: defaultsToFull(scalingSchema),
    metricsAdapter: defaultsToFull(metricsAdapterSchema),
    dispatcher: defaultsToFull(dispatcherSchema),
  }),
  'Desired state of the gateways.',
  [
    {
      rule: `!self.regions.exists(r, r.name == '${DISPATCHER_REGION_RESERVED}')`,
      message: `the region name ${DISPATCHER_REGION_RESERVED} is reserved: <gateway>-${DISPATCHER_REGION_RESERVED} is the campaign dispatcher's Deployment`,
      fieldPath: '.regions',
      check: (s) => !s.regions.some((r) => r.name === DISPATCHER_REGION_RESERVED),
    },
    {
      // One descriptor per device connection, plus the process's own (Redis, listeners, files).
      rule: 'self.regions.all(r, r.maxConnectionsPerPod + 1024 <= self.nodeTuning.nofile)',
      message:
        'nodeTuning.nofile must be at least maxConnectionsPerPod + 1024 in every region (one file ' +
        "descriptor per connection, plus the process's own)",
      fieldPath: '.nodeTuning.nofile',
      check: (s) => s.regions.every((r) => r.maxConnectionsPerPod + 1024 <= s.nodeTuning.nofile),
    },
    {
      rule:
        'self.sidecars.all(c, !has(c.ports) || c.ports.all(p, p.containerPort != self.ports.websocket && ' +
        'p.containerPort != self.ports.metrics))',
      message: "a sidecar cannot listen on the gateway's websocket or metrics port",
      fieldPath: '.sidecars',
      check: (s) =>
        s.sidecars.every((c) =>
          (c.ports ?? []).every(
            (p) => p.containerPort !== s.ports.websocket && p.containerPort !== s.ports.metrics,
          ),
        ),
    },
    {
      rule:
        "self.sidecars.all(c, !has(c.volumeMounts) || c.volumeMounts.all(m, (m.name == 'tls' && has(self.tls)) || " +
        "(m.name == 'apps' && has(self.apps))))",
      message: 'a sidecar can mount tls only when spec.tls is set, and apps only when spec.apps is set',
      fieldPath: '.sidecars',
      check: (s) =>
        s.sidecars.every((c) =>
          (c.volumeMounts ?? []).every(
            (m) => (m.name === 'tls' && s.tls !== undefined) || (m.name === 'apps' && s.apps !== undefined),
          ),
        ),
    },
    {
      // A pod killed before its connections are closed drops them all at once: the reconnect
      // storm the paced drain exists to prevent.
      rule: 'self.regions.all(r, r.maxConnectionsPerPod <= self.drain.closesPerSecond * self.drain.gracePeriodSeconds)',
      message:
        'drain.gracePeriodSeconds is too short to close maxConnectionsPerPod connections at drain.closesPerSecond; ' +
        'raise it to at least maxConnectionsPerPod / closesPerSecond',
      fieldPath: '.drain.gracePeriodSeconds',
      check: (s) =>
        s.regions.every(
          (r) => r.maxConnectionsPerPod <= s.drain.closesPerSecond * s.drain.gracePeriodSeconds,
        ),
    },
  ],
);
export type PushGatewaySpec = z.output<typeof pushGatewaySpecSchema>;
/** What a user may write (before defaults): every defaulted field optional. */
export type PushGatewaySpecInput = z.input<typeof pushGatewaySpecSchema>;

export const regionStatusSchema = z
  .object({
    name: dnsLabel('Region name, as in spec.regions.'),
    replicas: z.int().nonnegative().default(0).describe('Gateway pods in the region.'),
    readyReplicas: z.int().nonnegative().default(0).describe('Gateway pods that are ready.'),
    connections: z.int().nonnegative().default(0).describe('Open device connections in the region.'),
  })
  .describe('Observed state of one region.');
export type PushGatewayRegionStatus = z.output<typeof regionStatusSchema>;

export const pushGatewayStatusSchema = z
  .object({
    ...statusBaseFields,
    regions: namedList(
      regionStatusSchema,
      { max: 8 },
      'Per-region replicas and connections, keyed by name.',
    ).optional(),
    readyRegions: z
      .string()
      .max(16)
      .optional()
      .describe('Regions whose pods are all ready, over all regions, such as 3/3 (for kubectl get).'),
    replicas: z.int().nonnegative().optional().describe('Gateway pods over all regions.'),
    readyReplicas: z.int().nonnegative().optional().describe('Ready gateway pods over all regions.'),
    connections: z.int().nonnegative().optional().describe('Open device connections over all regions.'),
  })
  .describe('Observed state of the gateways, written by the operator.');
export type PushGatewayStatus = z.output<typeof pushGatewayStatusSchema>;

/**
 * Rules on the whole object (they read metadata.name, which a spec rule cannot see). Every child
 * is named <name>-<suffix>; the longest is a region's Service, <name>-<region>, and a Service
 * name is an RFC 1035 label of at most 63 characters. The name is also a label value
 * (app.kubernetes.io/instance), so it has the same bound.
 */
export const PUSH_GATEWAY_NAME_RULES: NameRules = {
  pattern: DNS_1035_LABEL_PATTERN,
  maxLength: DNS_LABEL_MAX,
  message:
    'must be an RFC 1035 label (lower-case letters, digits and -, starting with a letter), because it names Services',
};
export const pushGatewayRootRules: readonly Rule<{
  metadata: { name?: string | undefined };
  spec: { regions: readonly { name: string }[] };
}>[] = [
  {
    rule: 'self.spec.regions.all(r, size(self.metadata.name) + 1 + size(r.name) <= 63)',
    message:
      'metadata.name and a region name together are too long: the region Service <name>-<region> must fit 63 characters',
    fieldPath: '.metadata.name',
    check: (o) => o.spec.regions.every((r) => (o.metadata.name ?? '').length + 1 + r.name.length <= 63),
  },
];

export const pushGatewaySchema = withRootRules(
  kindSchema(PUSH_GATEWAY, pushGatewaySpecSchema, pushGatewayStatusSchema, PUSH_GATEWAY_NAME_RULES),
  pushGatewayRootRules,
);
export type PushGateway = z.output<typeof pushGatewaySchema>;

/** Validates a PushGateway (from the API server or a file) and applies the documented defaults. */
export const parsePushGateway = (obj: unknown): PushGateway =>
  parseOrThrow(PUSH_GATEWAY.kind, pushGatewaySchema, obj);
