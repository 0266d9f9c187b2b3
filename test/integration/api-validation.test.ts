import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import YAML from 'yaml';
import {
  CATEGORY,
  GROUP,
  PUSH_GATEWAY,
  RATE_LIMIT_POLICY,
  TAG_CAMPAIGN,
  VERSION,
  crdName,
  parsePushGateway,
  parseRateLimitPolicy,
  parseTagCampaign,
  type KindNames,
} from '../../operator/api/index.js';
import {
  BAD_MANIFESTS,
  DOCUMENTED_DEFAULTS,
  GOOD_MANIFESTS,
  badManifest,
  caseObjectName,
  minimalPushGateway,
  minimalRateLimitPolicy,
  minimalTagCampaign,
  type Manifest,
} from '../../operator/api/testdata/manifests.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { installCRDs } from '../support/crds.js';
import { kubectl, repoRoot } from '../support/stack.js';

/**
 * The generated CRDs in the real kube-apiserver: they install and become Established, the
 * samples and minimal manifests are accepted with the documented defaults filled in by the
 * server, and every bad manifest of the shared table is rejected by the server itself (OpenAPI
 * validation, CEL rules, list-map keys, strict field validation) with the field path in the
 * error. kubectl explain and kubectl get read the field docs and printer columns.
 */
const NAMES: Record<string, KindNames> = {
  PushGateway: PUSH_GATEWAY,
  TagCampaign: TAG_CAMPAIGN,
  RateLimitPolicy: RATE_LIMIT_POLICY,
};
const KINDS = Object.values(NAMES);

type Rejection = { code: number; message: string };

describe('pushgate API in the real kube-apiserver', () => {
  const kubeconfig = inject('kubeconfig');
  const kc = testKubeConfig(kubeconfig);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let namespace: string;

  /** Creates `m` with strict field validation; resolves with the stored object or the rejection. */
  async function create(m: Manifest): Promise<{ stored?: Record<string, unknown>; rejected?: Rejection }> {
    const names = NAMES[m.kind]!;
    try {
      const stored = await custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: names.plural,
        body: m,
        fieldValidation: 'Strict',
      });
      return { stored: stored as Record<string, unknown> };
    } catch (err) {
      if (!(err instanceof k8s.ApiException)) throw err;
      const status = JSON.parse(String(err.body)) as { message?: string };
      return { rejected: { code: err.code, message: status.message ?? String(err.body) } };
    }
  }

  beforeAll(async () => {
    await installCRDs(kubeconfig);
    namespace = await createTestNamespace(kc, 'api-validation');
  });

  afterAll(async () => {
    if (namespace) await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('accepts every generated CRD as structural and without naming conflicts', async () => {
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
    for (const k of KINDS) {
      const crd = await ext.readCustomResourceDefinition({ name: crdName(k) });
      const conditions = Object.fromEntries((crd.status?.conditions ?? []).map((c) => [c.type, c.status]));
      expect(conditions, crdName(k)).toMatchObject({ Established: 'True', NamesAccepted: 'True' });
      expect(conditions.NonStructuralSchema, crdName(k)).toBeUndefined();
      expect(crd.status?.acceptedNames?.categories).toEqual([CATEGORY]);
    }
  });

  describe('minimal manifests', () => {
    const cases = [
      ['PushGateway', minimalPushGateway('minimal-pgw')],
      ['TagCampaign', minimalTagCampaign('minimal-tc')],
      ['RateLimitPolicy', minimalRateLimitPolicy('minimal-rlp')],
    ] as const;
    it.each(cases)('%s is accepted and read back with the documented defaults', async (kind, manifest) => {
      const { stored, rejected } = await create(manifest);
      expect(rejected).toBeUndefined();
      expect(stored!.spec).toEqual(DOCUMENTED_DEFAULTS[kind]);
      // And a fresh GET (defaults are applied on read from etcd too) says the same.
      const read = (await custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: NAMES[kind]!.plural,
        name: manifest.metadata.name,
      })) as { spec: unknown };
      expect(read.spec).toEqual(DOCUMENTED_DEFAULTS[kind]);
    });
  });

  describe('samples in examples/', () => {
    const samples = [
      ['pushgateway.yaml', parsePushGateway],
      ['tagcampaign.yaml', parseTagCampaign],
      ['ratelimitpolicy.yaml', parseRateLimitPolicy],
    ] as const;
    it.each(samples)(
      '%s is accepted, and the server fills in the same defaults as parse<Kind>',
      async (file, parse) => {
        const manifest = YAML.parse(readFileSync(path.join(repoRoot, 'examples', file), 'utf8')) as Manifest;
        const { stored, rejected } = await create(manifest);
        expect(rejected).toBeUndefined();
        const fromZod = parse(manifest).spec as Record<string, unknown>;
        if (Array.isArray(fromZod.regions)) {
          // nodeSelector's default depends on the region name: parse fills it, the server cannot.
          fromZod.regions = fromZod.regions.map(({ nodeSelector: _n, ...r }: Record<string, unknown>) => r);
        }
        expect(stored!.spec).toEqual(fromZod);
      },
    );
  });

  describe(`rejects ${BAD_MANIFESTS.length} bad manifests, naming the field`, () => {
    it('has at least 30 cases over all three kinds', () => {
      expect(BAD_MANIFESTS.length).toBeGreaterThanOrEqual(30);
      expect(new Set(BAD_MANIFESTS.map((c) => c.kind)).size).toBe(3);
    });

    BAD_MANIFESTS.forEach((c, i) => {
      it(`${c.kind}: ${c.name} -> ${c.path}`, async () => {
        const { stored, rejected } = await create(badManifest(c, caseObjectName(i)));
        expect(stored, 'the API server accepted it').toBeUndefined();
        // 422 Invalid from schema/CEL validation; 400 BadRequest from strict field validation.
        expect([400, 422]).toContain(rejected!.code);
        expect(rejected!.message).toContain(c.path);
        if (c.says) expect(rejected!.message).toContain(c.says);
      });
    });
  });

  describe(`accepts ${GOOD_MANIFESTS.length} manifests at the edges`, () => {
    GOOD_MANIFESTS.forEach((c, i) => {
      it(`${c.kind}: ${c.name}`, async () => {
        const { rejected } = await create(badManifest(c, `good-${String(i).padStart(2, '0')}`));
        expect(rejected?.message).toBeUndefined();
      });
    });
  });

  it("keeps a campaign's gateway, app, target and message fixed, but lets it be suspended", async () => {
    const name = 'immutable';
    expect((await create(minimalTagCampaign(name))).rejected).toBeUndefined();
    const patch = async (spec: object) => {
      try {
        await custom.patchNamespacedCustomObject(
          { group: GROUP, version: VERSION, namespace, plural: TAG_CAMPAIGN.plural, name, body: { spec } },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
        );
        return undefined;
      } catch (err) {
        if (!(err instanceof k8s.ApiException)) throw err;
        return String((JSON.parse(String(err.body)) as { message: string }).message);
      }
    };
    expect(await patch({ appId: 'news' })).toMatch(/spec\.appId: .*appId is immutable/);
    expect(await patch({ gatewayRef: { name: 'other' } })).toMatch(
      /spec\.gatewayRef: .*gatewayRef is immutable/,
    );
    expect(await patch({ target: { allOf: ['new'] } })).toMatch(/spec\.target: .*target is immutable/);
    expect(await patch({ message: { body: 'changed' } })).toMatch(/spec\.message: .*message is immutable/);
    expect(await patch({ suspend: true })).toBeUndefined();
    // Cancel is one way: on, and it stays on.
    expect(await patch({ cancel: true })).toBeUndefined();
    expect(await patch({ cancel: false })).toMatch(/spec\.cancel: .*cannot be resumed/);
    expect(await patch({ suspend: false })).toBeUndefined();
  });

  it('validates status writes too', async () => {
    const name = 'status-check';
    expect((await create(minimalTagCampaign(name))).rejected).toBeUndefined();
    const failure = await kubectl(kubeconfig, [
      '-n',
      namespace,
      'patch',
      `${TAG_CAMPAIGN.plural}/${name}`,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { phase: 'Exploded', counters: { sent: -1 } } }),
    ]).then(
      () => 'accepted',
      (err: Error) => err.message,
    );
    expect(failure).toContain('status.phase');
    expect(failure).toContain('status.counters.sent');
  });

  it('kubectl explain prints the field docs', async () => {
    const out = await eventually(
      async () => {
        const text = await kubectl(kubeconfig, ['explain', 'pushgateway.spec.regions']);
        return text.includes('maxConnectionsPerPod') ? text : undefined;
      },
      { what: 'kubectl explain to know pushgateway.spec.regions', timeoutMs: 30_000 },
    );
    expect(out).toContain('The regions gateways run in (1 to 8), keyed by name.');
    expect(out).toMatch(/targetConnectionsPerPod\s+<integer>/);
    expect(out).toContain('Defaults to 50000.');
    expect(out).toMatch(/name\s+<string> -required-/);
    const campaign = await kubectl(kubeconfig, ['explain', 'tagcampaign.spec.message.ttlSeconds']);
    expect(campaign).toContain('0 means now');
    const cancel = (await kubectl(kubeconfig, ['explain', 'tagcampaign.spec.cancel'])).replace(/\s+/g, ' ');
    expect(cancel).toMatch(/cannot be set back to false/);
    expect(cancel).toMatch(/use suspend instead/);
  });

  it('kubectl get shows the printer columns, and `kubectl get pushgate-all` lists all three kinds', async () => {
    const gw = 'columns';
    const pgw = minimalPushGateway(gw);
    (pgw.spec!.regions as object[]).push({ name: 'cn-east-1' }, { name: 'cn-south-1' });
    const tc = minimalTagCampaign(gw);
    const rlp = minimalRateLimitPolicy(gw);
    for (const m of [pgw, tc, rlp]) expect((await create(m)).rejected).toBeUndefined();

    // Status as the operator writes it, through the status subresource.
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const ready = {
      type: 'Ready',
      status: 'True',
      reason: 'AllRegionsReady',
      message: '',
      lastTransitionTime: now,
    };
    const patches: [string, object][] = [
      [
        `${PUSH_GATEWAY.plural}/${gw}`,
        {
          conditions: [ready],
          readyRegions: '3/3',
          replicas: 7,
          readyReplicas: 7,
          connections: 1234567,
          regions: [{ name: 'cn-north-1', replicas: 3, readyReplicas: 3, connections: 600000 }],
        },
      ],
      [
        `${TAG_CAMPAIGN.plural}/${gw}`,
        {
          phase: 'Running',
          progress: '420/1000 (42%)',
          ratePerSecond: 950,
          eta: '1m2s',
          counters: { targeted: 1000, sent: 500, delivered: 420 },
        },
      ],
      [
        `${RATE_LIMIT_POLICY.plural}/${gw}`,
        {
          conditions: [ready],
          appliedTo: { gateway: 'main', appIds: [], targets: 'main: all apps' },
          effectiveMessagesPerSecond: 8000,
          deferredMessages: 12,
        },
      ],
    ];
    for (const [ref, status] of patches) {
      await kubectl(kubeconfig, [
        '-n',
        namespace,
        'patch',
        ref,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status }),
      ]);
    }

    const table = await kubectl(kubeconfig, [
      '-n',
      namespace,
      'get',
      `${PUSH_GATEWAY.plural},${TAG_CAMPAIGN.plural},${RATE_LIMIT_POLICY.plural}`,
      '--field-selector',
      `metadata.name=${gw}`,
    ]);
    const row = (resource: string) => table.split('\n').find((l) => l.startsWith(`${resource}/${gw} `)) ?? '';
    expect(table).toMatch(/NAME\s+READY\s+REGIONS\s+PODS\s+CONNECTIONS\s+AGE/);
    expect(row(`pushgateway.${GROUP}`).split(/\s+/).slice(1, 5)).toEqual(['True', '3/3', '7', '1234567']);
    expect(table).toMatch(/NAME\s+PHASE\s+PROGRESS\s+RATE\s+ETA\s+AGE/);
    expect(row(`tagcampaign.${GROUP}`)).toMatch(/\s+Running\s+420\/1000 \(42%\)\s+950\s+1m2s\s+\S+\s*$/);
    expect(table).toMatch(
      /NAME\s+GATEWAY\s+TARGETS\s+APP-RATE\s+EFFECTIVE\s+DEFERRED\s+CAMPAIGN-MAX\s+READY\s+AGE/,
    );
    expect(row(`ratelimitpolicy.${GROUP}`)).toMatch(
      /\s+main\s+main: all apps\s+10000\s+8000\s+12\s+5000\s+True\s+/,
    );

    // The category and the short names reach the same objects.
    const all = await kubectl(kubeconfig, ['-n', namespace, 'get', CATEGORY, '-o', 'name']);
    for (const k of KINDS) expect(all).toContain(`${k.singular}.${GROUP}/${gw}`);
    const short = await kubectl(kubeconfig, ['-n', namespace, 'get', 'pgw,tc,rlp', '-o', 'name']);
    for (const k of KINDS) expect(short).toContain(`${k.singular}.${GROUP}/${gw}`);
  });
});
