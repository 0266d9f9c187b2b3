import type { Logger } from '../../common/logger.js';
import type { OperatorMetrics } from './metrics.js';
import { WorkQueue, type WorkQueueOptions } from './queue.js';

/** What a reconcile asks for: nothing (done until something changes) or a look again later. */
export type ReconcileResult = { requeueAfterMs?: number } | void;

export interface ControllerOptions {
  name: string;
  /** Reconcile one key (`namespace/name`). Throwing retries the key with per-key backoff. */
  reconcile(key: string): Promise<ReconcileResult>;
  workers?: number;
  queue?: WorkQueueOptions;
  log: Logger;
  metrics: OperatorMetrics;
}

/**
 * A work queue and its workers. Keys can be enqueued at any time (informers run on every
 * replica, so the cache is warm); workers run only between start() and pause(), which the
 * manager ties to leadership, so a standby replica never acts.
 */
export class Controller {
  readonly queue: WorkQueue;
  private running = false;
  private workers: Promise<void>[] = [];
  private runGeneration = 0;
  private pauseSignal: AbortController | undefined;

  constructor(readonly o: ControllerOptions) {
    this.queue = new WorkQueue(o.queue);
  }

  get name(): string {
    return this.o.name;
  }

  enqueue(key: string): void {
    this.queue.add(key);
    this.o.metrics.queueDepth.set({ name: this.o.name }, this.queue.depth);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const gen = ++this.runGeneration;
    this.pauseSignal = new AbortController();
    const n = this.o.workers ?? 4;
    this.workers = Array.from({ length: n }, () => this.work(gen));
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
    await this.queue.shutDown();
    await Promise.all(this.workers);
  }

  private async work(gen: number): Promise<void> {
    const { name, log, metrics } = this.o;
    while (this.running && gen === this.runGeneration) {
      const key = await this.nextKey();
      if (key === undefined) return;
      metrics.queueDepth.set({ name }, this.queue.depth);
      const end = metrics.reconcileDuration.startTimer({ controller: name });
      try {
        const result = await this.o.reconcile(key);
        this.queue.forget(key);
        if (result && result.requeueAfterMs !== undefined) {
          metrics.reconcileTotal.inc({ controller: name, result: 'requeue' });
          this.queue.addAfter(key, result.requeueAfterMs);
        } else {
          metrics.reconcileTotal.inc({ controller: name, result: 'success' });
        }
      } catch (err) {
        metrics.reconcileTotal.inc({ controller: name, result: 'error' });
        metrics.reconcileErrors.inc({ controller: name });
        metrics.queueRetries.inc({ name });
        const delay = this.queue.addRateLimited(key);
        log.warn(
          { key, err: err instanceof Error ? err.message : String(err), retryInMs: delay },
          'reconcile failed',
        );
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }

  private nextKey(): Promise<string | undefined> {
    return this.queue.get(this.pauseSignal?.signal);
  }
}
