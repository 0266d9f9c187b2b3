import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.js';
import { Informer, type InformerEvent, type ListerWatcher } from './informer.js';
import { KubeApiError, type KubeObject, type WatchEvent } from './kube.js';

/**
 * A scripted ListerWatcher: the API server's failure modes (410 on watch, an ERROR event,
 * a stream that goes silent, refused connections) cannot be produced on demand by a real
 * kube-apiserver, so these tests drive the informer with a fake source. The happy path and
 * a real API server outage are covered in test/integration/operator-runtime.test.ts.
 */
const cm = (name: string, rv: string): KubeObject => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv },
});

interface OpenWatch {
  rv: string;
  emit(e: WatchEvent): void;
  end(err?: Error): void;
  aborted: boolean;
}

class FakeSource implements ListerWatcher {
  items: KubeObject[] = [];
  rv = '1';
  lists = 0;
  listFailures = 0;
  watches: OpenWatch[] = [];
  /** Answer for the next watch: undefined = open a stream. */
  nextWatchError: Error | undefined;

  async list() {
    this.lists++;
    if (this.listFailures > 0) {
      this.listFailures--;
      throw new Error('connection refused');
    }
    return { metadata: { resourceVersion: this.rv }, items: [...this.items] };
  }

  watch(rv: string, onEvent: (e: WatchEvent) => void, onEnd: (err?: Error) => void) {
    const w: OpenWatch = {
      rv,
      aborted: false,
      emit: (e) => queueMicrotask(() => !w.aborted && onEvent(e)),
      end: (err) => queueMicrotask(() => onEnd(err)),
    };
    this.watches.push(w);
    const err = this.nextWatchError;
    this.nextWatchError = undefined;
    if (err) w.end(err);
    return {
      abort: () => {
        if (w.aborted) return;
        w.aborted = true;
        queueMicrotask(() => onEnd());
      },
    };
  }
}

async function until(check: () => boolean, what: string, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let informer: Informer | undefined;
afterEach(async () => {
  await informer?.stop();
  informer = undefined;
});

function start(source: FakeSource, opts: Partial<ConstructorParameters<typeof Informer>[1]> = {}) {
  const events: [InformerEvent, string][] = [];
  informer = new Informer(source, {
    name: 'configmaps',
    log: silentLogger,
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    resyncMs: 0,
    ...opts,
  });
  informer.on((e, o) => events.push([e, o.metadata!.name!]));
  informer.start();
  return events;
}

describe('Informer', () => {
  it('lists, then applies watch events to the cache and delivers them', async () => {
    const src = new FakeSource();
    src.items = [cm('a', '1')];
    const events = start(src);
    await informer!.waitForSync();
    await until(() => src.watches.length === 1, 'a watch');
    expect(src.watches[0]!.rv).toBe('1');
    src.watches[0]!.emit({ type: 'ADDED', object: cm('b', '2') });
    src.watches[0]!.emit({ type: 'MODIFIED', object: cm('a', '3') });
    src.watches[0]!.emit({ type: 'DELETED', object: cm('b', '4') });
    await until(() => events.length === 4, '4 events');
    expect(events).toEqual([
      ['add', 'a'],
      ['add', 'b'],
      ['update', 'a'],
      ['delete', 'b'],
    ]);
    expect(informer!.list().map((o) => o.metadata?.name)).toEqual(['a']);
    expect(informer!.get('ns/a')?.metadata?.resourceVersion).toBe('3');
  });

  it('resumes a cleanly closed watch from the last resourceVersion (bookmarks included) without relisting', async () => {
    const src = new FakeSource();
    start(src);
    await until(() => src.watches.length === 1, 'first watch');
    src.watches[0]!.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '42' } } });
    src.watches[0]!.end();
    await until(() => src.watches.length === 2, 'second watch');
    expect(src.watches[1]!.rv).toBe('42');
    expect(src.lists).toBe(1);
  });

  it('relists on 410 Gone (answer or ERROR event) and delivers what changed meanwhile, deletes included', async () => {
    const src = new FakeSource();
    src.items = [cm('a', '1'), cm('b', '1')];
    const events = start(src);
    await until(() => src.watches.length === 1, 'first watch');
    // While we were away: b deleted, a changed, c created; our resourceVersion was compacted.
    src.items = [cm('a', '5'), cm('c', '5')];
    src.rv = '5';
    src.watches[0]!.emit({
      type: 'ERROR',
      object: { kind: 'Status', code: 410, message: 'too old resource version' } as KubeObject,
    });
    await until(() => src.lists === 2 && src.watches.length === 2, 'relist and new watch');
    expect(src.watches[1]!.rv).toBe('5');
    expect(events.slice(2)).toEqual([
      ['update', 'a'],
      ['add', 'c'],
      ['delete', 'b'],
    ]);
    // And a 410 as the HTTP answer to the watch request does the same.
    src.nextWatchError = new KubeApiError(410, 'Expired', 'too old', '/api/v1/configmaps');
    src.watches[1]!.end();
    await until(() => src.lists === 3, 'relist after 410 answer');
  });

  it('restarts a watch that goes silent (watchdog)', async () => {
    const src = new FakeSource();
    start(src, { watchdogMs: 50 });
    await until(() => src.watches.length >= 2, 'watchdog restart');
    expect(src.watches[0]!.aborted).toBe(true);
  });

  it('keeps retrying list and watch through errors, with backoff, and never gives up', async () => {
    const src = new FakeSource();
    src.listFailures = 3;
    start(src);
    await informer!.waitForSync();
    expect(src.lists).toBe(4);
    await until(() => src.watches.length === 1, 'first watch');
    for (let i = 0; i < 5; i++) {
      const n = src.watches.length;
      src.watches[n - 1]!.end(new Error('ECONNRESET'));
      await until(() => src.watches.length === n + 1, `watch restart ${i}`);
    }
    expect(informer!.hasSynced()).toBe(true);
  });

  it('re-delivers every cached object on resync', async () => {
    const src = new FakeSource();
    src.items = [cm('a', '1'), cm('b', '1')];
    const events = start(src, { resyncMs: 40 });
    await until(() => events.filter(([e]) => e === 'resync').length >= 2, 'a resync');
    expect(new Set(events.filter(([e]) => e === 'resync').map(([, n]) => n))).toEqual(new Set(['a', 'b']));
  });
});
