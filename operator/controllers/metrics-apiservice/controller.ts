import type { Logger } from '../../../common/logger.js';
import type { AdapterServiceRef } from '../../../workloads/metrics-adapter/wiring.js';
import { Controller, type ReconcileResult } from '../../runtime/controller.js';
import { Informer, apiListerWatcher } from '../../runtime/informer.js';
import type { KubeClient } from '../../runtime/kube.js';
import type { Manager } from '../../runtime/manager.js';
import type { OperatorMetrics } from '../../runtime/metrics.js';
import { Resources } from '../../runtime/resources.js';
import { FIELD_MANAGER, MANAGED_SELECTOR } from '../pushgateway/names.js';
import { planMetricsAPIServices } from './desired.js';

const KEY = 'custom.metrics.k8s.io';

export interface MetricsAPIServiceControllerOptions {
  client: KubeClient;
  manager: Manager;
  metrics: OperatorMetrics;
  log: Logger;
  /** The PushGateway informer (shared with the PushGateway controller: one watch). */
  gateways: Informer;
  /** The adapter's Service; undefined = the operator was not told of one. */
  service: AdapterServiceRef | undefined;
  resyncMs?: number;
}

/**
 * Registers the pushgate metrics adapter with the aggregation layer (the two
 * custom.metrics.k8s.io APIServices) while any PushGateway asks for it, restores them when
 * edited or deleted by hand, and removes them when no PushGateway asks any more. One cluster-wide
 * key; the decision is `planMetricsAPIServices`.
 */
export class MetricsAPIServiceController {
  readonly controller: Controller;
  readonly apiServices: Informer;
  private warned = '';

  constructor(private readonly o: MetricsAPIServiceControllerOptions) {
    const { client, manager, metrics, log } = o;
    this.controller = manager.addController(
      new Controller({
        name: 'metrics-apiservice',
        reconcile: () => this.reconcile(),
        workers: 1,
        log,
        metrics,
      }),
    );
    this.apiServices = manager.addInformer(
      new Informer(apiListerWatcher(client, Resources.APIService, { labelSelector: MANAGED_SELECTOR }), {
        name: Resources.APIService.plural,
        log,
        metrics,
        ...(o.resyncMs !== undefined ? { resyncMs: o.resyncMs } : {}),
      }),
    );
    const enqueue = () => this.controller.enqueue(KEY);
    this.apiServices.on((event, obj) => {
      if (obj.metadata?.name?.endsWith(`.${KEY}`)) enqueue();
      void event;
    });
    o.gateways.on(enqueue);
  }

  enqueue(): void {
    this.controller.enqueue(KEY);
  }

  async reconcile(): Promise<ReconcileResult> {
    const { client, log } = this.o;
    const plan = planMetricsAPIServices(this.o.gateways.list(), this.o.service);
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
    for (const existing of this.apiServices.list()) {
      const name = existing.metadata!.name!;
      if (name.endsWith(`.${KEY}`) && !wanted.has(name)) {
        await client.deleteIfExists(Resources.APIService, undefined, name);
        log.info({ apiService: name }, 'removed the metrics APIService: no PushGateway asks for the adapter');
      }
    }
  }
}
