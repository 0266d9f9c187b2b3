import { z } from 'zod';
import { PUSH_GATEWAY, REGION_LABEL } from './group.js';
import {
  dnsLabel,
  kindSchema,
  namedList,
  parseOrThrow,
  resourceRequirementsSchema,
  secretKeyReferenceSchema,
  stringMapSchema,
  withRules,
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
    name: dnsLabel(
      'Region name, such as cn-north-1. Unique in the list; by default pods run on nodes whose ' +
        `${REGION_LABEL} label equals it.`,
    ),
    nodeSelector: stringMapSchema(
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

export const redisSchema = secretKeyReferenceSchema(
  'Redis URL (redis://... or rediss://...)',
  'url',
).describe('The Redis that holds presence, routing and offline messages: a Secret key holding its URL.');

/**
 * A helper container next to the gateway. name and image are checked; every other core/v1
 * Container field is passed through to the Pod as written (the API server validates it when the
 * Deployment is created).
 */
export const sidecarSchema = z
  .looseObject({
    name: dnsLabel('Container name, unique in the pod.'),
    image: z.string().min(1).max(1024).describe('Container image.'),
  })
  .meta({
    description:
      'A core/v1 Container run beside the gateway (name and image required; other Container fields are passed through).',
    'x-kubernetes-preserve-unknown-fields': true,
  });
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
    annotations: stringMapSchema(
      'Annotations for the Services (cloud load-balancer settings, for example).',
    ).default({}),
  })
  .describe('How the gateways of each region are exposed.');

export const tolerationSchema = z
  .object({
    key: z
      .string()
      .max(316)
      .optional()
      .describe('Taint key the toleration applies to; empty with Exists = every taint.'),
    operator: z
      .enum(['Exists', 'Equal'])
      .default('Equal')
      .describe('Exists (any value) or Equal (value must match). Defaults to Equal.'),
    value: z.string().max(63).optional().describe('Taint value to match when operator is Equal.'),
    effect: z
      .enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute'])
      .optional()
      .describe('Taint effect to match; empty matches every effect.'),
    tolerationSeconds: z
      .int()
      .optional()
      .describe('For NoExecute: how long the pod stays bound after the taint appears.'),
  })
  .describe('A core/v1 Toleration.');

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

export const pushGatewaySpecSchema = withRules(
  z.object({
    image: z
      .string()
      .min(1)
      .max(1024)
      .optional()
      .describe(
        "Gateway container image. Defaults to the operator's own image (one image runs every pushgate program).",
      ),
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
  }),
  'Desired state of the gateways.',
  [
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

export const pushGatewaySchema = kindSchema(PUSH_GATEWAY, pushGatewaySpecSchema, pushGatewayStatusSchema);
export type PushGateway = z.output<typeof pushGatewaySchema>;

/** Validates a PushGateway (from the API server or a file) and applies the documented defaults. */
export const parsePushGateway = (obj: unknown): PushGateway =>
  parseOrThrow(PUSH_GATEWAY.kind, pushGatewaySchema, obj);
