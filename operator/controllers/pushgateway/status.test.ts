/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped JSON */
import { describe, expect, it } from 'vitest';
import { parsePushGateway, type PushGateway } from '../../api/index.js';
import { computeStatus, observeRegion, parseQuantity, type ObservedChildren } from './status.js';

const now = new Date('2026-01-01T00:00:00Z');
const later = new Date('2026-01-01T00:10:00Z');

function gw(extra: Record<string, any> = {}, status?: any): PushGateway {
  return parsePushGateway({
    apiVersion: 'pushgate.dev/v1alpha1',
    kind: 'PushGateway',
    metadata: { name: 'g', namespace: 'n', uid: 'u', generation: 3 },
    spec: {
      regions: [
        { name: 'a', minReplicas: 2 },
        { name: 'b', minReplicas: 1 },
      ],
      redis: { secretName: 's' },
      ...extra,
    },
    ...(status ? { status } : {}),
  });
}

const dep = (replicas: number, st: Record<string, any>, generation = 1) => ({
  metadata: { generation },
  spec: { replicas },
  status: {
    observedGeneration: generation,
    replicas,
    updatedReplicas: replicas,
    readyReplicas: replicas,
    ...st,
  },
});

const children = (a: any, b: any, extra: Partial<ObservedChildren> = {}): ObservedChildren => ({
  deployments: new Map([
    ['a', a],
    ['b', b],
  ]),
  hpas: new Map(),
  ...extra,
});

describe('observeRegion', () => {
  it.each([
    ['no Deployment', undefined, 'Missing'],
    ['all ready', dep(2, {}), 'Ready'],
    ['controller has not seen the new generation', dep(2, { observedGeneration: 1 }, 2), 'RollingOut'],
    ['old pods still around', dep(2, { replicas: 3, updatedReplicas: 2 }), 'RollingOut'],
    ['below the HPA minimum', dep(1, {}), 'ScalingUp'],
    ['pods not ready', dep(2, { readyReplicas: 1 }), 'PodsNotReady'],
    [
      'rollout stuck',
      dep(2, {
        conditions: [
          { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'stuck' },
        ],
      }),
      'Failed',
    ],
  ])('%s -> %s', (_what, d, want) => {
    expect(observeRegion('a', 2, d as any, undefined).state).toBe(want);
  });

  it('counts connections from the HPA (average per pod x pods)', () => {
    const hpa = {
      status: {
        currentReplicas: 3,
        currentMetrics: [{ type: 'Pods', pods: { current: { averageValue: '1500' } } }],
      },
    };
    expect(observeRegion('a', 2, dep(3, {}) as any, hpa).connections).toBe(4500);
    expect(parseQuantity('2500m')).toBe(2.5);
    expect(parseQuantity('12k')).toBe(12000);
    expect(parseQuantity(undefined)).toBe(0);
  });
});

describe('computeStatus', () => {
  it('Ready with per-region counts when every region is ready', () => {
    const st = computeStatus({ gw: gw(), children: children(dep(2, {}), dep(1, {})), now });
    expect(st.observedGeneration).toBe(3);
    expect(st.readyRegions).toBe('2/2');
    expect(st.regions).toEqual([
      { name: 'a', replicas: 2, readyReplicas: 2, connections: 0 },
      { name: 'b', replicas: 1, readyReplicas: 1, connections: 0 },
    ]);
    expect(st.conditions!.map((c) => [c.type, c.status, c.reason, c.observedGeneration])).toEqual([
      ['Ready', 'True', 'AllRegionsReady', 3],
      ['Progressing', 'False', 'Settled', 3],
      ['Degraded', 'False', 'AsExpected', 3],
    ]);
  });

  it('not Ready and Progressing while a region is missing or scaling; says which', () => {
    const st = computeStatus({ gw: gw(), children: children(dep(1, {}), undefined), now });
    const ready = st.conditions!.find((c) => c.type === 'Ready')!;
    expect(ready).toMatchObject({ status: 'False', reason: 'RegionsNotReady' });
    expect(ready.message).toMatch(/a: 1\/2 pods/);
    expect(ready.message).toMatch(/b: Deployment not created yet/);
    expect(st.conditions!.find((c) => c.type === 'Progressing')).toMatchObject({
      status: 'True',
      reason: 'RollingOut',
    });
    expect(st.readyRegions).toBe('0/2');
  });

  it('Degraded on an apply error or a stuck rollout', () => {
    const st = computeStatus({
      gw: gw(),
      children: children(dep(2, {}), dep(1, {})),
      applyError: 'step apply: 403 Forbidden',
      now,
    });
    expect(st.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'ApplyFailed',
    });
    expect(st.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'ApplyFailed',
    });
    const stuck = dep(2, {
      conditions: [{ type: 'ReplicaFailure', status: 'True', message: 'quota exceeded' }],
    });
    const st2 = computeStatus({ gw: gw(), children: children(stuck, dep(1, {})), now });
    expect(st2.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'RolloutFailed',
    });
  });

  it('waits for the node tuner when node tuning is on', () => {
    const g = gw({ nodeTuning: { enabled: true } });
    const ds = (ready: number) => ({
      metadata: { generation: 1 },
      status: {
        observedGeneration: 1,
        desiredNumberScheduled: 6,
        numberReady: ready,
        updatedNumberScheduled: 6,
      },
    });
    const notYet = computeStatus({
      gw: g,
      children: children(dep(2, {}), dep(1, {}), { nodeTuner: ds(4) }),
      now,
    });
    expect(notYet.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'NodeTunerNotReady',
      message: 'node tuner 4/6 pods ready',
    });
    const done = computeStatus({
      gw: g,
      children: children(dep(2, {}), dep(1, {}), { nodeTuner: ds(6) }),
      now,
    });
    expect(done.conditions!.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('keeps lastTransitionTime of unchanged conditions, so an idle operator computes an identical status', () => {
    const first = computeStatus({ gw: gw(), children: children(dep(2, {}), dep(1, {})), now });
    const second = computeStatus({
      gw: gw({}, first),
      children: children(dep(2, {}), dep(1, {})),
      now: later,
    });
    expect(second).toEqual(first);
  });
});
