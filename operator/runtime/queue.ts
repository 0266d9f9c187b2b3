import { TokenBucket } from '../../common/ratelimit/token-bucket.js';
import { ItemBackoff } from './backoff.js';

export interface WorkQueueOptions {
  /** First retry delay after a failure; doubles per failure of the same key. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Global rate of rate-limited re-adds (retries), shared by all keys. */
  qps?: number;
  burst?: number;
}

/**
 * A work queue with client-go's semantics:
 * - a key waiting in the queue is there once, however often it is added (dedupe);
 * - a key being processed is never handed to a second worker; adds during processing mark
 *   it dirty and it is queued again when the worker calls done() (per-key exclusivity);
 * - addRateLimited() retries a key after max(per-key exponential backoff, global token
 *   bucket delay), so one failing object backs off and many failing objects cannot flood
 *   the API server; forget() resets a key's backoff after a success.
 */
export class WorkQueue {
  private queue: string[] = [];
  private dirty = new Set<string>();
  private processing = new Set<string>();
  private waiters: ((key: string | undefined) => void)[] = [];
  private timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private shuttingDown = false;
  private idleWaiters: (() => void)[] = [];
  private readonly backoff: ItemBackoff;
  private readonly bucket: TokenBucket;

  constructor(o: WorkQueueOptions = {}) {
    this.backoff = new ItemBackoff(o.baseDelayMs ?? 100, o.maxDelayMs ?? 60_000);
    this.bucket = new TokenBucket(o.qps ?? 20, o.burst ?? 200);
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.dispatch(key);
  }

  /** A dirty key not in processing: straight to a waiting worker, else to the back of the queue. */
  private dispatch(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Adds `key` after `ms`; of several pending delays for one key, the earliest wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Retry after a failure; returns the delay chosen. */
  addRateLimited(key: string): number {
    const delay = Math.max(this.backoff.next(key), this.bucket.reserve());
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.backoff.forget(key);
  }

  failures(key: string): number {
    return this.backoff.attempts(key);
  }

  /**
   * The next key to process (marked processing until done()), or undefined once shut down
   * or when `signal` aborts first (a paused worker gives up its wait without taking a key).
   */
  get(signal?: AbortSignal): Promise<string | undefined> {
    if (this.shuttingDown || signal?.aborted) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => {
      const waiter = (k: string | undefined) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(k);
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(undefined);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.shuttingDown) this.dispatch(key);
    if (this.processing.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Keys waiting (not counting those in processing or in a delay). */
  get depth(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.processing.size;
  }

  /** Stops handing out keys; resolves once every key in processing is done. */
  async shutDown(): Promise<void> {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
    if (this.processing.size > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }
}
