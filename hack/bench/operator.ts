/**
 * `npm run bench:operator [-- --counts 50,200 --idle-seconds 60 --kubeconfig PATH --redis-url URL]`, or `-- --quick`
 *
 * Applies N PushGateways at once (three regions each) to a real local control plane (kwok
 * nodes, real scheduler and controller manager) and measures, for the operator running as
 * its own process:
 * - time from the first apply until every PushGateway reports Ready=True;
 * - the operator's RSS (peak while converging, and once idle), against the same operator
 *   with no PushGateways (the baseline, measured in the same run);
 * - API requests and writes per minute once idle, lease renewals counted apart (an idle
 *   operator should make none: no hot loops), and reconciles per minute once idle.
 * Without --kubeconfig it starts a private cluster with 3 nodes per zone (27 nodes) so the
 * pods fit; each count gets a fresh namespace and a fresh operator process. Ready includes the
 * HPAs reading their metric: the metrics adapter runs beside, and a stand-in publishes the kwok
 * pods' connection counts to Redis (`--redis-url`, or one started by hack/local-redis).
 */
import { readFileSync } from 'node:fs';
import type { KubeClient } from '../../operator/runtime/kube.js';
import { type KubeObject } from '../../operator/runtime/kube.js';
import { Resources } from '../../operator/runtime/resources.js';
import { PushGatewayResource } from '../../operator/controllers/pushgateway/controller.js';
import {
  startCluster,
  startRedis,
  type StartedCluster,
  type StartedRedis,
} from '../../test/support/stack.js';
import {
  clientFor,
  createGatewaySecrets,
  installCRDs,
  metricSum,
  probe,
  startOperator,
  type OperatorProcess,
} from '../../test/support/operator.js';
import { startKwokMetrics } from '../../test/support/metrics-adapter.js';
import { parsePrometheusText } from '../../test/support/prometheus.js';
import { compileShipped, type Shipped } from './compile.js';
import { progress, report, type BenchRow } from './report.js';

interface Args {
  counts: number[];
  idleSeconds: number;
  /** Wait after all are Ready before the idle window (HPA status updates, last rollouts). */
  settleSeconds: number;
  readyTimeoutSeconds: number;
  kubeconfig?: string;
  redisUrl?: string;
  /** false: run the operator from source under tsx (quick mode; its RSS then includes tsx's loader). */
  compile: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    counts: [50, 200],
    idleSeconds: 60,
    settleSeconds: 15,
    readyTimeoutSeconds: 900,
    compile: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--no-compile') {
      a.compile = false;
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--counts') a.counts = value.split(',').map(Number);
    else if (flag === '--idle-seconds') a.idleSeconds = Number(value);
    else if (flag === '--settle-seconds') a.settleSeconds = Number(value);
    else if (flag === '--ready-timeout-seconds') a.readyTimeoutSeconds = Number(value);
    else if (flag === '--kubeconfig') a.kubeconfig = value;
    else if (flag === '--redis-url') a.redisUrl = value;
    else
      throw new Error(
        `unknown flag ${flag} (--counts, --idle-seconds, --settle-seconds, --ready-timeout-seconds, --kubeconfig, --redis-url, --no-compile, --quick)`,
      );
    i++;
  }
  if (a.counts.some((n) => !Number.isInteger(n) || n < 1 || n > 1000))
    throw new Error('--counts: integers 1..1000');
  return a;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** A small three-region PushGateway: one pod per region so hundreds fit on kwok nodes. */
function benchGateway(namespace: string, name: string): KubeObject {
  return {
    metadata: { name, namespace },
    spec: {
      resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '128Mi' } },
      regions: ['cn-north-1', 'cn-east-1', 'cn-south-1'].map((r) => ({
        name: r,
        minReplicas: 1,
        maxReplicas: 3,
      })),
      redis: { secretName: 'pushgate-redis' },
    },
  };
}

const isReadyNow = (
  gw: KubeObject & {
    status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] };
  },
) =>
  gw.status?.observedGeneration === gw.metadata?.generation &&
  gw.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** pushgate_operator_enqueues_total by `trigger/mode`. */
async function enqueueCounts(port: number): Promise<Map<string, number>> {
  const { body } = await probe(port, '/metrics');
  const out = new Map<string, number>();
  for (const s of parsePrometheusText(body)) {
    if (s.name !== 'pushgate_operator_enqueues_total') continue;
    const k = `${s.labels.trigger}/${s.labels.mode}`;
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}

interface RunResult {
  count: number;
  readySeconds: number;
  allReady: boolean;
  baselineRss: number;
  peakRss: number;
  idleRss: number;
  idleRequestsPerMin: number;
  idleWritesPerMin: number;
  idleLeaseRequestsPerMin: number;
  idleReconcilesPerMin: number;
  /** What brought keys back while idle: `trigger/mode` -> count. */
  idleTriggers: string;
  reconciles: number;
  reconcileErrors: number;
}

async function runOnce(
  kubeconfig: string,
  client: KubeClient,
  count: number,
  a: Args,
  compiledCli: string | undefined,
  redisUrl: string,
): Promise<RunResult> {
  const ns = `bench-op-${count}-${Date.now().toString(36)}`;
  await client.create(Resources.Namespace, { metadata: { name: ns } });
  await createGatewaySecrets(client, ns);
  const metrics = await startKwokMetrics({ kubeconfig, redisUrl, namespace: ns });
  const op: OperatorProcess = startOperator(
    kubeconfig,
    ['--namespace', ns, '--lease-namespace', ns],
    {},
    compiledCli,
  );
  try {
    const port = await op.probePort;
    for (let i = 0; (await fetch(`http://127.0.0.1:${port}/readyz`)).status !== 200; i++) {
      if (i > 300) throw new Error('operator not ready after 60 s');
      await sleep(200);
    }
    while ((await metricSum(port, 'leader_election_master_status')) !== 1) await sleep(200);
    await sleep(2000);
    const baselineRss = rssBytes(op.pid);
    progress(
      `${count} PushGateways: operator up (pid ${op.pid}, RSS ${(baselineRss / 2 ** 20).toFixed(0)} MiB); applying`,
    );

    let peakRss = baselineRss;
    const sampler = setInterval(() => {
      try {
        peakRss = Math.max(peakRss, rssBytes(op.pid));
      } catch {
        /* process gone */
      }
    }, 500);
    const t0 = Date.now();
    const names = Array.from({ length: count }, (_, i) => `gw-${String(i).padStart(3, '0')}`);
    await pool(names, 32, (n) =>
      client.apply(PushGatewayResource, benchGateway(ns, n), { fieldManager: 'bench' }),
    );
    progress(`applied ${count} in ${((Date.now() - t0) / 1000).toFixed(1)} s; waiting for Ready`);

    let readyMs = 0;
    let allReady = false;
    let lastLog = 0;
    while (Date.now() - t0 < a.readyTimeoutSeconds * 1000) {
      const list = (await client.list(PushGatewayResource, ns)).items;
      const ready = list.filter(isReadyNow).length;
      if (ready === count) {
        readyMs = Date.now() - t0;
        allReady = true;
        break;
      }
      if (Date.now() - lastLog > 10_000) {
        progress(`${ready}/${count} Ready after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
        lastLog = Date.now();
      }
      await sleep(1000);
    }
    if (!allReady) readyMs = Date.now() - t0;
    progress(
      `${allReady ? 'all Ready' : 'NOT all Ready'} after ${(readyMs / 1000).toFixed(1)} s; settling, then ${a.idleSeconds} s idle window`,
    );

    // Let the tail (HPA status updates, last rollouts) settle before measuring idleness.
    await sleep(a.settleSeconds * 1000);
    const snapshot = async () => ({
      requests: await metricSum(
        port,
        'pushgate_operator_api_requests_total',
        (l) => l.resource !== 'leases' && l.verb !== 'WATCH',
      ),
      writes: await metricSum(
        port,
        'pushgate_operator_api_requests_total',
        (l) => l.resource !== 'leases' && /^(APPLY|PATCH|POST|PUT|DELETE)$/.test(l.verb ?? ''),
      ),
      lease: await metricSum(port, 'pushgate_operator_api_requests_total', (l) => l.resource === 'leases'),
      reconciles: await metricSum(port, 'controller_runtime_reconcile_total'),
      triggers: await enqueueCounts(port),
    });
    const before = await snapshot();
    await sleep(a.idleSeconds * 1000);
    const after = await snapshot();
    clearInterval(sampler);
    const perMin = (d: number) => (d * 60) / a.idleSeconds;
    return {
      count,
      readySeconds: readyMs / 1000,
      allReady,
      baselineRss,
      peakRss,
      idleRss: rssBytes(op.pid),
      idleRequestsPerMin: perMin(after.requests - before.requests),
      idleWritesPerMin: perMin(after.writes - before.writes),
      idleLeaseRequestsPerMin: perMin(after.lease - before.lease),
      idleReconcilesPerMin: perMin(after.reconciles - before.reconciles),
      idleTriggers:
        [...after.triggers]
          .map(([k, v]) => [k, v - (before.triggers.get(k) ?? 0)] as const)
          .filter(([, d]) => d > 0)
          .map(([k, d]) => `${k}=${d}`)
          .join(' ') || 'none',
      reconciles: after.reconciles,
      reconcileErrors: await metricSum(port, 'controller_runtime_reconcile_errors_total'),
    };
  } finally {
    await op.stop();
    await metrics.stop();
    // Do not wait for the namespace to drain: the next count has its own namespace.
    await client.delete(Resources.Namespace, undefined, ns).catch(() => undefined);
  }
}

export default async function operatorBench(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  const startedAt = new Date();
  let cluster: StartedCluster | undefined;
  let redis: StartedRedis | undefined;
  let kubeconfig = a.kubeconfig;
  let redisUrl = a.redisUrl;
  if (!redisUrl) {
    redis = await startRedis('bench-operator');
    redisUrl = redis.url;
  }
  if (!kubeconfig) {
    progress('starting a private cluster (27 kwok nodes)');
    cluster = await startCluster('bench-operator', { PUSHGATE_NODES_PER_ZONE: '3' });
    kubeconfig = cluster.kubeconfig;
  }
  const client = clientFor(kubeconfig);
  const rows: BenchRow[] = [];
  let shipped: Shipped | undefined;
  try {
    // Measure the operator as it ships: compiled JavaScript, not TypeScript under tsx (whose
    // loader alone adds ~100 MiB of RSS). Quick mode skips the compile and says so.
    let compiledCli: string | undefined;
    if (a.compile) {
      shipped = compileShipped();
      compiledCli = shipped.cli;
    }
    await installCRDs(kubeconfig);
    // Three Services per PushGateway outgrow the local cluster's /24 service range; add a
    // range through the API (networking.k8s.io/v1 ServiceCIDR) rather than restart the cluster.
    await client
      .apply(
        Resources.ServiceCIDR,
        { metadata: { name: 'bench-operator' }, spec: { cidrs: ['10.100.0.0/16'] } },
        { fieldManager: 'bench' },
      )
      .catch((err: unknown) =>
        progress(`could not add a ServiceCIDR (${String(err)}); more than ~80 PushGateways will not fit`),
      );
    for (const count of a.counts) {
      const r = await runOnce(kubeconfig, client, count, a, compiledCli, redisUrl);
      const mib = (b: number) => b / 2 ** 20;
      const p = `pgw=${count}`;
      rows.push(
        {
          metric: `${p} time until all Ready`,
          unit: 's',
          value: r.readySeconds,
          note: `${r.allReady ? `${count * 3} Deployments` : 'TIMED OUT'}${a.compile ? '' : '; operator under tsx (--no-compile)'}`,
        },
        {
          metric: `${p} operator RSS peak`,
          unit: 'MiB',
          value: mib(r.peakRss),
          baseline: mib(r.baselineRss),
          baselineName: 'same operator, 0 PushGateways',
        },
        {
          metric: `${p} operator RSS idle`,
          unit: 'MiB',
          value: mib(r.idleRss),
          baseline: mib(r.baselineRss),
          baselineName: 'same operator, 0 PushGateways',
        },
        {
          metric: `${p} idle API writes/min`,
          unit: '/min',
          value: r.idleWritesPerMin,
          note: 'apply/patch/create/update/delete, lease excluded',
        },
        {
          metric: `${p} idle API requests/min`,
          unit: '/min',
          value: r.idleRequestsPerMin,
          note: 'all verbs but WATCH, lease excluded',
        },
        {
          metric: `${p} idle lease requests/min`,
          unit: '/min',
          value: r.idleLeaseRequestsPerMin,
          note: 'leader election renewals',
        },
        {
          metric: `${p} idle reconciles/min`,
          unit: '/min',
          value: r.idleReconcilesPerMin,
          note: `triggers: ${r.idleTriggers}`,
        },
        {
          metric: `${p} reconciles to converge`,
          unit: 'count',
          value: r.reconciles,
          note: `${r.reconcileErrors} errors`,
        },
      );
    }
  } finally {
    shipped?.remove();
    client.close();
    await cluster?.down();
    await redis?.down();
  }
  report(
    'operator',
    { counts: a.counts, idleSeconds: a.idleSeconds, regionsPerGateway: 3, compiled: a.compile },
    rows,
    startedAt,
  );
}
