import { createRequire } from 'node:module';
import os from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { z } from 'zod';
import { defineCommand, untilSignal } from '../cli/command.js';
import { ConfigError, kubeconfigOption, opt } from '../common/config.js';
import { readFileSync } from 'node:fs';
import { MetricsAPIServiceController } from './controllers/metrics-apiservice/controller.js';
import { parseAdapterServiceRef } from './controllers/metrics-apiservice/desired.js';
import { PushGatewayController } from './controllers/pushgateway/controller.js';
import { RateLimitPolicyController } from './controllers/ratelimitpolicy/controller.js';
import { GatewayRedis } from './controllers/shared/gateway-redis.js';
import { TagCampaignController } from './controllers/tagcampaign/controller.js';
import { EventRecorder } from './runtime/events.js';
import { KubeClient } from './runtime/kube.js';
import { Manager } from './runtime/manager.js';
import { OperatorMetrics } from './runtime/metrics.js';

const require = createRequire(import.meta.url);
function packageVersion(): string {
  // package.json sits two levels up from both operator/ (tsx) and dist/operator/ (compiled).
  for (const p of ['../package.json', '../../package.json']) {
    try {
      return (require(p) as { version: string }).version;
    } catch {
      /* try the next */
    }
  }
  return 'latest';
}

export const DEFAULT_IMAGE = `ghcr.io/pushgate/pushgate:${packageVersion()}`;

export const operatorCommand = defineCommand({
  name: 'operator',
  summary:
    'Run the pushgate operator: reconcile PushGateways into per-region gateways, with leader election.',
  options: {
    kubeconfig: kubeconfigOption,
    namespace: {
      schema: z.string().default(''),
      description: 'Watch only this namespace; empty = all namespaces.',
    },
    image: {
      schema: z.string().min(1).default(DEFAULT_IMAGE),
      description:
        'Image of the pods the operator creates when a PushGateway names none (one image runs every pushgate program).',
    },
    workers: { schema: opt.positiveInt(4), description: 'PushGateways reconciled in parallel.' },
    resyncSeconds: {
      schema: opt.duration(600),
      description: 'Re-deliver every cached object this often, to catch up on anything missed (0 = never).',
    },
    leaderElect: {
      schema: z.boolean().default(true),
      description: 'Elect a leader through a Lease, so only one replica acts.',
    },
    leaseName: {
      schema: z.string().min(1).default('pushgate-operator'),
      description: 'Name of the leader-election Lease.',
    },
    leaseNamespace: {
      schema: z.string().default(''),
      description:
        'Namespace of the Lease; empty = POD_NAMESPACE, else the service-account namespace, else default.',
    },
    leaseDurationSeconds: {
      schema: z.number().positive().default(15),
      description: 'How long a standby waits after the leader last renewed before taking over.',
    },
    renewDeadlineSeconds: {
      schema: z.number().positive().default(10),
      description:
        'The leader stops acting if it could not renew for this long (shorter than the lease duration).',
    },
    retryPeriodSeconds: {
      schema: z.number().positive().default(2),
      description: 'Time between tries to acquire or renew the Lease.',
    },
    identity: {
      schema: z.string().default(''),
      description: 'This replica in the Lease; empty = POD_NAME or hostname, plus the process id.',
    },
    metricsAdapterService: {
      schema: z
        .string()
        .regex(/^$|^[a-z0-9-]+\/[a-z0-9-]+:\d{1,5}$/, 'must be namespace/name:port')
        .default(''),
      description:
        'Service of the pushgate metrics adapter (namespace/name:port). When set, the operator registers the custom.metrics.k8s.io APIServices while any PushGateway has spec.metricsAdapter.enabled; empty = never (prometheus-adapter serves the metric).',
    },
    metricsAdapterCaFile: {
      schema: z.string().default(''),
      description:
        "PEM of the CA that signed the adapter's serving certificate (the APIService caBundle); empty = the APIService skips verifying it.",
    },
    campaignStatusSeconds: {
      schema: z.number().min(1).default(12),
      description:
        "How often a live TagCampaign's progress is read from Redis and its status written, at most (a finished campaign: never).",
    },
    campaignCleanupTimeoutSeconds: {
      schema: opt.duration(300),
      description:
        "How long a deleted TagCampaign waits for its gateway's Redis to remove its state before it is released anyway (with a Warning event).",
    },
    campaignOrphanSweepSeconds: {
      schema: opt.duration(60),
      description:
        "How often the leader removes published campaigns that have no TagCampaign from each PushGateway's Redis (a deletion that could not clean up while that Redis was down).",
    },
    probeHost: { schema: opt.host(), description: 'Address of the /healthz, /readyz and /metrics server.' },
    probePort: {
      schema: opt.port(8081),
      description: 'Port of the /healthz, /readyz and /metrics server (0 = any free port).',
    },
  },
  async run(config, log) {
    if (config.leaderElect && !(config.renewDeadlineSeconds < config.leaseDurationSeconds)) {
      throw new ConfigError('--renew-deadline-seconds must be shorter than --lease-duration-seconds');
    }
    if (config.leaderElect && !(config.retryPeriodSeconds < config.renewDeadlineSeconds)) {
      throw new ConfigError('--retry-period-seconds must be shorter than --renew-deadline-seconds');
    }
    const kc = new k8s.KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromCluster();
    const client = new KubeClient(kc);
    const metrics = new OperatorMetrics();
    const identity = config.identity || `${process.env.POD_NAME ?? os.hostname()}_${process.pid}`;
    const leaseNamespace =
      config.leaseNamespace ||
      process.env.POD_NAMESPACE ||
      kc.getContextObject(kc.currentContext)?.namespace ||
      'default';
    const manager = new Manager({
      client,
      metrics,
      log,
      probes: { host: config.probeHost, port: config.probePort },
      ...(config.namespace ? { namespace: config.namespace } : {}),
      resyncMs: config.resyncSeconds * 1000,
      ...(config.leaderElect
        ? {
            leaderElection: {
              namespace: leaseNamespace,
              name: config.leaseName,
              identity,
              leaseDurationMs: config.leaseDurationSeconds * 1000,
              renewDeadlineMs: config.renewDeadlineSeconds * 1000,
              retryPeriodMs: config.retryPeriodSeconds * 1000,
            },
          }
        : {}),
    });
    new PushGatewayController({
      client,
      manager,
      recorder: new EventRecorder(client, 'pushgate.dev/operator', identity, log),
      build: { defaultImage: config.image },
      workers: config.workers,
    });
    const adapterService = parseAdapterServiceRef(config.metricsAdapterService);
    new MetricsAPIServiceController({
      client,
      manager,
      log,
      service: adapterService && {
        ...adapterService,
        ...(config.metricsAdapterCaFile
          ? { caBundle: readFileSync(config.metricsAdapterCaFile, 'utf8') }
          : {}),
      },
    });
    const gatewayRedis = new GatewayRedis(client, log);
    const redisPublishers = new EventRecorder(client, 'pushgate.dev/operator', identity, log);
    const rateLimits = new RateLimitPolicyController({
      client,
      manager,
      log,
      recorder: redisPublishers,
      gatewayRedis,
    });
    const campaigns = new TagCampaignController({
      client,
      manager,
      log,
      recorder: redisPublishers,
      gatewayRedis,
      pollMs: config.campaignStatusSeconds * 1000,
      cleanupTimeoutMs: config.campaignCleanupTimeoutSeconds * 1000,
      orphanSweepMs: config.campaignOrphanSweepSeconds * 1000,
    });
    log.info({ identity, namespace: config.namespace || '<all>', leaseNamespace }, 'operator starting');
    const signal = untilSignal();
    await Promise.race([manager.start(), signal]);
    await signal;
    await manager.stop();
    rateLimits.close();
    campaigns.close();
    gatewayRedis.close();
  },
});
