import { describe, expect, it } from 'vitest';
import type { StoredMessage } from '../../common/protocol/server-frames.js';
import { AckBatcher } from './ack-batcher.js';
import { MemoryDeviceStore } from './memory-store.js';
import type { AckResult } from './store.js';

const message = (id: string): StoredMessage => ({
  id,
  exp: Number.MAX_SAFE_INTEGER,
  ttl: 60,
  priority: 'normal',
  sent: 1,
  data: null,
});

function setup() {
  const store = new MemoryDeviceStore();
  const calls: { app: string; devices: string[] }[] = [];
  const ack = store.ack.bind(store);
  store.ack = (app, acks) => {
    calls.push({ app, devices: acks.map((a) => a.device) });
    return ack(app, acks);
  };
  const applied: { device: string; result: AckResult }[] = [];
  const failed: string[] = [];
  const scheduled: (() => void)[] = [];
  const batcher = new AckBatcher<{ app: string; device: string }>(
    store,
    {
      applied: (s, result) => applied.push({ device: s.device, result }),
      failed: (app) => failed.push(app),
    },
    (fn) => scheduled.push(fn),
  );
  return { store, calls, applied, failed, scheduled, batcher };
}

describe('AckBatcher', () => {
  it('applies the acks of one turn in one store call per app, and schedules one flush', async () => {
    const t = setup();
    for (const d of ['d1', 'd2']) for (const id of ['a', 'b']) t.store.store('x', d, message(id));
    t.store.store('y', 'd3', message('a'));
    t.batcher.add({ app: 'x', device: 'd1' }, ['a']);
    t.batcher.add({ app: 'x', device: 'd2' }, ['a', 'b']);
    t.batcher.add({ app: 'y', device: 'd3' }, ['a']);
    t.batcher.add({ app: 'x', device: 'd1' }, ['b']);
    expect(t.scheduled).toHaveLength(1);
    await t.batcher.flush();
    expect(t.calls).toEqual([
      { app: 'x', devices: ['d1', 'd2', 'd1'] },
      { app: 'y', devices: ['d3'] },
    ]);
    expect(t.store.inboxIds('x', 'd1')).toEqual([]);
    expect(t.store.inboxIds('x', 'd2')).toEqual([]);
    expect(t.store.inboxIds('y', 'd3')).toEqual([]);
    // The next ack schedules a new flush.
    t.batcher.add({ app: 'x', device: 'd1' }, ['z']);
    expect(t.scheduled).toHaveLength(2);
  });

  it('removes acks that arrive out of order (later seq first), leaving the rest in order', async () => {
    const t = setup();
    for (const id of ['m1', 'm2', 'm3', 'm4']) t.store.store('x', 'd1', message(id));
    t.batcher.add({ app: 'x', device: 'd1' }, ['m3']);
    t.batcher.add({ app: 'x', device: 'd1' }, ['m1']);
    await t.batcher.flush();
    expect(t.store.inboxIds('x', 'd1')).toEqual(['m2', 'm4']);
    t.batcher.add({ app: 'x', device: 'd1' }, ['m4', 'm2']);
    await t.batcher.flush();
    expect(t.store.inboxIds('x', 'd1')).toEqual([]);
    expect(t.applied.map((a) => a.result)).toEqual([
      { removed: ['m3'], unknown: [], delivered: ['m3'] },
      { removed: ['m1'], unknown: [], delivered: ['m1'] },
      { removed: ['m4', 'm2'], unknown: [], delivered: ['m4', 'm2'] },
    ]);
  });

  it('reports ids the store does not hold (unknown, or acked twice) to the device that sent them', async () => {
    const t = setup();
    t.store.store('x', 'd1', message('m1'));
    t.store.store('x', 'd2', message('m1'));
    t.batcher.add({ app: 'x', device: 'd1' }, ['m1', 'nope']);
    t.batcher.add({ app: 'x', device: 'd1' }, ['m1']); // the same ack again in the same turn
    t.batcher.add({ app: 'x', device: 'd2' }, ['m1']);
    await t.batcher.flush();
    expect(t.applied).toEqual([
      { device: 'd1', result: { removed: ['m1'], unknown: ['nope'], delivered: ['m1'] } },
      { device: 'd1', result: { removed: [], unknown: ['m1'], delivered: [] } },
      { device: 'd2', result: { removed: ['m1'], unknown: [], delivered: ['m1'] } },
    ]);
  });

  it('a failed store call is reported per app and does not stop the other apps', async () => {
    const t = setup();
    t.store.store('y', 'd1', message('m1'));
    const ack = t.store.ack;
    t.store.ack = (app, acks) => (app === 'x' ? Promise.reject(new Error('down')) : ack(app, acks));
    t.batcher.add({ app: 'x', device: 'd1' }, ['m1']);
    t.batcher.add({ app: 'y', device: 'd1' }, ['m1']);
    await t.batcher.flush();
    expect(t.failed).toEqual(['x']);
    expect(t.applied).toEqual([
      { device: 'd1', result: { removed: ['m1'], unknown: [], delivered: ['m1'] } },
    ]);
  });
});

describe('AckBatcher receipts', () => {
  it('goes to the store with the acks of the same turn: one call, each entry counted delivered once', async () => {
    const t = setup();
    for (const id of ['m1', 'm2', 'm3']) t.store.store('x', 'd1', message(id));
    t.store.store('x', 'd2', message('m1'));
    t.batcher.receipt({ app: 'x', device: 'd1' }, 2);
    t.batcher.add({ app: 'x', device: 'd1' }, ['m1']); // read by the receipt: not counted again
    t.batcher.add({ app: 'x', device: 'd2' }, ['m1']); // no receipt: the ack counts it
    expect(t.scheduled).toHaveLength(1);
    await t.batcher.flush();
    expect(t.calls).toEqual([{ app: 'x', devices: ['d1', 'd1', 'd2'] }]);
    expect(t.applied).toEqual([
      { device: 'd1', result: { removed: [], unknown: [], delivered: ['m1', 'm2'] } },
      { device: 'd1', result: { removed: ['m1'], unknown: [], delivered: [] } },
      { device: 'd2', result: { removed: ['m1'], unknown: [], delivered: ['m1'] } },
    ]);
    expect(t.store.inboxIds('x', 'd1')).toEqual(['m2', 'm3']);
  });

  it('a receipt at or below the mark counts nothing; one above it counts only what lies between', async () => {
    const t = setup();
    for (const id of ['m1', 'm2', 'm3']) t.store.store('x', 'd1', message(id));
    t.batcher.receipt({ app: 'x', device: 'd1' }, 1);
    t.batcher.receipt({ app: 'x', device: 'd1' }, 1);
    await t.batcher.flush();
    t.batcher.receipt({ app: 'x', device: 'd1' }, 3);
    t.batcher.add({ app: 'x', device: 'd1' }, ['m2', 'm3']);
    await t.batcher.flush();
    expect(t.applied.map((a) => a.result.delivered)).toEqual([['m1'], [], ['m2', 'm3'], []]);
  });
});
