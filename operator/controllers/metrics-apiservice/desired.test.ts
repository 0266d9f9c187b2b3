import { describe, expect, it } from 'vitest';
import type { KubeObject } from '../../runtime/kube.js';
import { parseAdapterServiceRef, planMetricsAPIServices, wantsMetricsAdapter } from './desired.js';

const gw = (name: string, enabled?: boolean, deleting = false): KubeObject => ({
  metadata: { name, namespace: 'apps', ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
  spec: enabled === undefined ? {} : { metricsAdapter: { enabled } },
});
const service = { namespace: 'pushgate-system', name: 'pushgate-metrics-adapter', port: 443 };

describe('planMetricsAPIServices', () => {
  it.each([
    ['no PushGateways', [], 0, []],
    ['only PushGateways that opted out', [gw('a', false), gw('b', false)], 0, []],
    ['one that asks (explicitly)', [gw('a', true), gw('b', false)], 2, []],
    ['one that asks (by default)', [gw('a')], 2, []],
    ['only one being deleted', [gw('a', true, true)], 0, []],
  ])('with %s registers %i APIServices', (_what, gateways, count, unconfigured) => {
    const plan = planMetricsAPIServices(gateways, service);
    expect(plan.apply).toHaveLength(count);
    expect(plan.unconfiguredRequests).toEqual(unconfigured);
  });

  it('registers v1beta2 and v1beta1 at the adapter Service, labelled as the operator own', () => {
    const plan = planMetricsAPIServices([gw('a')], { ...service, caBundle: 'PEM' });
    expect(plan.apply.map((a) => a.metadata?.name)).toEqual([
      'v1beta2.custom.metrics.k8s.io',
      'v1beta1.custom.metrics.k8s.io',
    ]);
    for (const a of plan.apply) {
      expect(a.metadata?.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'pushgate-operator' });
      expect(a.spec).toMatchObject({
        service: { namespace: 'pushgate-system', name: 'pushgate-metrics-adapter', port: 443 },
        caBundle: Buffer.from('PEM').toString('base64'),
      });
    }
  });

  it('registers nothing without a configured adapter, and names who asked', () => {
    const plan = planMetricsAPIServices([gw('b'), gw('a', true), gw('c', false)], undefined);
    expect(plan.apply).toEqual([]);
    expect(plan.unconfiguredRequests).toEqual(['apps/a', 'apps/b']);
  });

  it('treats a PushGateway being deleted as not asking', () => {
    expect(wantsMetricsAdapter(gw('a', true, true))).toBe(false);
  });
});

describe('parseAdapterServiceRef', () => {
  it('reads namespace/name:port, and empty as not configured', () => {
    expect(parseAdapterServiceRef('pushgate-system/adapter:6443')).toEqual({
      namespace: 'pushgate-system',
      name: 'adapter',
      port: 6443,
    });
    expect(parseAdapterServiceRef('')).toBeUndefined();
  });
  it.each(['adapter:443', 'ns/adapter', 'ns/adapter:0', 'ns/adapter:70000', 'NS/adapter:443'])(
    'rejects %s',
    (v) => {
      expect(() => parseAdapterServiceRef(v)).toThrow(/namespace\/name:port/);
    },
  );
});
