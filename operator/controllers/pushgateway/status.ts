import type { PushGateway, PushGatewayStatus } from '../../api/index.js';
import { setConditions, type Condition, type ConditionInput } from '../../runtime/conditions.js';
import type { KubeObject } from '../../runtime/kube.js';

/**
 * The status of a PushGateway, computed from its children as the API server shows them (a
 * pure function: children and the previous status in, status out). Conditions follow the
 * EMQX operator: Ready (every region has its pods ready, the node tuner too), Progressing
 * (something is rolling out or scaling), Degraded (something is wrong that waiting will not fix).
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

interface HPALike extends KubeObject {
  status?: {
    currentReplicas?: number;
    currentMetrics?: { type: string; pods?: { current?: { averageValue?: string } } }[];
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

export interface ObservedChildren {
  /** Per region name: its Deployment, or undefined if it does not exist (yet). */
  deployments: Map<string, DeploymentLike | undefined>;
  hpas: Map<string, HPALike | undefined>;
  /** undefined when node tuning is off or the DaemonSet does not exist yet. */
  nodeTuner?: DaemonSetLike;
}

export type RegionState = 'Ready' | 'Missing' | 'RollingOut' | 'ScalingUp' | 'PodsNotReady' | 'Failed';

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

export function observeRegion(
  name: string,
  minReplicas: number,
  deployment: DeploymentLike | undefined,
  hpa: HPALike | undefined,
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

export interface StatusInput {
  gw: PushGateway;
  children: ObservedChildren;
  /** The error of the apply steps in this reconcile, if any. */
  applyError?: string;
  now: Date;
}

export function computeStatus({ gw, children, applyError, now }: StatusInput): PushGatewayStatus {
  const generation = gw.metadata.generation ?? 0;
  const regions = gw.spec.regions.map((r) =>
    observeRegion(r.name, r.minReplicas, children.deployments.get(r.name), children.hpas.get(r.name)),
  );
  const readyRegions = regions.filter((r) => r.state === 'Ready');
  const notReady = regions.filter((r) => r.state !== 'Ready');
  const failedRegions = regions.filter((r) => r.state === 'Failed');

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
  const conditions: ConditionInput[] = [];
  const og = { observedGeneration: generation };
  if (applyError) {
    conditions.push({ type: 'Ready', status: 'False', reason: 'ApplyFailed', message: applyError, ...og });
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
  } else {
    conditions.push({
      type: 'Ready',
      status: 'True',
      reason: 'AllRegionsReady',
      message: `${regions.length} regions, ${regions.reduce((n, r) => n + r.readyReplicas, 0)} gateway pods ready`,
      ...og,
    });
  }
  const progressing = notReady.filter(
    (r) =>
      r.state === 'RollingOut' ||
      r.state === 'ScalingUp' ||
      r.state === 'Missing' ||
      r.state === 'PodsNotReady',
  );
  conditions.push(
    progressing.length > 0 || (tunerProblem && !applyError)
      ? {
          type: 'Progressing',
          status: 'True',
          reason: 'RollingOut',
          message: describe(progressing) || tunerProblem || '',
          ...og,
        }
      : {
          type: 'Progressing',
          status: 'False',
          reason: 'Settled',
          message: 'every region matches the spec',
          ...og,
        },
  );
  if (applyError)
    conditions.push({ type: 'Degraded', status: 'True', reason: 'ApplyFailed', message: applyError, ...og });
  else if (failedRegions.length) {
    conditions.push({
      type: 'Degraded',
      status: 'True',
      reason: 'RolloutFailed',
      message: describe(failedRegions),
      ...og,
    });
  } else conditions.push({ type: 'Degraded', status: 'False', reason: 'AsExpected', message: '', ...og });

  const prev = (gw.status?.conditions ?? []) as Condition[];
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
