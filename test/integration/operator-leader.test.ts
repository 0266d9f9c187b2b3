import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { KubeObject } from '../../operator/runtime/kube.js';
import { Resources } from '../../operator/runtime/resources.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { startKwokMetrics, type KwokMetrics } from '../support/metrics-adapter.js';
import {
  applyPushGateway,
  clientFor,
  createGatewaySecrets,
  getOrUndefined,
  installCRDs,
  isReady,
  metricSum,
  samplePushGateway,
  startOperator,
  type OperatorProcess,
} from '../support/operator.js';

/**
 * Leader election between real operator processes on the shared control plane: one leads,
 * the standby does nothing; SIGKILL the leader and the standby takes over once the lease
 * runs out, and keeps reconciling; SIGTERM a leader and it hands over at once (lease released).
 */
const kubeconfig = inject('kubeconfig');
const client = clientFor(kubeconfig);
const LEASE_SECONDS = 8;
const RETRY_SECONDS = 1;
let ns: string;
const operators: OperatorProcess[] = [];

type Lease = KubeObject & { spec?: { holderIdentity?: string | null; leaseTransitions?: number } };
const holder = async () =>
  (await getOrUndefined<Lease>(client, Resources.Lease, ns, 'op-leader'))?.spec?.holderIdentity ?? '';

function start(identity: string): OperatorProcess {
  const op = startOperator(kubeconfig, [
    ...['--namespace', ns, '--lease-namespace', ns, '--lease-name', 'op-leader', '--identity', identity],
    ...[
      '--lease-duration-seconds',
      String(LEASE_SECONDS),
      '--renew-deadline-seconds',
      '5',
      '--retry-period-seconds',
      String(RETRY_SECONDS),
    ],
  ]);
  operators.push(op);
  return op;
}

const reconciles = async (op: OperatorProcess) =>
  metricSum(await op.probePort, 'controller_runtime_reconcile_total');
const isLeaderMetric = async (op: OperatorProcess) =>
  metricSum(await op.probePort, 'leader_election_master_status');

let metrics: KwokMetrics;

beforeAll(async () => {
  ns = await createTestNamespace(testKubeConfig(inject('kubeconfig')), 'op-leader');
  await installCRDs(kubeconfig);
  await createGatewaySecrets(client, ns);
  metrics = await startKwokMetrics({ kubeconfig, redisUrl: inject('redisUrl'), namespace: ns });
});

afterAll(async () => {
  await Promise.all(operators.map((o) => o.kill()));
  await metrics?.stop();
  client.close();
});

describe('operator leader election', () => {
  it('one leads, the standby never acts; SIGKILL the leader and the standby takes over within the lease and keeps reconciling', async () => {
    const a = start('op-a');
    await eventually(async () => (await holder()) === 'op-a', { timeoutMs: 30_000, what: 'op-a to lead' });
    const b = start('op-b');
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${await b.probePort}/readyz`)).status === 200,
      {
        timeoutMs: 30_000,
        what: 'op-b ready (caches synced) as standby',
      },
    );

    await applyPushGateway(client, samplePushGateway(ns));
    await eventually(() => isReady(client, ns, 'main'), { timeoutMs: 90_000, what: 'Ready under op-a' });
    expect(await isLeaderMetric(a)).toBe(1);
    expect(await isLeaderMetric(b)).toBe(0);
    expect(await reconciles(b)).toBe(0); // a standby with a warm cache, but it never reconciled

    const killedAt = Date.now();
    await a.kill();
    await eventually(async () => (await holder()) === 'op-b', {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: 'op-b to take over',
    });
    const takeoverMs = Date.now() - killedAt;
    console.log(
      `takeover after SIGKILL: ${takeoverMs} ms (lease ${LEASE_SECONDS} s, retry ${RETRY_SECONDS} s)`,
    );
    // Within the lease duration of the leader's last renew (which was before the kill): the
    // standby times its try to the expiry. The slack covers the test's own polling and the
    // API round trips of the takeover, not a retry period.
    expect(takeoverMs).toBeLessThanOrEqual(LEASE_SECONDS * 1000 + 1000);

    // It keeps reconciling: a spec change converges under op-b.
    await applyPushGateway(
      client,
      samplePushGateway(ns, 'main', (spec) => {
        spec.regions = spec.regions.filter((r: { name: string }) => r.name !== 'cn-east-1');
      }),
    );
    await eventually(
      async () => !(await getOrUndefined(client, Resources.Deployment, ns, 'main-cn-east-1')),
      {
        timeoutMs: 30_000,
        what: 'cn-east-1 removed by op-b',
      },
    );
    const st = await eventually(() => isReady(client, ns, 'main'), {
      timeoutMs: 60_000,
      what: 'Ready under op-b',
    });
    expect(st.readyRegions).toBe('2/2');
    expect(await reconciles(b)).toBeGreaterThan(0);
  });

  it('a leader stopped with SIGTERM exits cleanly and releases the lease, so the standby takes over at once', async () => {
    const b = operators.find((o) => o.logs().includes('"identity":"op-b"'))!;
    const c = start('op-c');
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${await c.probePort}/readyz`)).status === 200,
      {
        timeoutMs: 30_000,
        what: 'op-c ready as standby',
      },
    );
    const stoppedAt = Date.now();
    expect(await b.stop()).toBe(0);
    await eventually(async () => (await holder()) === 'op-c', {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: 'op-c to take over',
    });
    const handoverMs = Date.now() - stoppedAt;
    console.log(`handover after SIGTERM: ${handoverMs} ms`);
    // Released, not expired: op-c does not wait out the lease.
    expect(handoverMs).toBeLessThan(LEASE_SECONDS * 1000);
    expect(b.logs()).toMatch(/released leadership/);

    // op-c acts: a deleted child comes back.
    await client.delete(Resources.Deployment, ns, 'main-cn-north-1');
    await eventually(
      async () => !!(await getOrUndefined(client, Resources.Deployment, ns, 'main-cn-north-1')),
      {
        timeoutMs: 30_000,
        what: 'op-c to restore the Deployment',
      },
    );
  });
});
