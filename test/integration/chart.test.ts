import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binDir, kubectl, repoRoot } from '../support/stack.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import {
  applyPushGateway,
  clientFor,
  createRedisSecret,
  installCRDs,
  isReady,
  samplePushGateway,
  startOperator,
  type OperatorProcess,
} from './operator-helpers.js';
import { inject } from 'vitest';

const run = promisify(execFile);

/** `helm template` of the chart with `--set` values, as YAML text. */
async function helmTemplate(namespace: string, set: string[]): Promise<string> {
  const { stdout } = await run(
    path.join(binDir(), 'helm'),
    [
      'template',
      'pushgate',
      path.join(repoRoot, 'charts/pushgate'),
      '-n',
      namespace,
      '--kube-version',
      '1.34.4',
      ...set.flatMap((s) => ['--set', s]),
    ],
    { maxBuffer: 16 << 20 },
  );
  return stdout;
}

/**
 * The Helm chart against the real API server: it lints, every object it renders is accepted
 * (server-side dry run, adapter and prometheus-adapter rules on), and — the part a platform team
 * depends on — the operator running as the chart's ServiceAccount, with only the chart's RBAC,
 * brings a three-region PushGateway to Ready.
 */
describe('Helm chart', () => {
  const kubeconfig = inject('kubeconfig');
  const kc = testKubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let releaseNs: string;
  let appNs: string;
  let operator: OperatorProcess | undefined;
  let rendered: string;

  beforeAll(async () => {
    await installCRDs(kubeconfig);
    releaseNs = await createTestNamespace(kc, 'chart-system');
    appNs = await createTestNamespace(kc, 'chart-app');
  });
  afterAll(async () => {
    await operator?.stop();
    if (rendered)
      await kubectl(kubeconfig, ['delete', '--ignore-not-found', '--wait=false', '-f', '-'], rendered).catch(
        () => undefined,
      );
    for (const ns of [appNs, releaseNs]) await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it('lints, and every rendered object is accepted by the API server', async () => {
    await run(path.join(binDir(), 'helm'), ['lint', path.join(repoRoot, 'charts/pushgate')]);
    const all = await helmTemplate(releaseNs, [
      'metricsAdapter.enabled=true',
      'prometheusAdapter.rules=true',
    ]);
    const out = await kubectl(kubeconfig, ['apply', '--dry-run=server', '-f', '-'], all);
    // With the adapter on, the operator is told where it is and registers the APIServices itself.
    expect(all).toContain(`--metrics-adapter-service=${releaseNs}/pushgate-metrics-adapter:443`);
    for (const kind of [
      'deployment.apps/pushgate-operator',
      'deployment.apps/pushgate-metrics-adapter',
      'service/pushgate-metrics-adapter',
      'configmap/pushgate-prometheus-adapter-rules',
    ]) {
      expect(out).toContain(`${kind} created (server dry run)`);
    }
  });

  it('grants the operator every permission it uses: as the chart ServiceAccount it brings a PushGateway to Ready', async () => {
    // The adapter is left out here: its APIService is cluster-wide and the autoscaling test owns it.
    rendered = await helmTemplate(releaseNs, ['metricsAdapter.enabled=false']);
    await kubectl(kubeconfig, ['apply', '-f', '-'], rendered);

    // A kubeconfig that authenticates as system:serviceaccount:<releaseNs>:pushgate-operator.
    const token = (
      await kubectl(kubeconfig, ['create', 'token', 'pushgate-operator', '-n', releaseNs, '--duration=1h'])
    ).trim();
    const cluster = kc.getCurrentCluster()!;
    const saConfig = path.join(mkdtempSync(path.join(os.tmpdir(), 'pushgate-chart-')), 'kubeconfig');
    writeFileSync(
      saConfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'c', cluster: { server: cluster.server, 'certificate-authority': cluster.caFile } },
        ],
        users: [{ name: 'operator', user: { token } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'operator', namespace: releaseNs } }],
        'current-context': 'c',
      }),
    );
    const whoami = await kubectl(saConfig, ['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
    expect(whoami).toBe(`system:serviceaccount:${releaseNs}:pushgate-operator`);

    operator = startOperator(
      saConfig,
      [
        '--namespace',
        appNs,
        '--lease-duration-seconds',
        '6',
        '--renew-deadline-seconds',
        '4',
        '--retry-period-seconds',
        '1',
      ],
      { POD_NAMESPACE: releaseNs },
    );
    const admin = clientFor(kubeconfig);
    await createRedisSecret(admin, appNs);
    await applyPushGateway(admin, samplePushGateway(appNs, 'chart'));
    const status = await eventually(() => isReady(admin, appNs, 'chart'), {
      what: 'PushGateway Ready under the chart RBAC',
      timeoutMs: 90_000,
    });
    expect(status.readyRegions).toBe('3/3');
    // It led through the Lease in its own namespace, which only the chart's Role allows.
    const lease = await kubectl(kubeconfig, [
      'get',
      'lease',
      'pushgate-operator',
      '-n',
      releaseNs,
      '-o',
      'jsonpath={.spec.holderIdentity}',
    ]);
    expect(lease).not.toBe('');
    expect(operator.logs()).not.toMatch(/forbidden/i);
  });
});
