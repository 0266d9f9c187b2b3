import type { V1APIService } from '@kubernetes/client-node';
import { GROUP, VERSIONS } from './api.js';

export interface AdapterServiceRef {
  /** Namespace and name of the Service in front of the adapter. */
  namespace: string;
  name: string;
  port: number;
  /**
   * PEM of the CA (or the self-signed certificate itself) the aggregator trusts for the
   * adapter's serving certificate. Without it the APIService skips verification.
   */
  caBundle?: string;
}

/**
 * The APIServices that route custom.metrics.k8s.io/{v1beta2,v1beta1} through the aggregator to
 * the adapter's Service: a pure builder the operator applies when the PushGateway asks for
 * the adapter (spec.metricsAdapter.enabled) and the tests apply against a local cluster.
 */
export function buildMetricsAPIServices(service: AdapterServiceRef): V1APIService[] {
  return VERSIONS.map((version, i) => ({
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name: `${version}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'pushgate' } },
    spec: {
      group: GROUP,
      version,
      // The customary value for extension groups (metrics-server and prometheus-adapter use it);
      // one server owns a group, so there is nothing to outrank.
      groupPriorityMinimum: 100,
      // v1beta2 first: the HPA prefers it.
      versionPriority: 200 - i * 100,
      service: { namespace: service.namespace, name: service.name, port: service.port },
      ...(service.caBundle
        ? { caBundle: Buffer.from(service.caBundle).toString('base64') }
        : { insecureSkipTLSVerify: true }),
    },
  }));
}
