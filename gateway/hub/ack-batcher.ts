import type { AckApplier, AckResult } from './store.js';

interface AckEntry<S> {
  stream: S;
  ids: string[];
  /** Receipt seq (0: none). */
  recv: number;
}

/**
 * Acks and receipts are applied in batches: every ack and receipt that arrives in one turn of
 * the event loop goes to the store in one call per app (which the Redis store splits into one
 * script call per hashtag bucket): a fan-out's acks arrive together, and a receipt costs no
 * round trip of its own. Each device's entries keep their order inside the batch; the store
 * removes by id, so acks may come in any order relative to delivery.
 */
export class AckBatcher<S extends { app: string; device: string }> {
  private queue = new Map<string, AckEntry<S>[]>();
  private scheduled = false;
  private readonly flushNow = () => this.flush();

  constructor(
    private readonly store: AckApplier,
    private readonly handlers: {
      /** One device's part of a batch was applied. */
      applied(stream: S, result: AckResult): void;
      failed(app: string, err: unknown): void;
    },
    private readonly schedule: (fn: () => void) => void = setImmediate,
  ) {}

  add(stream: S, ids: string[]): void {
    this.enqueue({ stream, ids, recv: 0 });
  }

  /**
   * A receipt: the device read every push up to `seq` (the caller has clamped it to what was
   * written to this stream).
   */
  receipt(stream: S, seq: number): void {
    this.enqueue({ stream, ids: [], recv: seq });
  }

  private enqueue(entry: AckEntry<S>): void {
    let list = this.queue.get(entry.stream.app);
    if (!list) this.queue.set(entry.stream.app, (list = []));
    list.push(entry);
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(this.flushNow);
  }

  /** Applies what is queued (the scheduled flush; tests call it to finish a batch). */
  flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = new Map();
    return Promise.all([...batch].map(([app, entries]) => this.apply(app, entries))).then(() => {});
  }

  private async apply(app: string, entries: AckEntry<S>[]): Promise<void> {
    try {
      const results = await this.store.ack(
        app,
        entries.map((e) => ({ device: e.stream.device, ids: e.ids, recv: e.recv })),
      );
      results.forEach((r, i) => this.handlers.applied(entries[i]!.stream, r));
    } catch (err) {
      this.handlers.failed(app, err);
    }
  }
}
