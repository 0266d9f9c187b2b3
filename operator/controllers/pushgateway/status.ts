import type { PushGateway, PushGatewayStatus } from '../../api/index.js';
import { setConditions, type ConditionInput } from '../../runtime/conditions.js';
import type { KubeObject } from '../../runtime/kube.js';

/**
 * The status of a PushGateway, computed from its children as the API server shows them (a
 * pure function: children and the previous status in, status out). Conditions follow the
 * EMQX operator: Ready (every region has its pods ready, the node tuner too), Progressing
 * (something is rolling out or scaling), Degraded (something is wrong that waiting will not fix).
 * A spec that cannot be built, a Secret the pods need that does not exist, pods that cannot
 * start, an autoscaler that cannot read its metric all keep Ready=False and say, in the
 * condition's message, what to do.
 */

interface DeploymentLike extends KubeObject {
  spec?: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

export interface HPALike extends KubeObject {
  status?: {
    currentReplicas?: number;
    currentMetrics?: { type: string; pods?: { current?: { averageValue?: string } } }[];
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

interface DaemonSetLike extends KubeObject {
  status?: {
    observedGeneration?: number;
    desiredNumberScheduled?: number;
    numberReady?: number;
    updatedNumberScheduled?: number;
  };
}

/** A gateway pod as the operator caches it (see podWaitingTransform): only why containers wait. */
export interface PodLike extends KubeObject {
  status?: {
    containerStatuses?: ContainerStatusLike[];
    initContainerStatuses?: ContainerStatusLike[];
  };
}
interface ContainerStatusLike {
  name: string;
  state?: { waiting?: { reason?: string; message?: string } };
}

export interface ObservedChildren {
  /** Per region name: its Deployment, or undefined if it does not exist (yet). */
  deployments: Map<string, DeploymentLike | undefined>;
  hpas: Map<string, HPALike | undefined>;
  /** Per region name: its gateway pods. */
  pods?: Map<string, PodLike[]>;
  /** undefined when node tuning is off or the DaemonSet does not exist yet. */
  nodeTuner?: DaemonSetLike;
  /** Per Secret name the spec refers to: its key names, or undefined when it does not exist. */
  secrets?: Map<string, string[] | undefined>;
}

export type RegionState =
  'Ready' | 'Missing' | 'RollingOut' | 'ScalingUp' | 'PodsNotReady' | 'PodsFailing' | 'Failed';

export interface RegionObservation {
  name: string;
  state: RegionState;
  replicas: number;
  readyReplicas: number;
  connections: number;
  message: string;
}

/** A Kubernetes quantity as a number (the HPA reports averages such as "1500" or "1500m"). */
export function parseQuantity(q: string | undefined): number {
  if (!q) return 0;
  const m = /^([0-9.]+)([kMGm]?)$/.exec(q);
  if (!m) return 0;
  const mult = { '': 1, m: 0.001, k: 1e3, M: 1e6, G: 1e9 }[m[2] as '' | 'm' | 'k' | 'M' | 'G'];
  return Number(m[1]) * mult;
}

/**
 * Why containers of these pods cannot start, as `pod/container: reason (message)`; only the
 * waiting reasons that do not clear by themselves (a pod that is merely starting says
 * ContainerCreating or PodInitializing, which are not listed).
 */
const STUCK_REASONS = new Set([
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'ErrImageNeverPull',
  'CrashLoopBackOff',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

export function stuckContainers(pods: readonly PodLike[]): string[] {
  const out: string[] = [];
  for (const p of pods) {
    for (const c of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
      const w = c.state?.waiting;
      if (w?.reason && STUCK_REASONS.has(w.reason))
        out.push(`${p.metadata?.name}/${c.name}: ${w.reason}${w.message ? ` (${w.message})` : ''}`);
    }
  }
  return out;
}

/** Keeps of a Pod only its name, labels and why its containers wait (the informer's transform). */
export function podWaitingTransform(obj: KubeObject): KubeObject {
  const pod = obj as PodLike;
  const slim = (cs: ContainerStatusLike[] | undefined) =>
    cs?.map((c) => ({ name: c.name, ...(c.state?.waiting ? { state: { waiting: c.state.waiting } } : {}) }));
  const m = obj.metadata;
  return {
    metadata: {
      name: m?.name,
      namespace: m?.namespace,
      resourceVersion: m?.resourceVersion,
      labels: m?.labels,
      ...(m?.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    status: {
      containerStatuses: slim(pod.status?.containerStatuses),
      initContainerStatuses: slim(pod.status?.initContainerStatuses),
    },
  };
}

export function observeRegion(
  name: string,
  minReplicas: number,
  deployment: DeploymentLike | undefined,
  hpa: HPALike | undefined,
  pods: readonly PodLike[] = [],
): RegionObservation {
  if (!deployment)
    return {
      name,
      state: 'Missing',
      replicas: 0,
      readyReplicas: 0,
      connections: 0,
      message: 'Deployment not created yet',
    };
  const st = deployment.status ?? {};
  const want = deployment.spec?.replicas ?? 1;
  const replicas = st.replicas ?? 0;
  const ready = st.readyReplicas ?? 0;
  const podsMetric = hpa?.status?.currentMetrics?.find((m) => m.type === 'Pods');
  const connections = Math.round(
    parseQuantity(podsMetric?.pods?.current?.averageValue) * (hpa?.status?.currentReplicas ?? ready),
  );
  const base = { name, replicas, readyReplicas: ready, connections };
  const failed = st.conditions?.find(
    (c) =>
      (c.type === 'Progressing' && c.status === 'False' && c.reason === 'ProgressDeadlineExceeded') ||
      (c.type === 'ReplicaFailure' && c.status === 'True'),
  );
  if (failed) return { ...base, state: 'Failed', message: failed.message ?? failed.reason ?? failed.type };
  const stuck = stuckContainers(pods);
  if (stuck.length)
    return { ...base, state: 'PodsFailing', message: `pods cannot start: ${stuck.join('; ')}` };
  const generation = deployment.metadata?.generation ?? 0;
  if ((st.observedGeneration ?? 0) < generation || (st.updatedReplicas ?? 0) < want || replicas > want) {
    return { ...base, state: 'RollingOut', message: `${st.updatedReplicas ?? 0}/${want} pods updated` };
  }
  if (want < minReplicas)
    return {
      ...base,
      state: 'ScalingUp',
      message: `${want}/${minReplicas} pods (autoscaler scaling to its minimum)`,
    };
  if (ready < want) return { ...base, state: 'PodsNotReady', message: `${ready}/${want} pods ready` };

  return { ...base, state: 'Ready', message: `${ready}/${want} pods ready` };
}

/**
 * Whether a region's HorizontalPodAutoscaler works, from its own conditions (what `kubectl
 * describe hpa` shows): `Active` once it has read its metric (ScalingActive=True), `Pending`
 * before its first reading (the HPA does not exist yet, or has no ScalingActive condition),
 * `MetricsUnavailable` when it cannot read the metric (ScalingActive=False, FailedGet*Metric:
 * the `<unknown>` targets of `kubectl get hpa`), `Inactive` when it cannot scale for another
 * reason (it cannot read or update the Deployment's scale, or scaling is disabled).
 */
export type AutoscalerState = 'Active' | 'Pending' | 'MetricsUnavailable' | 'Inactive';

export interface AutoscalerObservation {
  state: AutoscalerState;
  /** The HPA's own words (its condition's reason and message), or why there are none. */
  message: string;
}

export function observeAutoscaler(hpa: HPALike | undefined): AutoscalerObservation {
  if (!hpa) return { state: 'Pending', message: 'HorizontalPodAutoscaler not created yet' };
  const conds = hpa.status?.conditions ?? [];
  const words = (c: { reason?: string; message?: string }) =>
    `${c.reason ?? 'unknown reason'}${c.message ? `: ${c.message}` : ''}`;
  const able = conds.find((c) => c.type === 'AbleToScale');
  // FailedGetScale / FailedUpdateScale: the HPA cannot read or write the Deployment's scale.
  // (AbleToScale=False with a Backoff reason is the HPA waiting between rescales: normal.)
  if (able?.status === 'False' && /^Failed/.test(able.reason ?? ''))
    return { state: 'Inactive', message: words(able) };
  const active = conds.find((c) => c.type === 'ScalingActive');
  if (!active) return { state: 'Pending', message: 'waiting for the autoscaler to read its metric' };
  if (active.status === 'True') return { state: 'Active', message: words(active) };
  if (/^FailedGet.*Metric$|^InvalidMetricSourceType$|^InvalidSelector$/.test(active.reason ?? ''))
    return { state: 'MetricsUnavailable', message: words(active) };
  return { state: 'Inactive', message: words(active) };
}

/**
 * What to do when the regions' autoscalers cannot read `pushgate_gateway_connections`: who
 * should serve it depends on spec.metricsAdapter (pushgate's adapter, or prometheus-adapter).
 */
export function metricsAdvice(gw: PushGateway): string {
  return gw.spec.metricsAdapter.enabled
    ? 'the pushgate metrics adapter serves it (spec.metricsAdapter.enabled): check that it runs ' +
        '(Helm value metricsAdapter.enabled, which passes --metrics-adapter-service to the operator) ' +
        'and that kubectl get apiservice v1beta2.custom.metrics.k8s.io says Available'
    : 'spec.metricsAdapter.enabled is false, so another adapter must serve it (prometheus-adapter ' +
        'with the rule in workloads/metrics-adapter/README.md): check that kubectl get apiservice ' +
        'v1beta2.custom.metrics.k8s.io says Available and that Prometheus scrapes the gateway pods';
}

/** How the last sync ended when it did not succeed (from the runtime's typed error). */
export interface SyncFailure {
  /** CamelCase: InvalidSpec, ApplyFailed. */
  reason: string;
  message: string;
  /** true = retrying cannot fix it: the operator waits for the spec to change. */
  terminal: boolean;
}

export interface StatusInput {
  /** metadata.generation of the PushGateway. */
  generation: number;
  /** The status as stored (its conditions keep their transition times). */
  previous: PushGatewayStatus | undefined;
  /** The parsed spec; undefined when it does not parse (then `failure` says why). */
  gw: PushGateway | undefined;
  children: ObservedChildren;
  failure?: SyncFailure;
  now: Date;
}

/** The Secrets a PushGateway's pods read (Redis URL, apps, TLS), with the keys they need and how to create them. */
export function secretProblems(gw: PushGateway, secrets: Map<string, string[] | undefined>): string[] {
  const ns = gw.metadata.namespace;
  const problems: string[] = [];
  const { secretName, key } = gw.spec.redis;
  const redisKeys = secrets.get(secretName);
  if (!redisKeys)
    problems.push(
      `Secret ${secretName} (spec.redis.secretName) does not exist in namespace ${ns}; the gateways cannot reach Redis without it: kubectl -n ${ns} create secret generic ${secretName} --from-literal=${key}=redis://HOST:6379`,
    );
  else if (!redisKeys.includes(key))
    problems.push(
      `Secret ${secretName} (spec.redis.secretName) has no key ${key} (spec.redis.key); add the Redis URL under that key`,
    );
  const apps = gw.spec.apps?.secretName;
  if (apps) {
    const appKeys = secrets.get(apps);
    if (!appKeys)
      problems.push(
        `Secret ${apps} (spec.apps.secretName) does not exist in namespace ${ns}; the gateways serve no app without it: kubectl -n ${ns} create secret generic ${apps} --from-literal=APP_ID=APP_SECRET`,
      );
    else if (appKeys.length === 0)
      problems.push(`Secret ${apps} (spec.apps.secretName) is empty; add one key per app (app id = secret)`);
  }
  const tls = gw.spec.tls?.secretName;
  if (tls) {
    const tlsKeys = secrets.get(tls);
    const missing = ['tls.crt', 'tls.key'].filter((k) => !tlsKeys?.includes(k));
    if (!tlsKeys)
      problems.push(
        `Secret ${tls} (spec.tls.secretName) does not exist in namespace ${ns}; the gateways cannot serve wss:// without it: kubectl -n ${ns} create secret tls ${tls} --cert=CERT.pem --key=KEY.pem`,
      );
    else if (missing.length)
      problems.push(
        `Secret ${tls} (spec.tls.secretName) has no ${missing.join(' or ')}; it must be a kubernetes.io/tls Secret (kubectl create secret tls)`,
      );
  }
  return problems;
}

const describeAutoscalers = (as: readonly ({ name: string } & AutoscalerObservation)[]) =>
  as.map((a) => `${a.name}: ${a.message}`).join('; ');

export function computeStatus({
  generation,
  previous,
  gw,
  children,
  failure,
  now,
}: StatusInput): PushGatewayStatus {
  const og = { observedGeneration: generation };
  const conditions: ConditionInput[] = [];
  const prev = previous?.conditions ?? [];

  if (!gw) {
    // The spec does not parse: the children of the last good spec stay as they are; say why.
    const f = failure ?? { reason: 'InvalidSpec', message: 'the spec does not parse', terminal: true };
    conditions.push(
      { type: 'Ready', status: 'False', reason: f.reason, message: f.message, ...og },
      {
        type: 'Progressing',
        status: 'False',
        reason: f.reason,
        message: 'stopped until the spec is fixed',
        ...og,
      },
      { type: 'Degraded', status: 'True', reason: f.reason, message: f.message, ...og },
    );
    return { ...previous, observedGeneration: generation, conditions: setConditions(prev, conditions, now) };
  }

  const regions = gw.spec.regions.map((r) =>
    observeRegion(
      r.name,
      r.minReplicas,
      children.deployments.get(r.name),
      children.hpas.get(r.name),
      children.pods?.get(r.name),
    ),
  );
  const readyRegions = regions.filter((r) => r.state === 'Ready');
  const notReady = regions.filter((r) => r.state !== 'Ready');
  const failedRegions = regions.filter((r) => r.state === 'Failed');
  const failingPods = regions.filter((r) => r.state === 'PodsFailing');
  const secrets = children.secrets ? secretProblems(gw, children.secrets) : [];
  // A region's autoscaler is judged once its pods are: until then its readings fail anyway.
  const autoscalers = gw.spec.regions.map((r) => ({
    name: r.name,
    ...observeAutoscaler(children.hpas.get(r.name)),
  }));
  const noMetric = autoscalers.filter((a) => a.state === 'MetricsUnavailable');
  const inactive = autoscalers.filter((a) => a.state === 'Inactive');
  const pending = autoscalers.filter((a) => a.state === 'Pending');

  let tunerProblem: string | undefined;
  if (gw.spec.nodeTuning.enabled) {
    const ds = children.nodeTuner;
    const st = ds?.status ?? {};
    if (!ds) tunerProblem = 'node tuner DaemonSet not created yet';
    else if ((st.observedGeneration ?? 0) < (ds.metadata?.generation ?? 0))
      tunerProblem = 'node tuner rolling out';
    else if (
      (st.numberReady ?? 0) < (st.desiredNumberScheduled ?? 0) ||
      (st.updatedNumberScheduled ?? 0) < (st.desiredNumberScheduled ?? 0)
    ) {
      tunerProblem = `node tuner ${st.numberReady ?? 0}/${st.desiredNumberScheduled ?? 0} pods ready`;
    }
  }

  const describe = (rs: RegionObservation[]) => rs.map((r) => `${r.name}: ${r.message}`).join('; ');
  // Ready: the first thing in this order that is wrong.
  if (failure) {
    conditions.push({
      type: 'Ready',
      status: 'False',
      reason: failure.reason,
      message: failure.message,
      ...og,
    });
  } else if (secrets.length) {
    conditions.push({
      type: 'Ready',
      status: 'False',
      reason: 'SecretMissing',
      message: secrets.join('; '),
      ...og,
    });
  } else if (notReady.length > 0) {
    conditions.push({
      type: 'Ready',
      status: 'False',
      reason: 'RegionsNotReady',
      message: describe(notReady),
      ...og,
    });
  } else if (tunerProblem) {
    conditions.push({
      type: 'Ready',
      status: 'False',
      reason: 'NodeTunerNotReady',
      message: tunerProblem,
      ...og,
    });
  } else if (noMetric.length) {
    conditions.push({
      type: 'Ready',
      status: 'False',
      reason: 'MetricsUnavailable',
      message:
        `the autoscaler cannot read pushgate_gateway_connections (${describeAutoscalers(noMetric)}); ` +
        metricsAdvice(gw),
      ...og,
    });
  } else if (inactive.length) {
    conditions.push({
      type: 'Ready',
      status: 'False',
      reason: 'AutoscalerInactive',
      message: `the autoscaler cannot scale: ${describeAutoscalers(inactive)}`,
      ...og,
    });
  } else if (pending.length) {
    conditions.push({
      type: 'Ready',
      status: 'False',
      reason: 'AutoscalerPending',
      message: describeAutoscalers(pending),
      ...og,
    });
  } else {
    conditions.push({
      type: 'Ready',
      status: 'True',
      reason: 'AllRegionsReady',
      message: `${regions.length} regions, ${regions.reduce((n, r) => n + r.readyReplicas, 0)} gateway pods ready`,
      ...og,
    });
  }

  // Progressing: moving towards the spec; False with the failure's reason when stopped.
  const progressing = notReady.filter(
    (r) =>
      r.state === 'RollingOut' ||
      r.state === 'ScalingUp' ||
      r.state === 'Missing' ||
      r.state === 'PodsNotReady',
  );
  if (failure?.terminal) {
    conditions.push({
      type: 'Progressing',
      status: 'False',
      reason: failure.reason,
      message: 'stopped until the spec is fixed',
      ...og,
    });
  } else if (failure) {
    conditions.push({
      type: 'Progressing',
      status: 'True',
      reason: 'Retrying',
      message: `retrying with backoff: ${failure.message}`,
      ...og,
    });
  } else if (progressing.length > 0 || tunerProblem) {
    conditions.push({
      type: 'Progressing',
      status: 'True',
      reason: 'RollingOut',
      message: describe(progressing) || tunerProblem || '',
      ...og,
    });
  } else if (pending.length) {
    conditions.push({
      type: 'Progressing',
      status: 'True',
      reason: 'AutoscalerPending',
      message: describeAutoscalers(pending),
      ...og,
    });
  } else {
    conditions.push({
      type: 'Progressing',
      status: 'False',
      reason: 'Settled',
      message: 'every region matches the spec',
      ...og,
    });
  }

  // Degraded: wrong in a way that waiting will not fix. An autoscaler without its metric is
  // not here: a new region's first readings fail until its pods publish their counts, so it
  // would warn on every rollout; Ready=False (MetricsUnavailable) says it, with the HPA's words.
  if (failure)
    conditions.push({
      type: 'Degraded',
      status: 'True',
      reason: failure.reason,
      message: failure.message,
      ...og,
    });
  else if (secrets.length)
    conditions.push({
      type: 'Degraded',
      status: 'True',
      reason: 'SecretMissing',
      message: secrets.join('; '),
      ...og,
    });
  else if (failedRegions.length)
    conditions.push({
      type: 'Degraded',
      status: 'True',
      reason: 'RolloutFailed',
      message: describe(failedRegions),
      ...og,
    });
  else if (failingPods.length)
    conditions.push({
      type: 'Degraded',
      status: 'True',
      reason: 'PodsFailing',
      message: describe(failingPods),
      ...og,
    });
  else conditions.push({ type: 'Degraded', status: 'False', reason: 'AsExpected', message: '', ...og });

  return {
    observedGeneration: generation,
    conditions: setConditions(prev, conditions, now),
    regions: regions.map(({ name, replicas, readyReplicas, connections }) => ({
      name,
      replicas,
      readyReplicas,
      connections,
    })),
    readyRegions: `${readyRegions.length}/${regions.length}`,
    replicas: regions.reduce((n, r) => n + r.replicas, 0),
    readyReplicas: regions.reduce((n, r) => n + r.readyReplicas, 0),
    connections: regions.reduce((n, r) => n + r.connections, 0),
  };
}
