import * as k8s from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRedis, redisKeys, registerGateway } from '../../common/redis/index.js';
import { LABEL_COMPONENT } from '../../operator/identity.js';
import { LABEL_REGION } from '../../operator/controllers/pushgateway/names.js';
import { generateServingCert } from '../../workloads/metrics-adapter/tls.js';
import { buildMetricsAPIServices } from '../../workloads/metrics-adapter/wiring.js';
import { freePort } from './net.js';
import { repoRoot } from './stack.js';

export interface RunningAdapter {
  port: number;
  /** PEM of the adapter's serving certificate (the APIService caBundle). */
  servingCert: string;
  logs(): string;
  /** Whether the process is still running (bad input must not crash it). */
  alive(): boolean;
  stop(): Promise<void>;
}

/**
 * Runs the real `pushgate metrics-adapter` on the host and wires it into a local cluster the
 * way a cluster without in-cluster networking can reach it: a Service of type ExternalName
 * pointing at localhost (the aggregator dials localhost:<port>), and the two APIServices
 * with the adapter's certificate as caBundle. For the integration tests; resolves once the
 * aggregator reports the APIService Available.
 */
export async function startAdapterBehindAggregator(opts: {
  kubeconfig: string;
  redisUrl: string;
  keyPrefix: string;
  namespace: string;
  serviceName?: string;
  /** Create the APIServices here (default); false = someone else registers them (the operator). */
  registerAPIServices?: boolean;
}): Promise<RunningAdapter> {
  const serviceName = opts.serviceName ?? 'pushgate-metrics-adapter';
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(opts.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const registration = kc.makeApiClient(k8s.ApiregistrationV1Api);

  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pg-adapter-'));
  // The aggregator verifies the name it dials through the Service: <service>.<namespace>.svc.
  const serving = await generateServingCert([
    `${serviceName}.${opts.namespace}.svc`,
    'localhost',
    '127.0.0.1',
  ]);
  await writeFile(path.join(dir, 'tls.crt'), serving.cert);
  await writeFile(path.join(dir, 'tls.key'), serving.key);

  let logs = '';
  let exited = false;
  const child: ChildProcess = spawn(
    // One process (node with tsx's loader), not the tsx wrapper, so a signal reaches the program.
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(repoRoot, 'cli/pushgate.ts'),
      'metrics-adapter',
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--redis-url',
      opts.redisUrl,
      '--key-prefix',
      opts.keyPrefix,
      '--kubeconfig',
      opts.kubeconfig,
      '--tls-cert-file',
      path.join(dir, 'tls.crt'),
      '--tls-key-file',
      path.join(dir, 'tls.key'),
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PUSHGATE_LOG_LEVEL: 'info' } },
  );
  child.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
  const exitedPromise = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`metrics-adapter did not start in 30 s:\n${logs}`)),
      30_000,
    );
    const check = () => {
      if (logs.includes('metrics adapter serving')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    void exitedPromise.then(() => {
      clearTimeout(timer);
      reject(new Error(`metrics-adapter exited:\n${logs}`));
    });
  });

  await core.createNamespacedService({
    namespace: opts.namespace,
    body: {
      metadata: { name: serviceName },
      spec: { type: 'ExternalName', externalName: 'localhost', ports: [{ name: 'https', port }] },
    },
  });
  if (opts.registerAPIServices !== false) {
    for (const apiService of buildMetricsAPIServices({
      namespace: opts.namespace,
      name: serviceName,
      port,
      caBundle: serving.cert,
    })) {
      // A run that crashed may have left its APIService behind; the group has one owner.
      await registration.deleteAPIService({ name: apiService.metadata!.name! }).catch(() => undefined);
      await registration.createAPIService({ body: apiService });
    }
    await waitForMetricsAPIAvailable(opts.kubeconfig, 60_000, logs);
  }

  return {
    port,
    servingCert: serving.cert,
    logs: () => logs,
    alive: () => !exited,
    async stop() {
      for (const v of ['v1beta2', 'v1beta1']) {
        await registration.deleteAPIService({ name: `${v}.custom.metrics.k8s.io` }).catch(() => undefined);
      }
      if (!exited) {
        child.kill('SIGTERM');
        await exitedPromise;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves when the aggregator reports both custom.metrics.k8s.io APIServices Available. */
export async function waitForMetricsAPIAvailable(
  kubeconfig: string,
  timeoutMs = 60_000,
  context = '',
): Promise<void> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const registration = kc.makeApiClient(k8s.ApiregistrationV1Api);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(
      ['v1beta2', 'v1beta1'].map(async (v) => {
        const s = await registration
          .readAPIService({ name: `${v}.custom.metrics.k8s.io` })
          .catch(() => undefined);
        return s?.status?.conditions?.find((c) => c.type === 'Available');
      }),
    );
    if (states.every((c) => c?.status === 'True')) return;
    if (Date.now() > deadline) {
      throw new Error(`APIService not Available: ${JSON.stringify(states)}\n${context}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

export interface KwokMetrics {
  adapter: RunningAdapter;
  /** How many records the publisher wrote in its last round (one per running gateway pod). */
  published(): number;
  stop(): Promise<void>;
}

/**
 * The HPA's metric for gateway pods that run no gateway (kwok's): the real adapter behind the
 * aggregator, as above, and beside it a stand-in for what each gateway process would do, which
 * is to write its registry record (with its connection count) to Redis every few seconds. For
 * every running gateway pod of `namespace` it writes `connections(pod)` (0 by default: a kwok
 * pod holds no devices), so the operator's HPAs read a real value through the real
 * custom.metrics.k8s.io path and the PushGateway can honestly be Ready. Tests that leave this
 * out see what a cluster without an adapter sees: Ready=False, MetricsUnavailable.
 */
export async function startKwokMetrics(opts: {
  kubeconfig: string;
  redisUrl: string;
  namespace: string;
  keyPrefix?: string;
  /** A pod's count; undefined = publish nothing for it (a gateway that never registers). */
  connections?: (pod: string) => number | undefined;
  periodMs?: number;
}): Promise<KwokMetrics> {
  const keyPrefix = opts.keyPrefix ?? `pg-kwok-${opts.namespace}`;
  const adapter = await startAdapterBehindAggregator({
    kubeconfig: opts.kubeconfig,
    redisUrl: opts.redisUrl,
    keyPrefix,
    namespace: opts.namespace,
  });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(opts.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const redis = createRedis(opts.redisUrl);
  const keys = redisKeys(keyPrefix);
  let published = 0;
  let stopped = false;
  const publish = async () => {
    const pods = await core.listNamespacedPod({
      namespace: opts.namespace,
      labelSelector: `${LABEL_COMPONENT}=gateway`,
    });
    const running = pods.items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
    let n = 0;
    for (const p of running) {
      const name = p.metadata!.name!;
      const connections = opts.connections ? opts.connections(name) : 0;
      if (connections === undefined) continue;
      n++;
      await registerGateway(redis, keys, {
        id: `${opts.namespace}.${name}`,
        podName: name,
        namespace: opts.namespace,
        region: p.metadata?.labels?.[LABEL_REGION] ?? '',
        zone: '',
        endpoint: `ws://${p.status?.podIP ?? '127.0.0.1'}:1/v1/connect`,
        connections,
        maxConnections: 100_000,
        ready: true,
        draining: false,
        updatedAt: Date.now(),
      });
    }
    published = n;
  };
  const loop = (async () => {
    while (!stopped) {
      await publish().catch(() => undefined); // the next round retries; the records live 15 s
      await new Promise((r) => setTimeout(r, opts.periodMs ?? 2000));
    }
  })();
  return {
    adapter,
    published: () => published,
    async stop() {
      stopped = true;
      await loop;
      await adapter.stop();
      await redis.quit();
      await core
        .deleteNamespacedService({ namespace: opts.namespace, name: 'pushgate-metrics-adapter' })
        .catch(() => undefined);
    },
  };
}
