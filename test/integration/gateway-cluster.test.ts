import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APP,
  pushApi,
  RecordingDevice,
  sleep,
  startGatewayProcess,
  stopGateway,
  uniquePrefix,
  until,
  type GatewayProcess,
} from '../support/gateway.js';
import { freePort } from '../support/net.js';
import { createRedis } from '../../common/redis/connection.js';
import { deliverMessage } from '../../common/redis/delivery.js';
import { deviceBucket, redisKeys } from '../../common/redis/keys.js';
import { campaignMessageId } from '../../common/campaign/plan.js';
import { UNITS } from '../../workloads/dispatcher/units.js';
import {
  campaignPlan,
  publishCampaign,
  startDispatcherProcess,
  stopDispatcher,
  untilProgress,
} from '../support/campaign.js';

const run = promisify(execFile);

/**
 * The same gateway code on a real 3-node Redis Cluster (three redis-server processes in
 * cluster mode, started here): every multi-key script and pipeline stays inside one hash slot,
 * so delivery, fan-out, offline replay and acks work unchanged, and the keys really spread
 * over all three nodes.
 */
describe('gateway on Redis Cluster', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pg-cluster-'));
  const nodes: ChildProcess[] = [];
  const ports: number[] = [];
  let a: GatewayProcess;
  let url = '';
  let prefix = '';
  let b: GatewayProcess;
  const devices: RecordingDevice[] = [];
  const byId = (id: string) => devices.find((d) => d.device === id)!;

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const port = await freePort({ below: 50000 }); // the cluster bus listens on port + 10000
      ports.push(port);
      nodes.push(
        spawn(
          'redis-server',
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            `nodes-${port}.conf`,
          ],
          { cwd: dir, stdio: 'ignore' },
        ),
      );
    }
    for (const port of ports) {
      for (let i = 0; i < 100; i++) {
        try {
          await run('redis-cli', ['-p', String(port), 'ping']);
          break;
        } catch {
          await sleep(100);
        }
      }
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (let i = 0; i < 100; i++) {
      const { stdout } = await run('redis-cli', ['-p', String(ports[0]), 'cluster', 'info']);
      if (stdout.includes('cluster_state:ok')) break;
      await sleep(100);
    }
    url = `redis://127.0.0.1:${ports[0]}`;
    prefix = uniquePrefix('cluster');
    [a, b] = await Promise.all([
      startGatewayProcess({ redisUrl: url, prefix, id: 'gw-ca', args: ['--redis-cluster'] }),
      startGatewayProcess({ redisUrl: url, prefix, id: 'gw-cb', args: ['--redis-cluster'] }),
    ]);
    for (let i = 0; i < 12; i++) {
      const d = new RecordingDevice({
        device: `c${i}`,
        tags: i % 3 === 0 ? ['vip'] : ['std'],
        endpoints: [i % 2 ? b.wsUrl : a.wsUrl],
      });
      devices.push(d);
      await d.client.start();
    }
  });

  afterAll(async () => {
    for (const d of devices) d.client.stop();
    await Promise.all([stopGateway(a), stopGateway(b)]);
    for (const n of nodes) n.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers by device, tag expression and to all across both gateways', async () => {
    const one = await pushApi(a.httpUrl, { to: { device: 'c7' }, data: 'one' });
    expect(one.status).toBe(202);
    await until(
      () =>
        byId('c7')
          .ids()
          .includes(one.body.id as string),
      10_000,
      'device push',
    );
    const vip = await pushApi(b.httpUrl, { to: { tag: 'vip && !std' }, data: 'vip' });
    expect(vip.body).toMatchObject({ recipients: 4 });
    const all = await pushApi(a.httpUrl, { to: { all: true }, data: 'all' });
    expect(all.body.recipients).toBe(12);
    await until(() => devices.every((d) => d.ids().includes(all.body.id as string)), 10_000, 'all');
    await sleep(200);
    expect(devices.filter((d) => d.ids().includes(vip.body.id as string)).map((d) => d.device)).toEqual([
      'c0',
      'c3',
      'c6',
      'c9',
    ]);
  });

  it('stores for an offline device and replays on reconnect, with collapse, then never again after the ack', async () => {
    const d = byId('c4');
    d.client.stop();
    await sleep(300);
    for (const [data, collapseKey] of [
      ['x1', 'k'],
      ['x2', undefined],
      ['x3', 'k'],
    ] as const) {
      expect((await pushApi(b.httpUrl, { to: { device: 'c4' }, data, collapseKey })).status).toBe(202);
    }
    const back = new RecordingDevice({ device: 'c4', endpoints: [b.wsUrl] });
    devices.push(back);
    await back.client.start();
    await until(() => back.pushes.length >= 2, 10_000, 'replay');
    await sleep(300);
    expect(back.dataOf()).toEqual(['x2', 'x3']);
    back.client.stop();
    const again = new RecordingDevice({ device: 'c4', endpoints: [a.wsUrl] });
    devices.push(again);
    await again.client.start();
    await sleep(500);
    expect(again.pushes).toEqual([]);
  });

  it('replays messages whose body is stored once in its own slot (a separate read from the inbox)', async () => {
    const d = byId('c2');
    d.client.stop();
    await sleep(300);
    const redis = createRedis(url, { cluster: true });
    try {
      for (const id of ['once1', 'once2'])
        await deliverMessage(
          redis,
          redisKeys(prefix),
          'app1',
          ['c2'],
          { id, exp: Date.now() + 60_000, ttl: 60, priority: 'normal', sent: Date.now(), data: { id } },
          { maxPerDevice: 100, keyTtlMs: 60_000, route: () => {}, storeOnce: true },
        );
    } finally {
      redis.disconnect();
    }
    const back = new RecordingDevice({ device: 'c2', endpoints: [a.wsUrl] });
    devices.push(back);
    await back.client.start();
    await until(() => back.pushes.length >= 2, 10_000, 'replay of references');
    expect(back.dataOf()).toEqual([{ id: 'once1' }, { id: 'once2' }]);
  });

  it('a campaign through a dispatcher on the cluster: the tagged devices get it once, its keys in their slots', async () => {
    const redis = createRedis(url, { cluster: true });
    const keys = redisKeys(prefix);
    const dispatcher = await startDispatcherProcess({ redisUrl: url, prefix, args: ['--redis-cluster'] });
    try {
      const plan = campaignPlan({ target: { allDevices: false, allOf: ['vip'], anyOf: [], noneOf: [] } });
      await publishCampaign(redis, keys, plan);
      const p = await untilProgress(
        redis,
        keys,
        plan.id,
        (x) => x.finishedAt !== undefined,
        20_000,
        'finish',
      );
      expect(p.counters).toMatchObject({ targeted: 4, sent: 4, expired: 0, failed: 0 });
      const mid = campaignMessageId(plan.id);
      const vip = ['c0', 'c3', 'c6', 'c9'].map(byId);
      await until(() => vip.every((d) => d.ids().includes(mid)), 10_000, 'campaign on vip devices');
      expect(devices.filter((d) => d.ids().includes(mid)).map((d) => d.device)).toEqual([
        'c0',
        'c3',
        'c6',
        'c9',
      ]);
      await untilProgress(redis, keys, plan.id, (x) => x.counters.acked === 4, 10_000, 'acks counted');
      // The finished campaign's audience lists (64 slots) are removed.
      const lists = Array.from({ length: UNITS }, (_, u) => keys.campaignAudience(plan.id, u));
      const deadline = Date.now() + 5000;
      let left = 1;
      while (left > 0 && Date.now() < deadline) {
        left = (await Promise.all(lists.map((k) => redis.exists(k)))).reduce((a, b) => a + b, 0);
        if (left) await sleep(200);
      }
      expect(left).toBe(0);
    } finally {
      await stopDispatcher(dispatcher);
      redis.disconnect();
    }
  });

  it("spreads an app's tag index over the device buckets' slots and nodes (CLUSTER KEYSLOT)", async () => {
    const redis = createRedis(url, { cluster: true });
    const keys = redisKeys(prefix);
    try {
      // c2 and c4 came back without tags in the tests above (a hello's tags replace the old ones).
      const std = ['c1', 'c5', 'c7', 'c8', 'c10', 'c11'];
      const tagKeys = std.map((d) => keys.tagDevices(APP, deviceBucket(d), 'std'));
      for (const [i, k] of tagKeys.entries()) expect(await redis.zscore(k, std[i]!)).not.toBeNull();
      const slotOf = async (k: string) =>
        Number(
          await run('redis-cli', ['-p', String(ports[0]), 'cluster', 'keyslot', k]).then((r) =>
            r.stdout.trim(),
          ),
        );
      const slots = new Set(await Promise.all(tagKeys.map(slotOf)));
      expect(slots.size).toBe(new Set(std.map(deviceBucket)).size);
      expect(slots.size).toBeGreaterThan(4);
      // Each entry is in its device's slot; the app's slot holds no membership, only the catalogue.
      for (const d of std)
        expect(await slotOf(keys.tagDevices(APP, deviceBucket(d), 'std'))).toBe(
          await slotOf(keys.deviceMeta(APP, d)),
        );
      expect(await redis.exists(keys.legacyTagDevices(APP, 'std'))).toBe(0);
      expect(await redis.zscore(keys.appTags(APP), 'std')).toBe('6');
      for (const d of ['c2', 'c4'])
        expect(await redis.zscore(keys.tagDevices(APP, deviceBucket(d), 'std'), d)).toBeNull();
    } finally {
      redis.disconnect();
    }
  });

  it('spreads the keys over all three nodes', async () => {
    for (const port of ports) {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'dbsize']);
      expect(Number(stdout.trim())).toBeGreaterThan(0);
    }
  });
});
