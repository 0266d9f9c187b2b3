/* eslint-disable @typescript-eslint/no-explicit-any -- the sample manifest is untyped JSON */
import { appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Resources } from '../../operator/runtime/resources.js';
import type { KubeClient } from '../../operator/runtime/kube.js';
import { eventually } from '../support/k8s.js';
import { startKwokMetrics, type KwokMetrics } from '../support/metrics-adapter.js';
import { startCluster, type StartedCluster } from '../support/stack.js';
import {
  applyPushGateway,
  clientFor,
  createGatewaySecrets,
  getOrUndefined,
  installCRDs,
  isReady,
  metricSum,
  probe,
  pushGatewayStatus,
  samplePushGateway,
  startOperator,
  type OperatorProcess,
} from '../support/operator.js';

/**
 * An API server outage on a private control plane (so no other test file feels it): stop
 * kube-apiserver for 30 s while the operator runs, start it again, and the same operator
 * process (no restart) recovers its watches and leadership and converges what changed.
 */
let cluster: StartedCluster;
let client: KubeClient;
let operator: OperatorProcess;
let metrics: KwokMetrics;
const ns = 'op-restart';
/** Phase timings (vitest swallows late console output of long tests): where the recovery time goes. */
/**
 * A light PushGateway (one pod per region, no node tuner): after the outage the controller
 * manager also has to catch up, and the less it has to do the sooner the test is about us.
 */
const light = (spec: Record<string, any>) => {
  for (const r of spec.regions) r.minReplicas = 1;
  spec.nodeTuning = { enabled: false };
};
const phaseLog = path.join(os.tmpdir(), 'pushgate-test-logs', 'operator-restart-phases.log');

beforeAll(async () => {
  cluster = await startCluster('op-restart');
  client = clientFor(cluster.kubeconfig);
  await installCRDs(cluster.kubeconfig);
  await client.create(Resources.Namespace, { metadata: { name: ns } });
  await createGatewaySecrets(client, ns);
  metrics = await startKwokMetrics({
    kubeconfig: cluster.kubeconfig,
    redisUrl: inject('redisUrl'),
    namespace: ns,
  });
  operator = startOperator(cluster.kubeconfig, [
    ...['--namespace', ns, '--lease-namespace', ns, '--lease-name', 'op-restart'],
    ...['--lease-duration-seconds', '8', '--renew-deadline-seconds', '5', '--retry-period-seconds', '1'],
  ]);
}, 240_000);

afterAll(async () => {
  await operator?.kill();
  await metrics?.stop();
  client?.close();
  await cluster?.down();
});

describe('operator through a kube-apiserver outage', () => {
  it('recovers without a restart after kube-apiserver is stopped for 30 s, and converges', async () => {
    await applyPushGateway(client, samplePushGateway(ns, 'main', light));
    await eventually(() => isReady(client, ns, 'main'), {
      timeoutMs: 90_000,
      what: 'Ready before the outage',
    });
    const port = await operator.probePort;
    const restartsBefore = await metricSum(port, 'pushgate_operator_watch_restarts_total');

    await cluster.stop('kube-apiserver');
    await new Promise((r) => setTimeout(r, 30_000));
    // Still alive and healthy (an outage is not a reason for the kubelet to restart us).
    expect(operator.child.exitCode).toBeNull();
    expect((await probe(port, '/healthz')).status).toBe(200);
    await cluster.start('kube-apiserver');
    const upAt = Date.now();
    const phase = (what: string) =>
      appendFileSync(phaseLog, `${what}: ${Date.now() - upAt} ms after kube-apiserver was back\n`);

    // Changes made right after the outage converge: a region removed and a child deleted.
    await eventually(
      () =>
        applyPushGateway(
          client,
          samplePushGateway(ns, 'main', (spec) => {
            light(spec);
            spec.regions = spec.regions.filter((r: { name: string }) => r.name !== 'cn-south-1');
          }),
        ).then(() => true),
      { timeoutMs: 30_000, what: 'the API server to accept writes again' },
    );
    phase('spec change accepted');
    await client.delete(Resources.Deployment, ns, 'main-cn-north-1');
    await eventually(
      async () => !(await getOrUndefined(client, Resources.Deployment, ns, 'main-cn-south-1')),
      {
        timeoutMs: 60_000,
        what: 'cn-south-1 removed after the outage',
      },
    );
    phase('region removed');
    await eventually(
      async () => !!(await getOrUndefined(client, Resources.Deployment, ns, 'main-cn-north-1')),
      {
        timeoutMs: 60_000,
        what: 'cn-north-1 Deployment restored after the outage',
      },
    );
    phase('deleted Deployment restored');
    // Ready waits on more than the operator: kube-controller-manager's own watches come back
    // with client-go's backoff (up to ~30 s) and kwok's node leases went stale during the outage,
    // so pods turn Ready again only after both recover (about 55 s on an idle machine; more
    // under load). The operator's own convergence is what the 60 s bounds above assert.
    const st = await eventually(() => isReady(client, ns, 'main'), {
      timeoutMs: 180_000,
      what: 'Ready after the outage',
    }).catch(async (err: Error) => {
      // Say whose recovery is missing: the operator's status, or the children themselves.
      const gw = await pushGatewayStatus(client, ns, 'main');
      const deployments = await client.list(Resources.Deployment, ns);
      const seen = deployments.items.map((d) => ({
        name: d.metadata?.name,
        generation: d.metadata?.generation,
        spec: (d as { spec?: { replicas?: number } }).spec?.replicas,
        status: (d as { status?: unknown }).status,
      }));
      throw new Error(
        `${err.message}\nPushGateway status: ${JSON.stringify(gw)}\nDeployments: ${JSON.stringify(seen)}`,
      );
    });
    expect(st.readyRegions).toBe('2/2');
    phase('Ready');

    expect(operator.child.exitCode).toBeNull(); // the same process throughout
    expect(await metricSum(port, 'pushgate_operator_watch_restarts_total')).toBeGreaterThan(restartsBefore);
    expect(await metricSum(port, 'leader_election_master_status')).toBe(1);
    // The outage cost leadership (renew deadline 5 s < 30 s) and it was won back in-process.
    expect(operator.logs()).toMatch(/lost leadership/);
    expect(operator.logs().match(/became leader/g)?.length).toBe(2);
  }, 360_000);
});
