/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped JSON */
import { describe, expect, it } from 'vitest';
import { parsePushGateway, type PushGateway } from '../../api/index.js';
import {
  computeStatus,
  observeAutoscaler,
  observeRegion,
  parseQuantity,
  stuckContainers,
  type ObservedChildren,
  type StatusInput,
} from './status.js';

const now = new Date('2026-01-01T00:00:00Z');

/** computeStatus of a parsed PushGateway, its generation and stored status taken from it. */
const status = (o: Omit<StatusInput, 'generation' | 'previous'> & { gw: PushGateway }) =>
  computeStatus({ generation: o.gw.metadata.generation ?? 0, previous: o.gw.status, ...o });
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

/** An HPA with the conditions kube-controller-manager writes. */
const hpa = (scalingActive?: [status: string, reason: string, message: string], able = 'True') => ({
  status: {
    conditions: [
      { type: 'AbleToScale', status: able, reason: able === 'True' ? 'ReadyForNewScale' : 'FailedGetScale' },
      ...(scalingActive
        ? [
            {
              type: 'ScalingActive',
              status: scalingActive[0],
              reason: scalingActive[1],
              message: scalingActive[2],
            },
          ]
        : []),
    ],
  },
});
const scaling = () =>
  hpa(['True', 'ValidMetricFound', 'the HPA was able to successfully calculate a replica count']);
const NO_METRIC = [
  'False',
  'FailedGetPodsMetric',
  'the HPA was unable to compute the replica count: unable to get metric pushgate_gateway_connections: no custom metrics API (custom.metrics.k8s.io) registered',
] as [string, string, string];

/** Two regions' Deployments; their HPAs read their metric unless `extra.hpas` says otherwise. */
const children = (a: any, b: any, extra: Partial<ObservedChildren> = {}): ObservedChildren => ({
  deployments: new Map([
    ['a', a],
    ['b', b],
  ]),
  hpas: new Map([
    ['a', scaling()],
    ['b', scaling()],
  ]),
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
    const st = status({ gw: gw(), children: children(dep(2, {}), dep(1, {})), now });
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
    const st = status({ gw: gw(), children: children(dep(1, {}), undefined), now });
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
    const st = status({
      gw: gw(),
      children: children(dep(2, {}), dep(1, {})),
      failure: { reason: 'ApplyFailed', message: 'step apply: 403 Forbidden', terminal: false },
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
    const st2 = status({ gw: gw(), children: children(stuck, dep(1, {})), now });
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
    const notYet = status({
      gw: g,
      children: children(dep(2, {}), dep(1, {}), { nodeTuner: ds(4) }),
      now,
    });
    expect(notYet.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'NodeTunerNotReady',
      message: 'node tuner 4/6 pods ready',
    });
    const done = status({
      gw: g,
      children: children(dep(2, {}), dep(1, {}), { nodeTuner: ds(6) }),
      now,
    });
    expect(done.conditions!.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('keeps lastTransitionTime of unchanged conditions, so an idle operator computes an identical status', () => {
    const first = status({ gw: gw(), children: children(dep(2, {}), dep(1, {})), now });
    const second = status({
      gw: gw({}, first),
      children: children(dep(2, {}), dep(1, {})),
      now: later,
    });
    expect(second).toEqual(first);
  });

  it('a terminal failure stops Progressing (False, with its reason) and Degrades; a transient one retries', () => {
    const terminal = status({
      gw: gw(),
      children: children(dep(2, {}), dep(1, {})),
      failure: {
        reason: 'ApplyFailed',
        message: 'the API server refuses the Deployment g-a',
        terminal: true,
      },
      now,
    });
    expect(terminal.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'False', 'ApplyFailed'],
      ['Progressing', 'False', 'ApplyFailed'],
      ['Degraded', 'True', 'ApplyFailed'],
    ]);
    const transient = status({
      gw: gw(),
      children: children(dep(2, {}), dep(1, {})),
      failure: { reason: 'ApplyFailed', message: 'connect ECONNREFUSED', terminal: false },
      now,
    });
    expect(transient.conditions!.find((c) => c.type === 'Progressing')).toMatchObject({
      status: 'True',
      reason: 'Retrying',
    });
  });

  it('a spec that does not parse: the same three conditions from the one computer, the rest of the status kept', () => {
    const previous = status({ gw: gw(), children: children(dep(2, {}), dep(1, {})), now });
    const st = computeStatus({
      generation: 4,
      previous,
      gw: undefined,
      children: { deployments: new Map(), hpas: new Map() },
      failure: { reason: 'InvalidSpec', message: 'spec.regions: too small', terminal: true },
      now: later,
    });
    expect(st.conditions!.map((c) => [c.type, c.status, c.reason, c.observedGeneration])).toEqual([
      ['Ready', 'False', 'InvalidSpec', 4],
      ['Progressing', 'False', 'InvalidSpec', 4],
      ['Degraded', 'True', 'InvalidSpec', 4],
    ]);
    expect(st.regions).toEqual(previous.regions);
    expect(st.observedGeneration).toBe(4);
  });

  it('not Ready while a Secret the pods read is missing or lacks its key; the message says how to create it', () => {
    const g = gw({ apps: { secretName: 'apps' } });
    const with_ = (secrets: [string, string[] | undefined][]) =>
      status({ gw: g, children: children(dep(2, {}), dep(1, {}), { secrets: new Map(secrets) }), now });
    const missing = with_([
      ['s', undefined],
      ['apps', ['demo']],
    ]);
    expect(missing.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'SecretMissing',
    });
    const degraded = missing.conditions!.find((c) => c.type === 'Degraded')!;
    expect(degraded).toMatchObject({ status: 'True', reason: 'SecretMissing' });
    expect(degraded.message).toMatch(/Secret s \(spec\.redis\.secretName\) does not exist in namespace n/);
    expect(degraded.message).toMatch(/kubectl -n n create secret generic s --from-literal=url=/);
    const noKey = with_([
      ['s', ['other']],
      ['apps', undefined],
    ]);
    const msg = noKey.conditions!.find((c) => c.type === 'Ready')!.message;
    expect(msg).toMatch(/Secret s \(spec\.redis\.secretName\) has no key url/);
    expect(msg).toMatch(/Secret apps \(spec\.apps\.secretName\) does not exist/);
    const fine = with_([
      ['s', ['url']],
      ['apps', ['demo']],
    ]);
    expect(fine.conditions!.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('a TLS Secret that is missing or not of type tls keeps it from Ready, naming the keys', () => {
    const g = gw({ tls: { secretName: 'cert' } });
    const with_ = (cert: string[] | undefined) =>
      status({
        gw: g,
        children: children(dep(2, {}), dep(1, {}), {
          secrets: new Map([
            ['s', ['url']],
            ['cert', cert],
          ]),
        }),
        now,
      }).conditions!.find((c) => c.type === 'Ready')!;
    expect(with_(undefined)).toMatchObject({ status: 'False', reason: 'SecretMissing' });
    expect(with_(undefined).message).toMatch(
      /kubectl -n n create secret tls cert --cert=CERT\.pem --key=KEY\.pem$/,
    );
    expect(with_(['tls.crt']).message).toBe(
      'Secret cert (spec.tls.secretName) has no tls.key; it must be a kubernetes.io/tls Secret (kubectl create secret tls)',
    );
    expect(with_(['tls.crt', 'tls.key']).status).toBe('True');
  });

  it('pods that cannot start: region not ready, Degraded PodsFailing naming pod, container and reason', () => {
    const pod = (name: string, reason?: string) => ({
      metadata: { name },
      status: {
        containerStatuses: [
          {
            name: 'gateway',
            ...(reason ? { state: { waiting: { reason, message: 'back-off pulling' } } } : {}),
          },
        ],
      },
    });
    expect(stuckContainers([pod('p1', 'ContainerCreating'), pod('p2')])).toEqual([]);
    const st = status({
      gw: gw(),
      children: children(dep(2, { readyReplicas: 1 }), dep(1, {}), {
        pods: new Map([['a', [pod('g-a-1', 'ImagePullBackOff'), pod('g-a-2')]]]),
      }),
      now,
    });
    expect(st.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'PodsFailing',
      message: 'a: pods cannot start: g-a-1/gateway: ImagePullBackOff (back-off pulling)',
    });
    expect(st.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False' });
  });

  it('not Ready while an autoscaler cannot read its metric (the <unknown> targets), naming who should serve it', () => {
    const st = status({
      gw: gw(),
      children: children(dep(2, {}), dep(1, {}), {
        hpas: new Map<string, any>([
          ['a', scaling()],
          ['b', hpa(NO_METRIC)],
        ]),
      }),
      now,
    });
    const ready = st.conditions!.find((c) => c.type === 'Ready')!;
    expect(ready).toMatchObject({ status: 'False', reason: 'MetricsUnavailable' });
    expect(ready.message).toMatch(
      /^the autoscaler cannot read pushgate_gateway_connections \(b: FailedGetPodsMetric: the HPA was unable/,
    );
    expect(ready.message).toMatch(/pushgate metrics adapter serves it \(spec\.metricsAdapter\.enabled\)/);
    // The pods are fine: every region counts as ready, nothing is rolling out, nothing Degraded.
    expect(st.readyRegions).toBe('2/2');
    expect(st.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'False', 'MetricsUnavailable'],
      ['Progressing', 'False', 'Settled'],
      ['Degraded', 'False', 'AsExpected'],
    ]);

    // With the adapter turned off the metric is someone else's to serve: the same rule, other advice.
    const optOut = status({
      gw: gw({ metricsAdapter: { enabled: false } }),
      children: children(dep(2, {}), dep(1, {}), {
        hpas: new Map<string, any>([
          ['a', hpa(NO_METRIC)],
          ['b', hpa(NO_METRIC)],
        ]),
      }),
      now,
    }).conditions!.find((c) => c.type === 'Ready')!;
    expect(optOut).toMatchObject({ status: 'False', reason: 'MetricsUnavailable' });
    expect(optOut.message).toMatch(/a: FailedGetPodsMetric.*; b: FailedGetPodsMetric/);
    expect(optOut.message).toMatch(
      /spec\.metricsAdapter\.enabled is false, so another adapter must serve it \(prometheus-adapter/,
    );
  });

  it('not Ready before every autoscaler has read its metric once (Progressing meanwhile)', () => {
    const st = status({
      gw: gw(),
      children: children(dep(2, {}), dep(1, {}), {
        hpas: new Map<string, any>([['a', hpa()]]),
      }),
      now,
    });
    expect(st.conditions!.map((c) => [c.type, c.status, c.reason, c.message])).toEqual([
      [
        'Ready',
        'False',
        'AutoscalerPending',
        'a: waiting for the autoscaler to read its metric; b: HorizontalPodAutoscaler not created yet',
      ],
      [
        'Progressing',
        'True',
        'AutoscalerPending',
        'a: waiting for the autoscaler to read its metric; b: HorizontalPodAutoscaler not created yet',
      ],
      ['Degraded', 'False', 'AsExpected', ''],
    ]);
  });

  it('pods that are not ready come first: the autoscaler is judged once its region is', () => {
    const st = status({
      gw: gw(),
      children: children(dep(2, { readyReplicas: 0 }), dep(1, {}), {
        hpas: new Map<string, any>([
          ['a', hpa(NO_METRIC)],
          ['b', scaling()],
        ]),
      }),
      now,
    });
    expect(st.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'RegionsNotReady',
    });
  });
});

describe('observeAutoscaler', () => {
  it.each([
    ['no HPA', undefined, 'Pending'],
    ['never evaluated', hpa(), 'Pending'],
    ['reads its metric', scaling(), 'Active'],
    [
      'reads its metric, held at its bounds',
      {
        status: {
          conditions: [
            ...scaling().status.conditions,
            { type: 'ScalingLimited', status: 'True', reason: 'TooFewReplicas' },
          ],
        },
      },
      'Active',
    ],
    ['no custom metrics API', hpa(NO_METRIC), 'MetricsUnavailable'],
    ['an external metric', hpa(['False', 'FailedGetExternalMetric', 'x']), 'MetricsUnavailable'],
    [
      'scaled to 0 by hand',
      hpa(['False', 'ScalingDisabled', 'scaling is disabled since the replica count of the target is zero']),
      'Inactive',
    ],
    ['cannot read the scale', hpa(['True', 'ValidMetricFound', ''], 'False'), 'Inactive'],
    [
      'backing off between rescales (normal)',
      {
        status: {
          conditions: [
            { type: 'AbleToScale', status: 'False', reason: 'BackoffBoth' },
            ...scaling().status.conditions.slice(1),
          ],
        },
      },
      'Active',
    ],
  ])('%s -> %s', (_what, h, want) => {
    expect(observeAutoscaler(h as any).state).toBe(want);
  });
});
