import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.js';
import { Controller, type Reconciler, type SyncOutcome } from './controller.js';
import { TerminalError } from './errors.js';
import { Informer, type ListerWatcher } from './informer.js';
import type { KubeObject } from './kube.js';
import { OperatorMetrics } from './metrics.js';

const until = async (check: () => boolean, what: string, timeoutMs = 3000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

function make(reconciler: Reconciler, workers = 2) {
  const metrics = new OperatorMetrics({ processMetrics: false });
  const c = new Controller(
    { name: 't', reconciler, workers, queue: { baseDelayMs: 10, maxDelayMs: 100 } },
    {
      informer: () => {
        throw new Error('no informers here');
      },
      namespace: undefined,
      log: silentLogger,
      metrics,
    },
  );
  return { c, metrics };
}

const results = async (metrics: OperatorMetrics, controller = 't') =>
  Object.fromEntries(
    (await metrics.reconcileTotal.get()).values
      .filter((v) => v.labels.controller === controller)
      .map((v) => [v.labels.result, v.value]),
  );

describe('Controller', () => {
  it('takes no key until started, and none after pause (a standby never acts)', async () => {
    const seen: string[] = [];
    const { c } = make({ sync: async (k) => void seen.push(k) });
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
    const { c, metrics } = make({
      sync: async () => {
        if (++calls < 3) throw new Error('conflict');
      },
    });
    c.start();
    c.enqueue('x');
    await until(() => calls === 3, 'three attempts');
    await c.stop();
    expect(await results(metrics)).toEqual({ error: 2, success: 1 });
  });

  it('never runs one key on two workers at once, however often it is enqueued', async () => {
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const { c } = make(
      {
        sync: async () => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          calls++;
          await new Promise((r) => setTimeout(r, 20));
          running--;
        },
      },
      4,
    );
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

  it('honours requeueAfterMs: the key comes back after the delay, not before', async () => {
    const at: number[] = [];
    const { c } = make({
      sync: async () => {
        at.push(performance.now());
        return at.length === 1 ? { requeueAfterMs: 150 } : undefined;
      },
    });
    c.start();
    c.enqueue('r');
    await until(() => at.length === 2, 'the requeue');
    await c.stop();
    // Timers may fire a little late under load, never early (1 ms of timer rounding allowed).
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(149);
    expect(at[1]! - at[0]!).toBeLessThan(1500);
  });

  it('records a terminal error without retrying it, and hands the typed outcome to the status path', async () => {
    let syncs = 0;
    const seen: (SyncOutcome | undefined)[] = [];
    const { c, metrics } = make({
      sync: async () => {
        syncs++;
        throw new TerminalError('InvalidSpec', 'spec.regions: too small');
      },
      updateStatus: async (_key, last) => void seen.push(last),
    });
    c.start();
    c.enqueue('bad');
    await until(() => seen.length === 1, 'the status update');
    await new Promise((r) => setTimeout(r, 150)); // several backoff periods (10 ms base)
    await c.stop();
    expect(syncs).toBe(1);
    expect(seen[0]).toMatchObject({ ok: false, terminal: true });
    const err = (seen[0] as { error: unknown }).error;
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as TerminalError).reason).toBe('InvalidSpec');
    expect(await results(metrics)).toEqual({ terminal: 1 });
    expect(await results(metrics, 't/status')).toEqual({ success: 1 });
  });

  it('for-kind events: a spec change goes to the sync path, a status-only update to the status path', async () => {
    let onEvent: ((e: { type: 'ADDED' | 'MODIFIED'; object: KubeObject }) => void) | undefined;
    const source: ListerWatcher = {
      list: async () => ({ metadata: { resourceVersion: '1' }, items: [] }),
      watch: (_rv, ev) => {
        onEvent = ev;
        return { abort: () => undefined };
      },
    };
    const inf = new Informer(source, { name: 'things', log: silentLogger, resyncMs: 0 });
    const paths: string[] = [];
    const metrics = new OperatorMetrics({ processMetrics: false });
    const kind = { group: 'x', version: 'v1', kind: 'Thing', plural: 'things', namespaced: true };
    const c = new Controller(
      {
        name: 't',
        for: kind,
        reconciler: {
          sync: async (k) => void paths.push(`sync ${k}`),
          updateStatus: async (k) => void paths.push(`status ${k}`),
        },
        workers: 1,
      },
      { informer: () => inf, namespace: undefined, log: silentLogger, metrics },
    );
    inf.start();
    await inf.waitForSync();
    await until(() => onEvent !== undefined, 'the watch');
    const obj = (rv: string, generation: number, status: string): KubeObject => ({
      metadata: { name: 'a', namespace: 'ns', resourceVersion: rv, generation },
      status: { phase: status },
    });
    c.start();
    onEvent!({ type: 'ADDED', object: obj('2', 1, 'x') });
    await until(() => paths.length === 2, 'sync then status');
    expect(paths).toEqual(['sync ns/a', 'status ns/a']);
    onEvent!({ type: 'MODIFIED', object: obj('3', 1, 'y') }); // only status moved
    await until(() => paths.length === 3, 'status only');
    expect(paths[2]).toBe('status ns/a');
    onEvent!({ type: 'MODIFIED', object: obj('4', 2, 'y') }); // the spec changed
    await until(() => paths.length === 5, 'sync again');
    expect(paths.slice(3)).toEqual(['sync ns/a', 'status ns/a']);
    await c.stop();
    await inf.stop();
  });
});
