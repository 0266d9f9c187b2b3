import { describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../common/protocol/server-frames.js';
import { encodePushFrame, storedMessageId } from '../../common/protocol/server-frames.js';
import { MemoryDeviceStore } from './memory-store.js';
import { DeliveryOrderer, type DeliveryPath, type DeliverySink, type OrderedStream } from './orderer.js';
import { REPLAY_PAGE } from './store.js';

const APP = 'app';
const DEVICE = 'd1';

function message(id: string, exp = Number.MAX_SAFE_INTEGER): StoredMessage {
  return { id, exp, ttl: 60, priority: 'normal', sent: 1, data: { id } };
}

interface Stream extends OrderedStream {
  open: boolean;
  /** Room left in the send buffer (frames); undefined = unlimited. */
  room?: number;
}

/** A device stream, the store, and a sink that records what the device would see. */
function setup() {
  const store = new MemoryDeviceStore();
  const s: Stream = {
    app: APP,
    device: DEVICE,
    lastSeq: 0,
    pending: null,
    resyncAgain: false,
    blocked: false,
    open: true,
  };
  const written: { seq: number; id: string; path: DeliveryPath }[] = [];
  let expired = 0;
  const failures: unknown[] = [];
  /** Hook run before each inbox read resolves (to route pushes while a resync reads). */
  let beforeRead: (() => void) | undefined;
  const sink: DeliverySink<Stream> = {
    write(st, seq, body, path) {
      if (st.room !== undefined) {
        if (st.room === 0) {
          st.blocked = true;
          return false;
        }
        st.room--;
      }
      // The frame the device gets: the push frame around the stored body.
      const frame = JSON.parse(encodePushFrame(seq, body)) as { t: string; seq: number; id: string };
      expect(frame.t).toBe('push');
      expect(frame.seq).toBe(seq);
      written.push({ seq, id: storedMessageId(body), path });
      return true;
    },
    isOpen: (st) => st.open,
    async readInbox(st, afterSeq, limit) {
      const page = await store.readInbox(st.app, st.device, afterSeq, limit);
      const hook = beforeRead;
      beforeRead = undefined;
      hook?.();
      return page;
    },
    expired: (n) => void (expired += n),
    resyncFailed: (_st, err) => void failures.push(err),
  };
  const orderer = new DeliveryOrderer(sink);
  /** Store a message as the push path does and return what it routes: [seq, body]. */
  const put = (id: string, exp?: number) => store.store(APP, DEVICE, message(id, exp));
  const route = (m: { seq: number; body: string }) => orderer.routed(s, m.seq, m.body, 1);
  const settle = () => new Promise((r) => setTimeout(r, 0));
  return {
    store,
    s,
    orderer,
    written,
    put,
    route,
    settle,
    expired: () => expired,
    failures,
    onNextRead(fn: () => void) {
      beforeRead = fn;
    },
    seqs: () => written.map((w) => w.seq),
  };
}

describe('DeliveryOrderer', () => {
  it('writes live pushes that continue the sequence at once, without reading the inbox', () => {
    const t = setup();
    for (const id of ['a', 'b', 'c']) t.route(t.put(id));
    expect(t.written).toEqual([
      { seq: 1, id: 'a', path: 'live' },
      { seq: 2, id: 'b', path: 'live' },
      { seq: 3, id: 'c', path: 'live' },
    ]);
    expect(t.s.lastSeq).toBe(3);
    expect(t.store.reads).toBe(0);
  });

  it('drops a routed push it has already written (duplicate routing, replay overtook it)', () => {
    const t = setup();
    const a = t.put('a');
    t.route(a);
    t.route(a);
    expect(t.seqs()).toEqual([1]);
  });

  it('on a gap, reads the inbox in order instead of writing out of order', async () => {
    const t = setup();
    const a = t.put('a');
    t.put('b'); // stored, but its notification is still on its way (or was lost)
    const c = t.put('c');
    t.route(a);
    t.route(c); // seq 3 after 1: a gap
    expect(t.seqs()).toEqual([1]);
    await t.settle();
    expect(t.written.slice(1)).toEqual([
      { seq: 2, id: 'b', path: 'replay' },
      { seq: 3, id: 'c', path: 'replay' },
    ]);
    expect(t.store.reads).toBe(1);
  });

  it('holds pushes routed during a resync and writes them after the inbox, each once', async () => {
    const t = setup();
    t.put('a');
    t.put('b');
    const c = t.put('c');
    t.s.lastSeq = 0;
    let d: { seq: number; body: string } | undefined;
    t.onNextRead(() => {
      // While the inbox is read: c (already in the page) is routed again, d is new.
      t.route(c);
      d = t.put('d');
      t.route(d);
    });
    await t.orderer.resync(t.s);
    expect(t.written).toEqual([
      { seq: 1, id: 'a', path: 'replay' },
      { seq: 2, id: 'b', path: 'replay' },
      { seq: 3, id: 'c', path: 'replay' },
      { seq: 4, id: 'd', path: 'live' },
    ]);
    expect(t.s.pending).toBeNull();
  });

  it('reads again when a held push leaves a gap after the inbox', async () => {
    const t = setup();
    t.put('a');
    t.onNextRead(() => {
      // Two more stored after the read; only the later one is routed here before the read ends.
      t.put('b');
      t.route(t.put('c'));
    });
    await t.orderer.resync(t.s);
    expect(t.seqs()).toEqual([1, 2, 3]);
    expect(t.written.map((w) => w.path)).toEqual(['replay', 'replay', 'replay']);
    expect(t.store.reads).toBe(2);
  });

  it('a resync asked for while one runs makes the running one read once more', async () => {
    const t = setup();
    t.put('a');
    t.onNextRead(() => {
      t.put('b');
      void t.orderer.resync(t.s); // e.g. the pub/sub connection came back
    });
    await t.orderer.resync(t.s);
    expect(t.seqs()).toEqual([1, 2]);
    expect(t.store.reads).toBe(2);
    expect(t.s.resyncAgain).toBe(false);
  });

  it('pages through an inbox larger than one read', async () => {
    const t = setup();
    for (let i = 0; i < REPLAY_PAGE * 2 + 5; i++) t.put(`m${i}`);
    await t.orderer.resync(t.s);
    expect(t.seqs()).toEqual(Array.from({ length: REPLAY_PAGE * 2 + 5 }, (_, i) => i + 1));
    expect(t.store.reads).toBe(3);
  });

  it('hello: holds from before the claim, writes its first page, lifts lastSeq to the claim floor', async () => {
    const t = setup();
    t.put('a');
    t.put('b');
    t.orderer.hold(t.s);
    const claim = await t.store.claim(APP, DEVICE, { gateway: 'gw', session: 's1' }, {});
    t.store.ack(APP, [{ device: DEVICE, ids: ['b'] }]).catch(() => {}); // b acked elsewhere meanwhile
    const c = t.put('c');
    t.route(c); // routed between claim and first write: held
    expect(t.written).toEqual([]);
    await t.orderer.resync(t.s, claim.lastSeq, claim.firstPage);
    expect(t.seqs()).toEqual([1, 2, 3]);
    expect(t.written.map((w) => w.path)).toEqual(['replay', 'replay', 'live']);
    expect(t.store.reads).toBe(1); // the claim's read only
  });

  it('a floor above the inbox (messages acked or expired before the claim) does not wait for them', async () => {
    const t = setup();
    t.put('a');
    t.put('b');
    await t.store.ack(APP, [{ device: DEVICE, ids: ['a', 'b'] }]);
    t.orderer.hold(t.s);
    const claim = await t.store.claim(APP, DEVICE, { gateway: 'gw', session: 's1' }, {});
    await t.orderer.resync(t.s, claim.lastSeq, claim.firstPage);
    expect(t.s.lastSeq).toBe(2);
    t.route(t.put('c')); // seq 3 continues the floor: live, no resync
    expect(t.written).toEqual([{ seq: 3, id: 'c', path: 'live' }]);
  });

  it('stops at a full send buffer, drops live pushes while blocked, and resumes in order from the inbox', async () => {
    const t = setup();
    for (const id of ['a', 'b', 'c', 'd']) t.put(id);
    t.s.room = 2;
    await t.orderer.resync(t.s);
    expect(t.seqs()).toEqual([1, 2]);
    expect(t.s.blocked).toBe(true);
    t.route(t.put('e')); // blocked: it stays in the store
    expect(t.seqs()).toEqual([1, 2]);
    t.s.room = undefined;
    t.s.blocked = false; // the buffer drained (the hub's sweep), which resyncs
    await t.orderer.resync(t.s);
    expect(t.seqs()).toEqual([1, 2, 3, 4, 5]);
  });

  it('stops replaying when the connection is gone', async () => {
    const t = setup();
    t.put('a');
    t.s.open = false;
    await t.orderer.resync(t.s);
    expect(t.written).toEqual([]);
    expect(t.s.pending).toBeNull();
  });

  it('counts what the store found expired and never writes it', async () => {
    let now = 1000;
    const t = setup();
    (t.store as unknown as { now: () => number }).now = () => now;
    t.put('old', 1500);
    t.put('new', 5000);
    now = 2000;
    await t.orderer.resync(t.s);
    expect(t.written.map((w) => w.id)).toEqual(['new']);
    expect(t.expired()).toBe(1);
  });

  it('reports a failed inbox read and lets the next resync start afresh', async () => {
    const t = setup();
    const a = t.put('a');
    t.put('b');
    const c = t.put('c');
    t.route(a);
    const read = t.store.readInbox.bind(t.store);
    t.store.readInbox = () => Promise.reject(new Error('redis down'));
    t.route(c);
    await t.settle();
    expect(t.failures).toHaveLength(1);
    expect(t.s.pending).toBeNull();
    t.store.readInbox = read;
    t.route(c);
    await t.settle();
    expect(t.seqs()).toEqual([1, 2, 3]);
  });
});

describe('DeliveryOrderer with entries whose shared body is gone', () => {
  it('counts them, and a page short only by them is not taken for the last one', async () => {
    // Page 1: REPLAY_PAGE entries read, one of them dropped (its body was gone); page 2: the rest.
    const body = (n: number) => JSON.stringify(message(`m${n}`));
    const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const page1 = seqs(1, REPLAY_PAGE).filter((n) => n !== 7);
    const page2 = seqs(REPLAY_PAGE + 1, REPLAY_PAGE + 5);
    const reads: number[] = [];
    const written: number[] = [];
    let missing = 0;
    const s: OrderedStream = {
      app: APP,
      device: DEVICE,
      lastSeq: 0,
      pending: null,
      resyncAgain: false,
      blocked: false,
    };
    const orderer = new DeliveryOrderer<OrderedStream>({
      write: (_st, seq) => {
        written.push(seq);
        return true;
      },
      isOpen: () => true,
      async readInbox(_st, afterSeq) {
        reads.push(afterSeq);
        if (afterSeq === 0)
          return {
            messages: page1.map((n) => ({ seq: n, body: body(n) })),
            expired: 0,
            missing: 1,
            scanned: REPLAY_PAGE,
          };
        if (afterSeq === REPLAY_PAGE)
          return { messages: page2.map((n) => ({ seq: n, body: body(n) })), expired: 0 };
        return { messages: [], expired: 0 };
      },
      expired: () => {},
      missing: (_st, n) => void (missing += n),
      resyncFailed: (_st, err) => {
        throw err;
      },
    });
    await orderer.resync(s);
    expect(missing).toBe(1);
    expect(reads).toEqual([0, REPLAY_PAGE]);
    expect(written).toEqual([...page1, ...page2]);
    expect(s.lastSeq).toBe(REPLAY_PAGE + 5);
  });
});
