import type { Logger } from '../../common/logger.js';
import { exponentialDelay, withJitter } from './backoff.js';
import {
  KubeApiError,
  objectKey,
  type KubeClient,
  type KubeList,
  type KubeObject,
  type ResourceType,
  type WatchEvent,
  type WatchHandle,
} from './kube.js';
import type { OperatorMetrics } from './metrics.js';

/** Where an informer gets its objects: a list and a watch from a resourceVersion. */
export interface ListerWatcher {
  list(): Promise<KubeList>;
  watch(resourceVersion: string, onEvent: (e: WatchEvent) => void, onEnd: (err?: Error) => void): WatchHandle;
}

export function apiListerWatcher(
  client: KubeClient,
  resource: ResourceType,
  {
    namespace,
    labelSelector,
    timeoutSeconds = 300,
  }: { namespace?: string; labelSelector?: string; timeoutSeconds?: number } = {},
): ListerWatcher {
  return {
    list: () => client.list(resource, namespace, labelSelector ? { labelSelector } : {}),
    watch: (resourceVersion, onEvent, onEnd) =>
      client.watch(
        resource,
        namespace,
        // Spread the server-side timeouts so many watches do not all reconnect at once.
        { resourceVersion, labelSelector, timeoutSeconds: Math.round(withJitter(timeoutSeconds, 0.2)) },
        onEvent,
        onEnd,
      ),
  };
}

export type InformerEvent = 'add' | 'update' | 'delete' | 'resync';

/**
 * Trims each object before it is cached (controller-runtime's TransformFunc): a cache of
 * Pods or Secrets keeps only what a controller reads, so memory stays small and a Secret's
 * values never sit in the operator's heap. `name` tells shared informers apart.
 */
export interface Transform {
  name: string;
  fn(obj: KubeObject): KubeObject;
}
export type InformerHandler<T extends KubeObject> = (event: InformerEvent, obj: T, old?: T) => void;

export interface InformerOptions {
  /** Name in logs and metrics (e.g. the plural). */
  name: string;
  /** Re-deliver every cached object as 'resync' this often (0 = never). */
  resyncMs?: number;
  /** Restart a watch that delivered nothing (not even a bookmark) for this long. */
  watchdogMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  log: Logger;
  metrics?: OperatorMetrics;
  transform?: Transform;
}

type WatchOutcome = { reason: 'closed' | 'gone' | 'stalled' | 'error' | 'stopped'; err?: Error };

/**
 * A cache of one kind kept current by list+watch, that does not die silently:
 * - any watch end is followed by a new watch from the last resourceVersion seen; errors
 *   back off exponentially (with jitter), a clean server-side close restarts at once;
 * - 410 Gone (answer or ERROR event) means our resourceVersion was compacted: relist, diff
 *   the cache against the list and deliver the differences (deletes included);
 * - a watchdog aborts a stream that went quiet (half-open TCP after a network fault or an
 *   API server that died without closing), and the loop restarts it;
 * - every `resyncMs` each cached object is delivered again, so a reconcile that was lost
 *   (or a drift nobody was told about) is caught up.
 */
export class Informer<T extends KubeObject = KubeObject> {
  private cache = new Map<string, T>();
  private handlers: InformerHandler<T>[] = [];
  private synced = false;
  private stopped = false;
  private current: WatchHandle | undefined;
  private wakeStop: (() => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private syncWaiters: (() => void)[] = [];
  private lastContact = 0;
  readonly opts: Required<Omit<InformerOptions, 'metrics' | 'transform'>> &
    Pick<InformerOptions, 'metrics' | 'transform'>;

  constructor(
    private readonly source: ListerWatcher,
    opts: InformerOptions,
  ) {
    this.opts = {
      resyncMs: 10 * 60_000,
      watchdogMs: 6 * 60_000,
      backoffBaseMs: 200,
      backoffMaxMs: 10_000,
      ...opts,
    };
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Time of the last successful list or watch event (for diagnostics). */
  get lastContactAt(): number {
    return this.lastContact;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  get size(): number {
    return this.cache.size;
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
    if (this.opts.resyncMs > 0) this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.current?.abort();
    this.wakeStop?.();
    await this.loop;
  }

  private trim(obj: KubeObject): T {
    return (this.opts.transform ? this.opts.transform.fn(obj) : obj) as T;
  }

  private scheduleResync(): void {
    this.resyncTimer = setTimeout(
      () => {
        if (this.stopped) return;
        for (const obj of this.cache.values()) this.emit('resync', obj);
        this.scheduleResync();
      },
      withJitter(this.opts.resyncMs, 0.1),
    );
    this.resyncTimer.unref();
  }

  private emit(event: InformerEvent, obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        h(event, obj, old);
      } catch (err) {
        this.opts.log.error({ err, informer: this.opts.name }, 'informer handler threw');
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wakeStop = done;
    });
  }

  /** Replaces the cache with a fresh list and delivers what changed. */
  private async relist(): Promise<string> {
    const list = await this.source.list();
    this.lastContact = Date.now();
    const seen = new Set<string>();
    for (const raw of list.items) {
      const obj = this.trim(raw);
      const key = objectKey(obj);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit('update', obj, old);
    }
    for (const [key, old] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old);
      }
    }
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    return list.metadata.resourceVersion ?? '';
  }

  private async run(): Promise<void> {
    const { log, name, metrics } = this.opts;
    let resourceVersion: string | undefined;
    let failures = 0;
    while (!this.stopped) {
      try {
        if (resourceVersion === undefined) resourceVersion = await this.relist();
      } catch (err) {
        const delay = withJitter(
          exponentialDelay(failures++, this.opts.backoffBaseMs, this.opts.backoffMaxMs),
        );
        log.warn({ err: String(err), informer: name, delayMs: delay }, 'list failed; retrying');
        metrics?.watchRestarts.inc({ resource: name, reason: 'error' });
        await this.sleep(delay);
        continue;
      }
      const rvBox = { rv: resourceVersion };
      const outcome = await this.watchOnce(rvBox);
      resourceVersion = rvBox.rv;
      if (outcome.reason === 'stopped' || this.stopped) break;
      metrics?.watchRestarts.inc({ resource: name, reason: outcome.reason });
      if (outcome.reason === 'gone') {
        log.info({ informer: name }, 'watch resourceVersion expired (410 Gone); relisting');
        resourceVersion = undefined;
        failures = 0;
        continue;
      }
      if (outcome.reason === 'closed') {
        failures = 0;
        continue;
      }
      const delay = withJitter(exponentialDelay(failures++, this.opts.backoffBaseMs, this.opts.backoffMaxMs));
      log.warn(
        { err: outcome.err?.message, informer: name, reason: outcome.reason, delayMs: delay },
        'watch ended; restarting',
      );
      await this.sleep(delay);
    }
  }

  /** One watch stream, until it ends; keeps `box.rv` at the last resourceVersion seen. */
  private watchOnce(box: { rv: string }): Promise<WatchOutcome> {
    return new Promise((resolve) => {
      let settled = false;
      let watchdog: NodeJS.Timeout | undefined;
      let gotEvent = false;
      const stream: { handle?: WatchHandle } = {};
      const finish = (o: WatchOutcome) => {
        if (settled) return;
        settled = true;
        if (watchdog) clearTimeout(watchdog);
        this.wakeStop = undefined;
        stream.handle?.abort();
        resolve(o);
      };
      const feedWatchdog = () => {
        if (watchdog) clearTimeout(watchdog);
        watchdog = setTimeout(() => finish({ reason: 'stalled' }), this.opts.watchdogMs);
        watchdog.unref();
      };
      const onEvent = (e: WatchEvent) => {
        if (settled) return;
        gotEvent = true;
        this.lastContact = Date.now();
        feedWatchdog();
        this.opts.metrics?.watchEvents.inc({ resource: this.opts.name, type: e.type });
        if (e.type === 'ERROR') {
          const status = e.object as { code?: number; reason?: string; message?: string };
          if (status.code === 410) return finish({ reason: 'gone' });
          return finish({ reason: 'error', err: new Error(`watch ERROR ${status.code}: ${status.message}`) });
        }
        const obj = this.trim(e.object);
        const rv = obj.metadata?.resourceVersion;
        if (rv) box.rv = rv;
        if (e.type === 'BOOKMARK') return;
        const key = objectKey(obj);
        const old = this.cache.get(key);
        if (e.type === 'DELETED') {
          this.cache.delete(key);
          this.emit('delete', obj);
        } else {
          this.cache.set(key, obj);
          if (old) this.emit('update', obj, old);
          else this.emit('add', obj);
        }
      };
      const onEnd = (err?: Error) => {
        if (this.stopped) return finish({ reason: 'stopped' });
        if (err instanceof KubeApiError && err.status === 410) return finish({ reason: 'gone' });
        if (err) return finish({ reason: 'error', err });
        // A clean close right after opening, with no event, is as suspicious as an error
        // (e.g. a proxy cutting streams): back off instead of spinning.
        finish(
          gotEvent
            ? { reason: 'closed' }
            : { reason: 'error', err: new Error('watch closed without events') },
        );
      };
      feedWatchdog();
      const handle = this.source.watch(box.rv, onEvent, onEnd);
      stream.handle = handle;
      if (settled) handle.abort();
      this.current = handle;
      if (!settled) this.wakeStop = () => finish({ reason: 'stopped' });
    });
  }
}
