import type { KubeObject } from '../../runtime/kube.js';
import {
  buildMetricsAPIServices,
  type AdapterServiceRef,
} from '../../../workloads/metrics-adapter/wiring.js';
import { LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY } from '../../identity.js';

/**
 * Which custom.metrics.k8s.io APIServices the operator should hold, given the PushGateways it
 * sees and the adapter Service it was told about (`--metrics-adapter-service`). A pure policy:
 *
 * - An APIService is cluster-wide and one group/version has one backend, so it cannot belong to
 *   a PushGateway: the operator registers it while at least one PushGateway asks for the pushgate
 *   adapter (`spec.metricsAdapter.enabled`, default true) and removes it when none does (those
 *   clusters use prometheus-adapter for the same metric name).
 * - Without a configured adapter Service nothing is registered, and the PushGateways that ask for
 *   it are reported, so the operator can say why their HPAs have no metric.
 */
export interface MetricsAPIServicePlan {
  apply: KubeObject[];
  /** `namespace/name` of PushGateways that want the adapter while none is configured. */
  unconfiguredRequests: string[];
}

export function wantsMetricsAdapter(gw: KubeObject): boolean {
  const spec = gw.spec as { metricsAdapter?: { enabled?: boolean } } | undefined;
  // The API server defaults `enabled` to true; an object read before defaulting counts the same.
  return !gw.metadata?.deletionTimestamp && spec?.metricsAdapter?.enabled !== false;
}

export function planMetricsAPIServices(
  gateways: KubeObject[],
  service: AdapterServiceRef | undefined,
): MetricsAPIServicePlan {
  const wanting = gateways.filter(wantsMetricsAdapter);
  if (wanting.length === 0) return { apply: [], unconfiguredRequests: [] };
  if (!service) {
    return {
      apply: [],
      unconfiguredRequests: wanting.map((g) => `${g.metadata?.namespace}/${g.metadata?.name}`).sort(),
    };
  }
  const apply = buildMetricsAPIServices(service).map((a): KubeObject => {
    const obj = a as unknown as KubeObject;
    return {
      ...obj,
      metadata: {
        ...obj.metadata,
        labels: { ...obj.metadata?.labels, [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_PART_OF]: 'pushgate' },
      },
    };
  });
  return { apply, unconfiguredRequests: [] };
}

/** `--metrics-adapter-service namespace/name:port`. */
export function parseAdapterServiceRef(value: string): Omit<AdapterServiceRef, 'caBundle'> | undefined {
  if (!value) return undefined;
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9]*[a-z0-9])?):(\d{1,5})$/.exec(value);
  if (!m || Number(m[5]) < 1 || Number(m[5]) > 65535) {
    throw new Error(
      `'${value}' is not namespace/name:port (e.g. pushgate-system/pushgate-metrics-adapter:443)`,
    );
  }
  return { namespace: m[1]!, name: m[3]!, port: Number(m[5]) };
}
