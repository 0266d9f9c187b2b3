import type { Logger } from '../../../common/logger.js';
import type { AdapterServiceRef } from '../../../workloads/metrics-adapter/wiring.js';
import { FIELD_MANAGER, MANAGED_SELECTOR } from '../../identity.js';
import type { Controller } from '../../runtime/controller.js';
import type { KubeClient } from '../../runtime/kube.js';
import type { Manager } from '../../runtime/manager.js';
import { Resources } from '../../runtime/resources.js';
import { PushGatewayResource } from '../pushgateway/names.js';
import { planMetricsAPIServices } from './desired.js';

const KEY = 'custom.metrics.k8s.io';

export interface MetricsAPIServiceControllerOptions {
  client: KubeClient;
  manager: Manager;
  log: Logger;
  /** The adapter's Service; undefined = the operator was not told of one. */
  service: AdapterServiceRef | undefined;
}

/**
 * Registers the pushgate metrics adapter with the aggregation layer (the two
 * custom.metrics.k8s.io APIServices) while any PushGateway asks for it, restores them when
 * edited or deleted by hand, and removes them when no PushGateway asks any more. One cluster-wide
 * key; the decision is `planMetricsAPIServices`. It watches PushGateways through the same
 * shared informer as the PushGateway controller (one watch).
 */
export class MetricsAPIServiceController {
  readonly controller: Controller;
  private warned = '';

  constructor(private readonly o: MetricsAPIServiceControllerOptions) {
    const toKey = () => [KEY];
    this.controller = o.manager.controller({
      name: 'metrics-apiservice',
      watches: [
        { kind: PushGatewayResource, map: toKey, path: 'sync' },
        {
          kind: Resources.APIService,
          labelSelector: MANAGED_SELECTOR,
          map: (obj) => (obj.metadata?.name?.endsWith(`.${KEY}`) ? [KEY] : []),
          path: 'sync',
        },
      ],
      reconciler: { sync: () => this.sync() },
      workers: 1,
    });
  }

  async sync(): Promise<void> {
    const { client, log } = this.o;
    const gateways = this.controller.informer(PushGatewayResource).list();
    const apiServices = this.controller.informer(Resources.APIService, { labelSelector: MANAGED_SELECTOR });
    const plan = planMetricsAPIServices(gateways, this.o.service);
    const unconfigured = plan.unconfiguredRequests.join(',');
    if (unconfigured && unconfigured !== this.warned) {
      log.warn(
        { pushGateways: plan.unconfiguredRequests },
        'PushGateways ask for the pushgate metrics adapter (spec.metricsAdapter.enabled) but the operator has no --metrics-adapter-service; their HPAs need prometheus-adapter or that flag',
      );
    }
    this.warned = unconfigured;
    const wanted = new Set(plan.apply.map((a) => a.metadata!.name!));
    for (const apiService of plan.apply) {
      await client.apply(Resources.APIService, apiService, { fieldManager: FIELD_MANAGER });
    }
    // Only APIServices this operator labelled as its own are ever removed.
    for (const existing of apiServices.list()) {
      const name = existing.metadata!.name!;
      if (name.endsWith(`.${KEY}`) && !wanted.has(name)) {
        await client.deleteIfExists(Resources.APIService, undefined, name);
        log.info({ apiService: name }, 'removed the metrics APIService: no PushGateway asks for the adapter');
      }
    }
  }
}
