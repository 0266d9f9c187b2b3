import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.js';
import { Controller } from './controller.js';
import { OperatorMetrics } from './metrics.js';

const until = async (check: () => boolean, what: string, timeoutMs = 3000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

function make(reconcile: (key: string) => Promise<{ requeueAfterMs?: number } | void>, workers = 2) {
  const metrics = new OperatorMetrics({ processMetrics: false });
  const c = new Controller({
    name: 't',
    reconcile,
    workers,
    log: silentLogger,
    metrics,
    queue: { baseDelayMs: 10, maxDelayMs: 100 },
  });
  return { c, metrics };
}

describe('Controller', () => {
  it('takes no key until started, and none after pause (a standby never acts)', async () => {
    const seen: string[] = [];
    const { c } = make(async (k) => void seen.push(k));
    c.enqueue('a');
    await new Promise((r) => setTimeout(r, 30));
    expect(seen).toEqual([]);
    c.start();
    await until(() => seen.length === 1, 'a');
    await c.pause();
    c.enqueue('b');
    await new Promise((r) => setTimeout(r, 30));
    expect(seen).toEqual(['a']);
    c.start(); // leadership regained: the key waited
    await until(() => seen.length === 2, 'b');
    await c.stop();
  });

  it('retries a failing key with backoff until it succeeds, and counts results', async () => {
    let calls = 0;
    const { c, metrics } = make(async () => {
      if (++calls < 3) throw new Error('conflict');
    });
    c.start();
    c.enqueue('x');
    await until(() => calls === 3, 'three attempts');
    await c.stop();
    const total = await metrics.reconcileTotal.get();
    const by = Object.fromEntries(total.values.map((v) => [v.labels.result, v.value]));
    expect(by).toEqual({ error: 2, success: 1 });
  });

  it('never runs one key on two workers at once, however often it is enqueued', async () => {
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const { c } = make(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      calls++;
      await new Promise((r) => setTimeout(r, 20));
      running--;
    }, 4);
    c.start();
    for (let i = 0; i < 10; i++) {
      c.enqueue('same');
      await new Promise((r) => setTimeout(r, 3));
    }
    await until(() => running === 0 && calls >= 2, 'settle');
    await new Promise((r) => setTimeout(r, 50));
    expect(maxRunning).toBe(1);
    expect(calls).toBeLessThan(10); // adds while queued or running collapse
    await c.stop();
  });

  it('honours requeueAfterMs', async () => {
    let calls = 0;
    const { c } = make(async () => (++calls === 1 ? { requeueAfterMs: 20 } : undefined));
    c.start();
    c.enqueue('r');
    await until(() => calls === 2, 'the requeue');
    await c.stop();
  });
});
