import { describe, expect, it } from 'vitest';
import { WorkQueue } from './queue.js';

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('WorkQueue', () => {
  it('keeps a waiting key once however often it is added', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    q.add('a');
    expect(q.depth).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.depth).toBe(0);
  });

  it('never hands a key in processing to a second worker; an add meanwhile queues it once after done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const first = await q.get();
    expect(first).toBe('a');
    q.add('a');
    q.add('a');
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await tick();
    expect(second).toBeUndefined(); // 'a' is in processing: not handed out again
    q.done('a');
    await tick();
    expect(second).toBe('a');
    q.done('a');
    expect(q.depth).toBe(0);
    expect(q.inFlight).toBe(0);
  });

  it('hands keys to waiting workers in order', async () => {
    const q = new WorkQueue();
    const got: (string | undefined)[] = [];
    const w1 = q.get().then((k) => got.push(k));
    const w2 = q.get().then((k) => got.push(k));
    q.add('x');
    q.add('y');
    await Promise.all([w1, w2]);
    expect(got).toEqual(['x', 'y']);
  });

  it('addAfter delays a key, and of two delays for one key the earlier wins', async () => {
    const q = new WorkQueue();
    q.addAfter('k', 10_000);
    q.addAfter('k', 20);
    expect(q.depth).toBe(0);
    const t0 = Date.now();
    expect(await q.get()).toBe('k');
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('addRateLimited backs off exponentially per key until forget', () => {
    const q = new WorkQueue({ baseDelayMs: 50, maxDelayMs: 1000, qps: 1000, burst: 1000 });
    expect([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')]).toEqual([50, 100, 200]);
    expect(q.failures('a')).toBe(3);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(50);
    void q.shutDown();
  });

  it('applies the global bucket across keys once the burst is spent', () => {
    const q = new WorkQueue({ baseDelayMs: 1, maxDelayMs: 1000, qps: 10, burst: 2 });
    expect(q.addRateLimited('a')).toBe(1);
    expect(q.addRateLimited('b')).toBe(1);
    expect(q.addRateLimited('c')).toBeGreaterThanOrEqual(99);
    void q.shutDown();
  });

  it('get() gives up when its signal aborts, without taking a key', async () => {
    const q = new WorkQueue();
    const ac = new AbortController();
    const pending = q.get(ac.signal);
    ac.abort();
    expect(await pending).toBeUndefined();
    q.add('z');
    expect(q.depth).toBe(1);
    expect(await q.get()).toBe('z');
  });

  it('shutDown wakes waiters and waits for keys in processing', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    const waiter = q.get();
    let stopped = false;
    const stopping = q.shutDown().then(() => (stopped = true));
    expect(await waiter).toBeUndefined();
    await tick();
    expect(stopped).toBe(false);
    q.done(key!);
    await stopping;
    expect(stopped).toBe(true);
    q.add('late');
    expect(q.depth).toBe(0);
  });
});
