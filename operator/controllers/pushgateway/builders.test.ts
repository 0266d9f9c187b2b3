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
  buildNodeTunerDaemonSet,
  buildProbeSecret,
  hashOf,
  gatewayConfigData,
} from './builders.js';
import { ANNOTATION_CONFIG_HASH, ownerKeyOf } from './names.js';

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
    expect(kinds).not.toContain('ClusterRoleBinding');
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

  it('passes the gateway settings as the env the gateway reads', () => {
    expect(gatewayConfigData(sample())).toMatchObject({
      PUSHGATE_PORT: '8080',
      PUSHGATE_HEARTBEAT_MAX_MS: '540000',
      PUSHGATE_DRAIN_RATE: '500',
      PUSHGATE_DRAIN_GRACE_MS: '600000',
    });
  });
});
