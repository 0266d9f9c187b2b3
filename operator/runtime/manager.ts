import type { Logger } from '../../common/logger.js';
import { Controller, type ControllerSpec } from './controller.js';
import { Informer, apiListerWatcher, type Transform } from './informer.js';
import type { KubeClient, ResourceType } from './kube.js';
import { LeaderElector, type LeaderElectionOptions } from './leader.js';
import type { OperatorMetrics } from './metrics.js';
import { ProbeServer } from '../../common/probe-server.js';

export interface ManagerOptions {
  client: KubeClient;
  metrics: OperatorMetrics;
  log: Logger;
  /** Leader election; omitted = this process always leads (tests, single replica). */
  leaderElection?: Omit<LeaderElectionOptions, 'log' | 'onStartedLeading' | 'onStoppedLeading'>;
  probes?: { host: string; port: number };
  /** Watch one namespace only (namespaced kinds); undefined = all. */
  namespace?: string;
  /** Informers re-deliver every cached object this often (0 = never). */
  resyncMs?: number;
  /** Informers restart a watch that was silent this long. */
  watchdogMs?: number;
}

/**
 * Runs informers (on every replica, so a standby has a warm cache), controllers (only while
 * leading), the probe/metrics server, and a graceful shutdown that stops in the right order:
 * stop taking work, finish reconciles in flight, release the lease, stop watches, close the server.
 */
export class Manager {
  private informers: Informer[] = [];
  private shared = new Map<string, Informer>();
  private controllers: Controller[] = [];
  private elector: LeaderElector | undefined;
  private server: ProbeServer | undefined;
  private leading = false;
  private transitions: Promise<void> = Promise.resolve();
  probePort: number | undefined;

  constructor(readonly o: ManagerOptions) {
    o.client.onRequest((verb, status, resource) =>
      o.metrics.apiRequests.inc({ verb, resource, code: String(status) }),
    );
  }

  /**
   * The one informer of `kind` with this selector and transform, made on first use: two
   * controllers that watch the same thing share one watch and one cache. Namespaced kinds
   * are watched in the manager's namespace only.
   */
  informer(kind: ResourceType, o: { labelSelector?: string; transform?: Transform } = {}): Informer {
    const id = `${kind.group}/${kind.plural}?${o.labelSelector ?? ''}#${o.transform?.name ?? ''}`;
    let inf = this.shared.get(id);
    if (!inf) {
      const { client, log, metrics, namespace, resyncMs, watchdogMs } = this.o;
      inf = new Informer(
        apiListerWatcher(client, kind, {
          ...(kind.namespaced && namespace ? { namespace } : {}),
          ...(o.labelSelector ? { labelSelector: o.labelSelector } : {}),
        }),
        {
          name: o.transform ? `${kind.plural}/${o.transform.name}` : kind.plural,
          log,
          metrics,
          ...(resyncMs !== undefined ? { resyncMs } : {}),
          ...(watchdogMs !== undefined ? { watchdogMs } : {}),
          ...(o.transform ? { transform: o.transform } : {}),
        },
      );
      this.shared.set(id, inf);
      this.informers.push(inf);
    }
    return inf;
  }

  /** Builds a controller from what it declares (for, owns, watches) and runs it while leading. */
  controller(spec: ControllerSpec): Controller {
    const c = new Controller(spec, {
      informer: (kind, o) => this.informer(kind, o),
      namespace: this.o.namespace,
      log: this.o.log,
      metrics: this.o.metrics,
    });
    this.controllers.push(c);
    return c;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  ready(): boolean {
    return this.informers.every((i) => i.hasSynced());
  }

  async start(): Promise<void> {
    const { log, metrics } = this.o;
    if (this.o.probes) {
      this.server = new ProbeServer({
        ...this.o.probes,
        registry: metrics.registry,
        healthy: () => true,
        ready: () => this.ready(),
      });
      this.probePort = await this.server.listen();
      log.info({ port: this.probePort }, 'probe and metrics server listening');
    }
    for (const i of this.informers) i.start();
    await Promise.all(this.informers.map((i) => i.waitForSync()));
    log.info({ informers: this.informers.length }, 'caches synced');
    const le = this.o.leaderElection;
    if (!le) {
      this.startLeading();
      return;
    }
    metrics.leader.set({ name: le.name }, 0);
    this.elector = new LeaderElector(this.o.client, {
      ...le,
      log,
      onStartedLeading: () => this.startLeading(),
      onStoppedLeading: () => this.stopLeading(),
    });
    this.elector.start();
  }

  private startLeading(): void {
    this.transitions = this.transitions.then(() => {
      this.leading = true;
      if (this.o.leaderElection) this.o.metrics.leader.set({ name: this.o.leaderElection.name }, 1);
      // Each controller queues every key it knows when it starts: a new leader catches up.
      for (const c of this.controllers) c.start();
    });
  }

  private stopLeading(): void {
    this.transitions = this.transitions.then(async () => {
      this.leading = false;
      if (this.o.leaderElection) this.o.metrics.leader.set({ name: this.o.leaderElection.name }, 0);
      await Promise.all(this.controllers.map((c) => c.pause()));
    });
  }

  async stop(): Promise<void> {
    const { log } = this.o;
    log.info('shutting down');
    // Stop acting first; the elector then releases the lease once our writes are done.
    await Promise.all(this.controllers.map((c) => c.pause()));
    await this.elector?.stop();
    await this.transitions;
    await Promise.all(this.controllers.map((c) => c.stop()));
    await Promise.all(this.informers.map((i) => i.stop()));
    await this.server?.close();
    this.o.client.close();
    log.info('stopped');
  }
}
