import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The operator's own metrics, on one registry per process (tests build several). Names follow
 * controller-runtime's so existing dashboards read them: reconcile totals by result, errors,
 * durations, queue depth, plus the runtime's watch restarts by reason and API requests by verb
 * (the bench reads these to prove the operator is quiet once idle).
 */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Reconciles by controller (the status path as <name>/status) and result (success, requeue, error, terminal).',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Reconciles that returned an error, by controller.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Time per reconcile, by controller.',
    labelNames: ['controller'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'workqueue_depth',
    help: 'Keys waiting in the work queue, by controller.',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  readonly queueRetries = new Counter({
    name: 'workqueue_retries_total',
    help: 'Rate-limited re-adds (retries after errors), by controller.',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  readonly enqueues = new Counter({
    name: 'pushgate_operator_enqueues_total',
    help: 'Keys enqueued, by controller, what triggered it (the watched resource, sync, leader-elected) and the path: sync (re-apply desired state) or status (only recompute status).',
    labelNames: ['controller', 'trigger', 'mode'] as const,
    registers: [this.registry],
  });
  readonly watchRestarts = new Counter({
    name: 'pushgate_operator_watch_restarts_total',
    help: 'Watch streams restarted, by resource and reason (closed, gone, stalled, error).',
    labelNames: ['resource', 'reason'] as const,
    registers: [this.registry],
  });
  readonly watchEvents = new Counter({
    name: 'pushgate_operator_watch_events_total',
    help: 'Watch events received, by resource and type.',
    labelNames: ['resource', 'type'] as const,
    registers: [this.registry],
  });
  readonly apiRequests = new Counter({
    name: 'pushgate_operator_api_requests_total',
    help: 'Requests to the Kubernetes API, by verb (GET, APPLY, PATCH, POST, PUT, DELETE, WATCH), resource and status code.',
    labelNames: ['verb', 'resource', 'code'] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'leader_election_master_status',
    help: '1 while this process holds the leader lease.',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });

  constructor({ processMetrics = true }: { processMetrics?: boolean } = {}) {
    if (processMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
