/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped JSON; tests index into them freely */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parsePushGateway, type PushGateway } from '../../api/index.js';
import {
  buildAll,
  buildGatewayConfigMap,
  buildGatewayDeployment,
  buildGatewayHPA,
  buildGatewayPDB,
  buildGatewayRBAC,
  buildGatewayService,
  buildDispatcherDeployment,
  buildDispatcherServiceAccount,
  buildNodeTunerDaemonSet,
  buildProbeSecret,
  hashOf,
} from './builders.js';
import { envNameOf, envOf, parseConfig } from '../../../common/config.js';
import { redisOptions } from '../../../common/redis/options.js';
import { dispatcherOptions } from '../../../workloads/dispatcher/options.js';
import { gatewayOptions } from '../../../gateway/options.js';
import { nodeTopologyOptions } from '../../../workloads/node-topology/options.js';
import { nodeTunerOptions } from '../../../workloads/node-tuner/options.js';
import { sidecarOptions } from '../../../workloads/sidecar/options.js';
import { ANNOTATION_CONFIG_HASH, names, ownerKeyOf } from './names.js';

const repoRoot = path.resolve(import.meta.dirname, '../../..');
const opts = { defaultImage: 'ghcr.io/pushgate/pushgate:0.1.0' };

/** The sample users apply (examples/pushgateway.yaml), as the API server would hand it to us. */
function sample(patch: (raw: Record<string, any>) => void = () => {}): PushGateway {
  const raw = YAML.parse(readFileSync(path.join(repoRoot, 'examples/pushgateway.yaml'), 'utf8')) as Record<
    string,
    any
  >;
  raw.metadata = {
    ...raw.metadata,
    namespace: 'push',
    uid: '0b5c1d2e-0000-4000-8000-000000000001',
    generation: 1,
  };
  patch(raw);
  return parsePushGateway(raw);
}

const golden = (name: string) => `./__golden__/${name}.yaml`;
const yaml = (o: unknown) =>
  YAML.stringify(o, { sortMapEntries: false, lineWidth: 0, aliasDuplicateObjects: false });

describe('PushGateway builders: golden files (CR in, manifests out)', () => {
  const gw = sample();
  const north = gw.spec.regions[0]!;

  it('Deployment of one region', async () => {
    await expect(yaml(buildGatewayDeployment(gw, north, opts))).toMatchFileSnapshot(
      golden('deployment-cn-north-1'),
    );
  });
  it('Service of one region', async () => {
    await expect(yaml(buildGatewayService(gw, north))).toMatchFileSnapshot(golden('service-cn-north-1'));
  });
  it('HPA of one region', async () => {
    await expect(yaml(buildGatewayHPA(gw, north))).toMatchFileSnapshot(golden('hpa-cn-north-1'));
  });
  it('PDB of one region', async () => {
    await expect(yaml(buildGatewayPDB(gw, north))).toMatchFileSnapshot(golden('pdb-cn-north-1'));
  });
  it('ConfigMap', async () => {
    await expect(yaml(buildGatewayConfigMap(gw))).toMatchFileSnapshot(golden('configmap'));
  });
  it('node tuner DaemonSet', async () => {
    await expect(yaml(buildNodeTunerDaemonSet(gw, opts))).toMatchFileSnapshot(golden('daemonset-node-tuner'));
  });
  it('RBAC', async () => {
    await expect(buildGatewayRBAC(gw).map(yaml).join('---\n')).toMatchFileSnapshot(golden('rbac'));
  });
  it('campaign dispatcher Deployment and ServiceAccount', async () => {
    await expect(
      [buildDispatcherServiceAccount(gw), buildDispatcherDeployment(gw, opts)].map(yaml).join('---\n'),
    ).toMatchFileSnapshot(golden('dispatcher'));
  });
  it('probe secret (value from the controller)', async () => {
    await expect(yaml(buildProbeSecret(gw, 'fixed-probe-secret-for-golden'))).toMatchFileSnapshot(
      golden('secret-probe'),
    );
  });
  it('the whole set, in apply order', async () => {
    const all = buildAll(gw, opts).map((o) => `${o.kind}/${o.metadata?.name}`);
    await expect(all.join('\n') + '\n').toMatchFileSnapshot(golden('all-objects'));
  });
});

describe('PushGateway builders: behaviour', () => {
  it('pins each region to its nodes, and honours a region nodeSelector', () => {
    const gw = sample((raw) => {
      raw.spec.regions[2].nodeSelector = { pool: 'gateways-south' };
    });
    const pod = (r: number) =>
      (buildGatewayDeployment(gw, gw.spec.regions[r]!, opts) as any).spec.template.spec;
    expect(pod(0).nodeSelector).toEqual({ 'topology.kubernetes.io/region': 'cn-north-1' });
    expect(pod(2).nodeSelector).toEqual({ pool: 'gateways-south' });
    const terms = (buildNodeTunerDaemonSet(gw, opts) as any).spec.template.spec.affinity.nodeAffinity
      .requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    expect(terms).toEqual([
      {
        matchExpressions: [{ key: 'topology.kubernetes.io/region', operator: 'In', values: ['cn-north-1'] }],
      },
      { matchExpressions: [{ key: 'topology.kubernetes.io/region', operator: 'In', values: ['cn-east-1'] }] },
      { matchExpressions: [{ key: 'pool', operator: 'In', values: ['gateways-south'] }] },
    ]);
  });

  it('changes the pod-template config hash when the gateway config changes, and only then', () => {
    const hash = (gw: PushGateway) =>
      (buildGatewayDeployment(gw, gw.spec.regions[0]!, opts) as any).spec.template.metadata.annotations[
        ANNOTATION_CONFIG_HASH
      ];
    const base = hash(sample());
    expect(hash(sample())).toBe(base);
    expect(hash(sample((raw) => (raw.spec.drain.closesPerSecond = 1000)))).not.toBe(base);
    expect(hash(sample((raw) => (raw.spec.regions[0].maxReplicas = 99)))).toBe(base);
    expect(hashOf({ a: '1', b: '2' })).toBe(hashOf({ b: '2', a: '1' }));
  });

  it('uses spec.image over the default, includes user sidecars after the built-in one', () => {
    const gw = sample((raw) => {
      raw.spec.image = 'registry.example/pushgate:dev';
      raw.spec.sidecars = [{ name: 'log-shipper', image: 'fluent-bit:3', args: ['-c', '/etc/fb.conf'] }];
    });
    const containers = (buildGatewayDeployment(gw, gw.spec.regions[0]!, opts) as any).spec.template.spec
      .containers;
    expect(containers.map((c: any) => [c.name, c.image])).toEqual([
      ['gateway', 'registry.example/pushgate:dev'],
      ['sidecar', 'registry.example/pushgate:dev'],
      ['log-shipper', 'fluent-bit:3'],
    ]);
    expect(containers[2].args).toEqual(['-c', '/etc/fb.conf']);
  });

  it('leaves replicas to the HPA and scales down slowly', () => {
    const gw = sample();
    expect((buildGatewayDeployment(gw, gw.spec.regions[0]!, opts) as any).spec.replicas).toBeUndefined();
    const hpa = buildGatewayHPA(gw, gw.spec.regions[1]!) as any;
    expect(hpa.spec).toMatchObject({ minReplicas: 3, maxReplicas: 40 });
    expect(hpa.spec.metrics[0].pods.target.averageValue).toBe('150000');
    expect(hpa.spec.behavior.scaleDown).toMatchObject({
      stabilizationWindowSeconds: 300,
      policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
    });
  });

  it('builds no node tuner (nor its cluster-wide grant) when node tuning is off; no spread when disabled', () => {
    const gw = sample((raw) => {
      raw.spec.nodeTuning.enabled = false;
      raw.spec.placement.zoneSpread.enabled = false;
    });
    const kinds = buildAll(gw, opts).map((o) => o.kind);
    expect(kinds).not.toContain('DaemonSet');
    // The one cluster-wide grant left is the gateways' own (read their Node's zone).
    expect(
      buildAll(gw, opts)
        .filter((o) => o.kind === 'ClusterRoleBinding')
        .map((o) => o.metadata?.name),
    ).toEqual([names.gatewayNodeReaderClusterRoleBinding(gw)]);
    expect(
      (buildGatewayDeployment(gw, gw.spec.regions[0]!, opts) as any).spec.template.spec
        .topologySpreadConstraints,
    ).toBeUndefined();
  });

  it('gives every namespaced child the PushGateway as controller owner; cluster-scoped ones carry owner labels', () => {
    const gw = sample();
    for (const o of buildAll(gw, opts)) {
      if (o.kind === 'ClusterRole') continue; // shared by every PushGateway, owned by none
      expect(ownerKeyOf(o), `${o.kind}/${o.metadata?.name}`).toBe('push/main');
      if (o.metadata?.namespace)
        expect(o.metadata.ownerReferences?.[0]).toMatchObject({
          kind: 'PushGateway',
          controller: true,
          uid: gw.metadata.uid,
        });
    }
  });

  it("passes the gateway settings as env that the gateway's own parser reads back", () => {
    const gw = sample((raw) => {
      raw.spec.tls = { secretName: 'gw-tls' };
      raw.spec.redis = { secretName: 'gw-redis', key: 'seed', cluster: true, keyPrefix: 'team-a:push' };
      // Not the defaults, so a setting that never reaches the gateway cannot pass by luck.
      raw.spec.protection = {
        maxTagsPerApp: 321,
        tagUpdatesPerMinute: 7,
        framesPerSecond: 9,
        maxPendingHandshakes: 55,
        maxPendingHandshakesPerAddress: 5,
      };
    });
    const region = gw.spec.regions[0]!;
    const pod = (buildGatewayDeployment(gw, region, opts) as any).spec.template.spec;
    const configMap = buildGatewayConfigMap(gw);
    const env = containerEnv(
      configMap,
      pod.containers.find((c: any) => c.name === 'gateway'),
    );
    const config = parseConfig(gatewayOptions, [], env);
    expect(config).toMatchObject({
      port: gw.spec.ports.websocket,
      metricsPort: gw.spec.ports.metrics,
      heartbeatMinMs: gw.spec.heartbeat.minSeconds * 1000,
      heartbeatMaxMs: gw.spec.heartbeat.maxSeconds * 1000,
      heartbeatInitialMs: gw.spec.heartbeat.initialSeconds * 1000,
      drainRate: gw.spec.drain.closesPerSecond,
      drainGraceMs: gw.spec.drain.gracePeriodSeconds * 1000,
      maxTagsPerApp: 321,
      tagUpdatesPerMinute: 7,
      frameRate: 9,
      maxPendingHandshakes: 55,
      maxPendingHandshakesPerAddress: 5,
      maxConnections: region.maxConnectionsPerPod,
      region: region.name,
      podName: 'field:metadata.name',
      namespace: 'field:metadata.namespace',
      podIp: 'field:status.podIP',
      redisUrl: 'redis://secret-gw-redis-seed',
      redisCluster: true,
      keyPrefix: 'team-a:push',
      appsFile: '/etc/pushgate/apps',
      tlsCertFile: '/etc/pushgate/tls/tls.crt',
      tlsKeyFile: '/etc/pushgate/tls/tls.key',
      zoneFile: '/run/pushgate-topology/zone',
      // The probe app joins the apps, with the secret the sidecar signs with.
      apps: `pushgate-probe:redis://secret-${names.probeSecret(gw)}-secret`,
    });
    // Nothing the operator sets goes unread: a renamed or removed gateway option fails here.
    const read = new Set(Object.entries(gatewayOptions).map(([k, spec]) => envOf(k, spec)));
    const probeSecret = envNameOf(sidecarOptions, 'probeSecret'); // only for $(...) in the apps value
    expect(Object.keys(env).filter((name) => !read.has(name) && name !== probeSecret)).toEqual([]);
  });

  it("defaults spec.protection to the gateway's own flag defaults", () => {
    const p = sample().spec.protection;
    const gatewayDefaults = parseConfig(gatewayOptions, [], {});
    expect({
      maxTagsPerApp: gatewayDefaults.maxTagsPerApp,
      tagUpdatesPerMinute: gatewayDefaults.tagUpdatesPerMinute,
      framesPerSecond: gatewayDefaults.frameRate,
      maxPendingHandshakes: gatewayDefaults.maxPendingHandshakes,
      maxPendingHandshakesPerAddress: gatewayDefaults.maxPendingHandshakesPerAddress,
    }).toEqual(p);
  });

  it('passes the sidecar its settings as env that its own parser reads back', () => {
    const gw = sample((raw) => {
      raw.spec.redis = { secretName: 'pushgate-redis', cluster: true, keyPrefix: 'team-b' };
    });
    const region = gw.spec.regions[0]!;
    const pod = (buildGatewayDeployment(gw, region, opts) as any).spec.template.spec;
    const env = containerEnv(
      buildGatewayConfigMap(gw),
      pod.containers.find((c: any) => c.name === 'sidecar'),
    );
    expect(parseConfig(sidecarOptions, [], env)).toMatchObject({
      gatewayPort: gw.spec.ports.websocket,
      probeApp: 'pushgate-probe',
      probeSecret: `redis://secret-${names.probeSecret(gw)}-secret`,
      redisUrl: `redis://secret-${gw.spec.redis.secretName}-${gw.spec.redis.key}`,
      redisCluster: true,
      keyPrefix: 'team-b',
      podName: 'field:metadata.name',
      namespace: 'field:metadata.namespace',
    });
    // The sidecar's own variables (the ones besides the shared ConfigMap and pod identity) are all read.
    const read = new Set(Object.entries(sidecarOptions).map(([k, spec]) => envOf(k, spec)));
    const own = pod.containers.find((c: any) => c.name === 'sidecar').env.map((e: any) => e.name);
    const gatewayOnly = [envNameOf(gatewayOptions, 'region'), envNameOf(gatewayOptions, 'podIp')];
    expect(own.filter((n: string) => !read.has(n) && !gatewayOnly.includes(n))).toEqual([]);
  });

  it('runs the dispatcher with settings its own parser reads back (the gateway Redis Secret, --port), replicas from the spec, no API token', () => {
    const gw = sample((raw) => {
      raw.spec.dispatcher = { replicas: 3, resources: { requests: { cpu: '250m' } } };
      raw.spec.ports = { ...raw.spec.ports, metrics: 9300 };
      raw.spec.redis = { secretName: 'pushgate-redis', cluster: true, keyPrefix: 'team-c' };
    });
    const dep = buildDispatcherDeployment(gw, opts) as any;
    expect(dep.spec.replicas).toBe(3);
    const pod = dep.spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe(names.dispatcher(gw));
    const c = pod.containers[0];
    expect(c.command).toEqual(['pushgate', 'dispatcher']);
    expect(c.resources).toEqual({ requests: { cpu: '250m' } });
    const env = containerEnv(undefined, c);
    // The dispatcher's own parser reads them back: the Redis of the gateways, --port for /metrics and probes.
    expect(parseConfig(dispatcherOptions, [], env)).toMatchObject({
      redisUrl: `redis://secret-${gw.spec.redis.secretName}-${gw.spec.redis.key}`,
      redisCluster: true,
      keyPrefix: 'team-c',
      port: 9300,
    });
    const read = new Set(Object.entries(dispatcherOptions).map(([k, spec]) => envOf(k, spec)));
    expect(Object.keys(env).filter((n) => !read.has(n))).toEqual(['POD_NAME', 'POD_NAMESPACE']);
    expect(c.ports).toEqual([{ name: 'metrics', containerPort: 9300, protocol: 'TCP' }]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    // The gateway Deployment's Redis variable is the same one.
    const gwEnv = (buildGatewayDeployment(gw, gw.spec.regions[0]!, opts) as any).spec.template.spec
      .containers[0].env;
    expect(gwEnv.find((e: any) => e.name === envNameOf(redisOptions, 'redisUrl'))?.valueFrom).toEqual(
      c.env.find((e: any) => e.name === envNameOf(redisOptions, 'redisUrl'))?.valueFrom,
    );
    const off = sample((raw) => (raw.spec.dispatcher = { enabled: false }));
    expect(buildAll(off, opts).filter((o) => o.metadata?.name === names.dispatcher(off))).toEqual([]);
  });

  it("runs node-topology first, which writes the Node's zone where the gateway reads it, with get on nodes only", () => {
    const gw = sample();
    const pod = (buildGatewayDeployment(gw, gw.spec.regions[0]!, opts) as any).spec.template.spec;
    const init = pod.initContainers.find((c: any) => c.name === 'node-topology');
    expect(init.command).toEqual(['pushgate', 'node-topology']);
    const config = parseConfig(nodeTopologyOptions, [], containerEnv(undefined, init));
    expect(config).toMatchObject({ nodeName: 'field:spec.nodeName', outDir: '/run/pushgate-topology' });
    const gateway = pod.containers.find((c: any) => c.name === 'gateway');
    const gatewayConfig = parseConfig(gatewayOptions, [], containerEnv(buildGatewayConfigMap(gw), gateway));
    expect(gatewayConfig.zoneFile).toBe(`${config.outDir}/zone`);
    const mount = (c: any) => c.volumeMounts.find((m: any) => m.name === 'topology');
    expect(mount(init)).toEqual({ name: 'topology', mountPath: config.outDir });
    expect(mount(gateway)).toEqual({ name: 'topology', mountPath: config.outDir, readOnly: true });
    const rbac = buildGatewayRBAC(gw);
    const role = rbac.find((o) => o.metadata?.name === names.gatewayNodeReaderClusterRole) as any;
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }]);
    const binding = rbac.find(
      (o) => o.metadata?.name === names.gatewayNodeReaderClusterRoleBinding(gw),
    ) as any;
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: names.gatewayServiceAccount(gw), namespace: 'push' },
    ]);
  });

  it('gives every container that talks to Redis each shared Redis option, read back by its own parser', () => {
    const gw = sample((raw) => {
      raw.spec.redis = { secretName: 'r', key: 'k', cluster: true, keyPrefix: 'p1' };
    });
    const pod = (buildGatewayDeployment(gw, gw.spec.regions[0]!, opts) as any).spec.template.spec;
    const dispatcher = (buildDispatcherDeployment(gw, opts) as any).spec.template.spec.containers[0];
    const cm = buildGatewayConfigMap(gw);
    const programs = [
      [
        gatewayOptions,
        containerEnv(
          cm,
          pod.containers.find((c: any) => c.name === 'gateway'),
        ),
      ],
      [
        sidecarOptions,
        containerEnv(
          cm,
          pod.containers.find((c: any) => c.name === 'sidecar'),
        ),
      ],
      [dispatcherOptions, containerEnv(undefined, dispatcher)],
    ] as const;
    for (const [options, env] of programs) {
      // Each shared option is set explicitly (none left to a program's default)...
      for (const [k, spec] of Object.entries(redisOptions)) {
        if (k === 'redisCommandTimeoutMs') continue; // the programs' own default, not in the spec
        expect(env, k).toHaveProperty(envOf(k, spec));
      }
      // ...and means the spec's values to the program.
      expect(parseConfig(options, [], env)).toMatchObject({
        redisUrl: 'redis://secret-r-k',
        redisCluster: true,
        keyPrefix: 'p1',
      });
    }
  });

  it('passes the node tuner its settings as env that its own parser reads back', () => {
    const gw = sample();
    const ds = (buildNodeTunerDaemonSet(gw, opts) as any).spec.template.spec;
    const env = containerEnv(undefined, ds.containers[0]);
    expect(parseConfig(nodeTunerOptions, [], env)).toMatchObject({
      scope: 'host',
      nofile: gw.spec.nodeTuning.nofile,
      nofileTargets: ['containerd', 'node'],
      sysctls: ['net.core.somaxconn=65535'],
      nodeName: 'field:spec.nodeName',
    });
    const read = new Set(Object.entries(nodeTunerOptions).map(([k, spec]) => envOf(k, spec)));
    expect(Object.keys(env).filter((n) => !read.has(n))).toEqual([]);
  });
});

/**
 * The environment a container gets, as the kubelet builds it: the ConfigMap of envFrom, then
 * the env list in order, with $(VAR) expanded from what came before. Field and Secret
 * references resolve to recognisable stand-ins ("field:<path>", "redis://secret-<name>-<key>",
 * a valid Redis URL so the gateway's parser accepts it where a URL is expected).
 */
function containerEnv(configMap: any, container: any): Record<string, string> {
  const env: Record<string, string> = {};
  if (container.envFrom?.length) {
    expect(container.envFrom).toEqual([{ configMapRef: { name: configMap.metadata.name } }]);
    Object.assign(env, configMap.data);
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined)
      env[e.name] = String(e.value).replace(/\$\(([A-Z0-9_]+)\)/g, (m, v: string) => env[v] ?? m);
    else if (e.valueFrom?.fieldRef) env[e.name] = `field:${e.valueFrom.fieldRef.fieldPath}`;
    else if (e.valueFrom?.secretKeyRef)
      env[e.name] = `redis://secret-${e.valueFrom.secretKeyRef.name}-${e.valueFrom.secretKeyRef.key}`;
    else throw new Error(`env ${e.name}: unexpected source ${JSON.stringify(e)}`);
  }
  return env;
}
