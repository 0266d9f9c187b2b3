import { REPLAY_PAGE, type ReplayPage } from './store.js';

/** A routed push waiting while the inbox is read: [seq, stored body, sent (ms)]. */
export type HeldPush = [number, string, number];

/**
 * The delivery state of one device connection. The gateway keeps these fields on the socket
 * itself (no object per connection); tests use plain objects.
 */
export interface OrderedStream {
  app: string;
  device: string;
  /** Highest seq written to the device (a receipt on this connection is clamped to it). */
  lastSeq: number;
  /** Non-null while the inbox is being read: routed pushes wait here. */
  pending: HeldPush[] | null;
  /** Set when a resync is asked for while one runs: it reads the inbox once more. */
  resyncAgain: boolean;
  /** The send buffer is over its limit: pushes stay in the store until it drains. */
  blocked: boolean;
}

export type DeliveryPath = 'live' | 'replay';

/** Where the orderer writes, and whence it reads. The hub binds it to ws and the DeviceStore. */
export interface DeliverySink<S extends OrderedStream> {
  /**
   * Writes one push frame. False when the stream cannot take it now (send buffer full): the
   * sink marks it blocked, and resyncs it once it has drained; or when the connection is no
   * longer open (nothing more is written to it). lastSeq only ever names written frames.
   */
  write(s: S, seq: number, body: string, path: DeliveryPath, sent?: number): boolean;
  /** False once the connection is gone (a replay stops). */
  isOpen(s: S): boolean;
  readInbox(s: S, afterSeq: number, limit: number): Promise<ReplayPage>;
  /** Messages the store found expired while reading. */
  expired(n: number): void;
  /** Messages dropped while reading because their shared body was gone (ReplayPage.missing). */
  missing?(s: S, n: number): void;
  resyncFailed(s: S, err: unknown): void;
}

/**
 * Writes pushes to a device strictly in seq order, from the two paths that race: pushes routed
 * live (in whatever order the network brings them) and the inbox (the truth). A live push
 * that follows the last written seq goes out at once; an older one was already written; one
 * beyond a gap means an earlier message is still on its way or went elsewhere, so the inbox is
 * read in order instead (a resync). During a resync routed pushes are held, then written after
 * the inbox if they continue it without a gap; otherwise the inbox is read again.
 *
 * No I/O of its own (the sink does it), so it runs in unit tests without ws or Redis.
 */
export class DeliveryOrderer<S extends OrderedStream> {
  constructor(private readonly sink: DeliverySink<S>) {}

  /** Hold routed pushes from now on: the caller is about to read the first inbox page itself (hello). */
  hold(s: S): void {
    s.pending = [];
  }

  /** A push routed to this device (from this gateway's push API or another's). */
  routed(s: S, seq: number, body: string, sent: number): void {
    if (s.pending) {
      s.pending.push([seq, body, sent]);
      return;
    }
    if (s.blocked || seq <= s.lastSeq) return;
    if (seq !== s.lastSeq + 1) {
      this.resync(s).catch((err: unknown) => this.sink.resyncFailed(s, err));
      return;
    }
    this.write(s, seq, body, 'live', sent);
  }

  /**
   * The store went back in time (Redis emptied or rewound): its seqs for this device restart
   * below what was written, and a live push numbered at or below `lastSeq` would be skipped as
   * already sent. Forget the position and read the whole inbox again; the device drops what it
   * already has by id.
   */
  rewound(s: S): Promise<void> {
    s.lastSeq = 0;
    return this.resync(s);
  }

  private write(s: S, seq: number, body: string, path: DeliveryPath, sent?: number): boolean {
    if (!this.sink.write(s, seq, body, path, sent)) return false;
    s.lastSeq = seq;
    return true;
  }

  /**
   * Writes the device's stored messages after `lastSeq`, in order, then the routed pushes that
   * arrived meanwhile. `floor` is the device's seq at the presence claim: everything at or
   * below it was in the inbox when it was read, or is gone (acked, expired, replaced).
   * `firstPage` is that read (hello: the caller called hold() before the claim).
   */
  async resync(s: S, floor = 0, firstPage?: ReplayPage): Promise<void> {
    if (firstPage) {
      // hello: pending was set by hold() before the claim that read this page.
    } else if (s.pending) {
      s.resyncAgain = true;
      return;
    } else s.pending = [];
    try {
      for (;;) {
        s.resyncAgain = false;
        for (;;) {
          const page = firstPage ?? (await this.sink.readInbox(s, s.lastSeq, REPLAY_PAGE));
          firstPage = undefined;
          if (page.expired) this.sink.expired(page.expired);
          if (page.missing) this.sink.missing?.(s, page.missing);
          if (!this.sink.isOpen(s)) return;
          for (const m of page.messages) if (!this.write(s, m.seq, m.body, 'replay')) return;
          if ((page.scanned ?? page.messages.length) < REPLAY_PAGE) break;
        }
        if (floor > s.lastSeq) s.lastSeq = floor;
        floor = 0;
        const waiting = (s.pending ?? []).sort((a, b) => a[0] - b[0]);
        s.pending = [];
        let gap = false;
        for (const [seq, body, sent] of waiting) {
          if (seq <= s.lastSeq) continue;
          if (seq !== s.lastSeq + 1) {
            gap = true;
            break;
          }
          if (!this.write(s, seq, body, 'live', sent)) return;
        }
        if (!gap && !s.resyncAgain) return;
      }
    } finally {
      s.pending = null;
    }
  }
}
