import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
  createGatewaySecrets,
  installCRDs,
  isReady,
  samplePushGateway,
  startOperator,
  type OperatorProcess,
} from '../support/operator.js';
import { inject } from 'vitest';
import { startKwokMetrics, type KwokMetrics } from '../support/metrics-adapter.js';
import YAML from 'yaml';
import { CATEGORY, PUSH_GATEWAY, crdName } from '../../operator/api/index.js';
import { envNameOf, flagOf, parseConfig } from '../../common/config.js';
import { redisOptions } from '../../common/redis/options.js';
import { metricsAdapterCommand } from '../../workloads/metrics-adapter/command.js';

const run = promisify(execFile);

const chartDir = path.join(repoRoot, 'charts/pushgate');
const helmBin = () => path.join(binDir(), 'helm');

/** `helm template` of the chart with `--set` values, as YAML text. */
async function helmTemplate(namespace: string, set: string[], extra: string[] = []): Promise<string> {
  const { stdout } = await run(
    helmBin(),
    ['template', 'pushgate', chartDir, '-n', namespace, ...extra, ...set.flatMap((s) => ['--set', s])],
    { maxBuffer: 16 << 20 },
  );
  return stdout;
}

/** Every document of a multi-document YAML text, parsed strictly (duplicate keys are errors). */
function strictDocuments(text: string): Record<string, unknown>[] {
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, strict: true, prettyErrors: true });
  const errors = docs.flatMap((d) => d.errors.map((e) => e.message));
  if (errors.length) throw new Error(`rendered YAML is not strict YAML:\n${errors.join('\n')}`);
  return docs.map((d) => d.toJS() as Record<string, unknown>).filter((d) => d !== null);
}

/**
 * kubeconform schemas from the real kube-apiserver: its /openapi/v2 document, one standalone
 * JSON Schema per kind (the definition plus every definition it references), strict (no
 * unknown fields), with int-or-string and quantities typed as the server accepts them. Nothing
 * is downloaded; the schemas are exactly what the API server behind the tests serves.
 */
async function kubeconformSchemas(kubeconfig: string, dir: string): Promise<number> {
  const spec = JSON.parse(await kubectl(kubeconfig, ['get', '--raw', '/openapi/v2'])) as {
    definitions: Record<string, Record<string, unknown>>;
  };
  const defs = structuredClone(spec.definitions);
  for (const [name, def] of Object.entries(defs)) {
    if (name.endsWith('.IntOrString'))
      defs[name] = { anyOf: [{ type: 'string' }, { type: 'integer' }], description: def.description };
    else if (name.endsWith('.api.resource.Quantity'))
      defs[name] = { anyOf: [{ type: 'string' }, { type: 'number' }], description: def.description };
    else if (def.type === 'object' && def.properties && def.additionalProperties === undefined)
      def.additionalProperties = false; // strict: an unknown field is an error
  }
  let n = 0;
  for (const [, def] of Object.entries(defs)) {
    const gvks = def['x-kubernetes-group-version-kind'] as
      { group: string; version: string; kind: string }[] | undefined;
    for (const gvk of gvks ?? []) {
      const schema = { ...def, definitions: defs };
      // kubeconform's template below: {{ .ResourceKind }}-{{ .Group }}-{{ .ResourceAPIVersion }}.json
      writeFileSync(
        // kubeconform's .Group is the apiVersion before the slash: "v1" for the core group.
        path.join(dir, `${gvk.kind.toLowerCase()}-${gvk.group || gvk.version}-${gvk.version}.json`),
        JSON.stringify(schema),
      );
      n++;
    }
  }
  return n;
}

/**
 * The Helm chart against the real API server: it lints, every object it renders is accepted
 * (server-side dry run, adapter and prometheus-adapter rules on), and — the part a platform team
 * depends on — the operator running as the chart's ServiceAccount, with only the chart's RBAC,
 * brings a three-region PushGateway to Ready.
 */
describe('Helm chart', () => {
  const kubeconfig = inject('kubeconfig');
  const kc = testKubeConfig(inject('kubeconfig'));
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let releaseNs: string;
  let appNs: string;
  let operator: OperatorProcess | undefined;
  let metrics: KwokMetrics | undefined;
  let rendered: string;

  beforeAll(async () => {
    await installCRDs(kubeconfig);
    releaseNs = await createTestNamespace(kc, 'chart-system');
    appNs = await createTestNamespace(kc, 'chart-app');
  });
  afterAll(async () => {
    await operator?.stop();
    await metrics?.stop();
    if (rendered)
      await kubectl(kubeconfig, ['delete', '--ignore-not-found', '--wait=false', '-f', '-'], rendered).catch(
        () => undefined,
      );
    for (const ns of [appNs, releaseNs]) await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it('renders with default values, as strict YAML, with standard labels and no duplicate keys', async () => {
    // No --kube-version: what a user's `helm template` does.
    const text = await helmTemplate(releaseNs, []);
    const docs = strictDocuments(text);
    expect(docs.length).toBeGreaterThanOrEqual(10);
    for (const d of docs) {
      const meta = d.metadata as { name: string; labels: Record<string, string> };
      expect(meta.labels, `${String(d.kind)}/${meta.name}`).toMatchObject({
        'app.kubernetes.io/name': 'pushgate',
        'app.kubernetes.io/instance': 'pushgate',
        'app.kubernetes.io/managed-by': 'Helm',
        'helm.sh/chart': expect.stringMatching(/^pushgate-/),
      });
    }
    const kinds = docs.map((d) => `${String(d.kind)}/${(d.metadata as { name: string }).name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'Deployment/pushgate-operator',
        'PodDisruptionBudget/pushgate-operator',
        'Service/pushgate-operator-metrics',
        'Deployment/pushgate-metrics-adapter',
        `ClusterRole/pushgate-${releaseNs}-operator`,
        'Pod/pushgate-operator-test',
      ]),
    );
    // Probes on every container of the chart's Deployments.
    for (const d of docs.filter((x) => x.kind === 'Deployment')) {
      const containers = (d as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } })
        .spec.template.spec.containers;
      for (const c of containers) {
        expect(c.readinessProbe, `${String(c.name)} readinessProbe`).toBeDefined();
        expect(c.livenessProbe, `${String(c.name)} livenessProbe`).toBeDefined();
      }
    }
  });

  it('names everything from the release, so two releases render without a shared name', async () => {
    const names = async (release: string, ns: string) => {
      const { stdout } = await run(helmBin(), ['template', release, chartDir, '-n', ns], {
        maxBuffer: 16 << 20,
      });
      return strictDocuments(stdout).map((d) => {
        const m = d.metadata as { name: string; namespace?: string };
        return `${String(d.kind)}/${m.namespace ?? ''}/${m.name}`;
      });
    };
    const [a, b] = await Promise.all([names('pushgate', 'team-a'), names('pushgate', 'team-b')]);
    const c = await names('edge', 'team-a');
    expect(a.filter((n) => b.includes(n))).toEqual([]);
    expect(a.filter((n) => c.includes(n))).toEqual([]);
    expect(c).toContain('Deployment/team-a/edge-pushgate-operator');
  });

  it("passes the metrics adapter every Redis setting of the gateways, read back by the adapter's own parser", async () => {
    const docs = strictDocuments(
      await helmTemplate(releaseNs, [
        'metricsAdapter.redis.cluster=true',
        'metricsAdapter.redis.commandTimeoutMs=2500',
        'metricsAdapter.keyPrefix=team-a',
      ]),
    );
    const adapter = docs.find(
      (d) => d.kind === 'Deployment' && (d.metadata as { name: string }).name === 'pushgate-metrics-adapter',
    ) as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    const args = adapter.spec.template.spec.containers[0]!.args;
    expect(args[0]).toBe('metrics-adapter');
    // The URL comes from the Secret (env); everything else of the shared Redis options is a flag.
    const config = parseConfig(metricsAdapterCommand.options, args.slice(1), {
      [envNameOf(redisOptions, 'redisUrl')]: 'redis://stand-in:6379',
    });
    expect(config).toMatchObject({ redisCluster: true, redisCommandTimeoutMs: 2500, keyPrefix: 'team-a' });
    // A Redis option added to the gateways (common/redis/options.ts) fails here until the chart passes it.
    const flags = new Set(args.map((a) => a.replace(/=.*$/, '')));
    const missing = Object.entries(redisOptions)
      .filter(([k]) => k !== 'redisUrl')
      .map(([k, spec]) => `--${flagOf(k, spec)}`)
      .filter((f) => !flags.has(f));
    expect(missing).toEqual([]);
    const schema = await helmTemplate(releaseNs, ['metricsAdapter.redis.cluster=maybe']).then(
      () => 'rendered',
      (e: Error & { stderr?: string }) => e.stderr ?? e.message,
    );
    expect(schema).toMatch(/metricsAdapter\/redis\/cluster/);
  });

  it.each([
    ['operator.replicas=abc', /operator\/replicas.*want integer/],
    ['operator.replicas=0', /operator\/replicas.*minimum/],
    ['metricsAdapter.port=99999', /metricsAdapter\/port.*maximum/],
    ['image.pullPolicy=Sometimes', /image\/pullPolicy/],
    ['operator.watchNamespace=Not_A_Namespace', /operator\/watchNamespace/],
    ['operator.logLevel=loud', /operator\/logLevel/],
    ['operator.replica=2', /additional properties 'replica' not allowed/],
    ['serviceMonitor.interval=often', /serviceMonitor\/interval/],
    ['metricsAdapter.redis.key=a/b', /metricsAdapter\/redis\/key/],
  ])('values.schema.json refuses %s', async (set, message) => {
    const err = await helmTemplate(releaseNs, [set]).then(
      () => 'rendered',
      (e: Error & { stderr?: string }) => e.stderr ?? e.message,
    );
    expect(err).toMatch(message);
  });

  it('passes kubeconform (schemas from this API server) and a server-side dry run, every option on', async () => {
    await run(helmBin(), ['lint', '--strict', chartDir]);
    const schemaDir = mkdtempSync(path.join(os.tmpdir(), 'pushgate-schemas-'));
    expect(await kubeconformSchemas(kubeconfig, schemaDir)).toBeGreaterThan(50);
    const sets = [
      'metricsAdapter.enabled=true',
      'metricsAdapter.podDisruptionBudget.enabled=true',
      'prometheusAdapter.rules=true',
      `operator.watchNamespace=${appNs}`,
      'imagePullSecrets[0].name=regcred',
      'nodeSelector.pool=system',
      'tolerations[0].key=dedicated',
      'tolerations[0].operator=Exists',
      'priorityClassName=system-cluster-critical',
      'podAnnotations.example\\.com/note=x',
    ];
    const all = await helmTemplate(releaseNs, sets, ['--include-crds']);
    strictDocuments(all);
    const kubeconform = async (text: string, extra: string[] = []) => {
      const file = path.join(schemaDir, `rendered-${Math.random().toString(36).slice(2)}.yaml`);
      writeFileSync(file, text);
      return run(
        path.join(binDir(), 'kubeconform'),
        [
          '-strict',
          '-summary',
          '-schema-location',
          path.join(schemaDir, '{{ .ResourceKind }}-{{ .Group }}-{{ .ResourceAPIVersion }}.json'),
          ...extra,
          file,
        ],
        { maxBuffer: 16 << 20 },
      ).then(
        (r) => r.stdout,
        (e: Error & { stdout?: string }) => {
          throw new Error(`kubeconform: ${e.stdout ?? e.message}`);
        },
      );
    };
    // No -ignore-missing-schemas: every kind rendered here has a schema from the API server.
    expect(await kubeconform(all)).toMatch(/Invalid: 0, Errors: 0, Skipped: 0/);
    // The ServiceMonitor's CRD (Prometheus Operator) is not in this cluster: skipped by kind
    // only, and checked by shape below instead.
    const withMonitor = await helmTemplate(releaseNs, [
      'serviceMonitor.enabled=true',
      'serviceMonitor.labels.release=prom',
    ]);
    expect(await kubeconform(withMonitor, ['-skip', 'ServiceMonitor'])).toMatch(/Invalid: 0, Errors: 0/);
    const monitor = strictDocuments(withMonitor).find((d) => d.kind === 'ServiceMonitor') as {
      metadata: { labels: Record<string, string> };
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] };
    };
    expect(monitor.metadata.labels.release).toBe('prom');
    expect(monitor.spec.endpoints[0]!.port).toBe('metrics');
    const svc = strictDocuments(withMonitor).find(
      (d) => d.kind === 'Service' && (d.metadata as { name: string }).name === 'pushgate-operator-metrics',
    ) as { metadata: { labels: Record<string, string> }; spec: { ports: { name: string }[] } };
    expect(svc.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(svc.spec.ports.map((p) => p.name)).toContain('metrics');

    // And the API server itself accepts every object (server-side dry run).
    const out = await kubectl(
      kubeconfig,
      ['apply', '--dry-run=server', '-f', '-'],
      await helmTemplate(releaseNs, sets),
    );
    expect(all).toContain(`--metrics-adapter-service=${releaseNs}/pushgate-metrics-adapter:443`);
    for (const kind of [
      'deployment.apps/pushgate-operator',
      'deployment.apps/pushgate-metrics-adapter',
      'service/pushgate-metrics-adapter',
      'configmap/pushgate-prometheus-adapter-rules',
      `role.rbac.authorization.k8s.io/pushgate-operator`,
    ]) {
      expect(out).toContain(`${kind} created (server dry run)`);
    }
  });

  it('watchNamespace: the operator gets a Role there and no cluster-wide access to Secrets or namespaced writes', async () => {
    const docs = strictDocuments(await helmTemplate(releaseNs, [`operator.watchNamespace=${appNs}`]));
    const clusterRole = docs.find(
      (d) => d.kind === 'ClusterRole' && String((d.metadata as { name: string }).name).endsWith('-operator'),
    ) as {
      rules: { resources: string[]; verbs: string[] }[];
    };
    const clusterResources = clusterRole.rules.flatMap((r) => r.resources);
    expect(clusterResources).not.toContain('secrets');
    expect(clusterResources).not.toContain('deployments');
    expect(clusterResources).not.toContain('pushgateways');
    const role = docs.find(
      (d) => d.kind === 'Role' && (d.metadata as { namespace: string }).namespace === appNs,
    ) as {
      rules: { resources: string[] }[];
    };
    expect(role.rules.flatMap((r) => r.resources)).toEqual(
      expect.arrayContaining(['secrets', 'deployments', 'pushgateways']),
    );
  });

  it('installs two releases in two namespaces (one with watchNamespace) side by side, and uninstalls them', async () => {
    const nsA = await createTestNamespace(kc, 'chart-rel-a');
    const nsB = await createTestNamespace(kc, 'chart-rel-b');
    const helm = (args: string[]) =>
      run(helmBin(), ['--kubeconfig', kubeconfig, ...args], { maxBuffer: 16 << 20 }).then((r) => r.stdout);
    try {
      await helm(['install', 'pushgate', chartDir, '-n', nsA, '--set', 'metricsAdapter.enabled=false']);
      await helm([
        'install',
        'pushgate',
        chartDir,
        '-n',
        nsB,
        '--set',
        `operator.watchNamespace=${appNs}`,
        '--set',
        'metricsAdapter.enabled=true',
      ]);
      for (const ns of [nsA, nsB]) {
        const status = JSON.parse(await helm(['status', 'pushgate', '-n', ns, '-o', 'json'])) as {
          info: { status: string };
        };
        expect(status.info.status).toBe('deployed');
        expect(
          await kubectl(kubeconfig, ['get', 'deployment', 'pushgate-operator', '-n', ns, '-o', 'name']),
        ).toContain('pushgate-operator');
      }
      // B's operator is scoped: a Role in the watched namespace, bound to B's ServiceAccount.
      const binding = JSON.parse(
        await kubectl(kubeconfig, ['get', 'rolebinding', 'pushgate-operator', '-n', appNs, '-o', 'json']),
      ) as { subjects: { namespace: string }[] };
      expect(binding.subjects[0]!.namespace).toBe(nsB);
      const canA = await kubectl(kubeconfig, [
        'auth',
        'can-i',
        'list',
        'secrets',
        '-A',
        `--as=system:serviceaccount:${nsA}:pushgate-operator`,
      ]).catch((e: Error & { stdout?: string }) => e.stdout ?? '');
      const canB = await kubectl(kubeconfig, [
        'auth',
        'can-i',
        'list',
        'secrets',
        '-A',
        `--as=system:serviceaccount:${nsB}:pushgate-operator`,
      ]).catch((e: Error & { stdout?: string }) => e.stdout ?? '');
      expect(canA.trim()).toBe('yes');
      expect(canB.trim()).toBe('no');
      const canBHere = await kubectl(kubeconfig, [
        'auth',
        'can-i',
        'list',
        'secrets',
        '-n',
        appNs,
        `--as=system:serviceaccount:${nsB}:pushgate-operator`,
      ]);
      expect(canBHere.trim()).toBe('yes');
    } finally {
      await helm(['uninstall', 'pushgate', '-n', nsA, '--wait']).catch(() => undefined);
      await helm(['uninstall', 'pushgate', '-n', nsB, '--wait']).catch(() => undefined);
      for (const ns of [nsA, nsB]) await core.deleteNamespace({ name: ns }).catch(() => undefined);
    }
    // Nothing cluster-scoped of either release is left.
    const left = await kubectl(kubeconfig, ['get', 'clusterroles,clusterrolebindings', '-o', 'name']);
    expect(left).not.toMatch(new RegExp(`pushgate-(${nsA}|${nsB})-`));
  });

  it('upgrades the CRDs by the documented step (Helm never upgrades crds/)', async () => {
    const file = path.join(chartDir, 'crds', `${crdName(PUSH_GATEWAY)}.yaml`);
    const current = YAML.parse(readFileSync(file, 'utf8')) as {
      spec: {
        names: { categories: string[] };
        versions: { schema: { openAPIV3Schema: Record<string, unknown> } }[];
      };
    };
    // An older CRD as a previous chart installed it: the old category, no root (name) rules.
    const old = structuredClone(current);
    old.spec.names.categories = ['pushgate'];
    delete old.spec.versions[0]!.schema.openAPIV3Schema['x-kubernetes-validations'];
    await kubectl(
      kubeconfig,
      ['apply', '--server-side', '--force-conflicts', '--field-manager=helm', '-f', '-'],
      JSON.stringify(old),
    );
    const categories = () =>
      kubectl(kubeconfig, ['get', 'crd', crdName(PUSH_GATEWAY), '-o', 'jsonpath={.spec.names.categories}']);
    expect(await categories()).toContain('"pushgate"');
    // The step README.md and NOTES.txt document, exactly:
    await kubectl(kubeconfig, [
      'apply',
      '--server-side',
      '--force-conflicts',
      '-f',
      path.join(chartDir, 'crds'),
    ]);
    expect(await categories()).toContain(`"${CATEGORY}"`);
    const rules = await kubectl(kubeconfig, [
      'get',
      'crd',
      crdName(PUSH_GATEWAY),
      '-o',
      'jsonpath={.spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule}',
    ]);
    expect(rules).toContain('metadata.name');
    const notes = readFileSync(path.join(chartDir, 'templates/NOTES.txt'), 'utf8');
    const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    for (const doc of [notes, readme])
      expect(doc).toContain('kubectl apply --server-side --force-conflicts -f');
  });

  it('grants the operator every permission it uses: as the chart ServiceAccount it brings a PushGateway to Ready', async () => {
    // The chart's adapter is left out here: its pod would land on a kwok node and serve nothing.
    // The same adapter runs on the host instead, with a stand-in publishing the kwok pods' counts,
    // so the HPAs read their metric and Ready means what it says (see startKwokMetrics).
    // Namespace-scoped RBAC (watchNamespace) is enough for the operator watching one namespace.
    rendered = await helmTemplate(releaseNs, [
      'metricsAdapter.enabled=false',
      `operator.watchNamespace=${appNs}`,
    ]);
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
    await createGatewaySecrets(admin, appNs);
    metrics = await startKwokMetrics({ kubeconfig, redisUrl: inject('redisUrl'), namespace: appNs });
    await applyPushGateway(admin, samplePushGateway(appNs, 'chart'));
    const status = await eventually(() => isReady(admin, appNs, 'chart'), {
      what: 'PushGateway Ready under the chart RBAC',
      timeoutMs: 90_000,
    }).catch((err: Error) => {
      // Name what the RBAC refused, if that is why.
      const refused = operator!
        .logs()
        .split('\n')
        .filter((l) => /forbidden/i.test(l))
        .slice(0, 5);
      throw new Error(`${err.message}\noperator log lines saying forbidden:\n${refused.join('\n')}`);
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
