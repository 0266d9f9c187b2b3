import { z } from 'zod';
import { envOf, opt } from '../../common/config.js';
import { redisOptions } from '../../common/redis/options.js';
import { gatewayOptions } from '../../gateway/options.js';

/** Every sidecar setting (flags and PUSHGATE_* env); the operator sets them in the gateway pod. */
export const sidecarOptions = {
  gatewayPort: {
    schema: opt.port(8080),
    // The gateway's own variable (PUSHGATE_PORT), which both containers read from the pod's ConfigMap.
    env: envOf('port', gatewayOptions.port),
    description: "Port of the gateway in the same pod (the gateway's own port variable).",
  },
  gatewayUrl: {
    schema: z.url({ protocol: /^https?$/ }).optional(),
    description:
      'HTTP base URL of the gateway (WebSocket and push API); default http://127.0.0.1:<gateway port>.',
  },
  // The gateway's own specs: the same flags and variables (the pod sets them once for both).
  ...redisOptions,
  podName: gatewayOptions.podName,
  namespace: gatewayOptions.namespace,
  gatewayId: gatewayOptions.gatewayId,
  probeApp: {
    schema: z.string().min(1).default('pushgate-probe'),
    description:
      'App id the probe device belongs to; the gateway must know it (its own app, never a real one).',
  },
  probeSecret: {
    schema: z.string().min(16, 'at least 16 characters (the gateway refuses shorter app secrets)'),
    secret: true,
    description: 'Secret of the probe app (signs the probe device token, authenticates its push).',
  },
  probeDevice: {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9._:@-]{1,128}$/)
      .optional(),
    description: 'Device id of the probe (default: probe-<pod name>).',
  },
  intervalSeconds: { schema: opt.duration(5), description: 'Seconds between probes.' },
  timeoutMs: {
    schema: opt.positiveInt(3000),
    description: 'A probe that has not completed by then failed.',
  },
  // Own variables: the pod's ConfigMap sets PUSHGATE_PORT for the gateway, which shares the
  // network namespace; reading it here would make both listen on one port.
  port: {
    schema: opt.port(9091),
    env: 'PUSHGATE_SIDECAR_PORT',
    description: 'Port of /metrics and /healthz.',
  },
  host: { schema: opt.host(), env: 'PUSHGATE_SIDECAR_HOST', description: 'Address to listen on.' },
} as const;
