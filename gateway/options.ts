import os from 'node:os';
import { z } from 'zod';
import { opt, type ConfigOf } from '../common/config.js';
import { redisOptions } from '../common/redis/options.js';
import { MAX_TTL_SECONDS } from '../common/protocol/frames.js';

/** Every gateway setting, as flags and env (PUSHGATE_*); the operator passes them via env/ConfigMap. */
export const gatewayOptions = {
  port: {
    schema: opt.port(8080),
    description: 'Port for WebSocket devices, the push API, /metrics and health.',
  },
  host: { schema: opt.host(), description: 'Address to listen on.' },
  metricsPort: {
    schema: opt.port(0),
    description:
      'Port of /metrics and the health probes (plain HTTP, never TLS), apart from the public device port, ' +
      'which then serves no /metrics; 0 = serve them on --port.',
  },
  ...redisOptions,
  podName: {
    schema: z.string().default(os.hostname()),
    env: 'POD_NAME',
    description: 'Pod name, for the registry (downward API).',
  },
  namespace: {
    schema: z.string().default('default'),
    env: 'POD_NAMESPACE',
    description: 'Pod namespace, for the registry.',
  },
  gatewayId: {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/)
      .optional(),
    description:
      'Unique gateway id in the registry and routing (default: <namespace>.<pod name> in a pod, ' +
      '<namespace>.<hostname>.<pid> elsewhere). A gateway refuses to start on an id another live gateway holds.',
  },
  region: {
    schema: z.string().default('local'),
    description: 'Region of this gateway (topology.kubernetes.io/region).',
  },
  zone: {
    schema: z.string().default('local-a'),
    description: 'Zone of this gateway (topology.kubernetes.io/zone); --zone-file wins when it has one.',
  },
  zoneFile: {
    schema: z.string().optional(),
    description:
      "File holding this gateway's zone: in a pod, the Node's zone written by the node-topology init container.",
  },
  podIp: {
    schema: z.string().optional(),
    env: 'POD_IP',
    description: 'Pod IP (downward API): the default advertised address.',
  },
  tlsCertFile: {
    schema: z.string().optional(),
    description: 'TLS certificate (PEM); with --tls-key-file the port serves wss:// and https://.',
  },
  tlsKeyFile: { schema: z.string().optional(), description: 'TLS private key (PEM).' },
  advertiseUrl: {
    schema: z
      .string()
      .regex(/^wss?:\/\//, 'must be a ws:// or wss:// URL')
      .optional(),
    description:
      'Public WebSocket URL devices use for this gateway (default: ws://<host>:<port>/v1/connect).',
  },
  maxConnections: {
    schema: opt.positiveInt(100_000),
    description: 'Hard limit of device connections on this pod.',
  },
  acceptRate: {
    schema: opt.positiveInt(2000),
    description: 'New connections accepted per second (burst: the same number).',
  },
  heartbeatMinMs: { schema: opt.positiveInt(30_000), description: 'Shortest advised heartbeat interval.' },
  heartbeatMaxMs: { schema: opt.positiveInt(300_000), description: 'Longest advised heartbeat interval.' },
  heartbeatInitialMs: {
    schema: opt.positiveInt(60_000),
    description: 'Advised interval for a device with no history.',
  },
  helloTimeoutMs: {
    schema: opt.positiveInt(10_000),
    description: 'Time a new connection has to send hello.',
  },
  upgradeTimeoutMs: {
    schema: opt.positiveInt(10_000),
    description: 'Time a client has to send complete HTTP/upgrade headers.',
  },
  ackTimeoutMs: {
    schema: opt.positiveInt(10_000),
    description:
      'A push written to a device of an app with adaptive throttling (RateLimitPolicy spec.adaptive) and not acked within this many ms counts as a downstream timeout.',
  },
  drainRate: {
    schema: opt.positiveInt(500),
    description: 'Connections closed per second while draining (SIGTERM).',
  },
  drainGraceMs: {
    schema: opt.positiveInt(60_000),
    description: 'Longest drain; the close rate is raised if needed to finish within it.',
  },
  sendBufferBytes: {
    schema: opt.positiveInt(256 * 1024),
    description:
      'Per-connection send buffer limit; above it pushes stay in the store until the device catches up.',
  },
  frameRate: {
    schema: opt.positiveInt(20),
    description: 'Frames per second a device may send (burst: twice that).',
  },
  maxTagsPerApp: {
    schema: opt.positiveInt(10_000),
    description:
      'Distinct tags an app may have in its index; a device asking for a tag beyond them keeps its ' +
      'previous tags and gets an error frame tag_limit.',
  },
  tagUpdatesPerMinute: {
    schema: opt.positiveInt(30),
    description:
      'Tag/alias update frames a device may send per minute (burst: 10); more get an error frame rate_limited.',
  },
  maxPendingHandshakes: {
    schema: opt.positiveInt(1000),
    description:
      'Connections that have not said hello yet, in total: their own budget, outside --max-connections. ' +
      'When full, the one waiting longest is closed (1013), so idle sockets can never lock devices out.',
  },
  maxPendingHandshakesPerAddress: {
    schema: opt.positiveInt(100),
    description:
      'Connections that have not said hello yet, per source address (room for a reconnect storm behind ' +
      'one carrier NAT address; a handshake lasts about a round trip).',
  },
  maxInbox: {
    schema: opt.positiveInt(100),
    description: 'Offline messages kept per device (oldest dropped first).',
  },
  maxTtlSeconds: {
    schema: z.number().int().positive().max(MAX_TTL_SECONDS).default(MAX_TTL_SECONDS),
    description: `Longest TTL a push may ask for (at most ${MAX_TTL_SECONDS}, the protocol's bound).`,
  },
  maxRecipients: {
    schema: opt.positiveInt(100_000),
    description: 'Largest audience of one push API call (larger ones: TagCampaign).',
  },
  appsFile: {
    schema: z.string().optional(),
    description:
      'App secrets: a file of "app:secret" lines, or a directory with one file per app (a mounted Secret).',
  },
  apps: {
    schema: z.string().optional(),
    secret: true,
    description: 'App secrets inline: "app1:secret1,app2:secret2".',
  },
  registryIntervalMs: {
    schema: opt.positiveInt(5000),
    description: 'How often this gateway refreshes its registry record.',
  },
} as const;

export type GatewayConfig = ConfigOf<typeof gatewayOptions>;

/**
 * The gateway id when --gateway-id is not given. In a pod (POD_NAME from the downward API, or
 * --pod-name) the pod name is unique among live pods and the sidecar derives the same id.
 * Elsewhere the pod name defaults to the hostname, which every process on one host shares, so
 * the process id is added: two gateways started side by side never become one id (routing to
 * one would reach the other). The registry claim (claimGatewayId) backs this up at startup.
 */
export function defaultGatewayId(
  config: Pick<GatewayConfig, 'namespace' | 'podName'>,
  env: NodeJS.ProcessEnv = process.env,
  pid = process.pid,
  hostname = os.hostname(),
): string {
  const podNameGiven = env.POD_NAME !== undefined || config.podName !== hostname;
  return podNameGiven
    ? `${config.namespace}.${config.podName}`
    : `${config.namespace}.${config.podName}.${pid}`;
}
