import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../../common/logger.js';
import { EventRecorder } from '../../operator/runtime/events.js';
import { Informer, apiListerWatcher, type InformerEvent } from '../../operator/runtime/informer.js';
import { KubeApiError, type KubeObject } from '../../operator/runtime/kube.js';
import { LeaderElector } from '../../operator/runtime/leader.js';
import { Resources } from '../../operator/runtime/resources.js';
import { createTestNamespace, eventually, testKubeConfig } from '../support/k8s.js';
import { clientFor } from '../support/operator.js';

/** The generic runtime against the real kube-apiserver, with built-in kinds (ConfigMaps, Leases, Events). */
const kubeconfig = inject('kubeconfig');
const client = clientFor(kubeconfig);
let ns: string;

beforeAll(async () => {
  ns = await createTestNamespace(testKubeConfig(inject('kubeconfig')), 'op-runtime');
});
afterAll(() => client.close());

type ConfigMap = KubeObject & { data?: Record<string, string> };
type ManagedField = { manager: string; operation: string };

describe('operator runtime on a real API server', () => {
  it('informer: lists, then sees adds, updates and deletes through its watch; label selector respected', async () => {
    const events: [InformerEvent, string][] = [];
    const inf = new Informer<ConfigMap>(
      apiListerWatcher(client, Resources.ConfigMap, { namespace: ns, labelSelector: 'test=informer' }),
      {
        name: 'configmaps',
        log: silentLogger,
      },
    );
    inf.on((e, o) => events.push([e, o.metadata!.name!]));
    await client.create(Resources.ConfigMap, {
      metadata: { name: 'before', namespace: ns, labels: { test: 'informer' } },
    });
    inf.start();
    await inf.waitForSync();
    expect(inf.get(`${ns}/before`)).toBeDefined();
    await client.create(Resources.ConfigMap, { metadata: { name: 'other', namespace: ns } }); // not selected
    await client.create(Resources.ConfigMap, {
      metadata: { name: 'after', namespace: ns, labels: { test: 'informer' } },
    });
    await client.mergePatch(Resources.ConfigMap, ns, 'after', { data: { k: 'v' } });
    await client.delete(Resources.ConfigMap, ns, 'before');
    await eventually(() => events.length >= 4, { timeoutMs: 10_000, what: '4 informer events' });
    expect(events).toEqual([
      ['add', 'before'],
      ['add', 'after'],
      ['update', 'after'],
      ['delete', 'before'],
    ]);
    expect(inf.get(`${ns}/after`)?.data).toEqual({ k: 'v' });
    await inf.stop();
  });

  it('server-side apply: one field manager, and force takes a field back from whoever changed it', async () => {
    const desired = { metadata: { name: 'ssa', namespace: ns }, data: { owned: 'ours' } };
    await client.apply(Resources.ConfigMap, desired, { fieldManager: 'pushgate-operator' });
    await client.apply(
      Resources.ConfigMap,
      { metadata: { name: 'ssa', namespace: ns }, data: { owned: 'theirs' } },
      { fieldManager: 'someone', force: true },
    );
    const conflict = await client
      .apply(Resources.ConfigMap, desired, { fieldManager: 'pushgate-operator', force: false })
      .catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(KubeApiError);
    expect((conflict as KubeApiError).status).toBe(409);
    const back = await client.apply<ConfigMap>(Resources.ConfigMap, desired, {
      fieldManager: 'pushgate-operator',
    });
    expect(back.data).toEqual({ owned: 'ours' });
    const managers = (back.metadata?.managedFields as ManagedField[]).map(
      (f) => `${f.manager}/${f.operation}`,
    );
    expect(managers).toContain('pushgate-operator/Apply');
  });

  it('leader election: of two candidates exactly one leads; on release the other leads', async () => {
    const leading = new Set<string>();
    const mk = (identity: string) =>
      new LeaderElector(client, {
        namespace: ns,
        name: 'runtime-test',
        identity,
        leaseDurationMs: 4000,
        renewDeadlineMs: 3000,
        retryPeriodMs: 300,
        log: silentLogger,
        onStartedLeading: () => leading.add(identity),
        onStoppedLeading: () => leading.delete(identity),
      });
    const x = mk('x');
    const y = mk('y');
    x.start();
    y.start();
    await eventually(() => leading.size === 1, { timeoutMs: 10_000, what: 'a leader' });
    // Watch for a while: never two at once.
    for (let i = 0; i < 10; i++) {
      expect(leading.size).toBe(1);
      await new Promise((r) => setTimeout(r, 100));
    }
    const [first] = [...leading];
    const [leader, other] = first === 'x' ? [x, y] : [y, x];
    await leader.stop();
    await eventually(() => other.isLeader, { timeoutMs: 3_000, what: 'the other to lead after release' });
    expect([...leading]).toEqual([first === 'x' ? 'y' : 'x']);
    await other.stop();
  });

  it('events: one Event per (object, reason, note), repeats counted in its series', async () => {
    const cm = await client.create<ConfigMap>(Resources.ConfigMap, {
      metadata: { name: 'evented', namespace: ns },
    });
    const rec = new EventRecorder(client, 'pushgate.dev/operator', 'test', silentLogger);
    await rec.record(Resources.ConfigMap, cm, 'Normal', 'Tested', 'Test', 'it happened');
    await rec.record(Resources.ConfigMap, cm, 'Normal', 'Tested', 'Test', 'it happened');
    await rec.record(Resources.ConfigMap, cm, 'Normal', 'Tested', 'Test', 'it happened');
    const list = (
      await client.list<
        KubeObject & { reason?: string; series?: { count: number }; regarding?: { uid?: string } }
      >(Resources.Event, ns)
    ).items.filter((e) => e.regarding?.uid === cm.metadata?.uid);
    expect(list.length).toBe(1);
    expect(list[0]!.reason).toBe('Tested');
    expect(list[0]!.series?.count).toBe(3);
  });
});
