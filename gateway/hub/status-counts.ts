import type { MessageCounter } from './store.js';

/**
 * Message status counters (sent, acked) counted per message id in memory and written to the
 * store every 100 ms (the hub's timer): a fan-out to 10k devices on this gateway is a few writes
 * per counter, not 10k.
 */
export class StatusCounts {
  private counts = new Map<string, [MessageCounter, number][]>();

  add(id: string, counter: MessageCounter, n = 1): void {
    let list = this.counts.get(id);
    if (!list) this.counts.set(id, (list = []));
    const entry = list.find((e) => e[0] === counter);
    if (entry) entry[1] += n;
    else list.push([counter, n]);
  }

  /** Hands every count to `write` and starts again from zero. */
  flush(write: (id: string, counter: MessageCounter, n: number) => void): void {
    if (this.counts.size === 0) return;
    const batch = this.counts;
    this.counts = new Map();
    for (const [id, counts] of batch) for (const [counter, n] of counts) write(id, counter, n);
  }
}
