import type { Logger } from '../../common/logger.js';
import { MANAGED_SELECTOR } from '../identity.js';
import { onlyStatusChanged } from './changes.js';
import { terminalCause } from './errors.js';
import type { Informer, InformerEvent, Transform } from './informer.js';
import { objectKey, splitKey, type KubeObject, type ResourceType } from './kube.js';
import type { OperatorMetrics } from './metrics.js';
import { ownerKeyOf, type OwnerLabels } from './owners.js';
import { WorkQueue, type WorkQueueOptions } from './queue.js';

/** What a sync asks for: nothing (done until something changes) or a look again later. */
export type SyncResult = { requeueAfterMs?: number } | void;

/**
 * How the last sync of a key ended, kept for the status path (prometheus-operator's
 * ReconciliationTracker): status is computed from the cache plus this, so a sync never
 * writes status itself and an error keeps its type on the way to a condition.
 */
export type SyncOutcome = { ok: true } | { ok: false; error: unknown; terminal: boolean };

export interface Reconciler {
  /**
   * Makes the world match the object's spec (apply, prune). Throw a TerminalError for what
   * retrying cannot fix (recorded, not retried); anything else thrown is retried with backoff.
   */
  sync(key: string): Promise<SyncResult>;
  /** Computes and writes the object's status from the cache and the last sync's outcome. */
  updateStatus?(key: string, lastSync: SyncOutcome | undefined): Promise<void>;
}

/** Where a watch event sends a key: the sync path (apply) or the status path (recompute status only). */
export type Path = 'sync' | 'status';

export interface Watch {
  kind: ResourceType;
  labelSelector?: string;
  /** Keep less of each object in the cache (e.g. a Secret's key names, not its values). */
  transform?: Transform;
  /** The keys an event of `obj` concerns. */
  map(obj: KubeObject): string[];
  path: Path;
}

/** A controller declares what it is for and what it owns; the runtime builds the watches. */
export interface ControllerSpec {
  name: string;
  /** The primary kind: one key per object. An update that moved only its status goes to the status path. */
  for?: ResourceType;
  /**
   * Kinds this controller creates, watched through the managed selector. A child's event
   * brings its owner's key back: on the status path when only the child's status moved (a
   * rollout progressing, an HPA reporting), else on the sync path (a hand edit to undo).
   */
  owns?: ResourceType[];
  /** Where children cannot carry an owner reference (cluster-scoped), labels name the owner. */
  ownerLabels?: OwnerLabels;
  /** Anything else to watch, mapped to keys. */
  watches?: Watch[];
  reconciler: Reconciler;
  workers?: number;
  queue?: WorkQueueOptions;
}

/** What the manager gives a controller: shared informers, the namespace filter, logs and metrics. */
export interface ControllerDeps {
  informer(kind: ResourceType, o?: { labelSelector?: string; transform?: Transform }): Informer;
  /** Watch only this namespace (undefined = all). */
  namespace: string | undefined;
  log: Logger;
  metrics: OperatorMetrics;
}

/**
 * Two work queues and their workers, one per path (the resource reconciler of
 * prometheus-operator): `sync` applies desired state, `status` recomputes and writes status.
 * A sync always ends by queueing the key's status. Keys can be queued at any time (informers
 * run on every replica, so the cache is warm); workers run only between start() and pause(),
 * which the manager ties to leadership, so a standby replica never acts.
 */
export class Controller {
  readonly syncQueue: WorkQueue;
  readonly statusQueue: WorkQueue;
  private readonly outcomes = new Map<string, SyncOutcome>();
  private running = false;
  private workers: Promise<void>[] = [];
  private runGeneration = 0;
  private pauseSignal: AbortController | undefined;
  private readonly replays: (() => void)[] = [];
  private readonly forInformer: Informer | undefined;

  constructor(
    readonly spec: ControllerSpec,
    private readonly deps: ControllerDeps,
  ) {
    this.syncQueue = new WorkQueue(spec.queue);
    this.statusQueue = new WorkQueue(spec.queue);
    if (spec.for) {
      const inf = deps.informer(spec.for);
      this.forInformer = inf;
      inf.on((event, obj, old) => {
        const path = event === 'update' && onlyStatusChanged(old, obj) ? 'status' : 'sync';
        this.enqueue(objectKey(obj), path, spec.for!.plural);
      });
      this.replays.push(() => {
        for (const o of inf.list()) this.enqueue(objectKey(o), 'sync', 'leader-elected');
      });
    }
    for (const kind of spec.owns ?? []) {
      const owner = spec.for;
      if (!owner) throw new Error(`controller ${spec.name}: owns needs for`);
      const inf = deps.informer(kind, { labelSelector: MANAGED_SELECTOR });
      const keyOf = (o: KubeObject) => ownerKeyOf(o, owner, spec.ownerLabels);
      inf.on((event, obj, old) => {
        const key = keyOf(obj);
        if (!key) return;
        const path = event === 'update' && onlyStatusChanged(old, obj) ? 'status' : 'sync';
        this.enqueue(key, path, kind.plural);
      });
      // Leftover children whose owner is gone are cleaned up by their owner's key.
      this.replays.push(() => {
        for (const o of inf.list()) {
          const key = keyOf(o);
          if (key) this.enqueue(key, 'sync', 'leader-elected');
        }
      });
    }
    for (const w of spec.watches ?? []) {
      const inf = deps.informer(w.kind, {
        ...(w.labelSelector ? { labelSelector: w.labelSelector } : {}),
        ...(w.transform ? { transform: w.transform } : {}),
      });
      inf.on((_event: InformerEvent, obj) => {
        for (const key of w.map(obj)) this.enqueue(key, w.path, w.kind.plural);
      });
      if (w.path === 'sync')
        this.replays.push(() => {
          for (const o of inf.list()) for (const key of w.map(o)) this.enqueue(key, 'sync', 'leader-elected');
        });
    }
  }

  get name(): string {
    return this.spec.name;
  }

  /** The shared cache of a kind this controller watches (for reading in reconcilers). */
  informer(kind: ResourceType, o?: { labelSelector?: string; transform?: Transform }): Informer {
    return this.deps.informer(kind, o);
  }

  /** The cached primary object of `key`. */
  get(key: string): KubeObject | undefined {
    return this.forInformer?.get(key);
  }

  /** The last sync's outcome for `key` (undefined before the first sync). */
  lastSync(key: string): SyncOutcome | undefined {
    return this.outcomes.get(key);
  }

  enqueue(key: string, path: Path = 'sync', trigger = 'direct'): void {
    const { namespace } = this.deps;
    if (namespace && splitKey(key).namespace !== undefined && splitKey(key).namespace !== namespace) return;
    this.deps.metrics.enqueues.inc({ controller: this.name, trigger, mode: path });
    const q = path === 'sync' || !this.spec.reconciler.updateStatus ? this.syncQueue : this.statusQueue;
    q.add(key);
    this.deps.metrics.queueDepth.set({ name: this.name }, this.syncQueue.depth + this.statusQueue.depth);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const gen = ++this.runGeneration;
    this.pauseSignal = new AbortController();
    const n = this.spec.workers ?? 4;
    this.workers = Array.from({ length: n }, () => this.work(gen, 'sync'));
    if (this.spec.reconciler.updateStatus)
      this.workers.push(...Array.from({ length: Math.max(1, n >> 1) }, () => this.work(gen, 'status')));
    // A new leader catches up on whatever happened meanwhile.
    for (const replay of this.replays) replay();
  }

  /** Stops taking keys; resolves when the reconciles in flight are done. Keys stay queued. */
  async pause(): Promise<void> {
    this.running = false;
    this.runGeneration++;
    this.pauseSignal?.abort();
    await Promise.all(this.workers);
    this.workers = [];
  }

  async stop(): Promise<void> {
    this.running = false;
    this.runGeneration++;
    this.pauseSignal?.abort();
    await Promise.all([this.syncQueue.shutDown(), this.statusQueue.shutDown()]);
    await Promise.all(this.workers);
  }

  private async work(gen: number, path: Path): Promise<void> {
    const queue = path === 'sync' ? this.syncQueue : this.statusQueue;
    const label = path === 'sync' ? this.name : `${this.name}/status`;
    const { log, metrics } = this.deps;
    while (this.running && gen === this.runGeneration) {
      const key = await queue.get(this.pauseSignal?.signal);
      if (key === undefined) return;
      metrics.queueDepth.set({ name: this.name }, this.syncQueue.depth + this.statusQueue.depth);
      const end = metrics.reconcileDuration.startTimer({ controller: label });
      let result: 'success' | 'requeue' | 'error' | 'terminal' = 'success';
      try {
        if (path === 'sync') {
          const r = await this.runSync(key);
          if (r && r.requeueAfterMs !== undefined) {
            result = 'requeue';
            queue.addAfter(key, r.requeueAfterMs);
          }
        } else {
          await this.spec.reconciler.updateStatus!(key, this.outcomes.get(key));
        }
        queue.forget(key);
      } catch (err) {
        const terminal = terminalCause(err);
        if (terminal) {
          // Retrying cannot fix it: the status path records it; a change of the object brings the key back.
          result = 'terminal';
          queue.forget(key);
          log.info(
            { key, controller: label, reason: terminal.reason, err: terminal.message },
            'reconcile stopped',
          );
        } else {
          result = 'error';
          metrics.reconcileErrors.inc({ controller: label });
          metrics.queueRetries.inc({ name: this.name });
          const delay = queue.addRateLimited(key);
          log.warn({ key, controller: label, err: errorText(err), retryInMs: delay }, 'reconcile failed');
        }
      } finally {
        metrics.reconcileTotal.inc({ controller: label, result });
        end();
        queue.done(key);
      }
    }
  }

  /** One sync; its outcome is recorded and the key's status queued, whatever happened. */
  private async runSync(key: string): Promise<SyncResult> {
    try {
      const r = await this.spec.reconciler.sync(key);
      this.outcomes.set(key, { ok: true });
      return r;
    } catch (err) {
      this.outcomes.set(key, { ok: false, error: err, terminal: terminalCause(err) !== undefined });
      throw err;
    } finally {
      if (this.spec.for && !this.forInformer?.get(key)) this.outcomes.delete(key);
      else if (this.spec.reconciler.updateStatus) this.enqueue(key, 'status', 'sync');
    }
  }
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
